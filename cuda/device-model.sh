#!/usr/bin/env bash
# cuda/device-model.sh -- on a build machine: cuts the real model file
# (models/gemma-3-270m-q4_k_m.gguf, 241 MiB; scripts/fetch-model.sh) into parts small
# enough to travel to a GPU machine whose calls carry at most 64 MiB each (the working
# tree included), in .device-model/ (git-ignored). A GPU machine keeps what earlier calls
# carried while it stays warm, so the parts go over in consecutive calls and
# cuda/device-check.sh joins them (checking the sha256 of scripts/fetch-model.sh); its
# whole-model GPU tests then also run on the real 270M.
#
#   bash cuda/device-model.sh [PART_MIB]    # default 52; prints the calls to make
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
model=models/gemma-3-270m-q4_k_m.gguf
part_mib=${1:-52}
if [[ ! -f $model ]]; then
  echo "device-model: $model is missing (bash scripts/fetch-model.sh)" >&2
  exit 1
fi
rm -rf .device-model
mkdir -p .device-model
split -b "${part_mib}M" -d -a 2 "$model" .device-model/part-
parts=(.device-model/part-*)
tree_mib=$(( $(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) / 1048576 + 1 ))
deps_mib=0
if [[ -d .device-deps ]]; then deps_mib=$(( $(du -sb .device-deps | cut -f1) / 1048576 + 1 )); fi
last=${parts[${#parts[@]}-1]}
last_mib=$(( $(stat -c %s "$last") / 1048576 + 1 ))
echo "device-model: ${#parts[@]} parts of at most $part_mib MiB in .device-model/ (working tree ~$tree_mib MiB," \
     ".device-deps ~$deps_mib MiB)"
if (( tree_mib + part_mib > 64 || tree_mib + deps_mib + last_mib > 64 )); then
  echo "device-model: a call would carry more than 64 MiB: choose a smaller PART_MIB" >&2
  exit 1
fi
echo "calls, one right after another (the machine goes back when idle):"
for p in "${parts[@]}"; do
  if [[ $p == "$last" ]]; then
    echo "  run carry [\".device-deps\", \"$p\"]  command: bash cuda/device-check.sh"
  else
    echo "  run carry [\"$p\"]  command: ls -l .device-model"
  fi
done
