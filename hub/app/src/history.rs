//! Keeping old, still-open parcels and alerts in view.
//!
//! At start the store loads only the live documents (this month and the previous one), so a
//! year of history costs nothing. A parcel that is still waiting after that window (a long
//! vacation hold, an expired parcel nobody removed yet) must not vanish from the core's view:
//! its compartment would look free and could be booked twice. Nor may an alert nobody
//! acknowledged: an alert stays open until a person acknowledges it, whatever became of its
//! parcel or door since (it records something a person must know, such as a door forced or a
//! pickup in dispute; the alerts the workflows settle themselves are cleared by the core).
//!
//! The hub therefore remembers, in the local (never synced) table, two marks: when the oldest
//! open parcel was delivered, and when the oldest open alert was raised. At start it loads the
//! parcel documents from the first mark's month and the alert documents from the second's, up
//! to the live window. The two are kept apart so that one alert nobody acknowledged costs its
//! months' alert documents (a few kilobytes each), never a year of parcels.
//!
//! The same marks keep the store's retention from deleting those months (`Store::maintain`).
//! This is the one mechanism for old open things: the store knows nothing of parcels.
//!
//! The marks are refreshed on the maintenance timer. Between refreshes they can only be older
//! than necessary (old parcels finish, new ones are newer), which loads a little more than
//! needed and never less. Facts merged in from another replica may reveal an older open parcel;
//! the next refresh covers that.

use locker_core::{Core, Location, Millis};
use locker_sync::{DocKey, Family, Month, Store, StoreError};
use tracing::{info, warn};

use crate::facts::StoredFact;

/// The oldest open parcel's delivery (Unix ms, 8 bytes little-endian). Stores from before the
/// alerts had their own mark kept the older of the two here.
const OPEN_SINCE: &str = "open-since-ms";
/// The oldest open alert's raising: 8 bytes, or empty for "no alert open".
const ALERTS_OPEN_SINCE: &str = "alerts-open-since-ms";

/// The two marks: (oldest open parcel, oldest open alert).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Marks {
    pub parcels: Option<u64>,
    pub alerts: Option<u64>,
}

impl Marks {
    /// The older of the two: the first month the store's retention must keep.
    pub fn keep_from(&self) -> Option<u64> {
        self.parcels.into_iter().chain(self.alerts).min()
    }
}

/// Facts from documents older than the live window that the core needs: the parcel documents
/// from the month of the oldest open parcel, and the alert documents from the month of the
/// oldest open alert, up to the live window.
pub fn older_open_facts(
    store: &Store<StoredFact>,
    now: Millis,
) -> Result<Vec<StoredFact>, StoreError> {
    let marks = read_marks(store)?;
    let first_live = Month::of_ms(now.0).previous().index();
    let mut facts = Vec::new();
    let mut loaded = Vec::new();
    for (family, since) in [
        (Family::Parcels, marks.parcels),
        (Family::Alerts, marks.alerts),
    ] {
        let Some(since) = since else { continue };
        for index in Month::of_ms(since).index()..first_live {
            let month = Month::from_index(index);
            let key = DocKey::Monthly(family, month);
            let got = store.facts_in(&key)?;
            if !got.is_empty() {
                loaded.push(format!(
                    "{}-{:04}-{:02}",
                    family.as_str(),
                    month.year,
                    month.month
                ));
            }
            facts.extend(got);
        }
    }
    if !loaded.is_empty() {
        info!(documents = ?loaded, facts = facts.len(), "loaded older documents that still hold open parcels or alerts");
    }
    Ok(facts)
}

/// Recompute the marks from the core and persist those that moved.
pub fn refresh_mark(store: &mut Store<StoredFact>, core: &Core) {
    let parcels = core
        .parcels()
        .into_iter()
        .filter(|p| !matches!(p.location, Location::PickedUp | Location::Returned))
        .map(|p| p.delivered_at.0)
        .min();
    let alerts = core.alerts().into_iter().map(|a| a.raised_at.0).min();
    let now = Marks { parcels, alerts };
    // Unchanged, and the alerts' own mark already written (a store from before has none).
    let recorded = store.local_get(ALERTS_OPEN_SINCE).ok().flatten().is_some();
    if recorded && read_marks(store).ok() == Some(now) {
        return;
    }
    let mut result = match now.parcels {
        Some(ms) => store.local_put(OPEN_SINCE, &ms.to_le_bytes()),
        None => store.local_delete(OPEN_SINCE),
    };
    if result.is_ok() {
        result = match now.alerts {
            Some(ms) => store.local_put(ALERTS_OPEN_SINCE, &ms.to_le_bytes()),
            None => store.local_put(ALERTS_OPEN_SINCE, &[]),
        };
    }
    if let Err(e) = result {
        warn!(error = %e, "cannot record the oldest open parcel or alert; the next start may not see it");
    }
}

/// The marks as last recorded. A store from before the alerts' own mark has only the first,
/// which then stands for both (it was the older of the two).
pub fn read_marks(store: &Store<StoredFact>) -> Result<Marks, StoreError> {
    let ms = |b: Vec<u8>| {
        <[u8; 8]>::try_from(b.as_slice())
            .ok()
            .map(u64::from_le_bytes)
    };
    let parcels = store.local_get(OPEN_SINCE)?.and_then(ms);
    let alerts = match store.local_get(ALERTS_OPEN_SINCE)? {
        Some(b) => ms(b),
        None => parcels,
    };
    Ok(Marks { parcels, alerts })
}

/// The older of the two marks: the first month the store's retention must keep.
pub fn read_mark(store: &Store<StoredFact>) -> Result<Option<u64>, StoreError> {
    Ok(read_marks(store)?.keep_from())
}

#[cfg(test)]
mod tests {
    use super::*;
    use locker_core::{
        BankLayout, CarrierId, Command, CompartmentLayout, Entropy, Input, Observation, Operator,
        Outcome, Policies, Recipient, Request, RequestId, ResidentId, SiteLayout, Size, TempClass,
    };
    use locker_sync::StoreOptions;

    struct Counter(u8);
    impl Entropy for Counter {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                self.0 = self.0.wrapping_add(37);
                *b = self.0;
            }
        }
    }

    fn layout() -> SiteLayout {
        SiteLayout {
            banks: vec![BankLayout {
                id: "A".into(),
                compartments: (1..=2)
                    .map(|door| CompartmentLayout {
                        door,
                        size: Size::Small,
                        temperature: TempClass::Ambient,
                        accessible: false,
                        out_of_service: false,
                    })
                    .collect(),
            }],
            units: Vec::new(),
        }
    }

    fn open(dir: &std::path::Path, now: u64) -> (Store<StoredFact>, Vec<StoredFact>) {
        let opts = StoreOptions {
            now_ms: Some(now),
            ..StoreOptions::default()
        };
        let (store, facts, _) = Store::open(dir, "hub1", opts).unwrap();
        (store, facts)
    }

    /// A new store at `t0`, an empty core on it, and its entropy.
    fn fresh(t0: u64) -> (tempfile::TempDir, Store<StoredFact>, Core, Counter) {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path(), t0);
        let core = Core::new(layout(), Policies::default(), store.site_key(), "hub1", []);
        (dir, store, core, Counter(0))
    }

    #[test]
    fn a_parcel_older_than_the_live_window_is_still_in_its_compartment_after_a_restart() {
        const DAY: u64 = 86_400_000;
        let t0 = 1_790_000_000_000; // 2026-09-21
        let (dir, mut store, mut core, mut e) = fresh(t0);
        let mut n = 0;
        let mut step = |core: &mut Core, store: &mut Store<StoredFact>, input: Input| {
            n += 1;
            let out = core.handle(Millis(t0 + n * 1000), input, &mut e);
            let facts: Vec<StoredFact> = out.facts.iter().cloned().map(StoredFact::from).collect();
            store.append(&facts).unwrap();
            out
        };
        let cmd = |id: &str, request| {
            Input::Command(Command {
                request_id: RequestId(id.into()),
                request,
            })
        };
        for (id, request) in [
            (
                "1",
                Request::RegisterResident {
                    by: Operator::Cloud,
                    resident: ResidentId("r1".into()),
                    unit: "1".into(),
                    accessible: false,
                    mode: locker_core::RegisterMode::Upsert,
                    contact: Default::default(),
                },
            ),
            (
                "2",
                Request::RegisterCarrier {
                    by: Operator::Cloud,
                    carrier: CarrierId("c1".into()),
                    name: "C".into(),
                    email: None,
                },
            ),
            (
                "3",
                Request::IssueCarrierCode {
                    by: Operator::Cloud,
                    carrier: CarrierId("c1".into()),
                    code: "123456".into(),
                },
            ),
        ] {
            step(&mut core, &mut store, cmd(id, request));
        }
        let out = step(
            &mut core,
            &mut store,
            cmd(
                "4",
                Request::StartDropOff {
                    bank: "A".into(),
                    carrier_code: "123456".into(),
                    recipient: Recipient::Unit { unit: "1".into() },
                    size: Some(Size::Small),
                    dimensions: None,
                    temperature: TempClass::Ambient,
                    share: false,
                    tracking: None,
                },
            ),
        );
        let Some(Outcome::Reserved {
            reservation, door, ..
        }) = out.reply.map(|r| r.outcome)
        else {
            panic!("not reserved");
        };
        let door_state = |open| {
            Input::Observation(Observation::DoorState {
                bank: "A".into(),
                door,
                open,
                occupied: None,
            })
        };
        step(&mut core, &mut store, door_state(true));
        step(
            &mut core,
            &mut store,
            cmd(
                "5",
                Request::ConfirmParcel {
                    reservation,
                    tracking: None,
                },
            ),
        );
        step(&mut core, &mut store, door_state(false));
        refresh_mark(&mut store, &core);
        let held = |core: &Core| {
            core.parcels().into_iter().any(|p| {
                p.location
                    == Location::Compartment {
                        bank: "A".into(),
                        door,
                    }
            })
        };
        assert!(held(&core), "the parcel was delivered");
        drop(store);

        // A hundred days later the parcel's month is outside the live window.
        let later = t0 + 100 * DAY;
        let (store, live) = open(dir.path(), later);
        let without: Core = Core::new(
            layout(),
            Policies::default(),
            store.site_key(),
            "hub1",
            live.iter().map(|f| f.fact.clone()),
        );
        assert!(
            !held(&without),
            "the live window alone does not hold the old parcel (else this test proves nothing)"
        );
        let older = older_open_facts(&store, Millis(later)).unwrap();
        let with = Core::new(
            layout(),
            Policies::default(),
            store.site_key(),
            "hub1",
            live.into_iter().chain(older).map(|f| f.fact),
        );
        assert!(
            held(&with),
            "the old, uncollected parcel is still in its compartment"
        );
    }

    #[test]
    fn an_old_unacknowledged_alert_loads_its_alert_document_and_no_parcel_document() {
        const DAY: u64 = 86_400_000;
        let t0 = 1_790_000_000_000; // 2026-09-21
        let (dir, mut store, mut core, mut e) = fresh(t0);
        // A door forced open (an alert nobody acknowledges), and the door closed again: the
        // month also gets parcel-document facts (the door's story).
        for (n, obs) in [
            Observation::DoorOpened {
                bank: "A".into(),
                door: 1,
            },
            Observation::DoorClosed {
                bank: "A".into(),
                door: 1,
            },
        ]
        .into_iter()
        .enumerate()
        {
            let out = core.handle(
                Millis(t0 + n as u64 * 1000),
                Input::Observation(obs),
                &mut e,
            );
            let facts: Vec<StoredFact> = out.facts.iter().cloned().map(StoredFact::from).collect();
            store.append(&facts).unwrap();
        }
        assert_eq!(core.alerts().len(), 1, "the forced door raised an alert");
        refresh_mark(&mut store, &core);
        let marks = read_marks(&store).unwrap();
        assert_eq!(marks.parcels, None, "no parcel is open");
        assert!(marks.alerts.is_some());
        drop(store);

        let later = t0 + 100 * DAY;
        let (store, live) = open(dir.path(), later);
        let older = older_open_facts(&store, Millis(later)).unwrap();
        assert!(!older.is_empty(), "the alert's document was loaded");
        for f in &older {
            assert!(
                matches!(
                    f.fact.kind,
                    locker_core::FactKind::AlertRaised { .. }
                        | locker_core::FactKind::AlertCleared { .. }
                ),
                "only alert documents are loaded for an old alert, not {:?}",
                f.fact.kind
            );
        }
        let with = Core::new(
            layout(),
            Policies::default(),
            store.site_key(),
            "hub1",
            live.into_iter().chain(older).map(|f| f.fact),
        );
        assert_eq!(with.alerts().len(), 1, "the old alert is still open");
    }

    #[test]
    fn a_store_from_before_the_alerts_mark_loads_alerts_from_the_one_mark() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = open(dir.path(), 1_790_000_000_000);
        store
            .local_put(OPEN_SINCE, &1_780_000_000_000u64.to_le_bytes())
            .unwrap();
        let marks = read_marks(&store).unwrap();
        assert_eq!(marks.parcels, Some(1_780_000_000_000));
        assert_eq!(marks.alerts, Some(1_780_000_000_000));
        // Once refreshed, "no alert open" is recorded as such and no longer falls back.
        let core = Core::new(layout(), Policies::default(), store.site_key(), "hub1", []);
        refresh_mark(&mut store, &core);
        assert_eq!(read_marks(&store).unwrap(), Marks::default());
    }
}
