#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, then every test of the workspace.
# Needs only the Rust toolchain; anything else a test needs is installed here.
set -euo pipefail
cd "$(dirname "$0")/.."
# Build outside the clone so repeated runs (and CI) reuse the cache.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/phalanx-target}"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked "$@"
