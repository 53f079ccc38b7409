//! `phalanx attest verify` on genuine evidence and on a forged copy: the
//! real binary prints the verdict, and exits non-zero with the reason when
//! it refuses.

use std::process::Command;

fn data(name: &str) -> String {
    format!("{}/../attest/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn attest_verify_accepts_genuine_and_refuses_forged_quotes() {
    let output = Command::new(env!("CARGO_BIN_EXE_phalanx"))
        .args(["attest", "verify", "--quote", &data("tdx_quote"), "--collateral", &data("tdx_quote_collateral.json")])
        .args(["--now", "1751000000", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let verdict: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(verdict["tee"], "Tdx");
    assert_eq!(verdict["status"], "UpToDate");
    assert_eq!(verdict["confidence"], 1);

    let mut forged = std::fs::read(data("tdx_quote")).unwrap();
    forged[600] ^= 1;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forged");
    std::fs::write(&path, forged).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_phalanx"))
        .args([
            "attest",
            "verify",
            "--quote",
            path.to_str().unwrap(),
            "--collateral",
            &data("tdx_quote_collateral.json"),
        ])
        .args(["--now", "1751000000"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("rejected: quote does not verify"), "{stderr}");

    // Today the sample's collateral has expired: refused, with the reason.
    let output = Command::new(env!("CARGO_BIN_EXE_phalanx"))
        .args(["attest", "verify", "--quote", &data("sgx_quote"), "--collateral", &data("sgx_quote_collateral.json")])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("rejected"));
}
