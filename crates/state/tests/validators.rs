//! Validator set changes through governance: a set scheduled in an epoch
//! takes over exactly after the epoch's last block, the state after every
//! block names the set that certifies the next one, and bad proposals are
//! refused without changing anything.

mod common;

use common::{Chain, dev};
use phalanx_primitives::{Keypair, PublicKey};
use phalanx_state::{Call, ConsensusParams, Event, Genesis, ValidatorEntry};

fn key(seed: u8) -> PublicKey {
    Keypair::from_seed(&[seed; 32]).public()
}

fn entry(seed: u8, port: u16) -> ValidatorEntry {
    ValidatorEntry { key: key(seed), address: format!("127.0.0.1:{port}") }
}

/// A chain with epochs of 10 blocks and validators 1 and 2.
fn chain() -> Chain {
    let mut genesis = Genesis::dev(vec![key(1), key(2)]);
    genesis.consensus = ConsensusParams { epoch_blocks: 10 };
    let (state, parent) = genesis.build().unwrap();
    Chain { state, parent }
}

fn empty_blocks_until(chain: &mut Chain, height: u64) -> Vec<Event> {
    let mut events = Vec::new();
    while chain.state.height() < height {
        events.extend(chain.block(vec![]).into_iter().map(|record| record.event));
    }
    events
}

#[test]
fn a_scheduled_set_takes_over_after_the_last_block_of_the_epoch() {
    let mut chain = chain();
    empty_blocks_until(&mut chain, 3);
    let events = chain.send(&dev("alice"), Call::SetValidators { validators: vec![entry(2, 9002), entry(3, 9003)] });
    assert!(
        events.iter().any(|r| r.event == Event::ValidatorSetScheduled { epoch: 1, validators: vec![key(2), key(3)] })
    );
    assert_eq!(chain.state.pending_validators(), Some(&[key(2), key(3)][..]));
    assert_eq!(chain.state.validator_address(&key(3)), Some("127.0.0.1:9003"));

    // Blocks 5..=8 are still certified by the genesis set.
    empty_blocks_until(&mut chain, 8);
    assert_eq!(chain.state.validators(), &[key(1), key(2)]);
    assert_eq!(chain.state.epoch_of(chain.state.height() + 1), 0);

    // Block 9 is the last of epoch 0: after it, the new set certifies block 10.
    let events = empty_blocks_until(&mut chain, 9);
    assert!(events.contains(&Event::ValidatorSetChanged { epoch: 1, validators: vec![key(2), key(3)] }));
    assert_eq!(chain.state.validators(), &[key(2), key(3)]);
    assert_eq!(chain.state.pending_validators(), None);
    assert_eq!(chain.state.epoch_of(10), 1);
    assert_eq!(chain.state.validators_of_epoch(1), Some(&[key(2), key(3)][..]));
    assert_eq!(chain.state.validators_of_epoch(0), Some(&[key(1), key(2)][..]));
    assert_eq!(chain.state.validators_of_epoch(2), None, "the future is not known");

    // Without a change the next boundary keeps the set.
    let events = empty_blocks_until(&mut chain, 19);
    assert!(!events.iter().any(|e| matches!(e, Event::ValidatorSetChanged { .. })));
    assert_eq!(chain.state.validators(), &[key(2), key(3)]);

    // A restarted node loads the same thing from the stored leaves (the
    // harness never takes changes, so they are every leaf written since genesis).
    let loaded = phalanx_state::State::load(chain.state.clone().take_changes()).unwrap();
    assert_eq!(loaded, chain.state);
    assert_eq!(loaded.validators_of_epoch(0), Some(&[key(1), key(2)][..]));
    assert_eq!(loaded.consensus_params(), ConsensusParams { epoch_blocks: 10 });
}

#[test]
fn a_later_schedule_replaces_an_earlier_one_and_the_last_block_may_schedule() {
    let mut chain = chain();
    chain.send(&dev("alice"), Call::SetValidators { validators: vec![entry(3, 1)] });
    empty_blocks_until(&mut chain, 8);
    // Scheduled in block 9, the last block of epoch 0: it takes over after it.
    chain.send(&dev("alice"), Call::SetValidators { validators: vec![entry(4, 1), entry(5, 2)] });
    assert_eq!(chain.state.height(), 9);
    assert_eq!(chain.state.validators(), &[key(4), key(5)]);
    assert_eq!(chain.state.validator_address(&key(3)), None, "the replaced schedule's address is gone");
}

#[test]
fn bad_validator_sets_are_refused() {
    let mut chain = chain();
    empty_blocks_until(&mut chain, 1);
    let alice = dev("alice");
    chain.refuses(chain.tx(&dev("bob"), Call::SetValidators { validators: vec![entry(3, 1)] }), "governance");
    chain.refuses(chain.tx(&alice, Call::SetValidators { validators: vec![] }), "1 to 128");
    chain.refuses(chain.tx(&alice, Call::SetValidators { validators: vec![entry(3, 1), entry(3, 2)] }), "twice");
    let bad_point = ValidatorEntry { key: PublicKey([0; 32]), address: "127.0.0.1:1".into() };
    chain.refuses(chain.tx(&alice, Call::SetValidators { validators: vec![bad_point] }), "ed25519");
    for address in ["localhost:1", "127.0.0.1", &format!("127.0.0.1:{}", "9".repeat(70))] {
        let bad = ValidatorEntry { key: key(3), address: address.into() };
        chain.refuses(chain.tx(&alice, Call::SetValidators { validators: vec![bad] }), "ip:port");
    }
    let too_many: Vec<ValidatorEntry> = (0..129u32)
        .map(|i| ValidatorEntry {
            key: Keypair::from_seed(&[&i.to_le_bytes()[..], &[7; 28]].concat().try_into().unwrap()).public(),
            address: "127.0.0.1:1".into(),
        })
        .collect();
    chain.refuses(chain.tx(&alice, Call::SetValidators { validators: too_many }), "1 to 128");
    assert_eq!(chain.state.pending_validators(), None);
}

#[test]
fn genesis_refuses_bad_epochs_and_keys() {
    let mut genesis = Genesis::dev(vec![key(1)]);
    genesis.consensus = ConsensusParams { epoch_blocks: 1 };
    assert!(genesis.build().unwrap_err().to_string().contains("epochs"));
    let genesis = Genesis::dev(vec![PublicKey([0; 32])]);
    assert!(genesis.build().unwrap_err().to_string().contains("ed25519"));
}
