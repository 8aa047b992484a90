#!/usr/bin/env bash
# Gathers, on a build machine, the header-only dependencies the CUDA build needs into
# .device-deps/ (git-ignored), for a GPU machine that has CUDA, CMake and a compiler but
# not Debian's Eigen and Catch2 and cannot download them: Eigen 3.4 (headers + CMake
# package) and Catch2 (header + CMake package). cuda/device-check.sh uses it when there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dst=.device-deps/usr
rm -rf .device-deps
mkdir -p "$dst/include" "$dst/share" "$dst/lib/cmake"
cp -r /usr/include/eigen3 "$dst/include/"
cp -r /usr/share/eigen3 "$dst/share/"
cp -r /usr/include/catch2 "$dst/include/"
cp -r /usr/lib/cmake/Catch2 "$dst/lib/cmake/"
cp /usr/lib/libCatch2WithMain.a "$dst/lib/" 2>/dev/null || true
du -sh .device-deps
