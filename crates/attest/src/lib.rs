//! Remote attestation: what a worker's evidence proves, and whether the
//! network accepts it.
//!
//! - [`dcap`]: Intel SGX and TDX quotes verified with `dcap-qvl` against
//!   Intel's collateral at a given time: signatures, certificate chains to
//!   Intel's root, CRLs, TCB level. Debug enclaves are refused here.
//! - [`policy`]: our own decision on top of that: which TCB statuses and
//!   advisories are acceptable, which measurements are allowed, and the
//!   confidence level (1 best … 5) a verified quote earns.
//!
//! Hardware to produce quotes is not available where this is developed;
//! verification is tested with genuine quotes and collateral published with
//! `dcap-qvl` (see `tests/data`).

pub mod dcap;
pub mod policy;

pub use dcap::{AttestError, Tee, Verdict, verify_quote};
pub use policy::{AttestationPolicy, TcbStatus};
