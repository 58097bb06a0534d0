#!/usr/bin/env bash
# Runs the fuzz targets: `fuzz/run.sh SECONDS [TARGET...]` (all five by
# default), each for SECONDS of one core. The committed corpus in
# fuzz/corpus/TARGET seeds a scratch copy (what libFuzzer adds is not kept:
# a finding becomes a test instead), and the real samples beside the
# checkout are read as extra seeds, never copied. A crash or a hang fails the
# run and leaves its input in fuzz/artifacts/TARGET/. FUZZ_SEED fixes
# libFuzzer's seed (0, the default: a new one each run); FUZZ_RUNS stops
# each target after that many executions (SECONDS then only bounds it), so that a
# short run, as CI's, takes the same path on any machine, however fast.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  targets=(telegram_json html botapi mapping_csv kql)
fi
samples=../../shared/samples/telegram-export
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
for t in "${targets[@]}"; do
  work="$(mktemp -d)"
  cp corpus/"$t"/* "$work"/
  seeds=()
  if [ -d "$samples" ] && { [ "$t" = telegram_json ] || [ "$t" = html ]; }; then
    seeds+=("$samples")
  fi
  mkdir -p artifacts/"$t"
  limit=(-max_total_time="$secs")
  span="${secs}s"
  if [ -n "${FUZZ_RUNS:-}" ]; then
    limit+=(-runs="$FUZZ_RUNS")
    span="$FUZZ_RUNS executions (at most ${secs}s)"
  fi
  echo "== fuzz $t for $span"
  status=0
  cargo fuzz run -O "$t" "$work" "${seeds[@]}" -- \
    "${limit[@]}" -max_len=262144 -timeout=10 -seed="${FUZZ_SEED:-0}" \
    -artifact_prefix=artifacts/"$t"/ -print_final_stats=1 >"$work.log" 2>&1 || status=$?
  grep -E '^(stat::|#[0-9]+ +DONE|==[0-9]+==|SUMMARY|Test unit written|thread .* panicked)' "$work.log" || true
  rm -f "$work.log"
  rm -rf "$work"
  if [ "$status" -ne 0 ]; then
    echo "fuzz $t: a finding (exit $status); see fuzz/artifacts/$t/" >&2
    for f in artifacts/"$t"/*; do
      [ -f "$f" ] && { echo "$f:"; od -A d -c -N 512 "$f"; } >&2
    done
    exit 1
  fi
done
