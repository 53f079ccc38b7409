//! `phalanx attest verify`: check an Intel SGX/TDX quote with its
//! collateral the way the network does, and say why if it is refused.

use anyhow::Context;
use phalanx_attest::{AttestationPolicy, verify_quote};
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AttestCommand {
    /// Verify a DCAP quote: prints TEE, TCB status, confidence level,
    /// measurement and report data; exits non-zero if it is refused.
    Verify {
        /// The raw quote (binary).
        #[arg(long)]
        quote: PathBuf,
        /// Intel's collateral for it (JSON, as PCCS serves it to dcap-qvl).
        #[arg(long)]
        collateral: PathBuf,
        /// Verification time, Unix seconds (default: now).
        #[arg(long)]
        now: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(command: AttestCommand) -> anyhow::Result<()> {
    let AttestCommand::Verify { quote, collateral, now, json } = command;
    let read = |path: &PathBuf, limit: usize| -> anyhow::Result<Vec<u8>> {
        let size = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
        anyhow::ensure!(size as usize <= limit, "{} is {size} bytes; the limit is {limit}", path.display());
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let quote = read(&quote, phalanx_attest::dcap::QUOTE_BYTES_MAX)?;
    let collateral = read(&collateral, phalanx_attest::dcap::COLLATERAL_BYTES_MAX)?;
    let now = match now {
        Some(now) => now,
        None => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs(),
    };
    let verdict = verify_quote(&quote, &collateral, now, &AttestationPolicy::default())
        .map_err(|error| anyhow::anyhow!("rejected: {error}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&verdict)?);
    } else {
        println!("accepted: {:?} quote", verdict.tee);
        println!("status       {}", verdict.status);
        if !verdict.advisories.is_empty() {
            println!("advisories   {}", verdict.advisories.join(", "));
        }
        println!("confidence   {} (1 best, 5 worst)", verdict.confidence);
        println!("measurement  {}", verdict.measurement);
        if let Some(signer) = &verdict.signer {
            println!("signer       {signer}");
        }
        println!("report data  {}", verdict.report_data);
    }
    Ok(())
}
