//! The benchmark score a worker measures at start, inside its TEE, and
//! registers with (the report data commits to it, so a host cannot inflate
//! it): how many KiB of SHA-256 one core hashes in 100 ms. The chain uses it
//! to weigh workers (mining shares, later); it is not a precise measure.

use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

/// How long the measurement runs.
pub const BENCHMARK_DURATION: Duration = Duration::from_millis(100);

/// Measures the score (KiB of SHA-256 per 100 ms on one core).
pub fn measure() -> u64 {
    let block = [0x5au8; 1024];
    let start = Instant::now();
    let mut count = 0u64;
    let mut digest = [0u8; 32];
    while start.elapsed() < BENCHMARK_DURATION {
        for _ in 0..64 {
            let mut hasher = Sha256::new();
            hasher.update(digest);
            hasher.update(block);
            digest = hasher.finalize().into();
        }
        count += 64;
    }
    let elapsed = start.elapsed().as_micros().max(1) as u64;
    count * BENCHMARK_DURATION.as_micros() as u64 / elapsed
}

#[cfg(test)]
mod tests {
    #[test]
    fn score_is_positive() {
        assert!(super::measure() > 0);
    }
}
