//! The `registry` module: workers, their attestation, and the messages they
//! send to the chain.
//!
//! A worker registers with *evidence* from its TEE whose report data commits
//! to its [`RegistrationInfo`] (identity and ECDH keys, chain, operator,
//! features, benchmark score), so a host cannot swap in keys the enclave does
//! not hold. The chain checks the evidence against its [`AttestationPolicy`]
//! at the block's timestamp (no clock: the same verdict on every replay) and
//! records the worker with the confidence level its evidence earned.
//!
//! Afterwards the worker speaks through [`WorkerMessage`]s: signed by its
//! identity key under [`WORKER_MESSAGE_LABEL`], numbered by a per-worker
//! sequence that must increase by exactly one, so a replayed, skipped or
//! forged message is refused. The host submits them in ordinary transactions
//! and cannot alter them.
//!
//! Leaves: `0x02 0x00` the policy, `0x02 0x01 ‖ identity` one [`Worker`].

use borsh::{BorshDeserialize, BorshSerialize};
use phalanx_attest::AttestationPolicy as DcapPolicy;
use phalanx_primitives::{Balance, Hash, PublicKey, Signature, encode, sha512_parts};

/// Leaf key of the [`AttestationPolicy`].
pub(crate) const POLICY_KEY: &[u8] = &[0x02, 0x00];
/// Prefix of worker leaves: `0x02 0x01 ‖ identity key`.
pub(crate) const WORKER_PREFIX: &[u8] = &[0x02, 0x01];

/// Domain label of the report data a worker's evidence carries.
pub const REPORT_DATA_LABEL: &[u8] = b"phalanx/worker-registration/v1";
/// Domain label of worker message signatures.
pub const WORKER_MESSAGE_LABEL: &[u8] = b"phalanx/worker-message/v1";

/// Largest quote in a registration, in bytes (genuine ones are about 5 KiB).
pub const REGISTRATION_QUOTE_BYTES_MAX: usize = 16 * 1024;
/// Largest collateral in a registration, in bytes of JSON (genuine ones are 14–25 KiB).
pub const REGISTRATION_COLLATERAL_BYTES_MAX: usize = 64 * 1024;
/// Most workers the registry holds.
pub const WORKERS_MAX: usize = 100_000;

/// Feature flag: the worker runs agents.
pub const FEATURE_AGENTS: u64 = 1;
/// Feature flag: the worker is a gatekeeper candidate.
pub const FEATURE_GATEKEEPER: u64 = 1 << 1;

/// What the chain accepts as worker evidence.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct AttestationPolicy {
    /// Whether software-simulated evidence (no TEE) is accepted: yes on dev
    /// networks only. Defaults to no.
    #[serde(default)]
    pub allow_simulated: bool,
    /// How Intel DCAP quotes are judged (statuses, advisories, measurements, debug).
    #[serde(default)]
    pub dcap: DcapPolicy,
}

impl Default for AttestationPolicy {
    /// Fails closed: no simulated evidence; DCAP quotes of any known-good
    /// status, non-debug (governance narrows the measurements).
    fn default() -> Self {
        AttestationPolicy { allow_simulated: false, dcap: DcapPolicy::default() }
    }
}

/// What a worker tells the chain about itself; the evidence's report data
/// commits to all of it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct RegistrationInfo {
    /// The chain the worker registers with (its genesis hash).
    pub chain_id: Hash,
    /// The worker's identity key (ed25519), generated inside the TEE.
    pub identity: PublicKey,
    /// The worker's key-agreement key (x25519), generated inside the TEE.
    #[serde(with = "phalanx_primitives::hex_serde")]
    pub ecdh: [u8; 32],
    /// The account that operates the worker.
    pub operator: PublicKey,
    /// [`FEATURE_AGENTS`], [`FEATURE_GATEKEEPER`], …
    pub features: u64,
    /// Benchmark score measured inside the TEE at start (higher is faster).
    pub benchmark_score: u64,
}

impl RegistrationInfo {
    /// The 64 bytes the worker's evidence must carry as report data.
    pub fn report_data(&self) -> [u8; 64] {
        sha512_parts(&[&[REPORT_DATA_LABEL.len() as u8], REPORT_DATA_LABEL, &encode(self)])
    }
}

/// A TEE's proof that a program holds a registration's keys.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    /// No TEE: a program's own claim, accepted only where the policy allows
    /// simulated evidence (dev networks).
    Simulated {
        #[serde(with = "phalanx_primitives::hex_serde")]
        report_data: [u8; 64],
    },
    /// An Intel SGX or TDX DCAP quote with the collateral to verify it.
    Dcap {
        #[serde(with = "phalanx_primitives::hex_serde")]
        quote: Vec<u8>,
        #[serde(with = "phalanx_primitives::hex_serde")]
        collateral: Vec<u8>,
    },
}

/// The kind of TEE a worker runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeeKind {
    Simulated,
    Sgx,
    Tdx,
}

/// A registered worker.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Worker {
    pub info: RegistrationInfo,
    pub tee: TeeKind,
    /// 1 (best) to 5, from the evidence; simulated evidence gets 5.
    pub confidence: u8,
    /// MRENCLAVE or MRTD of the attested program (empty when simulated).
    #[serde(with = "phalanx_primitives::hex_serde")]
    pub measurement: Vec<u8>,
    /// Height of the block that first registered the worker.
    pub registered_at: u64,
    /// Height of the block that last accepted its evidence.
    pub attested_at: u64,
    /// The sequence number its next message must carry.
    pub next_sequence: u64,
    /// Height the worker last reported having verified, by heartbeat.
    pub synced_height: u64,
    /// Height of the block that carried its last heartbeat.
    pub heartbeat_at: u64,
    /// Where the worker's gateway takes agent calls, as it announced it
    /// (clients fail over between the gateways of an agent's cluster).
    pub gateway_url: Option<String>,
}

/// Longest announced gateway URL, in bytes.
pub const GATEWAY_URL_BYTES_MAX: usize = 256;

/// What a worker says to the chain.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkerPayload {
    /// The worker is alive and has verified the chain up to `synced_height`.
    Heartbeat { synced_height: u64 },
    /// The worker measured a new benchmark score.
    Benchmark { score: u64 },
    /// A rotation's leader commits to the master key it generated.
    MasterKeyAnnounce {
        rotation: u64,
        #[serde(with = "phalanx_primitives::hex_serde")]
        commitment: [u8; 32],
    },
    /// A rotation member holds the announced key.
    MasterKeyConfirm {
        rotation: u64,
        #[serde(with = "phalanx_primitives::hex_serde")]
        commitment: [u8; 32],
    },
    /// A holder of the current master key publishes a cluster's public key for an epoch.
    ClusterKeyPublish {
        cluster: Hash,
        epoch: u64,
        #[serde(with = "phalanx_primitives::hex_serde")]
        public: [u8; 32],
    },
    /// A holder of the current master key publishes an agent's public key for an epoch.
    AgentKeyPublish {
        agent: Hash,
        epoch: u64,
        #[serde(with = "phalanx_primitives::hex_serde")]
        public: [u8; 32],
    },
    /// A cluster's worker holds the cluster key of `epoch`.
    ClusterKeyReceived { cluster: Hash, epoch: u64 },
    /// A key for `to`, in an envelope sealed to its attested key-agreement key.
    KeyHandover {
        to: PublicKey,
        #[serde(with = "phalanx_primitives::hex_serde")]
        envelope: Vec<u8>,
    },
    /// A holder of the current master key re-encrypted an agent's secret to
    /// the agent's newest key. `replaces` is the SHA-256 of the envelope it
    /// replaces, so an owner's newer value is never overwritten.
    SecretResealed {
        agent: Hash,
        name: String,
        replaces: Hash,
        #[serde(with = "phalanx_primitives::hex_serde")]
        sealed: Vec<u8>,
    },
    /// The worker's gateway takes agent calls at `url` (`http://` or `https://`).
    Gateway { url: String },
    /// A holder of the current master key retires an agent's older key epoch.
    AgentKeyRetire { agent: Hash, epoch: u64 },
    /// A holder of the current master key retires a cluster's older key epoch.
    ClusterKeyRetire { cluster: Hash, epoch: u64 },
    /// A command an agent submitted from its `fetch` (`ctx.submit`), sent by
    /// a worker of the agent's cluster.
    AgentCommand { agent: Hash, payload: crate::modules::agents::CommandPayload },
    /// A mining worker answers its challenge at height `challenge`.
    MiningHeartbeat { challenge: u64 },
    /// What the worker served `caller` of a paid agent since its last
    /// report, at one per-call `price` (the agent's when the calls were
    /// admitted; the chain charges at most that, and at most the price now).
    Usage { agent: Hash, caller: PublicKey, price: Balance, calls: u64, cpu_ms: u64, egress_bytes: u64 },
}

/// A message from a worker, signed inside its TEE.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct WorkerMessage {
    pub chain_id: Hash,
    /// The worker's identity key.
    pub worker: PublicKey,
    /// Must equal the worker's `next_sequence` when applied.
    pub sequence: u64,
    pub payload: WorkerPayload,
}

/// A [`WorkerMessage`] with the worker's signature.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct SignedWorkerMessage {
    pub message: WorkerMessage,
    pub signature: Signature,
}

impl WorkerMessage {
    /// Signs the message with the worker's identity key.
    pub fn sign(self, identity: &phalanx_primitives::Keypair) -> SignedWorkerMessage {
        assert_eq!(identity.public(), self.worker, "a worker message is signed by its worker");
        let signature = identity.sign(WORKER_MESSAGE_LABEL, &encode(&self));
        SignedWorkerMessage { message: self, signature }
    }
}

impl SignedWorkerMessage {
    pub fn verify_signature(&self) -> Result<(), phalanx_primitives::SignatureError> {
        self.message.worker.verify(WORKER_MESSAGE_LABEL, &encode(&self.message), &self.signature)
    }
}

pub(crate) fn worker_key(identity: &PublicKey) -> Vec<u8> {
    let mut key = Vec::with_capacity(WORKER_PREFIX.len() + 32);
    key.extend_from_slice(WORKER_PREFIX);
    key.extend_from_slice(&identity.0);
    key
}

/// What verified evidence established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Attested {
    pub tee: TeeKind,
    pub confidence: u8,
    pub measurement: Vec<u8>,
}

/// Checks `evidence` for `info` under `policy` at `now_secs` (the block's
/// timestamp). Pure: the same inputs give the same verdict on every node.
pub(crate) fn verify_evidence(
    policy: &AttestationPolicy,
    info: &RegistrationInfo,
    evidence: &Evidence,
    now_secs: u64,
) -> Result<Attested, crate::TxError> {
    use crate::TxError::Attestation;
    let expected = info.report_data();
    match evidence {
        Evidence::Simulated { report_data } => {
            if !policy.allow_simulated {
                return Err(Attestation("this chain does not accept simulated evidence".into()));
            }
            if report_data != &expected {
                return Err(Attestation("report data does not match the registration".into()));
            }
            Ok(Attested { tee: TeeKind::Simulated, confidence: 5, measurement: Vec::new() })
        }
        Evidence::Dcap { quote, collateral } => {
            if quote.len() > REGISTRATION_QUOTE_BYTES_MAX || collateral.len() > REGISTRATION_COLLATERAL_BYTES_MAX {
                return Err(Attestation(format!(
                    "evidence too large: quote {} bytes (limit {REGISTRATION_QUOTE_BYTES_MAX}), \
                     collateral {} bytes (limit {REGISTRATION_COLLATERAL_BYTES_MAX})",
                    quote.len(),
                    collateral.len()
                )));
            }
            let verdict = phalanx_attest::verify_quote(quote, collateral, now_secs, &policy.dcap)
                .map_err(|e| Attestation(e.to_string()))?;
            if verdict.report_data != hex::encode(expected) {
                return Err(Attestation("report data does not match the registration".into()));
            }
            let tee = match verdict.tee {
                phalanx_attest::Tee::Sgx => TeeKind::Sgx,
                phalanx_attest::Tee::Tdx => TeeKind::Tdx,
            };
            let measurement = hex::decode(&verdict.measurement).unwrap_or_default();
            Ok(Attested { tee, confidence: verdict.confidence, measurement })
        }
    }
}
