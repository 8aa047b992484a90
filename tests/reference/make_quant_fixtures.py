#!/usr/bin/env python3
"""Write the dequantization fixtures of the GGUF block types into tests/fixtures/quant/.

For each type (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) it writes

    <TYPE>.bin   random but valid blocks: every quant byte uniformly random, every f16
                 scale field replaced by a finite value (zero, a subnormal, and random
                 magnitudes 1e-4 .. 1e-1 of either sign)
    <TYPE>.f32   what the `gguf` package (gguf.quants.dequantize, the reference the
                 llama.cpp project ships for Python) makes of them, float32 little-endian

and meta.json with the gguf and numpy versions, the seed, the block counts and the
sha256 of every file. tests/test_quant.cpp requires our dequantize_row to equal these
bit for bit (see there for the 1-ulp allowance).

The fixtures are committed; CI does not run this script. Re-run it by hand:

    pip install gguf numpy        # the versions in meta.json reproduce the files byte for byte
    python3 tests/reference/make_quant_fixtures.py [--out tests/fixtures/quant]
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import pathlib

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import quants

SEED = 20250301

# type -> (values per block, bytes per block, byte offsets of the f16 fields, blocks to write)
TYPES = {
    "Q8_0": (32, 34, [0], 64),
    "Q4_0": (32, 18, [0], 64),
    "Q4_1": (32, 20, [0, 2], 64),
    "Q5_0": (32, 22, [0], 64),
    "Q5_1": (32, 24, [0, 2], 64),
    "Q4_K": (256, 144, [0, 2], 8),
    "Q5_K": (256, 176, [0, 2], 8),
    "Q6_K": (256, 210, [208], 8),
}


def scales(rng: np.random.Generator, n: int) -> np.ndarray:
    """n finite f16 scale values: 0, a subnormal, then random sign * 10^U(-4, -1)."""
    v = rng.choice([-1.0, 1.0], size=n) * 10.0 ** rng.uniform(-4, -1, size=n)
    v[0] = 0.0
    if n > 1:
        v[1] = 3.0e-6  # below f16's smallest normal (6.1e-5): a subnormal
    return v.astype(np.float16)


def make(name: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    block_size, block_bytes, f16_offsets, n_blocks = TYPES[name]
    qtype = getattr(Q, name)
    assert quants.GGML_QUANT_SIZES[qtype] == (block_size, block_bytes), name
    blocks = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    for off in f16_offsets:
        blocks[:, off:off + 2] = scales(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    out = quants.dequantize(blocks, qtype).astype(np.float32, copy=False).reshape(-1)
    assert out.size == n_blocks * block_size and np.all(np.isfinite(out)), name
    return blocks, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = pathlib.Path(__file__).resolve().parents[2]
    ap.add_argument("--out", type=pathlib.Path, default=root / "tests" / "fixtures" / "quant")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(SEED)
    meta = {
        "generator": "tests/reference/make_quant_fixtures.py",
        "reference": "gguf.quants.dequantize",
        "gguf_version": importlib.metadata.version("gguf"),
        "numpy_version": np.__version__,
        "seed": SEED,
        "types": {},
    }
    for name in TYPES:
        blocks, values = make(name, rng)
        files = {name + ".bin": blocks.tobytes(), name + ".f32": values.astype("<f4").tobytes()}
        for fname, data in files.items():
            (args.out / fname).write_bytes(data)
            print(f"{fname:10s} {len(data):6d} bytes  sha256 {hashlib.sha256(data).hexdigest()[:16]}")
        meta["types"][name] = {
            "blocks": int(blocks.shape[0]),
            "values": int(values.size),
            "block_size": TYPES[name][0],
            "block_bytes": TYPES[name][1],
            "sha256": {f: hashlib.sha256(d).hexdigest() for f, d in files.items()},
        }
    (args.out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print("meta.json:", meta["gguf_version"], "numpy", meta["numpy_version"])


if __name__ == "__main__":
    main()
