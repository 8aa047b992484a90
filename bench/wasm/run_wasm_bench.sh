#!/usr/bin/env bash
# bench/wasm/run_wasm_bench.sh SOURCE_DIR BUILD_DIR [EIGEN_INCLUDE_DIR] [THREADS] [T]
#
# Builds bench/wasm/bench_wasm_kernels.cpp with em++ (-O2 -msimd128 -pthread, as the
# wasm test) and runs it under node: decode matvec and T-token prefill matmul on
# quantized weights, float against int16 activations, on Isa::wasm_simd128.
# A measurement, not a test (not registered with CTest). Needs em++ and node
# (NODE_PATH=/usr/share/nodejs for Debian's emscripten).
set -euo pipefail

SRC=${1:?source dir}
OUT=${2:?build dir}
EIGEN=${3:-/usr/include/eigen3}
THREADS=${4:-2}
T=${5:-64}

export NODE_PATH=${NODE_PATH:-/usr/share/nodejs}
mkdir -p "$OUT"
JS="$OUT/bench_wasm_kernels.js"
em++ -std=c++17 -O2 -msimd128 -pthread -sPTHREAD_POOL_SIZE=4 -sEXIT_RUNTIME=1 \
     -sALLOW_MEMORY_GROWTH=1 -sINITIAL_MEMORY=256MB -Wno-pthreads-mem-growth \
     -I"$SRC/include" -isystem "$EIGEN" \
     "$SRC/bench/wasm/bench_wasm_kernels.cpp" -o "$JS"
node --no-experimental-fetch "$JS" "$THREADS" "$T"
