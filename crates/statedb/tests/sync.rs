//! State sync between real stores on disk: a fresh node syncs from a server
//! to the same root, height and leaves, and follows on with the next block;
//! a sync to an old target completes while the server commits new blocks;
//! lying servers are refused, with nothing left on disk.

use commonware_codec::Encode as _;
use phalanx_primitives::Hash;
use phalanx_statedb::StateService;
use phalanx_statedb::service::Write;
use phalanx_statedb::sync::{
    self, Operation, Refused, Rejection, SYNC_ATTEMPTS_MAX, SyncError, SyncResponse, SyncTarget, decode_request,
    decode_response,
};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A block: its height and writes.
type Block = (u64, Vec<Write>);

/// A block's writes on top of `model`: new leaves, updates of old ones
/// (some keys over and over), deletions.
fn block(rng: &mut StdRng, model: &mut BTreeMap<Vec<u8>, Vec<u8>>, new: usize) -> Vec<Write> {
    let mut writes = Vec::new();
    let known: Vec<Vec<u8>> = model.keys().cloned().collect();
    for _ in 0..new {
        let mut key = vec![1, rng.random_range(0..3u8)];
        key.extend((0..8).map(|_| rng.random::<u8>()));
        let value: Vec<u8> = (0..rng.random_range(0..100usize)).map(|_| rng.random::<u8>()).collect();
        writes.push((key, Some(value)));
    }
    if !known.is_empty() {
        for i in 0..20 {
            // The first few keys every block, others at random.
            let key =
                if i < 5 { known[i % known.len()].clone() } else { known[rng.random_range(0..known.len())].clone() };
            writes.push((key, Some(vec![rng.random::<u8>(); 8])));
        }
        for _ in 0..5 {
            let key = known[rng.random_range(5.min(known.len() - 1)..known.len())].clone();
            writes.push((key, None));
        }
    }
    for (key, value) in &writes {
        match value {
            Some(value) => model.insert(key.clone(), value.clone()),
            None => model.remove(key),
        };
    }
    writes
}

/// A server store with ~5000 leaves over 50 blocks.
fn server(dir: &Path, rng: &mut StdRng) -> (Arc<StateService>, BTreeMap<Vec<u8>, Vec<u8>>) {
    let service = StateService::open(dir).unwrap();
    let mut model = BTreeMap::new();
    for height in 0..50 {
        let writes = block(rng, &mut model, 100);
        service.apply(height, writes).unwrap();
    }
    (Arc::new(service), model)
}

fn serving(server: &Arc<StateService>) -> impl Fn(Vec<u8>) -> Result<Vec<u8>, String> + Send + Sync + 'static {
    let server = Arc::clone(server);
    move |request| server.serve_sync(request).map_err(|e| e.to_string())
}

#[test]
fn a_fresh_node_syncs_to_the_same_state_and_follows_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let (server, model) = server(&dir.path().join("server"), &mut rng);
    let status = server.status().unwrap();
    let target = server.sync_target().unwrap();
    assert_eq!(SyncTarget::decode(&target.encode()).unwrap(), target);
    assert_eq!((target.height, target.root, target.end), (49, status.root, status.size));
    assert!(target.start > 0, "the inactivity floor has moved: the sync starts past a boundary, with pinned nodes");

    let client = sync::sync(&dir.path().join("client"), &target, status.root, serving(&server)).unwrap();
    let synced = client.status().unwrap();
    assert_eq!((synced.height, synced.root), (Some(49), status.root));
    let leaves = client.leaves().unwrap();
    assert_eq!(leaves, server.leaves().unwrap());
    assert_eq!(leaves.into_iter().collect::<BTreeMap<_, _>>(), model);

    // Pages walk the same leaves.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = client.leaves_page(after, 1000).unwrap();
        assert!(page.leaves.len() <= 1000);
        paged.extend(page.leaves);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, client.leaves().unwrap());

    // The next block, applied to both, gives both the same root.
    let mut next_model = model.clone();
    let writes = block(&mut rng, &mut next_model, 30);
    let server_root = server.apply(50, writes.clone()).unwrap();
    assert_eq!(client.apply(50, writes).unwrap(), server_root);
    assert_eq!(client.get(next_model.keys().next().unwrap()).unwrap().as_ref(), next_model.values().next());

    // The synced store reopens at the same state.
    drop(client);
    let reopened = StateService::open(&dir.path().join("client")).unwrap();
    assert_eq!(reopened.status().unwrap().root, server_root);
}

#[test]
fn a_sync_completes_while_the_server_commits_new_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(2);
    let (server, model) = server(&dir.path().join("server"), &mut rng);
    let target = server.sync_target().unwrap();

    // Before answering each request, the server commits another block.
    let height = Arc::new(AtomicU64::new(50));
    let later: Arc<Mutex<Vec<Block>>> = Arc::default();
    let fetch = {
        let (server, height, later) = (Arc::clone(&server), Arc::clone(&height), Arc::clone(&later));
        let rng = Mutex::new(StdRng::seed_from_u64(3));
        let model = Mutex::new(model);
        move |request: Vec<u8>| {
            let writes = block(&mut rng.lock().unwrap(), &mut model.lock().unwrap(), 200);
            let h = height.fetch_add(1, Ordering::SeqCst);
            server.apply(h, writes.clone()).map_err(|e| e.to_string())?;
            later.lock().unwrap().push((h, writes));
            server.serve_sync(request).map_err(|e| e.to_string())
        }
    };
    let client = sync::sync(&dir.path().join("client"), &target, target.root, fetch).unwrap();
    let later = later.lock().unwrap().clone();
    assert!(later.len() >= 2, "the server moved on during the sync");
    let synced = client.status().unwrap();
    assert_eq!((synced.height, synced.root), (Some(target.height), target.root), "synced to the old target");

    // Replaying the server's later blocks brings the client to the server's state.
    for (h, writes) in later {
        client.apply(h, writes).unwrap();
    }
    assert_eq!(client.status().unwrap().root, server.status().unwrap().root);
    assert_eq!(client.leaves().unwrap(), server.leaves().unwrap());
}

/// A server that answers through `tamper` from its `from`-th operations response on.
fn tampering(
    server: &Arc<StateService>,
    from: u64,
    tamper: impl Fn(SyncResponse) -> SyncResponse + Send + Sync + 'static,
) -> impl Fn(Vec<u8>) -> Result<Vec<u8>, String> + Send + Sync + 'static {
    let server = Arc::clone(server);
    let seen = AtomicU64::new(0);
    move |request: Vec<u8>| {
        let max_ops = decode_request(&request).unwrap().max_ops().get();
        let bytes = server.serve_sync(request).map_err(|e| e.to_string())?;
        let response = decode_response(&bytes, max_ops).unwrap();
        if matches!(response, SyncResponse::Operations { .. }) && seen.fetch_add(1, Ordering::SeqCst) >= from {
            return Ok(tamper(response).encode().to_vec());
        }
        Ok(bytes)
    }
}

fn is_empty_or_gone(dir: &Path) -> bool {
    !dir.exists() || std::fs::read_dir(dir).unwrap().next().is_none()
}

#[test]
fn lying_servers_are_refused_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(4);
    let (server, _) = server(&dir.path().join("server"), &mut rng);
    let target = server.sync_target().unwrap();
    let client = dir.path().join("client");

    // A target for another root than the trusted one.
    let trusted = target.root;
    let other = Hash([9; 32]);
    let error = sync::sync(&client, &target, other, serving(&server)).unwrap_err();
    assert!(matches!(error, SyncError::UntrustedRoot { claimed, trusted: t } if claimed == trusted && t == other));
    assert!(!client.exists());

    // A target whose ops root the witness does not bind to the root.
    let mut lying = target.clone();
    lying.ops_root = Hash([7; 32]);
    let error = sync::sync(&client, &lying, trusted, serving(&server)).unwrap_err();
    assert!(matches!(error, SyncError::OpsRootNotWitnessed { .. }), "{error}");
    let mut lying = target.clone();
    lying.witness.truncate(3);
    assert!(matches!(sync::sync(&client, &lying, trusted, serving(&server)), Err(SyncError::BadTarget(_))));
    assert!(!client.exists());

    // Fields the witness does not bind: a wrong height is found once the
    // store is built, a wrong range when the proofs do not verify.
    let mut lying = target.clone();
    lying.height += 1;
    let error = sync::sync(&client, &lying, trusted, serving(&server)).unwrap_err();
    assert!(matches!(error, SyncError::HeightMismatch { expected: 50, actual: Some(49) }), "{error}");
    assert!(!client.exists());
    let mut lying = target.clone();
    lying.end += 5;
    let error = sync::sync(&client, &lying, trusted, serving(&server)).unwrap_err();
    assert!(matches!(error, SyncError::Rejected(_)), "{error}");
    assert!(!client.exists());
    let mut lying = target.clone();
    lying.start += 512;
    // Past the inactivity floor, the store cannot be rebuilt (the floor's
    // operations are missing); between the boundary and the floor, its root
    // would not be the trusted one.
    let error = sync::sync(&client, &lying, trusted, serving(&server)).unwrap_err();
    assert!(matches!(error, SyncError::Store(_) | SyncError::RootMismatch { .. }), "{error}");
    assert!(!client.exists());

    // A value changed inside an operations response (after one good
    // response was written to disk).
    let changed = tampering(&server, 1, |mut response| {
        if let SyncResponse::Operations { operations, .. } = &mut response
            && let Some(Operation::Update(update)) = operations.iter_mut().find(|op| matches!(op, Operation::Update(_)))
        {
            update.value.push(0);
        }
        response
    });
    let error = sync::sync(&client, &target, trusted, changed).unwrap_err();
    assert!(
        matches!(&error, SyncError::Rejected(Refused { reason: Rejection::NotProven, attempts, .. }) if *attempts == SYNC_ATTEMPTS_MAX),
        "{error}"
    );
    assert!(!client.exists(), "what the sync wrote is removed");

    // An operation dropped, syncing into an existing empty directory.
    std::fs::create_dir_all(&client).unwrap();
    let dropped = tampering(&server, 1, |mut response| {
        if let SyncResponse::Operations { operations, .. } = &mut response
            && operations.len() > 1
        {
            operations.remove(1);
        }
        response
    });
    let error = sync::sync(&client, &target, trusted, dropped).unwrap_err();
    assert!(matches!(&error, SyncError::Rejected(Refused { reason: Rejection::NotProven, .. })), "{error}");
    assert!(client.exists() && is_empty_or_gone(&client), "the directory stays, emptied");

    // Garbage for every answer.
    let error = sync::sync(&client, &target, trusted, |_| Ok(vec![0xff; 100])).unwrap_err();
    assert!(matches!(&error, SyncError::Rejected(Refused { reason: Rejection::Malformed(_), .. })), "{error}");
    assert!(is_empty_or_gone(&client));

    // A server that does not answer.
    let error = sync::sync(&client, &target, trusted, |_| Err("connection refused".into())).unwrap_err();
    assert!(matches!(&error, SyncError::Rejected(Refused { reason: Rejection::Fetch(_), .. })), "{error}");
    assert!(is_empty_or_gone(&client));

    // A directory with something in it is not synced into, nor touched.
    std::fs::write(client.join("keep"), b"x").unwrap();
    assert!(matches!(sync::sync(&client, &target, trusted, serving(&server)), Err(SyncError::NotEmpty(_))));
    assert!(client.join("keep").exists());

    // An honest server still works after all that.
    std::fs::remove_file(client.join("keep")).unwrap();
    let synced = sync::sync(&client, &target, trusted, serving(&server)).unwrap();
    assert_eq!(synced.status().unwrap().root, trusted);
}

#[test]
fn bad_requests_are_refused_by_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = StateService::open(dir.path()).unwrap();
    assert!(server.sync_target().is_err(), "nothing committed, nothing to sync to");
    server.apply(0, vec![(vec![1], Some(vec![2]))]).unwrap();
    assert!(server.serve_sync(vec![0xff; 3]).is_err());
    assert!(server.serve_sync(vec![0; 10_000]).is_err());
    let size = server.status().unwrap().size;
    let past = sync::SyncRequest::Operations {
        size: commonware_storage::merkle::Location::new(size + 10),
        start: commonware_storage::merkle::Location::new(0),
        max_ops: std::num::NonZeroU64::new(10).unwrap(),
    };
    assert!(server.serve_sync(past.encode().to_vec()).is_err(), "a size past the log");
    let huge = sync::SyncRequest::Operations {
        size: commonware_storage::merkle::Location::new(size),
        start: commonware_storage::merkle::Location::new(0),
        max_ops: std::num::NonZeroU64::new(u64::MAX).unwrap(),
    };
    let response = decode_response(&server.serve_sync(huge.encode().to_vec()).unwrap(), u64::MAX).unwrap();
    assert!(matches!(response, SyncResponse::Operations { operations, .. } if operations.len() as u64 == size));
}
