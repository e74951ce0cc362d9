#!/usr/bin/env bash
# Builds ringmq's fuzz targets with libFuzzer's coverage instrumentation
# (stable rustc flags only, see README.md) and runs each for SECONDS
# against a scratch copy of its seed corpus (fuzz/corpus/<target> is left
# as it is). Exits non-zero if any target crashed, hung, ran out of memory
# or did not run; prints the executions and coverage of each.
#
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
#   SECONDS  per target, default 60; 0 only builds.
#   TARGET   default: every target.
# Environment:
#   FUZZ_BUILD_LOCK  a file to hold with flock(1) while cargo builds.
#   FUZZ_ARGS        more libFuzzer flags, e.g. "-runs=100000 -seed=1".
#   FUZZ_WORK        keep the logs and grown corpora in this directory
#                    (default: a temporary one, removed at the end).
# Crash inputs go to fuzz/artifacts/<target>/ (see README.md to replay).
set -euo pipefail
cd "$(dirname "$0")"

secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(native_frame native_session amqp_gateway log_recovery meta_oplog)
fi

# What cargo-fuzz passes with `--sanitizer none`, all of it stable; the
# other sanitizers need nightly's -Zsanitizer. --target keeps the flags
# off build scripts and proc macros.
export RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cllvm-args=-sanitizer-coverage-stack-depth \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks"
triple=$(rustc -vV | sed -n 's/^host: //p')
bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
lock=()
if [ -n "${FUZZ_BUILD_LOCK:-}" ]; then lock=(flock "$FUZZ_BUILD_LOCK"); fi
"${lock[@]}" cargo build --release --target "$triple" "${bins[@]}"
[ "$secs" = 0 ] && exit 0

if [ -n "${FUZZ_WORK:-}" ]; then
  work=$FUZZ_WORK
  mkdir -p "$work"
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/ringmq-fuzz-run.XXXXXX")
  trap 'rm -rf "$work"' EXIT
fi
failed=()
for t in "${targets[@]}"; do
  corpus="$work/$t"
  rm -rf "$corpus"
  mkdir -p "$corpus" "artifacts/$t"
  if [ -d "corpus/$t" ]; then cp -r "corpus/$t/." "$corpus/"; fi
  log="$work/$t.log"
  start=$(date +%s)
  set +e
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
  "./target/$triple/release/$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="artifacts/$t/" ${FUZZ_ARGS:-} "$corpus" >"$log" 2>&1
  rc=$?
  set -e
  took=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -n 's/.*cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\).*/cov \1, ft \2, corpus \3/p')
  printf '%-15s %s execs in %ss (%s/s), %s, peak rss %s MB\n' \
    "$t" "${execs:-?}" "$took" "${rate:-?}" "${cov:-cov ?}" "${rss:-?}"
  if [ "$rc" -ne 0 ] || [ -z "$execs" ]; then
    failed+=("$t")
    echo "---- $t failed (exit $rc); the end of its log:"
    tail -n 60 "$log"
    echo "----"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, no crash, hang or OOM"
