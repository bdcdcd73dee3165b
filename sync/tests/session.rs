//! The automerge-repo protocol between two stores (`Session`), frames carried by hand: the
//! handshake, convergence, priority order, saved sync state across a reconnect, and bad peers.

mod common;

use common::*;
use locker_sync::wire::Message;
use locker_sync::{DocKey, Family, Session, SessionConfig, Step, Store, StoreOptions};

type S = Store<Fact>;

fn cfg(hub: &str, peer: &str) -> SessionConfig {
    session_cfg(hub, peer, None)
}

/// One connection between `a` (dialing) and `b` (accepting), run until neither side has
/// anything to say. Returns the facts each side learnt and how many frames each sent.
struct Link {
    a: Session,
    b: Session,
    learnt_a: Vec<Fact>,
    learnt_b: Vec<Fact>,
    frames_a: usize,
    frames_b: usize,
    /// Document of every sync frame a sent, in order.
    sent_docs_a: Vec<String>,
}

fn connect(a: &mut S, b: &mut S, now: u64) -> Link {
    let (sa, join) = Session::dial(cfg("hub-a", "hub-b"), now);
    let sb = Session::accept(cfg("hub-b", "hub-a"), now);
    let mut link = Link {
        a: sa,
        b: sb,
        learnt_a: Vec::new(),
        learnt_b: Vec::new(),
        frames_a: 1,
        frames_b: 0,
        sent_docs_a: Vec::new(),
    };
    run(&mut link, a, b, vec![join], Vec::new(), now);
    link
}

fn run(
    link: &mut Link,
    a: &mut S,
    b: &mut S,
    mut to_b: Vec<Vec<u8>>,
    mut to_a: Vec<Vec<u8>>,
    now: u64,
) {
    for _ in 0..200 {
        if to_a.is_empty() && to_b.is_empty() {
            return;
        }
        for frame in std::mem::take(&mut to_b) {
            let step: Step<Fact> = link.b.receive(b, now, &frame).unwrap();
            assert!(step.close.is_none(), "b closed: {:?}", step.close);
            link.frames_b += step.send.len();
            link.learnt_b
                .extend(step.merged.into_iter().flat_map(|(_, f)| f));
            to_a.extend(step.send);
        }
        for frame in std::mem::take(&mut to_a) {
            let step: Step<Fact> = link.a.receive(a, now, &frame).unwrap();
            assert!(step.close.is_none(), "a closed: {:?}", step.close);
            for f in &step.send {
                if let Ok(Message::Sync { document_id, .. }) = Message::decode(f) {
                    link.sent_docs_a.push(document_id);
                }
            }
            link.frames_a += step.send.len();
            link.learnt_a
                .extend(step.merged.into_iter().flat_map(|(_, f)| f));
            to_b.extend(step.send);
        }
    }
    panic!("the two sessions never went quiet");
}

#[test]
fn two_hubs_converge_catch_up_in_priority_order_and_reconnect_with_one_message_per_document() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = open_maple(da.path(), "hub-a");
    let mut b = open_maple(db.path(), "hub-b");
    let mut ga = Gen::new("hub-a");
    let mut gb = Gen::new("hub-b");
    // a: a parcel this month, one two months ago, an alert, a resident; b: its own parcel.
    let mut from_a = ga.parcel_life(NOV_15, "pa", 1, false);
    from_a.extend(ga.parcel_life(NOV_15 - 60 * DAY, "old", 2, true));
    from_a.push(ga.fact(
        NOV_15,
        None,
        None,
        Kind::Alert {
            what: "door".into(),
        },
    ));
    from_a.push(ga.fact(
        NOV_15,
        None,
        None,
        Kind::Resident {
            unit: "4B".into(),
            name: "Ana".into(),
        },
    ));
    let from_b = gb.parcel_life(NOV_15 + 7, "pb", 3, true);
    a.append(&from_a).unwrap();
    b.append(&from_b).unwrap();

    let link = connect(&mut a, &mut b, NOV_15);
    assert!(link.a.status().caught_up && link.b.status().caught_up);
    let sorted = |mut v: Vec<Fact>| {
        v.sort_by(|x, y| x.id.cmp(&y.id));
        v
    };
    assert_eq!(sorted(link.learnt_a.clone()), sorted(from_b.clone()));
    assert_eq!(sorted(link.learnt_b.clone()), sorted(from_a.clone()));
    for key in [
        DocKey::Directory,
        DocKey::monthly(Family::Parcels, NOV_15),
        DocKey::monthly(Family::Parcels, NOV_15 - 60 * DAY),
        DocKey::monthly(Family::Alerts, NOV_15),
    ] {
        assert_eq!(a.heads(&key).unwrap(), b.heads(&key).unwrap(), "{key}");
    }
    // Priority: the directory first, the current month before older months.
    let order: Vec<DocKey> = {
        let mut seen = Vec::new();
        for id in &link.sent_docs_a {
            let key = [
                DocKey::Directory,
                DocKey::monthly(Family::Parcels, NOV_15),
                DocKey::monthly(Family::Alerts, NOV_15),
                DocKey::monthly(Family::Parcels, NOV_15 - 60 * DAY),
            ]
            .into_iter()
            .find(|k| a.doc_id(k) == *id)
            .unwrap();
            if !seen.contains(&key) {
                seen.push(key);
            }
        }
        seen
    };
    assert_eq!(
        order,
        vec![
            DocKey::Directory,
            DocKey::monthly(Family::Parcels, NOV_15),
            DocKey::monthly(Family::Alerts, NOV_15),
            DocKey::monthly(Family::Parcels, NOV_15 - 60 * DAY),
        ]
    );
    drop(link);

    // Restart both: the saved sync states say each side has everything, so a reconnect costs
    // one message per document each way (the heads), settles without waiting for an answer,
    // and moves no fact.
    drop((a, b));
    let mut a = open_maple(da.path(), "hub-a");
    let mut b = open_maple(db.path(), "hub-b");
    let docs = a.documents().len();
    let again = connect(&mut a, &mut b, NOV_15 + 1000);
    assert!(again.learnt_a.is_empty() && again.learnt_b.is_empty());
    assert!(again.a.status().caught_up, "caught up without waiting");
    assert!(
        again.frames_a <= 1 + docs,
        "a sent {} frames for {docs} unchanged documents",
        again.frames_a
    );

    // Live: a new fact at a reaches b through `changed`.
    let mut link = again;
    let fresh = ga.fact(NOV_15 + 2000, Some("pa"), Some(1), Kind::Returned);
    a.append(std::slice::from_ref(&fresh)).unwrap();
    let out = link
        .a
        .changed(
            &mut a,
            NOV_15 + 2000,
            &[DocKey::monthly(Family::Parcels, NOV_15)],
        )
        .unwrap();
    run(&mut link, &mut a, &mut b, out, Vec::new(), NOV_15 + 2000);
    assert_eq!(link.learnt_b, vec![fresh]);
}

#[test]
fn a_peer_that_never_answers_does_not_stall_catch_up() {
    let da = tempfile::tempdir().unwrap();
    let mut a = open_maple(da.path(), "hub-a");
    let mut g = Gen::new("hub-a");
    a.append(&g.parcel_life(NOV_15, "p1", 1, false)).unwrap();
    a.append(&[g.fact(NOV_15, None, None, Kind::Alert { what: "x".into() })])
        .unwrap();
    let (mut s, _join) = Session::dial(cfg("hub-a", "silent"), NOV_15);
    let peer = Message::Peer {
        sender_id: "silent".into(),
        target_id: "peer-hub-a".into(),
        metadata: None,
        selected_protocol_version: "1".into(),
    };
    let step: Step<Fact> = s.receive(&mut a, NOV_15, &peer.encode()).unwrap();
    assert_eq!(step.send.len(), 1, "one document in flight at a time");
    assert_eq!(s.status().pending, 2);
    let due = s.next_poll_ms().unwrap();
    let step: Step<Fact> = s.poll(&mut a, due - 1).unwrap();
    assert!(step.send.is_empty(), "not before the timeout");
    let next: Step<Fact> = s.poll(&mut a, due).unwrap();
    assert_eq!(
        next.send.len(),
        1,
        "the next document goes after the timeout"
    );
    let due = s.next_poll_ms().unwrap();
    let last: Step<Fact> = s.poll(&mut a, due).unwrap();
    assert!(last.send.is_empty() && last.close.is_none());
    assert!(s.status().caught_up);
    assert_eq!(s.status().unanswered, 2);

    // A server that takes the connection but never answers `join` (the JS server does this to
    // a connection that arrives before its repository is ready): the session ends after the
    // reply timeout, so the link reconnects instead of waiting for ever.
    let (mut s, _join) = Session::dial(cfg("hub-a", "mute"), NOV_15);
    let due = s.next_poll_ms().unwrap();
    assert_eq!(due, NOV_15 + 5_000);
    let step: Step<Fact> = s.poll(&mut a, due).unwrap();
    assert!(step.close.unwrap().contains("no handshake"));
    assert!(s.is_closed());
}

#[test]
fn bad_peers_get_an_error_and_the_connection_closes_with_nothing_applied() {
    let da = tempfile::tempdir().unwrap();
    let mut a = open_maple(da.path(), "hub-a");
    let before = a.documents();

    // Garbage instead of a handshake.
    let mut s = Session::accept(cfg("hub-a", "x"), NOV_15);
    let step: Step<Fact> = s.receive(&mut a, NOV_15, b"\xff\x00garbage").unwrap();
    assert!(step.close.is_some() && s.is_closed());
    assert!(matches!(
        Message::decode(&step.send[0]),
        Ok(Message::Error { .. })
    ));

    // A version we do not speak.
    let mut s = Session::accept(cfg("hub-a", "x"), NOV_15);
    let join = Message::Join {
        sender_id: "x".into(),
        metadata: None,
        supported_protocol_versions: vec!["2".into()],
    };
    let step: Step<Fact> = s.receive(&mut a, NOV_15, &join.encode()).unwrap();
    assert!(step.close.unwrap().contains("unsupported protocol"));

    // Sync before the handshake.
    let mut s = Session::accept(cfg("hub-a", "x"), NOV_15);
    let sync = Message::Sync {
        sender_id: "x".into(),
        target_id: "peer-hub-a".into(),
        document_id: a.doc_id(&DocKey::Directory),
        data: vec![0x42],
    };
    let step: Step<Fact> = s.receive(&mut a, NOV_15, &sync.encode()).unwrap();
    assert!(step.close.is_some());

    // A broken automerge message after a good handshake: refused, nothing stored.
    let mut s = Session::accept(cfg("hub-a", "x"), NOV_15);
    let join = Message::Join {
        sender_id: "x".into(),
        metadata: None,
        supported_protocol_versions: vec!["1".into()],
    };
    let _: Step<Fact> = s.receive(&mut a, NOV_15, &join.encode()).unwrap();
    let step: Step<Fact> = s.receive(&mut a, NOV_15, &sync.encode()).unwrap();
    assert!(step.close.unwrap().contains("bad sync message"));
    assert_eq!(a.documents(), before);

    // A document of another site: unavailable, and the session goes on.
    let mut s = Session::accept(cfg("hub-a", "x"), NOV_15);
    let _: Step<Fact> = s.receive(&mut a, NOV_15, &join.encode()).unwrap();
    let foreign = Message::Request {
        sender_id: "x".into(),
        target_id: "peer-hub-a".into(),
        document_id: locker_sync::document_id_string(&DocKey::Directory.document_id("other")),
        data: vec![0x42],
    };
    let step: Step<Fact> = s.receive(&mut a, NOV_15, &foreign.encode()).unwrap();
    assert!(step.close.is_none());
    assert!(matches!(
        Message::decode(&step.send[0]),
        Ok(Message::DocUnavailable { .. })
    ));

    // A frame that claims another sender is dropped.
    let spoofed = Message::Sync {
        sender_id: "someone-else".into(),
        target_id: "peer-hub-a".into(),
        document_id: a.doc_id(&DocKey::Directory),
        data: vec![0x42],
    };
    let step: Step<Fact> = s.receive(&mut a, NOV_15, &spoofed.encode()).unwrap();
    assert!(step.send.is_empty() && step.close.is_none());
}

/// Retention never deletes a month a peer has not got: with `keep_unsynced`, a partition past
/// retention stays until every peer with a saved sync state has all of it.
#[test]
fn retention_keeps_a_month_until_every_peer_has_it() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let opts = |keep| StoreOptions {
        site_id: Some("maple".into()),
        now_ms: Some(NOV_15),
        retention_months: 1,
        keep_unsynced: keep,
        ..Default::default()
    };
    let mut a = S::open(da.path(), "hub-a", opts(true)).unwrap().0;
    let mut b = S::open(db.path(), "hub-b", opts(false)).unwrap().0;
    let mut g = Gen::new("hub-a");
    let old = NOV_15 - 90 * DAY;
    let key = DocKey::monthly(Family::Parcels, old);
    a.append(&g.parcel_life(old, "old", 1, true)).unwrap();

    // No peer has synced yet: kept.
    let done = a.maintain(NOV_15, None).unwrap();
    assert!(done.expired.is_empty(), "{done:?}");

    // b catches up: now the month may go.
    let link = connect(&mut a, &mut b, NOV_15);
    assert!(link.a.status().caught_up);
    assert!(a.peer_has("hub-b", &key).unwrap());
    // ... unless it changed since (a late fact b has not got).
    a.append(&[g.fact(old + 1, Some("old"), Some(1), Kind::Returned)])
        .unwrap();
    let done = a.maintain(NOV_15, None).unwrap();
    assert!(
        done.expired.is_empty(),
        "a change b lacks keeps it: {done:?}"
    );
    let mut link = link;
    let out = link.a.changed(&mut a, NOV_15, &[key]).unwrap();
    run(&mut link, &mut a, &mut b, out, Vec::new(), NOV_15);
    let done = a.maintain(NOV_15, None).unwrap();
    assert_eq!(done.expired, vec![key]);
    // b, without sync guarding, expires by age alone as before.
    let done = b.maintain(NOV_15, None).unwrap();
    assert_eq!(done.expired, vec![key]);
}

/// A reconnect does not load old months the peer already has: their heads are stored with them.
#[test]
fn a_reconnect_leaves_old_months_the_peer_has_on_disk() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = open_maple(da.path(), "hub-a");
    let mut b = open_maple(db.path(), "hub-b");
    let mut g = Gen::new("hub-a");
    let old = NOV_15 - 90 * DAY;
    a.append(&g.parcel_life(old, "old", 1, true)).unwrap();
    a.append(&g.parcel_life(NOV_15, "new", 2, false)).unwrap();
    connect(&mut a, &mut b, NOV_15);
    drop(a);
    let mut a = open_maple(da.path(), "hub-a");
    let key = DocKey::monthly(Family::Parcels, old);
    assert!(!a.documents().iter().any(|d| d.key == key && d.loaded));
    let again = connect(&mut a, &mut b, NOV_15 + 1);
    assert!(again.a.status().caught_up);
    assert!(
        !a.documents().iter().any(|d| d.key == key && d.loaded),
        "the old month stayed on disk"
    );
    assert!(
        !again.sent_docs_a.iter().any(|id| *id == a.doc_id(&key)),
        "and was not offered again"
    );
}
