#!/usr/bin/env bash
# tests/wasm/run_wasm_test.sh SOURCE_DIR BUILD_DIR [EIGEN_INCLUDE_DIR]
#
# Builds tests/wasm/test_wasm_kernels.cpp with em++ (-O2 -msimd128 -pthread) and runs
# it under node: the WebAssembly SIMD128 kernels against their scalar twins (the
# int16-activation quantizer, dots and GEMM of every GGUF block type included), the
# dequantizers against the committed gguf fixtures, matvec / matmul through a
# 2-thread pool. Registered with CTest as `wasm_simd128_kernels` (label wasm).
# Timings: bench/wasm/run_wasm_bench.sh (not a test).
#
# Exit 77 (CTest: skipped) when em++ or node is missing. Debian 12: apt-get install
# emscripten (3.1.6; ~110 MB download, ~800 MB installed, so it is not in
# scripts/install-deps.sh). Debian's emscripten needs NODE_PATH=/usr/share/nodejs;
# node 20 runs its output with --no-experimental-fetch.
# The build is skipped when the .js is newer than every header and test source.
set -euo pipefail

SRC=${1:?source dir}
OUT=${2:?build dir}
EIGEN=${3:-/usr/include/eigen3}

if ! command -v em++ >/dev/null 2>&1; then echo "SKIP: em++ not found (apt-get install emscripten)"; exit 77; fi
if ! command -v node >/dev/null 2>&1; then echo "SKIP: node not found"; exit 77; fi
if [[ ! -f "$EIGEN/Eigen/Core" ]]; then echo "SKIP: Eigen headers not found at $EIGEN"; exit 77; fi

export NODE_PATH=${NODE_PATH:-/usr/share/nodejs}
mkdir -p "$OUT"
JS="$OUT/test_wasm_kernels.js"

if [[ ! -f "$JS" ]] || [[ -n "$(find "$SRC/include" "$SRC/tests/wasm" "$SRC/tests/test_quant_helpers.hpp" -newer "$JS" -type f 2>/dev/null | head -1)" ]]; then
  echo "building $JS"
  # -sPTHREAD_POOL_SIZE: workers spawned before main (a pool constructor must not
  # wait for the event loop); -sEXIT_RUNTIME: node exits when main returns;
  # -sNODERAWFS: the test reads the fixtures from the real file system.
  em++ -std=c++17 -O2 -msimd128 -pthread -sPTHREAD_POOL_SIZE=4 -sEXIT_RUNTIME=1 -sNODERAWFS=1 \
       -sALLOW_MEMORY_GROWTH=1 -Wno-pthreads-mem-growth \
       -I"$SRC/include" -isystem "$EIGEN" \
       "$SRC/tests/wasm/test_wasm_kernels.cpp" -o "$JS"
fi

node --no-experimental-fetch "$JS" "$SRC/tests/fixtures/quant"
