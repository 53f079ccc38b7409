//! Agents on chain: deployment (code stored once per hash), upgrades that
//! keep the id, and management that only the owner or governance may do.

use phalanx_primitives::mnemonic::dev_keypair;
use phalanx_primitives::{Hash, Keypair, PLANCK_PER_PHA, sha256};
use phalanx_state::builder::{Candidate, build_block};
use phalanx_state::modules::agents::{AGENT_CODE_BYTES_MAX, SECRETS_MAX};
use phalanx_state::{
    Access, AgentChange, Block, Call, Genesis, Language, SignedTransaction, State, Transaction, TxError, agent_id,
};

struct Chain {
    state: State,
    parent: Block,
    all_changes: std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Chain {
    fn new() -> Chain {
        let (mut state, parent) = Genesis::dev(vec![Keypair::from_seed(&[42; 32]).public()]).build().unwrap();
        let all_changes = state.take_changes().into_iter().collect();
        Chain { state, parent, all_changes }
    }

    fn tx(&self, from: &str, call: Call) -> SignedTransaction {
        let key = dev_keypair(from).unwrap();
        let nonce = self.state.account(&key.public()).map_or(0, |a| a.nonce);
        Transaction { chain_id: self.state.chain_id(), signer: key.public(), nonce, fee: 2 * PLANCK_PER_PHA, call }
            .sign(&key)
    }

    fn check(&self, from: &str, call: Call) -> Result<(), TxError> {
        let tx = self.tx(from, call);
        self.state.check_tx(&tx, tx.encode().len())
    }

    /// Applies one transaction in a block; returns its hash.
    fn apply(&mut self, from: &str, call: Call) -> Hash {
        let tx = self.tx(from, call);
        let hash = tx.hash();
        let encoded_len = tx.encode().len();
        let candidate = Candidate { tx, encoded_len, signature_verified: false };
        let built = build_block(&self.state, self.parent.hash(), self.state.timestamp_ms() + 500, [candidate]);
        assert!(built.rejected.is_empty(), "{:?}", built.rejected);
        let mut replica = self.state.clone();
        replica.execute_block(&built.block).unwrap();
        assert_eq!(replica, built.state);
        self.state = built.state;
        self.all_changes.extend(self.state.take_changes());
        self.parent = built.block;
        hash
    }

    fn cluster(&mut self) -> Hash {
        self.apply("alice", Call::CreateCluster { name: "main".into() });
        *self.state.clusters().next().unwrap().0
    }
}

const CODE_V1: &str = "export default { fetch() { return new Response('v1'); } };";
const CODE_V2: &str = "export default { fetch() { return new Response('v2'); } };";

#[test]
fn deploy_upgrade_and_manage() {
    let mut chain = Chain::new();
    let cluster = chain.cluster();
    let deploy = |code: &str| Call::DeployAgent {
        name: "echo".into(),
        cluster,
        language: Language::JavaScript,
        code: code.as_bytes().to_vec(),
    };
    let tx = chain.apply("bob", deploy(CODE_V1));
    let id = agent_id(&tx);
    let agent = chain.state.agent(&id).unwrap().clone();
    assert_eq!((agent.owner, agent.version, agent.paused), (dev_keypair("bob").unwrap().public(), 1, false));
    assert_eq!(agent.code_hash, sha256(CODE_V1.as_bytes()));
    assert_eq!(chain.state.code(&agent.code_hash).unwrap().as_slice(), CODE_V1.as_bytes());
    assert_eq!(agent.access, Access::Public);

    // Same code, second agent: stored once.
    let second = agent_id(&chain.apply("charlie", deploy(CODE_V1)));
    assert_ne!(second, id);
    assert_eq!(chain.state.agents().count(), 2);

    // Only the owner (or governance) manages.
    let manage = |change| Call::ManageAgent { agent: id, change };
    assert_eq!(chain.check("charlie", manage(AgentChange::Pause)), Err(TxError::NotAgentOwner(id)));
    let upgrade = AgentChange::Upgrade { code: CODE_V2.as_bytes().to_vec(), language: Language::TypeScript };
    assert_eq!(chain.check("charlie", manage(upgrade.clone())), Err(TxError::NotAgentOwner(id)));
    chain.apply("bob", manage(upgrade));
    let upgraded = chain.state.agent(&id).unwrap().clone();
    assert_eq!((upgraded.id, upgraded.version, upgraded.code_hash), (id, 2, sha256(CODE_V2.as_bytes())));
    assert_eq!(upgraded.created_at, agent.created_at);

    chain.apply("bob", manage(AgentChange::Pause));
    assert!(chain.state.agent(&id).unwrap().paused);
    assert!(matches!(chain.check("bob", manage(AgentChange::Pause)), Err(TxError::Agent(_))));
    chain.apply("alice", manage(AgentChange::Resume)); // governance may
    assert!(!chain.state.agent(&id).unwrap().paused);

    let allow = Access::Allowlist { accounts: vec![dev_keypair("dave").unwrap().public()] };
    chain.apply("bob", manage(AgentChange::Access { access: allow.clone() }));
    chain.apply("bob", manage(AgentChange::Price { price: 5 }));
    let too_many = Access::Allowlist { accounts: vec![dev_keypair("dave").unwrap().public(); 257] };
    assert!(matches!(chain.check("bob", manage(AgentChange::Access { access: too_many })), Err(TxError::Agent(_))));

    // Transfer: the old owner loses control.
    let dave = dev_keypair("dave").unwrap().public();
    chain.apply("bob", manage(AgentChange::Transfer { to: dave }));
    assert_eq!(chain.check("bob", manage(AgentChange::Pause)), Err(TxError::NotAgentOwner(id)));
    let agent = chain.state.agent(&id).unwrap();
    assert_eq!((agent.owner, &agent.access, agent.price), (dave, &allow, 5));
}

#[test]
fn secrets_are_named_bounded_and_replaceable() {
    let mut chain = Chain::new();
    let cluster = chain.cluster();
    let tx = chain.apply(
        "bob",
        Call::DeployAgent {
            name: "llm".into(),
            cluster,
            language: Language::JavaScript,
            code: CODE_V1.as_bytes().to_vec(),
        },
    );
    let id = agent_id(&tx);
    let set = |name: &str, sealed: Vec<u8>| Call::ManageAgent {
        agent: id,
        change: AgentChange::SetSecret { name: name.into(), sealed },
    };
    chain.apply("bob", set("OPENAI_API_KEY", vec![1; 100]));
    chain.apply("bob", set("OPENAI_API_KEY", vec![2; 100]));
    let secrets = &chain.state.agent(&id).unwrap().secrets;
    assert_eq!((secrets.len(), secrets[0].sealed[0]), (1, 2), "replaced, not added");
    for bad in ["", "lower", "1ST", "WITH-DASH", &"A".repeat(65)] {
        assert!(matches!(chain.check("bob", set(bad, vec![1])), Err(TxError::Agent(_))), "{bad:?}");
    }
    assert!(matches!(chain.check("bob", set("BIG", vec![1; 8 * 1024 + 1])), Err(TxError::Agent(_))));
    assert!(matches!(chain.check("bob", set("EMPTY", vec![])), Err(TxError::Agent(_))));
    for i in 1..SECRETS_MAX {
        chain.apply("bob", set(&format!("S{i}"), vec![1]));
    }
    assert!(matches!(chain.check("bob", set("ONE_MORE", vec![1])), Err(TxError::Agent(_))));
    let remove = |name: &str| Call::ManageAgent { agent: id, change: AgentChange::RemoveSecret { name: name.into() } };
    chain.apply("bob", remove("S1"));
    assert!(matches!(chain.check("bob", remove("S1")), Err(TxError::Agent(_))));
    assert_eq!(chain.state.agent(&id).unwrap().secrets.len(), SECRETS_MAX - 1);

    // Everything survives a reload from the stored leaves.
    let loaded = State::load(chain.all_changes.clone()).unwrap();
    assert_eq!(loaded, chain.state);
    assert_eq!(loaded.agent(&id), chain.state.agent(&id));
    assert_eq!(loaded.code(&sha256(CODE_V1.as_bytes())).unwrap().as_slice(), CODE_V1.as_bytes());
}

#[test]
fn bad_deployments_are_refused() {
    let mut chain = Chain::new();
    let cluster = chain.cluster();
    let deploy = |name: &str, cluster, code: Vec<u8>| Call::DeployAgent {
        name: name.into(),
        cluster,
        language: Language::JavaScript,
        code,
    };
    assert!(matches!(chain.check("bob", deploy("x", Hash([9; 32]), b"x".to_vec())), Err(TxError::Cluster(_))));
    assert!(matches!(chain.check("bob", deploy("", cluster, b"x".to_vec())), Err(TxError::Agent(_))));
    assert!(matches!(chain.check("bob", deploy("x", cluster, vec![])), Err(TxError::Agent(_))));
    assert!(matches!(chain.check("bob", deploy("x", cluster, vec![0xff, 0xfe])), Err(TxError::Agent(_))));
    let big = vec![b'a'; AGENT_CODE_BYTES_MAX + 1];
    let refused = chain.check("bob", deploy("x", cluster, big));
    assert!(matches!(refused, Err(TxError::TooLarge { .. }) | Err(TxError::Agent(_))), "{refused:?}");
    // The largest code deploys (and pays for its bytes).
    let largest = vec![b'a'; AGENT_CODE_BYTES_MAX];
    let tx = chain.tx("bob", deploy("x", cluster, largest));
    let minimum = chain.state.params().fees.minimum(tx.encode().len()).unwrap();
    assert!(minimum > PLANCK_PER_PHA, "a megabyte of code costs more than a transfer");
}
