//! Our automerge-repo protocol (`Session` over the store) against samod, the Rust implementation
//! we did not write, in-process: samod accepts, the hub dials. The hub's documents reach samod
//! whole; a fact samod writes reaches the hub's store (durable, and reported as new); a reconnect
//! resumes. A second implementation catches protocol drift that tests between two of our own
//! sessions cannot.

mod common;

use std::str::FromStr;
use std::time::Duration;

use automerge::transaction::Transactable;
use automerge::{ObjType, ReadDoc, ROOT};
use common::*;
use futures::{SinkExt, StreamExt};
use locker_sync::{DocKey, Family, Session, SessionConfig, Store, StoreOptions};
use samod::{DocumentId, Repo};

type S = Store<Fact>;

fn open(dir: &std::path::Path) -> S {
    let opts = StoreOptions {
        site_id: Some("maple".into()),
        now_ms: Some(NOV_15),
        ..Default::default()
    };
    S::open(dir, "hub-a", opts).unwrap().0
}

/// Runs one connection from the hub's session to samod until `until` says stop (checked after
/// every frame and every 20 ms). Returns the facts the hub learnt.
async fn session_with(
    repo: &Repo,
    store: &mut S,
    until: &mut dyn FnMut(&Session, &mut S) -> bool,
) -> Vec<Fact> {
    let acceptor = repo
        .make_acceptor(url::Url::parse("ws://hub-test/").unwrap())
        .unwrap();
    let (to_samod, samod_in) = futures::channel::mpsc::channel::<Vec<u8>>(64);
    let (samod_out, mut from_samod) = futures::channel::mpsc::channel::<Vec<u8>>(64);
    let transport = samod::Transport::new(samod_in.map(Ok::<_, std::io::Error>), samod_out);
    let _conn = acceptor.accept(transport).unwrap();
    let mut to_samod = to_samod;

    let (mut session, join) = Session::dial(
        SessionConfig {
            peer_id: "hub-a-peer".into(),
            storage_id: "hub-a".into(),
            name: "samod".into(),
            reply_timeout_ms: 2_000,
            want_requests: false,
            months_back: 24,
            offload_bytes: None,
        },
        NOV_15,
    );
    to_samod.send(join).await.unwrap();
    let mut learnt = Vec::new();
    let started = std::time::Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no convergence with samod within 20 s: {:?}",
            session.status()
        );
        let now = NOV_15 + started.elapsed().as_millis() as u64;
        match tokio::time::timeout(Duration::from_millis(20), from_samod.next()).await {
            Ok(Some(frame)) => {
                let step = session.receive(store, now, &frame).unwrap();
                assert!(step.close.is_none(), "closed: {:?}", step.close);
                learnt.extend(step.merged.into_iter().flat_map(|(_, f)| f));
                for f in step.send {
                    to_samod.send(f).await.unwrap();
                }
            }
            Ok(None) => panic!("samod closed the connection"),
            Err(_) => {
                for f in session.poll(store, now).unwrap().send {
                    to_samod.send(f).await.unwrap();
                }
            }
        }
        if until(&session, store) {
            return learnt;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samod_receives_the_hubs_documents_and_its_writes_reach_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut g = Gen::new("hub-a");
    let ours = g.parcel_life(NOV_15, "p1", 1, true);
    store.append(&ours).unwrap();
    let key = DocKey::monthly(Family::Parcels, NOV_15);
    let doc_id = DocumentId::from_str(&store.doc_id(&key)).unwrap();

    let repo = Repo::build_tokio().load().await;
    let learnt = session_with(&repo, &mut store, &mut |s, _| s.status().caught_up).await;
    assert!(learnt.is_empty());

    // samod has the month, with every fact, under the id the hub derives.
    let handle = repo
        .find(doc_id.clone())
        .await
        .unwrap()
        .expect("samod has the parcels month");
    let mut ids: Vec<String> = handle.with_document(|doc| doc.keys(ROOT).collect());
    ids.sort();
    let mut want: Vec<String> = ours.iter().map(|f| f.id.clone()).collect();
    want.sort();
    assert_eq!(ids, want);

    // A fact written on the samod side reaches the hub while connected.
    let theirs_id = fact_id(NOV_15 + 50, "cloud", 1);
    handle
        .with_document(|doc| {
            let mut tx = doc.transaction();
            let obj = tx.put_object(ROOT, theirs_id.as_str(), ObjType::Map)?;
            tx.put(&obj, "id", theirs_id.as_str())?;
            tx.put(&obj, "at_ms", (NOV_15 + 50) as i64)?;
            tx.put(&obj, "actor", "cloud/ops")?;
            tx.put(&obj, "parcel", "p1")?;
            let kind = tx.put_object(&obj, "kind", ObjType::Map)?;
            tx.put(&kind, "type", "returned")?;
            tx.commit();
            Ok::<_, automerge::AutomergeError>(())
        })
        .unwrap();
    let learnt = session_with(&repo, &mut store, &mut |_, st| {
        st.facts_in(&key).unwrap().iter().any(|f| f.id == theirs_id)
    })
    .await;
    assert!(
        learnt
            .iter()
            .any(|f| f.id == theirs_id && f.kind == Kind::Returned),
        "the hub reports samod's fact as new: {learnt:?}"
    );
    // Durable: after a restart of the store it is there.
    drop(store);
    let store = open(dir.path());
    assert!(store
        .facts_in(&key)
        .unwrap()
        .iter()
        .any(|f| f.id == theirs_id));
    repo.stop().await;
}
