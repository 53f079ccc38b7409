//! Intel TDX through Linux configfs-tsm (`/sys/kernel/config/tsm/report`,
//! Linux 6.7+): create a report directory, write the 64 bytes of report data
//! to `inblob`, read the quote from `outblob`, remove the directory.
//!
//! TDX has no hardware sealing key: a TD gets one from a key-management
//! service after attesting (or from an encrypted disk unlocked that way).
//! This backend reads that key from the file the operator names; without
//! one it refuses to seal rather than fall back to something weaker.
//! Untested here: no TDX machine is available.

use super::{Platform, TeeError, read_collateral};
use phalanx_state::{Evidence, TeeKind};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Where configfs-tsm reports live.
pub const TSM_REPORT_DIR: &str = "/sys/kernel/config/tsm/report";

/// An Intel TDX guest.
#[derive(Debug, Clone)]
pub struct TdxPlatform {
    /// Collateral JSON for this platform's quotes.
    pub collateral_file: PathBuf,
    /// A 32-byte key released to this TD by a key-management service.
    pub sealing_key_file: Option<PathBuf>,
}

impl TdxPlatform {
    fn io(action: &'static str, path: &Path, source: std::io::Error) -> TeeError {
        TeeError::Io { tee: "tdx", action, path: path.to_path_buf(), source }
    }

    /// Asks the kernel for a TD quote over `report_data`.
    pub fn quote(report_data: &[u8; 64]) -> Result<Vec<u8>, TeeError> {
        let base = Path::new(TSM_REPORT_DIR);
        if !base.is_dir() {
            return Err(TeeError::Unavailable {
                tee: "tdx",
                reason: format!("{TSM_REPORT_DIR} does not exist (not a TDX guest, or configfs not mounted)"),
            });
        }
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).expect("the operating system must provide randomness");
        let dir = base.join(format!("phalanx-{}", hex::encode(suffix)));
        std::fs::create_dir(&dir).map_err(|e| Self::io("creating", &dir, e))?;
        let result = (|| {
            let provider = std::fs::read_to_string(dir.join("provider")).unwrap_or_default();
            if !provider.trim().starts_with("tdx") {
                return Err(TeeError::Unavailable { tee: "tdx", reason: format!("quote provider is {provider:?}") });
            }
            let inblob = dir.join("inblob");
            std::fs::write(&inblob, report_data).map_err(|e| Self::io("writing", &inblob, e))?;
            let outblob = dir.join("outblob");
            let quote = std::fs::read(&outblob).map_err(|e| Self::io("reading", &outblob, e))?;
            if quote.is_empty() || quote.len() > phalanx_state::modules::registry::REGISTRATION_QUOTE_BYTES_MAX {
                return Err(TeeError::Invalid("tdx", format!("kernel returned a {}-byte quote", quote.len())));
            }
            Ok(quote)
        })();
        let _ = std::fs::remove_dir(&dir);
        result
    }
}

impl Platform for TdxPlatform {
    fn kind(&self) -> TeeKind {
        TeeKind::Tdx
    }

    fn evidence(&self, report_data: [u8; 64]) -> Result<Evidence, TeeError> {
        let quote = Self::quote(&report_data)?;
        let collateral = read_collateral("tdx", &self.collateral_file)?;
        Ok(Evidence::Dcap { quote, collateral })
    }

    fn sealing_key(&self) -> Result<Zeroizing<[u8; 32]>, TeeError> {
        let path = self.sealing_key_file.as_ref().ok_or_else(|| TeeError::Unavailable {
            tee: "tdx",
            reason: "TDX has no hardware sealing key; pass the key released by your key-management service".into(),
        })?;
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| Self::io("reading", path, e))?);
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| TeeError::Invalid("tdx", format!("{} is not a 32-byte key", path.display())))?;
        Ok(Zeroizing::new(key))
    }
}
