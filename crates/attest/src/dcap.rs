//! Intel DCAP quotes (SGX and TDX) verified with `dcap-qvl`, then judged by
//! an [`AttestationPolicy`].
//!
//! `dcap-qvl` checks the quote against the collateral at `now`: Intel's
//! root, certificate chains and CRLs, the TCB info and QE identity
//! signatures and validity windows, the quoting enclave, the report
//! signature, and the TCB level; it refuses debug enclaves unless told
//! otherwise, and `Revoked` platforms always. It accepts every other
//! status, so the status, advisories and measurement are judged here.
//! Inputs are untrusted: both are size-checked before parsing.

use crate::policy::{AttestationPolicy, TcbStatus};
use dcap_qvl::QuoteCollateralV3;
use dcap_qvl::quote::{Quote, Report};
use serde::Serialize;

/// Largest quote accepted, in bytes (genuine ones are about 5 KiB).
pub const QUOTE_BYTES_MAX: usize = 64 * 1024;
/// Largest collateral accepted, in bytes of JSON (genuine ones are about 25 KiB).
pub const COLLATERAL_BYTES_MAX: usize = 512 * 1024;

/// Why evidence was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AttestError {
    #[error("quote is {size} bytes; the limit is {QUOTE_BYTES_MAX}")]
    QuoteTooLarge { size: usize },
    #[error("collateral is {size} bytes; the limit is {COLLATERAL_BYTES_MAX}")]
    CollateralTooLarge { size: usize },
    #[error("collateral is not DCAP collateral JSON: {0}")]
    Collateral(String),
    #[error("quote is malformed: {0}")]
    Malformed(String),
    #[error("quote does not verify: {0}")]
    Invalid(String),
    #[error("TCB status {0} is not accepted by the policy")]
    Status(String),
    #[error("confidence level {level} is worse than the policy accepts ({max})")]
    Confidence { level: u8, max: u8 },
    #[error("measurement {0} is not on the policy's allowlist")]
    Measurement(String),
}

/// Which TEE produced the quote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Tee {
    Sgx,
    Tdx,
}

/// What a verified and accepted quote proves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub tee: Tee,
    /// TCB status as Intel names it.
    pub status: String,
    pub advisories: Vec<String>,
    /// 1 (best) to 5.
    pub confidence: u8,
    /// MRENCLAVE (SGX) or MRTD (TDX), hex.
    pub measurement: String,
    /// MRSIGNER (SGX only), hex.
    pub signer: Option<String>,
    /// The 64 bytes the enclave bound into the quote, hex.
    pub report_data: String,
    /// Whether the enclave runs in debug mode (only if the policy allows it).
    pub debug: bool,
}

/// Verifies `quote` against `collateral_json` at `now_secs` (Unix seconds)
/// and applies `policy`.
pub fn verify_quote(
    quote: &[u8],
    collateral_json: &[u8],
    now_secs: u64,
    policy: &AttestationPolicy,
) -> Result<Verdict, AttestError> {
    if quote.len() > QUOTE_BYTES_MAX {
        return Err(AttestError::QuoteTooLarge { size: quote.len() });
    }
    if collateral_json.len() > COLLATERAL_BYTES_MAX {
        return Err(AttestError::CollateralTooLarge { size: collateral_json.len() });
    }
    let collateral: QuoteCollateralV3 =
        serde_json::from_slice(collateral_json).map_err(|e| AttestError::Collateral(e.to_string()))?;
    Quote::parse(quote).map_err(|e| AttestError::Malformed(format!("{e:#}")))?;
    let verified = dcap_qvl::verify::QuoteVerifier::new_prod()
        .allow_debug(policy.allow_debug)
        .verify(quote, &collateral, now_secs)
        .map_err(|e| AttestError::Invalid(format!("{e:#}")))?;
    let (tee, measurement, signer, report_data, debug) = match &verified.report {
        Report::SgxEnclave(report) => (
            Tee::Sgx,
            hex::encode(report.mr_enclave),
            Some(hex::encode(report.mr_signer)),
            hex::encode(report.report_data),
            report.attributes[0] & 0x02 != 0,
        ),
        other => {
            let td = other.as_td10().ok_or_else(|| AttestError::Malformed("unknown report body".into()))?;
            (Tee::Tdx, hex::encode(td.mr_td), None, hex::encode(td.report_data), td.td_attributes[0] & 0x01 != 0)
        }
    };
    let status = TcbStatus::parse(&verified.status)
        .filter(|s| policy.allowed_statuses.contains(s))
        .ok_or_else(|| AttestError::Status(verified.status.clone()))?;
    let confidence = policy.confidence(status, &verified.advisory_ids);
    if confidence > policy.confidence_max {
        return Err(AttestError::Confidence { level: confidence, max: policy.confidence_max });
    }
    if !policy.allows_measurement(&measurement) {
        return Err(AttestError::Measurement(measurement));
    }
    Ok(Verdict {
        tee,
        status: verified.status,
        advisories: verified.advisory_ids,
        confidence,
        measurement,
        signer,
        report_data,
        debug,
    })
}
