//! Genuine Intel quotes with their collateral (published with dcap-qvl,
//! MIT, see `data/LICENSE.dcap-qvl`) verify at a time inside the
//! collateral's validity, with the expected status, confidence,
//! measurement and report data; anything forged, truncated, expired or
//! outside the policy is refused with its own error.

use phalanx_attest::dcap::{AttestError, QUOTE_BYTES_MAX};
use phalanx_attest::{AttestationPolicy, TcbStatus, Tee, verify_quote};

const SGX_QUOTE: &[u8] = include_bytes!("data/sgx_quote");
const SGX_COLLATERAL: &[u8] = include_bytes!("data/sgx_quote_collateral.json");
const TDX_QUOTE: &[u8] = include_bytes!("data/tdx_quote");
const TDX_COLLATERAL: &[u8] = include_bytes!("data/tdx_quote_collateral.json");
const TD15_QUOTE: &[u8] = include_bytes!("data/tdx_quote_td15ex");
const TD15_COLLATERAL: &[u8] = include_bytes!("data/tdx_quote_td15ex_collateral.json");
const OUTDATED_QUOTE: &[u8] = include_bytes!("data/tdx_quote_outdated");
const OUTDATED_COLLATERAL: &[u8] = include_bytes!("data/tdx_quote_outdated_collateral.json");

/// Inside the SGX and TDX v4 collateral windows (2025-06-27).
const JUNE_2025: u64 = 1_751_000_000;
/// Inside the TDX v5 collateral window (2026-10-14).
const OCTOBER_2026: u64 = 1_792_000_000;

fn policy() -> AttestationPolicy {
    AttestationPolicy::default()
}

#[test]
fn genuine_quotes_verify() {
    let sgx = verify_quote(SGX_QUOTE, SGX_COLLATERAL, JUNE_2025, &policy()).unwrap();
    assert_eq!(sgx.tee, Tee::Sgx);
    assert_eq!(sgx.status, "ConfigurationAndSWHardeningNeeded");
    assert_eq!(sgx.advisories, ["INTEL-SA-00289", "INTEL-SA-00615"]);
    assert_eq!(sgx.confidence, 4, "advisories not on the policy's list");
    assert_eq!(sgx.measurement, "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb");
    assert!(sgx.report_data.starts_with(&hex::encode("Hello, world!")));
    assert!(!sgx.debug);

    let known =
        AttestationPolicy { accepted_advisories: vec!["INTEL-SA-00289".into(), "INTEL-SA-00615".into()], ..policy() };
    assert_eq!(verify_quote(SGX_QUOTE, SGX_COLLATERAL, JUNE_2025, &known).unwrap().confidence, 3);

    let tdx = verify_quote(TDX_QUOTE, TDX_COLLATERAL, JUNE_2025, &policy()).unwrap();
    assert_eq!((tdx.tee, tdx.status.as_str(), tdx.confidence), (Tee::Tdx, "UpToDate", 1));
    assert_eq!(
        tdx.measurement,
        "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
    );
    assert_eq!(
        tdx.report_data,
        "9a9d48e7f6799642d3d1b34e1e5e1742d4bb02dd6ddd551862c1211d35c304f9eca3efdbb481601c163cf52493d6e44aed55d51ec39b7e518fadb92c2b523f20"
    );

    let td15 = verify_quote(TD15_QUOTE, TD15_COLLATERAL, OCTOBER_2026, &policy()).unwrap();
    assert_eq!((td15.tee, td15.confidence), (Tee::Tdx, 1));
    assert_eq!(
        td15.measurement,
        "2a674327c50218dba880066b349b8d559d749ed68dce33fd651c184a877d084b07a9e583767a7ad5da13ed91deec2b70"
    );
}

#[test]
fn forged_truncated_and_expired_evidence_is_refused() {
    // A flipped byte in the report body (the measurement).
    let mut forged = SGX_QUOTE.to_vec();
    forged[48 + 64] ^= 1;
    let error = verify_quote(&forged, SGX_COLLATERAL, JUNE_2025, &policy()).unwrap_err();
    assert!(matches!(&error, AttestError::Invalid(m) if m.contains("signature")), "{error:?}");
    // A flipped byte in report_data (what binds the worker's keys).
    let mut forged = TDX_QUOTE.to_vec();
    forged[568] ^= 0x80;
    assert!(matches!(verify_quote(&forged, TDX_COLLATERAL, JUNE_2025, &policy()), Err(AttestError::Invalid(_))));
    // Every truncation is refused without a panic.
    for length in (0..SGX_QUOTE.len()).step_by(97) {
        assert!(verify_quote(&SGX_QUOTE[..length], SGX_COLLATERAL, JUNE_2025, &policy()).is_err(), "{length}");
    }
    let error = verify_quote(&SGX_QUOTE[..100], SGX_COLLATERAL, JUNE_2025, &policy()).unwrap_err();
    assert!(matches!(error, AttestError::Malformed(_)), "{error:?}");
    // Collateral expired (today) or not yet valid.
    for now in [1_795_600_000, 1_700_000_000] {
        let error = verify_quote(SGX_QUOTE, SGX_COLLATERAL, now, &policy()).unwrap_err();
        assert!(matches!(error, AttestError::Invalid(_)), "{now}: {error:?}");
    }
    // Another platform's collateral.
    assert!(matches!(verify_quote(SGX_QUOTE, TDX_COLLATERAL, JUNE_2025, &policy()), Err(AttestError::Invalid(_))));
    // Genuine signatures, but no TCB level matches.
    let error = verify_quote(OUTDATED_QUOTE, OUTDATED_COLLATERAL, 1_772_000_000, &policy()).unwrap_err();
    assert!(matches!(&error, AttestError::Invalid(m) if m.contains("TCB")), "{error:?}");
    // Garbage and oversized input.
    assert!(matches!(verify_quote(SGX_QUOTE, b"{}", JUNE_2025, &policy()), Err(AttestError::Collateral(_))));
    let huge = vec![0u8; QUOTE_BYTES_MAX + 1];
    assert!(matches!(
        verify_quote(&huge, SGX_COLLATERAL, JUNE_2025, &policy()),
        Err(AttestError::QuoteTooLarge { .. })
    ));
}

#[test]
fn the_policy_decides_what_verified_quotes_are_accepted() {
    let only_up_to_date = AttestationPolicy { allowed_statuses: vec![TcbStatus::UpToDate], ..policy() };
    assert_eq!(
        verify_quote(SGX_QUOTE, SGX_COLLATERAL, JUNE_2025, &only_up_to_date),
        Err(AttestError::Status("ConfigurationAndSWHardeningNeeded".into()))
    );
    assert!(verify_quote(TDX_QUOTE, TDX_COLLATERAL, JUNE_2025, &only_up_to_date).is_ok());

    let strict = AttestationPolicy { confidence_max: 3, ..policy() };
    assert_eq!(
        verify_quote(SGX_QUOTE, SGX_COLLATERAL, JUNE_2025, &strict),
        Err(AttestError::Confidence { level: 4, max: 3 })
    );

    let allowlist = AttestationPolicy { measurements: vec!["00".repeat(48)], ..policy() };
    assert!(matches!(verify_quote(TDX_QUOTE, TDX_COLLATERAL, JUNE_2025, &allowlist), Err(AttestError::Measurement(_))));
    let listed = AttestationPolicy {
        measurements: vec![
            "91EB2B44D141D4ECE09F0C75C2C53D247A3C68EDD7FAFE8A3520C942A604A407DE03AE6DC5F87F27428B2538873118B7".into(),
        ],
        ..policy()
    };
    assert!(verify_quote(TDX_QUOTE, TDX_COLLATERAL, JUNE_2025, &listed).is_ok());
}
