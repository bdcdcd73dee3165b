//! Keeping old, still-open parcels in view.
//!
//! At start the store loads only the live documents (this month and the previous one), so a
//! year of history costs nothing. A parcel that is still waiting after that window (a long
//! vacation hold, an expired parcel nobody removed yet) must not vanish from the core's view:
//! its compartment would look free and could be booked twice. The hub therefore remembers, in the
//! local (never synced) table, when the oldest open thing began ("open since"), and at start loads
//! the parcel and alert documents from that month up to the live window as well.
//!
//! The same mark keeps the store's retention from deleting those months (`Store::maintain`).
//! This is the one mechanism for old open parcels: the store knows nothing of parcels.
//!
//! The mark is refreshed on the maintenance timer. Between refreshes it can only be older than
//! necessary (old parcels finish, new ones are newer), which loads a little more than needed and
//! never less. Facts merged in from another replica may reveal an older open parcel; the next
//! refresh covers that.

use locker_core::{Core, Location, Millis};
use locker_sync::{DocKey, Family, Month, Store, StoreError};
use tracing::{info, warn};

use crate::facts::StoredFact;

const OPEN_SINCE: &str = "open-since-ms";

/// Facts from documents older than the live window that the core needs: every parcel and alert
/// document from the month of the persisted "open since" mark up to the live window.
pub fn older_open_facts(
    store: &Store<StoredFact>,
    now: Millis,
) -> Result<Vec<StoredFact>, StoreError> {
    let Some(since) = read_mark(store)? else {
        return Ok(Vec::new());
    };
    let first_live = Month::of_ms(now.0).previous().index();
    let mut facts = Vec::new();
    let mut loaded = Vec::new();
    for index in Month::of_ms(since).index()..first_live {
        let month = Month::from_index(index);
        for family in [Family::Parcels, Family::Alerts] {
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

/// Recompute the mark from the core and persist it if it moved.
pub fn refresh_mark(store: &mut Store<StoredFact>, core: &Core) {
    let oldest_parcel = core
        .parcels()
        .into_iter()
        .filter(|p| !matches!(p.location, Location::PickedUp | Location::Returned))
        .map(|p| p.delivered_at.0)
        .min();
    let oldest_alert = core.alerts().into_iter().map(|a| a.raised_at.0).min();
    let mark = oldest_parcel.into_iter().chain(oldest_alert).min();
    let current = read_mark(store).ok().flatten();
    if mark == current {
        return;
    }
    let result = match mark {
        Some(ms) => store.local_put(OPEN_SINCE, &ms.to_le_bytes()),
        None => store.local_delete(OPEN_SINCE),
    };
    if let Err(e) = result {
        warn!(error = %e, "cannot record the oldest open parcel; the next start may not see it");
    }
}

/// When the oldest open parcel or alert began, as last marked (Unix ms): the month the store's
/// retention must keep, and older documents must be loaded from at start.
pub fn read_mark(store: &Store<StoredFact>) -> Result<Option<u64>, StoreError> {
    Ok(store
        .local_get(OPEN_SINCE)?
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(u64::from_le_bytes))
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

    #[test]
    fn a_parcel_older_than_the_live_window_is_still_in_its_compartment_after_a_restart() {
        const DAY: u64 = 86_400_000;
        let t0 = 1_790_000_000_000; // 2026-09-21
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = open(dir.path(), t0);
        let mut core = Core::new(layout(), Policies::default(), store.site_key(), "hub1", []);
        let mut e = Counter(0);
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
}
