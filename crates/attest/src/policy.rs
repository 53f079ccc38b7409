//! The attestation policy: which verified quotes the network accepts, and
//! the confidence level each earns.
//!
//! Confidence levels (lower is better), from the TCB status Intel reports:
//! 1 `UpToDate`; 2 `SWHardeningNeeded`; 3 `ConfigurationNeeded` and
//! `ConfigurationAndSWHardeningNeeded`; 4 any of these with an advisory that
//! is not on the policy's list of accepted advisories; 5 `OutOfDate`.
//! Everything else (`OutOfDateConfigurationNeeded`, `TDRelaunchAdvised…`,
//! `Revoked`, unknown strings) is rejected: the policy fails closed.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// A TCB status as Intel's TCB info names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub enum TcbStatus {
    UpToDate,
    SWHardeningNeeded,
    ConfigurationNeeded,
    ConfigurationAndSWHardeningNeeded,
    OutOfDate,
}

impl TcbStatus {
    /// The statuses we accept at all, by their TCB-info name.
    pub fn parse(name: &str) -> Option<TcbStatus> {
        Some(match name {
            "UpToDate" => TcbStatus::UpToDate,
            "SWHardeningNeeded" => TcbStatus::SWHardeningNeeded,
            "ConfigurationNeeded" => TcbStatus::ConfigurationNeeded,
            "ConfigurationAndSWHardeningNeeded" => TcbStatus::ConfigurationAndSWHardeningNeeded,
            "OutOfDate" => TcbStatus::OutOfDate,
            _ => return None,
        })
    }
}

/// What the network accepts from a worker's evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct AttestationPolicy {
    /// Statuses accepted (others are rejected even though verified).
    pub allowed_statuses: Vec<TcbStatus>,
    /// Advisories (e.g. `INTEL-SA-00615`) known and accepted: a quote with
    /// others drops to confidence level 4.
    pub accepted_advisories: Vec<String>,
    /// Allowed measurements (hex MRENCLAVE or MRTD); empty accepts any.
    pub measurements: Vec<String>,
    /// Highest (worst) confidence level accepted.
    pub confidence_max: u8,
    /// Whether debug enclaves are accepted (never on a real network).
    pub allow_debug: bool,
}

impl Default for AttestationPolicy {
    /// Every status we know, any measurement, down to level 5.
    fn default() -> Self {
        AttestationPolicy {
            allowed_statuses: vec![
                TcbStatus::UpToDate,
                TcbStatus::SWHardeningNeeded,
                TcbStatus::ConfigurationNeeded,
                TcbStatus::ConfigurationAndSWHardeningNeeded,
                TcbStatus::OutOfDate,
            ],
            accepted_advisories: Vec::new(),
            measurements: Vec::new(),
            confidence_max: 5,
            allow_debug: false,
        }
    }
}

impl AttestationPolicy {
    /// The confidence level of a status with its advisories.
    pub fn confidence(&self, status: TcbStatus, advisories: &[String]) -> u8 {
        let unknown_advisory = advisories.iter().any(|a| !self.accepted_advisories.contains(a));
        match status {
            TcbStatus::OutOfDate => 5,
            _ if unknown_advisory => 4,
            TcbStatus::UpToDate => 1,
            TcbStatus::SWHardeningNeeded => 2,
            TcbStatus::ConfigurationNeeded | TcbStatus::ConfigurationAndSWHardeningNeeded => 3,
        }
    }

    /// Whether a measurement (hex) is allowed.
    pub fn allows_measurement(&self, measurement_hex: &str) -> bool {
        self.measurements.is_empty() || self.measurements.iter().any(|m| m.eq_ignore_ascii_case(measurement_hex))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_levels() {
        let policy = AttestationPolicy { accepted_advisories: vec!["INTEL-SA-00615".into()], ..Default::default() };
        let none: Vec<String> = vec![];
        assert_eq!(policy.confidence(TcbStatus::UpToDate, &none), 1);
        assert_eq!(policy.confidence(TcbStatus::SWHardeningNeeded, &["INTEL-SA-00615".into()]), 2);
        assert_eq!(policy.confidence(TcbStatus::ConfigurationNeeded, &none), 3);
        assert_eq!(policy.confidence(TcbStatus::ConfigurationAndSWHardeningNeeded, &none), 3);
        assert_eq!(policy.confidence(TcbStatus::ConfigurationAndSWHardeningNeeded, &["INTEL-SA-00289".into()]), 4);
        assert_eq!(policy.confidence(TcbStatus::OutOfDate, &none), 5);
        for rejected in ["Revoked", "OutOfDateConfigurationNeeded", "TDRelaunchAdvised", "uptodate", ""] {
            assert_eq!(TcbStatus::parse(rejected), None, "{rejected}");
        }
    }
}
