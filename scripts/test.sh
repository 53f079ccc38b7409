#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, then every test of the workspace.
# Needs only the Rust toolchain; anything else a test needs is installed here.
set -euo pipefail
cd "$(dirname "$0")/.."
# Build outside the clone so repeated runs (and CI) reuse the cache.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/phalanx-target}"
# Keep the shared cache from filling the disk: CI builds (clean clones)
# skip incremental artifacts, and test executables unused for two days go.
if [ "${CI:-}" = "true" ]; then export CARGO_INCREMENTAL=0; fi
find "$CARGO_TARGET_DIR/debug/deps" -maxdepth 1 -type f ! -name '*.*' -mtime +2 -delete 2>/dev/null || true
# Node.js and npm build the third-party agent fixtures (crates/sandbox/tests/npm);
# running agents never needs them.
if ! command -v npm >/dev/null 2>&1; then
  echo "installing Node.js and npm (for test fixtures only)"
  sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The binary alone, with the features it ships with: test builds switch on
# dev-dependency features, which can hide a missing one.
cargo check --workspace --bins --locked
cargo test --workspace --locked "$@"
