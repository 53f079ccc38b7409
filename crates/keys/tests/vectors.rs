//! Pinned test vectors for the key hierarchy and the envelope, and the
//! failures every wrong key, epoch, agent id, direction or tampered byte
//! must cause. Changing a vector is changing the wire format.

use phalanx_keys::envelope::{HEADER_BYTES, KeyKind};
use phalanx_keys::{Direction, Envelope, EnvelopeError, Header, KeyRef, MasterKey, Purpose, SecretKey};
use phalanx_primitives::Hash;

const MASTER: [u8; 32] = [0x11; 32];
const CLUSTER: Hash = Hash([0x22; 32]);
const AGENT: Hash = Hash([0x33; 32]);
const EPHEMERAL: [u8; 32] = [0x44; 32];

/// Expected values, pinned.
const CLUSTER_SECRET_E7: &str = "2ca49f27d17c963897c937c727de0b8d4bcab78993edfc1d70dd0c2c691255b4";
const CLUSTER_PUBLIC_E7: &str = "f072fca38cd08240db3ad2c2be178d408924295da828caa7821e0eae677dd312";
const AGENT_SECRET_E7: &str = "78ef61a5080a87de54aa3998e6a7ce2856f454fe4075aae64c26b9f6d1942120";
const AGENT_PUBLIC_E7: &str = "36916dcd46a52d1a50566c488edd427c9de1b2419bd94bf3d0cb8b00d966af70";
const AGENT_PUBLIC_E8: &str = "2eeb7607d2b9c5dc0a46f4533106f956a741b457d210b7ccbad436bea5929201";
const LOG_PUBLIC: &str = "6178b353927c8286863d1b56d310eb4c27bea254c7c4a386d4fb938728a5ec4d";
const REQUEST_ENVELOPE: &str = "01000001333333333333333333333333333333333333333333333333333333333333333307000000000000003333333333333333333333333333333333333333333333333333333333333333ff2ee45601ec1b67310c7790404585ae697331eee1c1f8cf2419731c1fff3e6b000000000000000003be61e601b4daf31230725607ea0c1dc5f8d468d60ea0748320dac264dc9c4e75c4";
const RESPONSE_0: &str = "01000101333333333333333333333333333333333333333333333333333333333333333307000000000000003333333333333333333333333333333333333333333333333333333333333333ff2ee45601ec1b67310c7790404585ae697331eee1c1f8cf2419731c1fff3e6b0000000000000000e69cb2a6457a46f6fa374006d60522a04206383752d50324667bd729b8eb1d";

fn agent_key(epoch: u64) -> phalanx_keys::AgentKey {
    MasterKey::from_bytes(MASTER, epoch).cluster_key(&CLUSTER).agent_key(&AGENT)
}

fn key_ref(epoch: u64) -> KeyRef {
    KeyRef { kind: KeyKind::Agent, id: AGENT, epoch }
}

fn request() -> (Vec<u8>, phalanx_keys::ResponseKey) {
    let recipient = agent_key(7).secret().public();
    Envelope::seal_with_ephemeral(
        &SecretKey::from_bytes(EPHEMERAL),
        &recipient,
        key_ref(7),
        AGENT,
        Purpose::Call,
        b"{\"prompt\":\"hello\"}",
    )
    .unwrap()
}

fn check(name: &str, got: &[u8], pinned: &str) {
    assert_eq!(hex::encode(got), pinned, "{name} changed: the format is pinned");
}

#[test]
fn derivation_vectors() {
    let cluster = MasterKey::from_bytes(MASTER, 7).cluster_key(&CLUSTER);
    check("CLUSTER_SECRET_E7", cluster.secret().to_bytes().as_ref(), CLUSTER_SECRET_E7);
    check("CLUSTER_PUBLIC_E7", &cluster.secret().public(), CLUSTER_PUBLIC_E7);
    check("AGENT_SECRET_E7", agent_key(7).secret().to_bytes().as_ref(), AGENT_SECRET_E7);
    check("AGENT_PUBLIC_E7", &agent_key(7).secret().public(), AGENT_PUBLIC_E7);
    check("AGENT_PUBLIC_E8", &agent_key(8).secret().public(), AGENT_PUBLIC_E8);
    // Every input changes the key.
    let other_cluster = MasterKey::from_bytes(MASTER, 7).cluster_key(&Hash([0x23; 32])).agent_key(&AGENT);
    let other_agent = MasterKey::from_bytes(MASTER, 7).cluster_key(&CLUSTER).agent_key(&Hash([0x34; 32]));
    let other_master = MasterKey::from_bytes([0x12; 32], 7).cluster_key(&CLUSTER).agent_key(&AGENT);
    let base = agent_key(7).secret().public();
    let master = MasterKey::from_bytes(MASTER, 7);
    assert_ne!(master.commitment(), MasterKey::from_bytes(MASTER, 8).commitment());
    assert_ne!(master.commitment(), MasterKey::from_bytes([0x12; 32], 7).commitment());
    for other in [agent_key(8), other_cluster, other_agent, other_master] {
        assert_ne!(other.secret().public(), base);
    }
}

/// The owner's log key is pinned too, and differs from every other key of the seed.
#[test]
fn account_log_key_vector() {
    let key = phalanx_keys::account_log_key(&MASTER);
    check("LOG_PUBLIC", &key.public(), LOG_PUBLIC);
    assert_ne!(key.public(), MasterKey::from_bytes(MASTER, 0).commitment());
    assert_ne!(key.public(), phalanx_keys::account_log_key(&[0x12; 32]).public());
}

/// Scoped rotations: a key epoch ahead of the master epoch is the same
/// derivation with that epoch, and differs from every other (master, epoch).
#[test]
fn scoped_key_epochs() {
    let master = MasterKey::from_bytes(MASTER, 7);
    // Equal epochs give exactly the pinned keys.
    check("CLUSTER_PUBLIC_E7", &master.cluster_key_at(&CLUSTER, 7).secret().public(), CLUSTER_PUBLIC_E7);
    let cluster = master.cluster_key(&CLUSTER);
    check("AGENT_PUBLIC_E7", &cluster.agent_key_at(&AGENT, 7).secret().public(), AGENT_PUBLIC_E7);
    // A cluster rotated alone under master epoch 7: cluster key epoch 8.
    let rotated = master.cluster_key_at(&CLUSTER, 8);
    assert_eq!(rotated.epoch(), 8);
    let after_master_rotation = MasterKey::from_bytes(MASTER, 8).cluster_key(&CLUSTER);
    let other_master = MasterKey::from_bytes([0x12; 32], 8).cluster_key(&CLUSTER);
    assert_ne!(rotated.secret().public(), cluster.secret().public());
    // Same inputs (same master bytes, same key epoch) give the same key: epochs never repeat on chain.
    assert_eq!(rotated.secret().public(), after_master_rotation.secret().public());
    assert_ne!(rotated.secret().public(), other_master.secret().public());
    // An agent rotated alone: agent key epoch 8 from cluster key epoch 7.
    let agent8 = cluster.agent_key_at(&AGENT, 8);
    assert_eq!(agent8.epoch(), 8);
    assert_ne!(agent8.secret().public(), agent_key(7).secret().public());
    assert_ne!(agent8.secret().public(), rotated.agent_key_at(&AGENT, 8).secret().public());
    check("AGENT_PUBLIC_E8 is not a scoped key", &agent_key(8).secret().public(), AGENT_PUBLIC_E8);
}

#[test]
fn envelope_vectors() {
    let (envelope, response_key) = request();
    check("REQUEST_ENVELOPE", &envelope, REQUEST_ENVELOPE);
    let opened = Envelope::open(&envelope, agent_key(7).secret()).unwrap();
    assert_eq!(opened.plaintext.as_slice(), b"{\"prompt\":\"hello\"}");
    assert_eq!(opened.header.agent, AGENT);
    assert_eq!(opened.header.key.epoch, 7);
    let response = opened.response.seal(0, b"{\"answer\":\"hi\"}");
    check("RESPONSE_0", &response, RESPONSE_0);
    assert_eq!(response_key.open(0, &response).unwrap().as_slice(), b"{\"answer\":\"hi\"}");
}

#[test]
fn wrong_key_epoch_agent_or_direction_fails() {
    let (envelope, response_key) = request();
    // Wrong key: the next epoch's agent key, another agent's, the cluster's.
    assert_eq!(Envelope::open(&envelope, agent_key(8).secret()).unwrap_err(), EnvelopeError::Open);
    let cluster = MasterKey::from_bytes(MASTER, 7).cluster_key(&CLUSTER);
    assert_eq!(Envelope::open(&envelope, cluster.secret()).unwrap_err(), EnvelopeError::Open);
    // A header rewritten to another epoch or agent id does not open with the right key.
    let rewrite = |f: &dyn Fn(&mut Header)| {
        let mut header = Header::peek(&envelope).unwrap();
        f(&mut header);
        let mut bytes = borsh::to_vec(&header).unwrap();
        bytes.extend_from_slice(&envelope[HEADER_BYTES..]);
        Envelope::open(&bytes, agent_key(7).secret()).unwrap_err()
    };
    assert_eq!(rewrite(&|h| h.key.epoch = 8), EnvelopeError::Open);
    assert_eq!(rewrite(&|h| h.agent = Hash([0x34; 32])), EnvelopeError::Open);
    assert_eq!(rewrite(&|h| h.key.id = Hash([0x34; 32])), EnvelopeError::Open);
    assert_eq!(rewrite(&|h| h.purpose = Purpose::Secret), EnvelopeError::Open);
    assert_eq!(rewrite(&|h| h.direction = Direction::Response), EnvelopeError::Direction);
    assert_eq!(rewrite(&|h| h.version = 2), EnvelopeError::Version(2));

    // Responses: a request is not a response; wrong position; another exchange.
    let opened = Envelope::open(&envelope, agent_key(7).secret()).unwrap();
    let first = opened.response.seal(0, b"one");
    let second = opened.response.seal(1, b"two");
    assert_eq!(response_key.open(0, &envelope).unwrap_err(), EnvelopeError::Direction);
    assert_eq!(response_key.open(0, &second).unwrap_err(), EnvelopeError::Exchange);
    assert_eq!(response_key.open(1, &second).unwrap().as_slice(), b"two");
    let (_, other_exchange) =
        Envelope::seal(&agent_key(7).secret().public(), key_ref(7), AGENT, Purpose::Call, b"x").unwrap();
    assert_eq!(other_exchange.open(0, &first).unwrap_err(), EnvelopeError::Exchange);
    // A response cannot be opened as a request.
    assert_eq!(Envelope::open(&first, agent_key(7).secret()).unwrap_err(), EnvelopeError::Direction);
}

#[test]
fn every_tampered_byte_fails_and_garbage_is_refused() {
    let (envelope, _) = request();
    for index in 0..envelope.len() {
        let mut tampered = envelope.clone();
        tampered[index] ^= 0x01;
        assert!(Envelope::open(&tampered, agent_key(7).secret()).is_err(), "byte {index}");
    }
    for length in [0, 10, HEADER_BYTES, HEADER_BYTES + 15] {
        assert_eq!(
            Envelope::open(&envelope[..length.min(envelope.len())], agent_key(7).secret()).unwrap_err(),
            EnvelopeError::Malformed
        );
    }
    let truncated = &envelope[..envelope.len() - 1];
    assert_eq!(Envelope::open(truncated, agent_key(7).secret()).unwrap_err(), EnvelopeError::Open);
    // A low-order ephemeral key (all zeros) is refused before any decryption.
    let mut weak = envelope.clone();
    let offset = HEADER_BYTES - 8 - 32;
    weak[offset..offset + 32].fill(0);
    assert_eq!(Envelope::open(&weak, agent_key(7).secret()).unwrap_err(), EnvelopeError::WeakKey);
}

proptest::proptest! {
    /// Arbitrary bytes never open and never panic.
    #[test]
    fn garbage_never_opens(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
        proptest::prop_assert!(Envelope::open(&bytes, agent_key(7).secret()).is_err());
    }
}

#[test]
fn reseal_moves_data_to_the_next_epoch() {
    let (envelope, _) = request();
    let new = agent_key(8);
    let resealed = Envelope::reseal(&envelope, agent_key(7).secret(), &new.secret().public(), key_ref(8)).unwrap();
    let opened = Envelope::open(&resealed, new.secret()).unwrap();
    assert_eq!(opened.plaintext.as_slice(), b"{\"prompt\":\"hello\"}");
    assert_eq!((opened.header.key.epoch, opened.header.agent, opened.header.purpose), (8, AGENT, Purpose::Call));
    assert_eq!(Envelope::open(&resealed, agent_key(7).secret()).unwrap_err(), EnvelopeError::Open);
    assert!(Envelope::reseal(&envelope, agent_key(8).secret(), &new.secret().public(), key_ref(8)).is_err());
}
