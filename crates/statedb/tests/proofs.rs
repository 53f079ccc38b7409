//! Proofs against random states: every present leaf proves its value, every
//! absent leaf proves its absence, no proof verifies for another key, value
//! or root, and tampered or truncated proofs are refused with an error.
//! The store reopens at the same root and height.

use commonware_runtime::{Runner as _, Supervisor as _, deterministic};
use phalanx_primitives::Hash;
use phalanx_statedb::{ProofError, StateDb, StateProof, verify};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use std::collections::BTreeMap;

fn random_key(rng: &mut StdRng) -> Vec<u8> {
    // Keys like phalanx's: a module prefix, then an id of varying length.
    let mut key = vec![rng.random_range(0..4u8), rng.random_range(0..3u8)];
    let len = rng.random_range(0..40usize);
    key.extend((0..len).map(|_| rng.random::<u8>()));
    key
}

fn random_value(rng: &mut StdRng) -> Vec<u8> {
    let len = rng.random_range(0..200usize);
    (0..len).map(|_| rng.random::<u8>()).collect()
}

#[test]
fn random_states_prove_presence_and_absence() {
    for seed in 0..6u64 {
        deterministic::Runner::seeded(seed).start(|context| async move {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut db = StateDb::open(context.child("first"), "state").await.unwrap();
            let empty_root = db.root().unwrap();
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let mut roots = vec![empty_root];
            for height in 1..=5u64 {
                let mut writes = Vec::new();
                for _ in 0..rng.random_range(1..60usize) {
                    let known: Vec<Vec<u8>> = model.keys().cloned().collect();
                    let key = if !known.is_empty() && rng.random_bool(0.4) {
                        known[rng.random_range(0..known.len())].clone()
                    } else {
                        random_key(&mut rng)
                    };
                    let value = if rng.random_bool(0.15) { None } else { Some(random_value(&mut rng)) };
                    match &value {
                        Some(v) => model.insert(key.clone(), v.clone()),
                        None => model.remove(&key),
                    };
                    writes.push((key, value));
                }
                let root = db.apply(height, writes).await.unwrap();
                assert_eq!(root, db.root().unwrap());
                assert!(!roots.contains(&root), "every block gives a new root");
                roots.push(root);
                assert_eq!(db.height().await.unwrap(), Some(height));
            }
            let root = db.root().unwrap();
            let old_root = roots[roots.len() - 2];

            for (key, value) in &model {
                assert_eq!(db.get(key).await.unwrap().as_ref(), Some(value));
                let proof = db.prove(key).await.unwrap();
                assert_eq!(verify(&proof, key, &root), Ok(Some(value.as_slice())), "a present leaf proves its value");
                // Another value under the same proof.
                let mut lie = proof.clone();
                lie.value = Some([value.as_slice(), b"x"].concat());
                assert_eq!(verify(&lie, key, &root), Err(ProofError::ValueNotProven));
                // Claimed absent.
                let mut lie = proof.clone();
                lie.value = None;
                assert!(verify(&lie, key, &root).is_err(), "a presence proof never proves absence");
                // Another root (the previous block's, or an unrelated one).
                assert!(verify(&proof, key, &Hash([9; 32])).is_err());
                assert!(verify(&proof, key, &old_root).is_err(), "a proof is for one root only");
            }
            // A proof for one key never verifies for another.
            let keys: Vec<&Vec<u8>> = model.keys().collect();
            if keys.len() >= 2 {
                let proof = db.prove(keys[0]).await.unwrap();
                assert_eq!(verify(&proof, keys[1], &root), Err(ProofError::OtherKey));
                let mut renamed = proof.clone();
                renamed.key = keys[1].clone();
                assert!(verify(&renamed, keys[1], &root).is_err(), "a proof relabelled for another key");
            }
            for _ in 0..40 {
                let key = random_key(&mut rng);
                if model.contains_key(&key) {
                    continue;
                }
                let proof = db.prove(&key).await.unwrap();
                assert_eq!(proof.value, None);
                assert_eq!(verify(&proof, &key, &root), Ok(None), "an absent leaf proves its absence");
                let mut lie = proof.clone();
                lie.value = Some(b"made up".to_vec());
                assert!(verify(&lie, &key, &root).is_err(), "an absence proof never proves a value");
                assert!(verify(&proof, &key, &Hash([9; 32])).is_err());
                if let Some((present, _)) = model.iter().next() {
                    // An absence proof relabelled for a present key.
                    let mut renamed = proof.clone();
                    renamed.key = present.clone();
                    assert!(verify(&renamed, present, &root).is_err());
                }
            }
            // Tampered and truncated bytes.
            if let Some((key, _)) = model.iter().next() {
                let proof = db.prove(key).await.unwrap();
                for at in (0..proof.proof.len()).step_by(7) {
                    let mut flipped = proof.clone();
                    flipped.proof[at] ^= 0x20;
                    assert!(verify(&flipped, key, &root).is_err(), "a flipped byte at {at} is caught");
                }
                let mut cut = proof.clone();
                cut.proof.truncate(proof.proof.len() / 2);
                assert!(matches!(verify(&cut, key, &root), Err(ProofError::Malformed(_))));
                let mut long = proof.clone();
                long.proof.push(0);
                assert!(verify(&long, key, &root).is_err(), "trailing bytes are refused");
                let huge = StateProof { proof: vec![0; 10 << 20], ..proof };
                assert!(matches!(verify(&huge, key, &root), Err(ProofError::TooLarge { .. })));
            }

            // Reopened: same root, same height, same values.
            drop(db);
            let db = StateDb::open(context.child("second"), "state").await.unwrap();
            assert_eq!(db.root().unwrap(), root);
            assert_eq!(db.height().await.unwrap(), Some(5));
            for (key, value) in model.iter().take(10) {
                assert_eq!(db.get(key).await.unwrap().as_ref(), Some(value));
            }
        });
    }
}

/// The root is a function of the writes alone: two stores given the same
/// blocks agree, whatever order the writes of a block come in; a different
/// block gives a different root, and an empty block still moves the root.
#[test]
fn the_root_depends_on_the_writes_not_their_order() {
    deterministic::Runner::default().start(|context| async move {
        let mut a = StateDb::open(context.child("a"), "a").await.unwrap();
        let mut b = StateDb::open(context.child("b"), "b").await.unwrap();
        assert_eq!(a.root().unwrap(), b.root().unwrap(), "empty stores agree");
        let writes: Vec<(Vec<u8>, Option<Vec<u8>>)> =
            (0..50u8).map(|i| (vec![1, i], Some(vec![i; i as usize]))).collect();
        let mut reversed = writes.clone();
        reversed.reverse();
        let (ra, rb) = (a.apply(1, writes.clone()).await.unwrap(), b.apply(1, reversed).await.unwrap());
        assert_eq!(ra, rb);
        let ra = a.apply(2, vec![(vec![1, 3], Some(vec![0]))]).await.unwrap();
        let rb = b.apply(2, vec![(vec![1, 3], Some(vec![1]))]).await.unwrap();
        assert_ne!(ra, rb, "another value, another root");
        let before = a.root().unwrap();
        assert_ne!(a.apply(3, Vec::new()).await.unwrap(), before, "an empty block is still a block");
    });
}
