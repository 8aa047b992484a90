#!/usr/bin/env bash
# tests/web/run_web_test.sh SOURCE_DIR BUILD_DIR MODEL CLI KV_CALCULATOR
#
# The browser demo's end-to-end test (ctest: web_demo_chromium, label web): builds the
# page with emscripten into BUILD_DIR/site-build (scripts/build-web.sh; incremental, so
# once per `make test`), serves it with web/serve.py on a free 127.0.0.1 port, and runs
# tests/web/test_web.py in headless Chromium through chromedriver.
# Exit 77 (CTest: skipped) when emscripten, chromium, chromedriver or python3-selenium
# is missing; scripts/install-deps.sh installs all four on Debian.
set -euo pipefail
SRC=${1:?source dir}
OUT=${2:?build dir}
MODEL=${3:?model}
CLI=${4:?gemma3-cli}
KVCALC=${5:?kv_cache_calculator}

for tool in emcmake /usr/bin/chromium /usr/bin/chromedriver; do
  command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool not found (scripts/install-deps.sh installs it)"; exit 77; }
done
# Debian's python3-selenium lives with the system python
PY=/usr/bin/python3
"$PY" -c "import selenium" 2>/dev/null || PY=python3
"$PY" -c "import selenium" 2>/dev/null || { echo "SKIP: python3-selenium not found"; exit 77; }
[[ -f "$MODEL" ]] || { echo "SKIP: $MODEL not found (scripts/fetch-model.sh)"; exit 77; }

mkdir -p "$OUT"
bash "$SRC/scripts/build-web.sh" "$OUT/site-build"

LOG="$OUT/serve.log"
GEMMA3_SERVE_QUIET=1 "$PY" "$SRC/web/serve.py" --root "$OUT/site-build/web" --models "$(dirname "$MODEL")" --port 0 >"$LOG" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
URL=""
for _ in $(seq 100); do
  URL=$(grep -o 'http://127.0.0.1:[0-9]*/' "$LOG" || true)
  [[ -n "$URL" ]] && break
  sleep 0.1
done
[[ -n "$URL" ]] || { echo "the server did not start:"; cat "$LOG"; exit 1; }
echo "serving $OUT/site-build/web at $URL"


"$PY" "$SRC/tests/web/test_web.py" --url "$URL" --model "$MODEL" --cli "$CLI" --kv-calculator "$KVCALC" \
  --out "$OUT/results" --screenshot "$OUT/results/mid-generation.png"
