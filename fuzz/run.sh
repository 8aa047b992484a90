#!/usr/bin/env bash
# fuzz/run.sh -- build the libFuzzer targets with clang 14 + ASan + UBSan and run each
# for a bounded time over the committed seed corpus. Not part of the normal build or
# `ctest` (it needs clang); docs/fuzzing.md has the numbers of the last run.
#
#   fuzz/run.sh                    # every target, 120 s each
#   fuzz/run.sh 600 gguf           # one target, 10 minutes
#   RUNS=10000000 fuzz/run.sh 3600 # every target to 10M executions (or an hour)
#   CXX=clang++-15 fuzz/run.sh     # another clang
#
# New inputs found go to build-fuzz/corpus/<target>/ (not committed); a crash is saved
# as fuzz/crashes/<target>-crash-<sha1> and the script exits non-zero. A reproducer
# replays with: build-fuzz/fuzz_<target> fuzz/crashes/<file>
# Needs clang++-14 and its runtime (Debian/Ubuntu: apt-get install clang-14 libclang-rt-14-dev).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECONDS_PER_TARGET="${1:-120}"
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(gguf safetensors image config_json tokenizer_model tokenizer_text)
CXX="${CXX:-clang++-14}"
OUT=build-fuzz
# Longest input: 64 KiB, but 4 KiB for tokenizer_text, whose cost grows with the text
# while what it exercises (pieces, byte fallback, UTF-8) does not; MAX_LEN overrides both.

command -v "$CXX" >/dev/null || { echo "fuzz/run.sh: $CXX not found (apt-get install clang-14)" >&2; exit 1; }
EIGEN_INC="$(pkg-config --cflags-only-I eigen3 2>/dev/null || echo -I/usr/include/eigen3)"
FLAGS=(-std=c++17 -g -O1 -fno-omit-frame-pointer
       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -DGEMMA3_HAVE_IMAGE_DECODERS=1 -Iinclude $EIGEN_INC)

mkdir -p "$OUT" fuzz/crashes
probe="$OUT/probe.cpp"
printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' > "$probe"
if ! "$CXX" -fsanitize=fuzzer,address,undefined "$probe" -o "$OUT/probe" 2>/dev/null; then
  echo "fuzz/run.sh: $CXX cannot link -fsanitize=fuzzer; install the runtime: apt-get install libclang-rt-14-dev" >&2
  exit 1
fi

status=0
for t in "${TARGETS[@]}"; do
  echo "== building fuzz_$t"
  "$CXX" "${FLAGS[@]}" "fuzz/fuzz_$t.cpp" -o "$OUT/fuzz_$t" -ljpeg
  mkdir -p "$OUT/corpus/$t"
  dict=()
  [[ -f "fuzz/$t.dict" ]] && dict=(-dict="fuzz/$t.dict")
  max_len="${MAX_LEN:-65536}"
  [[ -z "${MAX_LEN:-}" && "$t" == tokenizer_text ]] && max_len=4096
  echo "== running fuzz_$t for ${SECONDS_PER_TARGET}s (max_len $max_len), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  set +e
  "$OUT/fuzz_$t" "$OUT/corpus/$t" "fuzz/corpus/$t" "${dict[@]}" \
      -max_total_time="$SECONDS_PER_TARGET" ${RUNS:+-runs="$RUNS"} -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="fuzz/crashes/$t-" -print_final_stats=1 2>&1 | tee "$OUT/fuzz_$t.log"
  rc=${PIPESTATUS[0]}
  set -e
  if [[ $rc -ne 0 ]]; then
    echo "== fuzz_$t: FOUND A PROBLEM (exit $rc); reproducer in fuzz/crashes/" >&2
    status=1
  fi
  grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb" \
      "$OUT/fuzz_$t.log" || true
done
exit $status
