#!/usr/bin/env bash
# Runs every check stratacache has: installs what the suite needs when it is missing
# (redis-server, memcached and openssl, from Debian's packages), then formatting, clippy, every
# test (unit, integration, doc), the loom model checks, the doc build and cargo-deny
# (installed from crates.io when missing). Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v memcached >/dev/null 2>&1 || missing+=(memcached)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if ((${#missing[@]})); then
  echo "==> installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # The packages start system-wide daemons; the tests run their own on free ports.
  $sudo systemctl disable --now redis-server memcached >/dev/null 2>&1 || true
fi

# One-shot builds: incremental state would double the target directory (5 GB) for nothing.
export CARGO_INCREMENTAL=0

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

echo "==> cargo test"
cargo test --workspace --all-features --locked

echo "==> loom: model-check the write generations"
RUSTFLAGS="--cfg stratacache_loom" CARGO_TARGET_DIR=target/loom \
  cargo test -p stratacache --lib --release --locked loom

echo "==> cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps --locked

echo "==> cargo deny"
if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "    installing cargo-deny (crates.io)"
  cargo install cargo-deny --locked --quiet
fi
# cargo-deny reads the metadata of every platform's packages (Windows and macOS ones
# too) and runs offline: fetch them all from the registry first, or a machine whose
# builds never needed them fails here.
timeout 300 cargo fetch --locked --quiet ||
  echo "    could not fetch every platform's packages: cargo-deny may fail below"
# The advisory database is a git clone from GitHub: checked when it can be fetched.
if timeout 120 cargo deny fetch db >/dev/null 2>&1; then
  cargo deny --offline check
else
  echo "    advisory database unreachable: checking bans, licences and sources only"
  cargo deny --offline check bans licenses sources
fi
echo "==> all checks passed (target directory: $(du -sh target 2>/dev/null | cut -f1))"
