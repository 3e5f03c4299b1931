#!/usr/bin/env bash
# Mutation testing with cargo-mutants (not part of .ci/run: it rebuilds and reruns the
# tests once per mutant, hours for the whole tree on two cores).
#
#   scripts/mutants.sh [MINUTES] [-- extra cargo-mutants arguments]
#
# Mutates crates/stratacache, crates/memcached and crates/redis, each within MINUTES
# (default 30), running each crate's own tests (real redis-server / memcached, started by
# the test kit). `--in-diff <(git diff main~10)` limits it to recent changes. Reports go to
# target/mutants/<crate>/mutants.out (caught.txt, missed.txt, timeout.txt, unviable.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=${1:-30}
shift || true
[ "${1:-}" = "--" ] && shift

if ! command -v cargo-mutants >/dev/null 2>&1; then
    cargo install cargo-mutants --locked
fi

for package in stratacache stratacache-memcached stratacache-redis; do
    out="target/mutants/$package"
    mkdir -p "$out"
    echo "==> cargo mutants -p $package (budget ${minutes} min)"
    timeout "$((minutes * 60))" cargo mutants --package "$package" --all-features \
        --timeout 300 --output "$out" "$@" || true
    for outcome in caught missed timeout unviable; do
        file="$out/mutants.out/$outcome.txt"
        printf '%s %s: %s\n' "$package" "$outcome" "$( [ -f "$file" ] && wc -l <"$file" || echo 0)"
    done
done
