//! The simulated TEE: no hardware, no protection. Evidence is
//! [`Evidence::Simulated`], which only chains that allow simulated evidence
//! accept; the sealing key is 32 random bytes kept in a file (created on
//! first use, mode 0600). Everything built on top (identity, sealing,
//! registration, verified sync) runs the same code as on hardware.

use super::{Platform, TeeError};
use phalanx_state::{Evidence, TeeKind};
use std::io::Write;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// A software stand-in for a TEE.
#[derive(Debug, Clone)]
pub struct SimPlatform {
    key_file: PathBuf,
}

impl SimPlatform {
    /// A simulated TEE whose sealing key lives in `key_file`.
    pub fn new(key_file: PathBuf) -> Self {
        SimPlatform { key_file }
    }
}

impl Platform for SimPlatform {
    fn kind(&self) -> TeeKind {
        TeeKind::Simulated
    }

    fn evidence(&self, report_data: [u8; 64]) -> Result<Evidence, TeeError> {
        Ok(Evidence::Simulated { report_data })
    }

    fn sealing_key(&self) -> Result<Zeroizing<[u8; 32]>, TeeError> {
        let io = |action, source| TeeError::Io { tee: "sim", action, path: self.key_file.clone(), source };
        match std::fs::read(&self.key_file) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    TeeError::Invalid("sim", format!("{} is not a 32-byte key", self.key_file.display()))
                })?;
                Ok(Zeroizing::new(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = Zeroizing::new([0u8; 32]);
                getrandom::fill(key.as_mut()).expect("the operating system must provide randomness");
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(&self.key_file).map_err(|e| io("creating", e))?;
                file.write_all(key.as_ref()).map_err(|e| io("writing", e))?;
                file.sync_all().map_err(|e| io("syncing", e))?;
                Ok(key)
            }
            Err(e) => Err(io("reading", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_key_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let platform = SimPlatform::new(dir.path().join("sealing.key"));
        let first = platform.sealing_key().unwrap();
        assert_eq!(platform.sealing_key().unwrap(), first);
        std::fs::write(dir.path().join("bad.key"), b"short").unwrap();
        assert!(SimPlatform::new(dir.path().join("bad.key")).sealing_key().is_err());
        let evidence = platform.evidence([9; 64]).unwrap();
        assert_eq!(evidence, Evidence::Simulated { report_data: [9; 64] });
    }
}
