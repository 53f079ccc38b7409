//! TEE backends behind one interface: what the worker needs from the
//! hardware is evidence (a quote over 64 bytes of report data) and a sealing
//! key bound to the program and machine.
//!
//! - [`sim`]: no TEE. Evidence is marked simulated (accepted only by chains
//!   whose policy allows it: dev networks); the sealing key is read from a
//!   local file, so anyone with the file can read sealed data.
//! - [`tdx`]: Intel TDX quotes through the Linux configfs-tsm interface.
//! - [`sgx`]: Intel SGX quotes and sealing keys through Gramine's
//!   `/dev/attestation` pseudo-files.
//!
//! The hardware backends are small and real, but no SGX or TDX machine is
//! available where this is developed: they are not exercised by the tests
//! (quote *verification* is, with genuine quotes: see `phalanx-attest`).

pub mod sgx;
pub mod sim;
pub mod tdx;

use phalanx_state::{Evidence, TeeKind};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Why the TEE could not serve a request.
#[derive(Debug, thiserror::Error)]
pub enum TeeError {
    #[error("{tee} is not available here: {reason}")]
    Unavailable { tee: &'static str, reason: String },
    #[error("{tee}: {action} {path}: {source}")]
    Io { tee: &'static str, action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{0}: {1}")]
    Invalid(&'static str, String),
}

/// A trusted execution environment as the worker uses it.
pub trait Platform: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> TeeKind;

    /// A quote (with what is needed to verify it) binding `report_data`.
    fn evidence(&self, report_data: [u8; 64]) -> Result<Evidence, TeeError>;

    /// The key that seals data to this program on this machine.
    fn sealing_key(&self) -> Result<Zeroizing<[u8; 32]>, TeeError>;
}

/// Collateral for a DCAP quote: Intel's certificates, CRLs, TCB info and QE
/// identity as JSON (the format `dcap-qvl` reads). Fetching it from a PCCS
/// is the host's job (it is public data the chain verifies anyway); the
/// hardware backends read it from a file the operator keeps current.
pub fn read_collateral(tee: &'static str, path: &std::path::Path) -> Result<Vec<u8>, TeeError> {
    let bytes = std::fs::read(path).map_err(|source| TeeError::Io {
        tee,
        action: "reading collateral",
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.len() > phalanx_state::modules::registry::REGISTRATION_COLLATERAL_BYTES_MAX {
        return Err(TeeError::Invalid(tee, format!("collateral file {} is too large", path.display())));
    }
    Ok(bytes)
}
