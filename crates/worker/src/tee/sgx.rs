//! Intel SGX under Gramine, through its `/dev/attestation` pseudo-files:
//! write the report data to `user_report_data`, read the DCAP quote from
//! `quote`; the sealing key is Gramine's MRENCLAVE-bound key
//! (`keys/_sgx_mrenclave`, 16 bytes), stretched with HKDF-SHA256, so only
//! this exact enclave on this CPU can unseal.
//! Untested here: no SGX machine is available.

use super::{Platform, TeeError, read_collateral};
use hkdf::Hkdf;
use phalanx_state::{Evidence, TeeKind};
use sha2::Sha256;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const ATTESTATION_DIR: &str = "/dev/attestation";

/// An SGX enclave run by Gramine with DCAP attestation.
#[derive(Debug, Clone)]
pub struct SgxPlatform {
    /// Collateral JSON for this platform's quotes.
    pub collateral_file: PathBuf,
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> TeeError {
    TeeError::Io { tee: "sgx", action, path: path.to_path_buf(), source }
}

fn check_available() -> Result<(), TeeError> {
    let kind = Path::new(ATTESTATION_DIR).join("attestation_type");
    let found = std::fs::read_to_string(&kind).map_err(|_| TeeError::Unavailable {
        tee: "sgx",
        reason: format!("{} is missing (not running under Gramine-SGX)", kind.display()),
    })?;
    if found.trim() != "dcap" {
        return Err(TeeError::Unavailable {
            tee: "sgx",
            reason: format!("Gramine attestation type is {found:?}, not dcap"),
        });
    }
    Ok(())
}

impl Platform for SgxPlatform {
    fn kind(&self) -> TeeKind {
        TeeKind::Sgx
    }

    fn evidence(&self, report_data: [u8; 64]) -> Result<Evidence, TeeError> {
        check_available()?;
        let user = Path::new(ATTESTATION_DIR).join("user_report_data");
        std::fs::write(&user, report_data).map_err(|e| io("writing", &user, e))?;
        let path = Path::new(ATTESTATION_DIR).join("quote");
        let quote = std::fs::read(&path).map_err(|e| io("reading", &path, e))?;
        if quote.is_empty() || quote.len() > phalanx_state::modules::registry::REGISTRATION_QUOTE_BYTES_MAX {
            return Err(TeeError::Invalid("sgx", format!("Gramine returned a {}-byte quote", quote.len())));
        }
        let collateral = read_collateral("sgx", &self.collateral_file)?;
        Ok(Evidence::Dcap { quote, collateral })
    }

    fn sealing_key(&self) -> Result<Zeroizing<[u8; 32]>, TeeError> {
        check_available()?;
        let path = Path::new(ATTESTATION_DIR).join("keys/_sgx_mrenclave");
        let raw = Zeroizing::new(std::fs::read(&path).map_err(|e| io("reading", &path, e))?);
        if raw.len() != 16 {
            return Err(TeeError::Invalid("sgx", format!("sealing key is {} bytes, expected 16", raw.len())));
        }
        let mut key = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(b"phalanx/sgx-sealing/v1"), raw.as_slice())
            .expand(b"sealing key", key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Ok(key)
    }
}
