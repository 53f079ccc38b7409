//! The store's service on real files: speculative blocks on top of each
//! other, commit of a descendant, siblings made stale, proofs at the
//! committed height, and a reopen that finds the committed state.

use phalanx_statedb::{Parent, StateService, StoreError, verify};

fn writes(tag: u8, n: u8) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    (0..n).map(|i| (vec![1, i], Some(vec![tag, i]))).collect()
}

#[test]
fn speculations_chain_commit_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let service = StateService::open(dir.path()).unwrap();
    let status = service.status().unwrap();
    assert_eq!(status.height, None);
    let empty = status.root;
    let genesis = service.apply(0, writes(0, 10)).unwrap();
    assert_ne!(genesis, empty);

    // Two competing blocks at height 1, a child of the first at height 2.
    let a1 = service.speculate(Parent::Committed, 1, writes(1, 3)).unwrap();
    let b1 = service.speculate(Parent::Committed, 1, writes(2, 3)).unwrap();
    assert_ne!(a1.root, b1.root, "different writes, different roots");
    let a2 = service.speculate(Parent::Speculation(a1), 2, vec![(vec![2, 0], Some(vec![9]))]).unwrap();
    let at_genesis = service.status().unwrap();
    assert_eq!((at_genesis.height, at_genesis.root), (Some(0), genesis), "nothing is committed by speculating");

    // The same block computed twice gives the same root.
    let again = service.speculate(Parent::Committed, 1, writes(1, 3)).unwrap();
    assert_eq!(again.root, a1.root);

    // Committing the child commits its parent; the sibling is gone.
    assert_eq!(service.commit(a2).unwrap(), a2.root);
    let status = service.status().unwrap();
    assert_eq!((status.height, status.root), (Some(2), a2.root));
    assert!(matches!(service.commit(b1), Err(StoreError::UnknownSpeculation { height: 1 })));
    assert_eq!(service.get(&[1, 0]).unwrap(), Some(vec![1, 0]), "the parent's writes are committed");
    assert_eq!(service.get(&[2, 0]).unwrap(), Some(vec![9]));

    // Proofs are made at the committed height and verify against its root.
    let proven = service.prove(vec![vec![1, 1], vec![7, 7]]).unwrap();
    assert_eq!((proven.height, proven.root), (Some(2), a2.root));
    assert_eq!(verify(&proven.proofs[0], &[1, 1], &proven.root), Ok(Some(&[1u8, 1][..])));
    assert_eq!(verify(&proven.proofs[1], &[7, 7], &proven.root), Ok(None));
    assert!(service.prove(vec![vec![0]; 65]).is_err(), "a bounded number of keys per request");

    // A discarded speculation cannot be committed.
    let c3 = service.speculate(Parent::Committed, 3, writes(3, 1)).unwrap();
    service.discard(c3);
    assert!(matches!(service.commit(c3), Err(StoreError::UnknownSpeculation { height: 3 })));

    drop(service);
    let reopened = StateService::open(dir.path()).unwrap();
    assert_eq!(reopened.status().unwrap(), status, "the committed state survives");
    assert_eq!(reopened.get(&[2, 0]).unwrap(), Some(vec![9]));

    // A later block committed, then the store opened back at block 2's size:
    // the later block is gone, for good.
    reopened.apply(3, writes(7, 2)).unwrap();
    drop(reopened);
    let rolled_back = StateService::open_at(dir.path(), Some(status.size)).unwrap();
    assert_eq!(rolled_back.status().unwrap(), status);
    drop(rolled_back);
    assert_eq!(StateService::open(dir.path()).unwrap().status().unwrap(), status);
}

/// A root computed in memory equals the root of the same block on disk,
/// and it can be computed from inside another commonware runtime.
/// A block verified while its parent finalizes names the parent's
/// speculation, which the commit has just dropped: it builds on the
/// committed state (the same thing), to the same root; a speculation that
/// was discarded instead is still refused.
#[test]
fn a_child_of_a_just_committed_speculation_builds_on_the_committed_state() {
    let dir = tempfile::tempdir().unwrap();
    let service = StateService::open(dir.path()).unwrap();
    service.apply(0, writes(0, 10)).unwrap();
    let parent = service.speculate(Parent::Committed, 1, writes(1, 3)).unwrap();
    let sibling = service.speculate(Parent::Committed, 1, writes(2, 3)).unwrap();
    service.commit(parent).unwrap();
    let child = service.speculate(Parent::Speculation(parent), 2, writes(3, 2)).unwrap();
    let direct = service.speculate(Parent::Committed, 2, writes(3, 2)).unwrap();
    assert_eq!(child.root, direct.root);
    assert!(matches!(
        service.speculate(Parent::Speculation(sibling), 2, writes(3, 2)),
        Err(StoreError::UnknownSpeculation { height: 1 })
    ));
    assert_eq!(service.commit(child).unwrap(), direct.root);
    // A block whose parent is not the committed state (the caller's view
    // lags a commit) is refused, not built on the wrong state.
    assert!(matches!(service.speculate(Parent::Committed, 2, writes(4, 1)), Err(StoreError::Stale(_))));
    assert!(service.speculate(Parent::Committed, 3, writes(4, 1)).is_ok());
}

#[test]
fn the_in_memory_root_is_the_stored_root() {
    let dir = tempfile::tempdir().unwrap();
    let service = StateService::open(dir.path()).unwrap();
    let on_disk = service.apply(0, writes(5, 20)).unwrap();
    assert_eq!(phalanx_statedb::root_in_memory(0, writes(5, 20)).unwrap(), on_disk);
    assert_ne!(phalanx_statedb::root_in_memory(1, writes(5, 20)).unwrap(), on_disk, "the height is part of it");
    use commonware_runtime::Runner as _;
    let nested = commonware_runtime::deterministic::Runner::default()
        .start(|_| async move { phalanx_statedb::root_in_memory(0, writes(5, 20)).unwrap() });
    assert_eq!(nested, on_disk);
}
