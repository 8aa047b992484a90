#!/usr/bin/env bash
# cuda/device-check.sh -- everything the CUDA backend needs a GPU for, in one run:
# configure and build for the card (sm_90 unless CUDA_ARCH says otherwise), run the
# CUDA tests (every kernel and the whole model against the CPU reference), the kernel
# lab (decode, prefill, the dequantizing GEMV, whole-model decode) and the PyTorch peer
# on the same card, and write a summary. Sized to finish in under 8 minutes on an H100
# with 16 cores.
#
#   bash cuda/device-deps.sh        # on a build machine: Eigen + Catch2 into .device-deps/
#   bash cuda/device-check.sh [OUT]  # on the GPU machine; OUT defaults to $OUT or build-cuda/check
#
# Results: OUT/summary.md (the tables), OUT/*.csv, OUT/*.log. Exit status: non-zero when
# the build or a test or a lab validation fails.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:-${OUT:-build-cuda/check}}
mkdir -p "$out"
arch=${CUDA_ARCH:-90}
jobs=$(nproc 2>/dev/null || echo 8)
status=0
t0=$(date +%s)
note() { echo "== $*" | tee -a "$out/summary.md"; }
: > "$out/summary.md"

# The real model, when cuda/device-model.sh's parts came over: joined and checked.
model=models/gemma-3-270m-q4_k_m.gguf
want_sha=$(sed -n 's/^SHA256="\([0-9a-f]*\)"$/\1/p' scripts/fetch-model.sh)
if [[ ! -f $model ]] && compgen -G ".device-model/part-*" > /dev/null; then
  mkdir -p models
  cat .device-model/part-* > "$model.part"
  if echo "$want_sha  $model.part" | sha256sum -c --status; then
    mv "$model.part" "$model"
  else
    rm -f "$model.part"
    note "the parts in .device-model/ do not join into $model (sha256 differs): a part is missing or stale"
  fi
fi

prefix=()
if [[ -d .device-deps/usr ]]; then prefix=(-DCMAKE_PREFIX_PATH="$PWD/.device-deps/usr"); fi
gen=()
if command -v ninja >/dev/null 2>&1; then gen=(-G Ninja); fi

{
  echo "# CUDA device check, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,power.limit --format=csv 2>&1
  nvcc --version | tail -1
  if [[ -f $model ]]; then echo "real model: $model (the whole-model tests compare it with the CPU backend)"
  else echo "real model: absent (cuda/device-model.sh); the whole-model tests run on the tiny fixtures only"; fi
  echo
} >> "$out/summary.md"

note "configure + build (sm_$arch, $jobs jobs)"
if ! cmake -S . -B build-cuda "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DGEMMA3_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" \
     -DGEMMA3_BUILD_BENCH=OFF -DGEMMA3_BUILD_WEB=OFF -DGEMMA3_NATIVE_ARCH=OFF "${prefix[@]}" > "$out/configure.log" 2>&1; then
  tail -30 "$out/configure.log"; note "configure FAILED (configure.log)"; exit 1
fi
if ! timeout 420 cmake --build build-cuda -j"$jobs" --target gemma3_cuda_tests cuda_decode_lab cuda_prefill_lab \
     cuda_gemv_lab cuda_model_decode gemma3-cli > "$out/build.log" 2>&1; then
  grep -E "error|Error" "$out/build.log" | head -40; note "build FAILED (build.log)"; exit 1
fi
note "built in $(( $(date +%s) - t0 )) s"

run() {  # run NAME SECONDS COMMAND...: log to OUT/NAME.log, keep the status
  local name=$1 secs=$2; shift 2
  local s0=$(date +%s)
  timeout "$secs" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  note "$name: exit $rc in $(( $(date +%s) - s0 )) s"
  # the failures first (Catch's compact reporter: one line each), then the end of the log
  { grep -m 30 -E "failed:|FAILED" "$out/$name.log"; tail -40 "$out/$name.log"; } | sed 's/^/    /' >> "$out/summary.md"
  [[ $rc -eq 0 ]] || status=1
}

lab=build-cuda/cuda/lab
# one process per group of tests: a kernel that faults (which spoils the CUDA context for
# the rest of its process) fails its own group only
for group in ops decode prefill backend; do
  run "tests_$group" 120 build-cuda/cuda/gemma3_cuda_tests "[$group]" -r compact -d yes
done
run decode_lab 90 "$lab/decode_lab" --csv "$out/decode.csv"
run prefill_lab 120 "$lab/prefill_lab" --csv "$out/prefill.csv"
run gemv_lab 90 "$lab/gemv_lab" --csv "$out/gemv.csv"
run model_decode 90 "$lab/model_decode" --csv "$out/model_decode.csv"
# the 1B's shapes in the Q4_K_M file's block types: bf16 on upload against the blocks kept
run model_decode_1b_q4km 120 "$lab/model_decode" --random 1b --q4-k-m --steps 64 --csv "$out/model_decode_1b_q4km.csv"
if [[ -f $model ]]; then
  run model_decode_270m 90 "$lab/model_decode" "$model" --steps 64 --csv "$out/model_decode_270m.csv"
fi
if python3 -c "import torch" > /dev/null 2>&1; then
  run torch_attention 240 python3 cuda/lab/torch_attention.py --csv "$out/torch_attention.csv"
else
  note "torch_attention: no PyTorch here, skipped"
fi
note "total $(( $(date +%s) - t0 )) s, status $status"
exit $status
