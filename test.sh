#!/usr/bin/env bash
# The whole test suite, from a fresh clone: Rust unit, property and
# integration tests (real server, real HTTP, real SQLite), then the examples
# against a live server. Installs nothing it does not need; safe to re-run.
set -euo pipefail
cd "$(dirname "$0")"

echo "== cargo test"
cargo test --all-targets 2>&1

echo "== examples against a live server"
cargo build --quiet
bash examples/run-against-live-server.sh target/debug/ivr-auth

echo "== all tests passed"
