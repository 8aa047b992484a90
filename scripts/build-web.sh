#!/usr/bin/env bash
# scripts/build-web.sh [BUILD_DIR] -- the browser build (web/) with Debian's emscripten.
# Configures BUILD_DIR (default build-web) with emcmake once, then builds incrementally;
# the site is BUILD_DIR/web/ (index.html, app.js, worker.js, gemma3_web.js/.wasm).
# Exit 77 when emscripten is not installed (scripts/install-deps.sh installs it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${1:-build-web}
if ! command -v emcmake >/dev/null 2>&1; then
  echo "build-web: emcmake not found (Debian: apt-get install emscripten)" >&2
  exit 77
fi
# Debian's emscripten runs its JS tools with the system node and needs its modules.
export NODE_PATH=${NODE_PATH:-/usr/share/nodejs}
# A private cache copy when the system one is read-only (emscripten writes there on first use).
if [[ -z "${EM_CACHE:-}" && ! -w /usr/share/emscripten/cache ]]; then
  export EM_CACHE="$HOME/.cache/gemma3-emscripten"
fi
if [[ ! -f "$OUT/CMakeCache.txt" ]]; then
  emcmake cmake -S . -B "$OUT" -DCMAKE_BUILD_TYPE=Release -DEigen3_DIR=/usr/share/eigen3/cmake \
    -DGEMMA3_BUILD_TESTS=OFF -DGEMMA3_BUILD_BENCH=OFF -DGEMMA3_BUILD_EXAMPLES=OFF -DGEMMA3_INSTALL=OFF \
    -DGEMMA3_BUILD_WEB=ON -DGEMMA3_NATIVE_ARCH=OFF
fi
cmake --build "$OUT" --target gemma3_web -j"${JOBS:-$(nproc)}"
echo "build-web: the site is $OUT/web/"
