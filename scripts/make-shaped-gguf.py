#!/usr/bin/env python3
"""A Gemma 3 GGUF with random weights in the released Q4_K_M files' exact shapes and types.

    python3 scripts/make-shaped-gguf.py 1b models/gemma-3-1b-shaped-q4_k_m.gguf
    python3 scripts/make-shaped-gguf.py 270m /tmp/gemma-3-270m-shaped.gguf [--tokenizer-from FILE.gguf]

For speed and memory work where the real weights are not at hand (the 1B's are gated):
the file has the 1B's (or 270M's) tensors, quantization types and bytes per token, so
decode streams as many bytes and prefill does as many multiply-adds as with the real
file. The text it generates is noise. Types follow llama.cpp's Q4_K_M recipe for these
models: token_embd Q8_0; attn_q / attn_k / ffn_gate / ffn_up Q5_0; attn_output Q4_K;
attn_v Q8_0 and ffn_down Q6_K on the layers that recipe gives more bits (the first and
last eighth of the layers and every third one between), Q5_0 and Q4_K elsewhere; the
norms F32, stored as llama.cpp's converter stores them (1 + w) with w = 0.

The tokenizer is copied from another Gemma 3 GGUF (by default the 270M file that
scripts/fetch-model.sh downloads), so prompts tokenize as with the real model. Block
scales are small finite float16 values; every other byte of a block is random.
Needs numpy and gguf (PyPI).
"""
import argparse
import os
import sys

import numpy as np

try:
    import gguf
except ImportError:
    sys.exit("make-shaped-gguf: needs the gguf package (pip install gguf)")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The text configs of the two small models (transformers' config.json names in comments).
SHAPES = {
    "1b": dict(hidden=1152, layers=26, ffn=6912, heads=4, kv_heads=1, head_dim=256, window=512, context=32768,
               rope_base=1e6, eps=1e-6),
    "270m": dict(hidden=640, layers=18, ffn=2048, heads=4, kv_heads=1, head_dim=256, window=512, context=32768,
                 rope_base=1e6, eps=1e-6),
}
VOCAB = 262144

Q = gguf.GGMLQuantizationType
# Where each block type keeps its float16 scale(s): byte offsets in the block.
SCALE_OFFSETS = {Q.Q8_0: (0,), Q.Q5_0: (0,), Q.Q4_K: (0, 2), Q.Q6_K: (208,)}


def more_bits(i, n):
    """Layers that llama.cpp's Q4_K_M recipe quantizes with more bits (attn_v, ffn_down)."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def tensor_plan(c):
    """(name, [rows, cols] as transformers stores the weight, type) for every tensor."""
    H, F, D = c["hidden"], c["ffn"], c["head_dim"]
    plan = [("token_embd.weight", [VOCAB, H], Q.Q8_0)]
    for i in range(c["layers"]):
        more = more_bits(i, c["layers"])
        b = f"blk.{i}."
        plan += [
            (b + "attn_norm.weight", [H], Q.F32),
            (b + "attn_q.weight", [c["heads"] * D, H], Q.Q5_0),
            (b + "attn_k.weight", [c["kv_heads"] * D, H], Q.Q5_0),
            (b + "attn_v.weight", [c["kv_heads"] * D, H], Q.Q8_0 if more else Q.Q5_0),
            (b + "attn_q_norm.weight", [D], Q.F32),
            (b + "attn_k_norm.weight", [D], Q.F32),
            (b + "attn_output.weight", [H, c["heads"] * D], Q.Q4_K),
            (b + "post_attention_norm.weight", [H], Q.F32),
            (b + "ffn_norm.weight", [H], Q.F32),
            (b + "ffn_gate.weight", [F, H], Q.Q5_0),
            (b + "ffn_up.weight", [F, H], Q.Q5_0),
            (b + "ffn_down.weight", [H, F], Q.Q6_K if more else Q.Q4_K),
            (b + "post_ffw_norm.weight", [H], Q.F32),
        ]
    plan.append(("output_norm.weight", [H], Q.F32))
    return plan


def random_blocks(rng, qtype, rows, cols):
    """[rows, row bytes] of blocks: random bytes, float16 scales in [0.005, 0.03)."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    assert cols % block == 0, (qtype, cols)
    n_blocks = rows * cols // block
    data = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for off in SCALE_OFFSETS[qtype]:
        scales = rng.uniform(0.005, 0.03, size=n_blocks).astype("<f2")
        data[:, off:off + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return data.reshape(rows, cols // block * size)


def copy_tokenizer(writer, path):
    r = gguf.GGUFReader(path)

    def field(key):
        f = r.fields.get(key)
        if f is None:
            sys.exit(f"make-shaped-gguf: {path} has no {key}")
        return f

    def strings(key):
        f = field(key)
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    def numbers(key, dtype):
        f = field(key)
        return [dtype(f.parts[i][0]) for i in f.data]

    def scalar(key, dtype):
        f = r.fields.get(key)
        return None if f is None else dtype(f.parts[f.data[0]][0])

    tokens = strings("tokenizer.ggml.tokens")
    if len(tokens) != VOCAB:
        sys.exit(f"make-shaped-gguf: {path} has {len(tokens)} tokens, Gemma 3 has {VOCAB}")
    writer.add_tokenizer_model(bytes(field("tokenizer.ggml.model").parts[-1]).decode())
    writer.add_token_list(tokens)
    writer.add_token_scores(numbers("tokenizer.ggml.scores", float))
    writer.add_token_types(numbers("tokenizer.ggml.token_type", int))
    for key, add in [("tokenizer.ggml.bos_token_id", writer.add_bos_token_id),
                     ("tokenizer.ggml.eos_token_id", writer.add_eos_token_id),
                     ("tokenizer.ggml.unknown_token_id", writer.add_unk_token_id),
                     ("tokenizer.ggml.padding_token_id", writer.add_pad_token_id)]:
        v = scalar(key, int)
        if v is not None:
            add(v)
    for key, add in [("tokenizer.ggml.add_bos_token", writer.add_add_bos_token),
                     ("tokenizer.ggml.add_eos_token", writer.add_add_eos_token)]:
        v = scalar(key, bool)
        if v is not None:
            add(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("size", choices=sorted(SHAPES))
    ap.add_argument("out")
    ap.add_argument("--tokenizer-from", default=os.path.join(REPO, "models", "gemma-3-270m-q4_k_m.gguf"),
                    help="a Gemma 3 GGUF whose tokenizer is copied (default: the fetched 270M file)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if not os.path.exists(a.tokenizer_from):
        sys.exit(f"make-shaped-gguf: no tokenizer source {a.tokenizer_from} (scripts/fetch-model.sh gets the 270M)")
    c = SHAPES[a.size]
    rng = np.random.default_rng(a.seed)

    w = gguf.GGUFWriter(a.out, "gemma3")
    w.add_name(f"gemma-3-{a.size}-shaped-random")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    w.add_context_length(c["context"])
    w.add_embedding_length(c["hidden"])
    w.add_block_count(c["layers"])
    w.add_feed_forward_length(c["ffn"])
    w.add_head_count(c["heads"])
    w.add_head_count_kv(c["kv_heads"])
    w.add_key_length(c["head_dim"])
    w.add_value_length(c["head_dim"])
    w.add_layer_norm_rms_eps(c["eps"])
    w.add_rope_freq_base(c["rope_base"])
    w.add_sliding_window(c["window"])
    copy_tokenizer(w, a.tokenizer_from)

    total = 0
    for name, shape, qtype in tensor_plan(c):
        if qtype == Q.F32:
            data = np.ones(shape, dtype=np.float32)  # norm weights, stored as 1 + w: w = 0
        else:
            data = random_blocks(rng, qtype, shape[0], shape[1])
        w.add_tensor(name, data, raw_dtype=qtype)
        total += data.nbytes
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{a.out}: {total / 1e6:.1f} MB of tensors ({a.size} shapes, Q4_K_M types, random weights)")


if __name__ == "__main__":
    main()
