#!/usr/bin/env python3
"""Reference outputs of Hugging Face `transformers` for the real Gemma 3 270M GGUF (Q4_K_M).

Not run by CI: what it writes is committed under tests/fixtures/real270m/. Re-run by hand (~30-60 minutes on
2 shared CPU cores, ~5 GB RAM, 1.1 GB of temporary disk) only to change the fixture:

    bash scripts/fetch-model.sh                                   # models/gemma-3-270m-q4_k_m.gguf
    pip install -r tests/reference/requirements-real.txt          # PyPI only, CPU
    python3 tests/reference/make_real_model_reference.py [--gguf PATH] [--out DIR]

What it does
  1. Loads the GGUF with transformers (`from_pretrained(folder, gguf_file=name, dtype=float32,
     attn_implementation="eager")`). transformers dequantizes every tensor to float32 with gguf-py, so the model it
     runs is "the GGUF's weights, dequantized, evaluated in float32" -- exactly the float path the C++ library has
     to reproduce from the same file.
  2. Verifies the load instead of trusting it:
     * every RMSNorm weight in the HF model equals (value stored in the GGUF - 1): llama.cpp's converter stores
       Gemma's zero-centred norm weights as 1 + w. If transformers had not undone that, the script would subtract
       1 itself and record it (meta.json "norm_fixup"); with transformers 5.24 no fix-up is needed.
     * every weight matrix equals gguf-py's dequantization of the stored blocks, bit for bit (also the tied
       lm_head = token_embd);
     * the config transformers built (the GGUF lacks several Gemma 3 keys, which then come from
       Gemma3TextConfig defaults) matches the published Gemma 3 270M config.json.
     * a greedy continuation of "The capital of France is" reads as English text (printed, kept in meta.json;
       this small quantized model is weak: it says " the capital of the country of France. It is the largest city
       in France and", and llama.cpp says the same).
  3. Three prompts, tokenized by the HF tokenizer built from the GGUF (cross-checked against llama.cpp's own
     tokenizer when llama-cpp-python is installed):
       chat          a short English chat turn in the Gemma chat template
       long          an English passage of > 600 tokens (sliding_window = 512 wraps)
       multilingual  a chat turn mixing German, Japanese and Chinese (plus an emoji: byte-fallback tokens)
     For each: one full forward over the prompt (use_cache=False): top-16 logits and ids at EVERY position; full
     logits rows at a few positions; then a 64-token greedy continuation that ignores EOS, computed as a
     no-cache greedy loop (step g = argmax of the last-position logits of a full use_cache=False forward over the
     prompt + g tokens; this is the truth) and compared with `generate(do_sample=False)` (cached, sliding-window
     cache) -- meta.json "generate_check" says whether they agree.
  4. Checks the reference against llama.cpp (an independent implementation reading the same file), when
     llama-cpp-python is installed:
     * on the Q4_K_M file as llama.cpp normally runs it (activations quantized to Q8 for the matmuls, F16 KV):
       argmax agreement at every prompt position, logit differences, its own greedy continuation (meta.json
       "llama_cpp_check"; loose by nature);
     * on an F32 copy of the file (every tensor dequantized by gguf-py, i.e. the same values transformers uses),
       F32 KV cache, flash attention off: no activation quantization is left, so the logits must agree to float
       noise (meta.json "llama_cpp_f32_check"). The 1.1 GB copy is written to --tmpdir and deleted.
     * the HF tokenizer against llama_tokenize on the prompts and on extra tokenizer cases (prompts.json).
  5. Writes tests/fixtures/real270m/{reference.safetensors, meta.json, prompts.json}.

Everything is CPU, float32, deterministic (torch.use_deterministic_algorithms, fixed thread count).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
DEFAULT_GGUF = os.path.join(REPO, "models", "gemma-3-270m-q4_k_m.gguf")
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "real270m")
EXPECTED_GGUF_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

TOPK = 16
NUM_GENERATE = 64
THREADS = 2

BOS, EOS, START_OF_TURN, END_OF_TURN = 2, 1, 105, 106

# ----------------------------------------------------------------------------------------------------------------
# Prompts. The texts are original (written for this fixture). `text` never contains "<bos>": the ids are
# [BOS] + tokenize(text), with the chat markers <start_of_turn>/<end_of_turn> parsed as special tokens.
# ----------------------------------------------------------------------------------------------------------------

CHAT_TEXT = (
    "<start_of_turn>user\n"
    "Explain in two sentences why the sky looks blue during the day.<end_of_turn>\n"
    "<start_of_turn>model\n"
)

LONG_TEXT = """The Clockmaker of Low Harbour

Low Harbour is a town that the maps forget. It sits where a slow brown river meets a grey and restless sea, and for most of the year the only visitors are gulls, fishing boats and the occasional lost cyclist looking for a road that ends somewhere more interesting. In the middle of the town, between a bakery that opens at four in the morning and a bookshop that rarely opens at all, there is a narrow workshop with a green door. Above the door hangs a wooden sign shaped like a pocket watch, and under the sign, painted in careful white letters, are the words: Repairs of All Kinds, Except Hearts.

The workshop belongs to Ada Marlow, who has mended clocks there for thirty-one years. She learned the trade from her grandfather, who learned it from a travelling watchmaker who, according to family legend, had once fixed a clock for a king and been paid in oranges. Ada does not believe the story, but she keeps a small bowl of oranges on the counter anyway, because customers like to ask about it and because the smell covers the sharp odour of machine oil.

Her days follow a pattern as regular as the movements she repairs. At seven she unlocks the green door and winds the eleven clocks that hang on the back wall. At eight she makes tea in a chipped blue pot. From nine until noon she works at the bench by the window, where the light is cleanest, taking apart whatever the town has brought her: a kitchen timer that no longer rings, a grandfather clock whose pendulum drags, a wristwatch that stopped on the day its owner's husband died and has not been allowed to run since. In the afternoon she answers letters, sorts springs by size into glass jars, and sweeps the floor, because a single lost screw can hide for a month in the dust.

People in Low Harbour say that Ada can hear a clock think. What they mean is that she listens. Before she opens a case she holds the clock close to her ear and counts the beats against her own pulse. A healthy movement has an even voice, tick and tock the same length, like a person walking on level ground. A tired one limps. A dirty one whispers. A clock that has been dropped often speaks in a rhythm that is almost right, and that is the hardest kind to fix, because the fault hides inside something that seems to work.

Last winter a boy named Tomas brought her a brass carriage clock wrapped in a towel. It had belonged to his great-aunt, he said, and nobody in the family could remember it ever running. Ada turned it over, listened to its silence, and told him to come back on Saturday. She spent four evenings on it. The mainspring was sound, but two pivots were worn oval, a wheel had lost a tooth, and someone long ago had tried to solve everything with far too much oil, which had turned into a kind of amber glue. She cleaned every part in a jar of solvent, cut and fitted a new tooth, bushed the worn holes, and oiled each pivot with a single drop no larger than a grain of sand.

On Saturday Tomas watched her set the hands to the correct time and give the key three gentle turns. For a moment nothing happened. Then the balance wheel shivered, caught, and began to swing, and the little clock started to talk in the steady voice it had lost before either of them was born. The boy laughed out loud. Ada only nodded, as if the clock had told her something she already knew, and wrote the date of the repair on a paper tag that she tied to its handle.

She has kept a tag like that for every clock she has mended, and she keeps a copy of each one in a long wooden drawer. There are more than nine thousand of them now. On quiet evenings she sometimes takes out a handful and reads them: the dates, the names, the small notes about springs and pivots. Together they make a strange calendar of the town, a record not of what happened in Low Harbour but of how carefully its people wanted to keep track of time while it happened. When someone asks her what she will do when she finally retires, Ada looks at the drawer and says that she has not decided yet, and that there is, in any case, no hurry."""

MULTI_TEXT = (
    "<start_of_turn>user\n"
    "Übersetze bitte ins Deutsche: 東京は日本の首都で、春には桜が美しく咲きます。"
    "我们明天在北京见面吧。🌸<end_of_turn>\n"
    "<start_of_turn>model\n"
)

PROMPTS = [
    ("chat", CHAT_TEXT, "short English chat turn, Gemma chat template"),
    ("long", LONG_TEXT, "original English passage, > 600 tokens so the 512-token sliding window wraps"),
    ("multilingual", MULTI_TEXT, "chat turn in German with Japanese and Chinese to translate, plus an emoji"),
]

# Extra strings for the tokenizer test only (no logits). They exercise what a Gemma SPM encoder gets wrong first:
# no dummy prefix, runs of spaces (user-defined whitespace tokens), tabs and newlines, HTML-tag user-defined
# tokens, byte fallback, digits, special tokens in text.
TOKENIZER_CASES = [
    "Hello world",
    " Hello world",
    "Hello  world   with    spaces",
    "def f(x):\n    return x * 2\n\n\tindented\twith\ttabs",
    "<table><tr><td>cell</td></tr></table>",
    "Numbers: 1234567890, 3.14159, 1e-6, -42",
    "naïve café, Ærøskøbing, Straße, Ελληνικά, Русский",
    "日本語のテキストと中文文本和한국어",
    "emoji 🌸🚀👍🏽 and symbols ∑∫√ ∞",
    "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
    "\n\n\nTrailing newlines\n\n",
]

SANITY_TEXT = "The capital of France is"

# HF Gemma 3 270M config.json values the GGUF-built config must reproduce (google/gemma-3-270m{,-it}).
EXPECTED_CONFIG = {
    "hidden_size": 640,
    "intermediate_size": 2048,
    "num_hidden_layers": 18,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "head_dim": 256,
    "query_pre_attn_scalar": 256,
    "sliding_window": 512,
    "vocab_size": 262144,
    "rms_norm_eps": 1e-6,
    "final_logit_softcapping": None,
    "attn_logit_softcapping": None,
    "hidden_activation": "gelu_pytorch_tanh",
    "max_position_embeddings": 32768,
    "tie_word_embeddings": True,
}
# Layers 5, 11, 17 are global (sliding_window_pattern 6), the rest sliding.
EXPECTED_LAYER_TYPES = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(18)]
EXPECTED_ROPE = {"full_attention": 1_000_000.0, "sliding_attention": 10_000.0}

# GGUF norm tensor leaf -> HF module path inside a decoder layer.
NORM_MAP = {
    "attn_norm": "input_layernorm",
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
}
MATRIX_MAP = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}

TENSOR_DOC = {
    "{p}.input_ids": "I64 [T]: prompt token ids, BOS first (= prompts.json ids)",
    "{p}.topk_values": "F32 [T, 16]: the 16 largest logits at every prompt position, descending, one forward "
    "over the whole prompt with use_cache=False (logits at position t predict token t+1)",
    "{p}.topk_ids": "I64 [T, 16]: their token ids (ties, if any, in torch.topk order)",
    "{p}.full_logits": "F32 [R, V]: complete logits rows of that same forward at {p}.full_logits_positions",
    "{p}.full_logits_positions": "I64 [R]: the positions of the full rows",
    "{p}.greedy_ids": "I64 [64]: greedy continuation ignoring EOS; step g = argmax of the last-position logits of "
    "a use_cache=False forward over input_ids + greedy_ids[:g] (no-cache loop, the truth)",
    "{p}.greedy_topk_values": "F32 [64, 16]: top-16 of those last-position logits (what chose each token)",
    "{p}.greedy_topk_ids": "I64 [64, 16]: their ids",
}


# ----------------------------------------------------------------------------------------------------------------


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def log(msg: str) -> None:
    print(msg, flush=True)


def versions() -> dict:
    import gguf
    import safetensors
    import tokenizers
    import transformers

    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "gguf": _dist_version("gguf") or getattr(gguf, "__version__", "?"),
        "accelerate": _dist_version("accelerate"),
    }
    try:
        import llama_cpp

        out["llama_cpp_python"] = llama_cpp.__version__
    except Exception:  # noqa: BLE001 -- optional
        out["llama_cpp_python"] = None
    return out


def _dist_version(name: str):
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001
        return None


# ----------------------------------------------------------------------------------------------------------------
# Loading and verifying
# ----------------------------------------------------------------------------------------------------------------


def load(gguf_path: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(os.path.abspath(gguf_path))
    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, dtype=torch.float32, attn_implementation="eager"
    )
    model.eval()
    log(f"loaded {type(model).__name__} + {type(tok).__name__} in {time.time() - t0:.1f}s")
    return tok, model


def check_config(model) -> dict:
    cfg = model.config
    problems = []
    for key, want in EXPECTED_CONFIG.items():
        got = getattr(cfg, key, "<missing>")
        if isinstance(want, float) and isinstance(got, float):
            ok = abs(got - want) <= 1e-12 * max(1.0, abs(want)) or abs(got - want) < 1e-9
        else:
            ok = got == want
        if not ok:
            problems.append(f"{key}: expected {want!r}, got {got!r}")
    if list(cfg.layer_types) != EXPECTED_LAYER_TYPES:
        problems.append(f"layer_types: expected {EXPECTED_LAYER_TYPES}, got {cfg.layer_types}")
    rope = getattr(cfg, "rope_parameters", None) or {}
    for lt, theta in EXPECTED_ROPE.items():
        p = rope.get(lt, {}) if isinstance(rope, dict) else {}
        got_theta = p.get("rope_theta")
        if got_theta is None or abs(float(got_theta) - theta) > 1e-6:
            problems.append(f"rope_parameters[{lt}].rope_theta: expected {theta}, got {got_theta}")
        rtype = p.get("rope_type", "default")
        if rtype != "default":
            problems.append(f"rope_parameters[{lt}].rope_type: expected 'default' (no scaling), got {rtype!r}")
    if problems:
        raise SystemExit("config built from the GGUF differs from Gemma 3 270M:\n  " + "\n  ".join(problems))
    keep = {k: getattr(cfg, k) for k in EXPECTED_CONFIG}
    keep["layer_types"] = list(cfg.layer_types)
    keep["rope_parameters"] = rope
    keep["embed_scale"] = float(model.model.embed_tokens.embed_scale)
    log(f"config ok: {json.dumps(keep, default=str)}")
    return keep


def check_weights(model, gguf_path: str) -> dict:
    """Norms = stored - 1 (fix up if not), matrices = gguf-py dequantization, bit for bit."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    reader = GGUFReader(gguf_path)
    params = dict(model.named_parameters())
    n_layers = model.config.num_hidden_layers
    norm_results = {"checked": 0, "equal_stored_minus_1": 0, "equal_stored": 0, "other": []}
    fixups = []
    matrix_results = {"checked": 0, "bit_equal": 0, "mismatch": []}

    def hf_name(gguf_name: str):
        if gguf_name == "output_norm.weight":
            return "model.norm.weight", True
        if gguf_name == "token_embd.weight":
            return "model.embed_tokens.weight", False
        parts = gguf_name.split(".")  # blk.N.leaf.weight
        assert parts[0] == "blk" and parts[3] == "weight", gguf_name
        layer, leaf = int(parts[1]), parts[2]
        assert 0 <= layer < n_layers
        if leaf in NORM_MAP:
            return f"model.layers.{layer}.{NORM_MAP[leaf]}.weight", True
        return f"model.layers.{layer}.{MATRIX_MAP[leaf]}.weight", False

    seen = set()
    with torch.no_grad():
        for t in reader.tensors:
            name, is_norm = hf_name(t.name)
            seen.add(name)
            p = params[name]
            stored = dequantize(t.data, t.tensor_type).astype(np.float32)
            stored = stored.reshape(tuple(int(x) for x in reversed(t.shape.tolist())))
            if tuple(p.shape) != stored.shape:
                raise SystemExit(f"{t.name} -> {name}: shape {tuple(p.shape)} vs stored {stored.shape}")
            hf = p.detach().cpu().numpy()
            if is_norm:
                norm_results["checked"] += 1
                if np.array_equal(hf, stored - np.float32(1.0)):
                    norm_results["equal_stored_minus_1"] += 1
                elif np.array_equal(hf, stored):
                    # transformers did NOT undo llama.cpp's 1 + w: do it here, and say so.
                    norm_results["equal_stored"] += 1
                    p.copy_(torch.from_numpy(stored - np.float32(1.0)))
                    fixups.append(name)
                else:
                    d = float(np.max(np.abs(hf - (stored - 1))))
                    norm_results["other"].append(f"{name}: max|hf - (stored-1)| = {d}")
            else:
                matrix_results["checked"] += 1
                if np.array_equal(hf, stored):
                    matrix_results["bit_equal"] += 1
                else:
                    d = float(np.max(np.abs(hf - stored)))
                    matrix_results["mismatch"].append(f"{t.name} ({t.tensor_type.name}): max abs diff {d}")
    missing = [n for n in params if n not in seen and n != "lm_head.weight"]
    if missing:
        raise SystemExit(f"HF parameters with no GGUF tensor: {missing}")
    lm_head_tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    if not lm_head_tied:
        raise SystemExit("lm_head is not tied to embed_tokens")
    if norm_results["other"] or matrix_results["mismatch"]:
        raise SystemExit(f"weights differ from the GGUF: norms {norm_results}, matrices {matrix_results}")
    log(
        f"weights ok: {norm_results['checked']} norms "
        f"({norm_results['equal_stored_minus_1']} already = stored - 1, {len(fixups)} fixed up here), "
        f"{matrix_results['bit_equal']}/{matrix_results['checked']} matrices bit-equal to gguf-py dequantization, "
        f"lm_head tied"
    )
    return {
        "norms": norm_results,
        "norm_fixup": fixups,
        "matrices": matrix_results,
        "lm_head_tied_to_embed_tokens": lm_head_tied,
    }


# ----------------------------------------------------------------------------------------------------------------
# Tokenization
# ----------------------------------------------------------------------------------------------------------------


def hf_ids(tok, text: str) -> list[int]:
    return [BOS] + tok.encode(text, add_special_tokens=False)


_LLAMA_LOG_CB = None


def _quiet_llamacpp(L) -> None:
    """Drop llama.cpp's loader log lines (stderr); keep the callback object alive."""
    global _LLAMA_LOG_CB
    if _LLAMA_LOG_CB is None:
        _LLAMA_LOG_CB = L.llama_log_callback(lambda level, text, user: None)
        L.llama_log_set(_LLAMA_LOG_CB, None)


def llamacpp_tokenizer(gguf_path: str):
    """(tokenize(text)->ids with BOS, version) from llama-cpp-python, vocab only; None if not installed."""
    try:
        import llama_cpp
    except Exception:  # noqa: BLE001
        return None
    import ctypes

    _quiet_llamacpp(llama_cpp)
    llama_cpp.llama_backend_init()
    mparams = llama_cpp.llama_model_default_params()
    mparams.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(gguf_path.encode(), mparams)
    if not model:
        return None
    vocab = llama_cpp.llama_model_get_vocab(model)

    def tokenize(text: str) -> list[int]:
        data = text.encode("utf-8")
        n_max = len(data) + 8
        buf = (llama_cpp.llama_token * n_max)()
        n = llama_cpp.llama_tokenize(vocab, data, len(data), buf, n_max, True, True)  # add_special, parse_special
        if n < 0:
            raise RuntimeError("llama_tokenize buffer too small")
        return list(buf[:n])

    tokenize._keep = (model, ctypes)  # keep the model alive
    return tokenize, llama_cpp.__version__


@torch.no_grad()
def llamacpp_crosscheck(gguf_path: str, runs: dict, threads: int) -> dict | None:
    """Run the same prompts through llama.cpp (an independent implementation reading the same file) and compare.

    llama.cpp quantizes activations to Q8_0/Q8_K for its matmuls and keeps K/V in F16, so its logits differ from the
    float32 reference in the 3rd-4th significant digit; this checks that transformers' model is the model llama.cpp
    runs, not bit equality. runs[name] = (ids, hf_logits [T, V] tensor, hf_greedy_ids)."""
    try:
        import llama_cpp as L
    except Exception:  # noqa: BLE001
        return None
    _quiet_llamacpp(L)
    L.llama_backend_init()
    mp = L.llama_model_default_params()
    model = L.llama_model_load_from_file(gguf_path.encode(), mp)
    if not model:
        return None
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    out = {"llama_cpp_python": L.__version__, "system_info": L.llama_print_system_info().decode().strip()}
    for name, (ids, hf_logits, hf_greedy) in runs.items():
        T = len(ids)
        cp = L.llama_context_default_params()
        cp.n_ctx = 2048
        cp.n_batch = cp.n_ubatch = max(512, T)
        cp.n_threads = cp.n_threads_batch = threads
        ctx = L.llama_init_from_model(model, cp)
        batch = L.llama_batch_init(T, 0, 1)
        for i, t in enumerate(ids):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = t, i, 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = 1
        batch.n_tokens = T
        if L.llama_decode(ctx, batch) != 0:
            raise SystemExit("llama_decode failed")
        lc = np.empty((T, n_vocab), dtype=np.float32)
        for i in range(T):
            lc[i] = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, i), shape=(n_vocab,))
        hf = hf_logits.numpy()
        hf_top1 = hf.argmax(-1)
        lc_top1 = lc.argmax(-1)
        hf_sorted = np.sort(hf, axis=-1)
        margin = hf_sorted[:, -1] - hf_sorted[:, -2]
        disagree = np.nonzero(hf_top1 != lc_top1)[0]
        diff = np.abs(hf - lc)
        # greedy continuation with llama.cpp's own (cached) decode
        g = []
        last = lc[-1]
        for step in range(len(hf_greedy)):
            nxt = int(np.argmax(last))
            g.append(nxt)
            batch.token[0], batch.pos[0], batch.n_seq_id[0] = nxt, T + step, 1
            batch.seq_id[0][0] = 0
            batch.logits[0] = 1
            batch.n_tokens = 1
            if L.llama_decode(ctx, batch) != 0:
                raise SystemExit("llama_decode failed")
            last = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, -1), shape=(n_vocab,)).copy()
        L.llama_batch_free(batch)
        L.llama_free(ctx)
        same_prefix = next((k for k in range(len(g)) if g[k] != hf_greedy[k]), len(g))
        rel = diff.max(-1) / (np.abs(hf).max(-1) + 1e-30)
        hc = hf - hf.mean(-1, keepdims=True)
        lcc = lc - lc.mean(-1, keepdims=True)
        corr = (hc * lcc).sum(-1) / np.sqrt((hc * hc).sum(-1) * (lcc * lcc).sum(-1))
        slope = (hc * lcc).sum(-1) / (hc * hc).sum(-1)  # least-squares lc ~ slope * hf per row
        std = hf.std(-1)
        out[name] = {
            "positions": T,
            "argmax_agree": int(T - len(disagree)),
            "argmax_disagree_positions": disagree.tolist(),
            "hf_top1_top2_margin_at_disagreements": [float(margin[i]) for i in disagree],
            "max_abs_logit_diff": float(diff.max()),
            "mean_abs_logit_diff": float(diff.mean()),
            "max_rel_diff_per_row(maxabs/row_maxabs)": float(rel.max()),
            "mean_hf_logit_std_per_row": float(std.mean()),
            "min_row_correlation": float(corr.min()),
            "row_slope_range": [float(slope.min()), float(slope.max())],
            "greedy_equal_prefix_of_64": int(same_prefix),
            "llama_cpp_greedy_ids": g,
        }
        log(f"[{name}] llama.cpp vs HF: argmax agrees at {T - len(disagree)}/{T} positions "
            f"(HF margins where not: {[round(float(margin[i]), 3) for i in disagree][:8]}), "
            f"max|dlogit| {diff.max():.3f}, mean {diff.mean():.4f} (row std {std.mean():.2f}), min corr {corr.min():.5f}, "
            f"slope {slope.min():.4f}..{slope.max():.4f}; greedy equal for {same_prefix}/{len(g)} tokens")
    L.llama_model_free(model)
    return out


def write_f32_gguf(src: str, dst: str) -> None:
    """A copy of the GGUF with every tensor dequantized to F32 (same metadata, general.file_type 0 = ALL_F32)."""
    from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
    from gguf.quants import dequantize

    r = GGUFReader(src)
    w = GGUFWriter(dst, arch=str(r.fields["general.architecture"].contents()))
    for f in r.fields.values():
        if f.name.startswith("GGUF.") or f.name == "general.architecture":
            continue
        if f.name == "general.file_type":
            w.add_key_value(f.name, 0, GGUFValueType.UINT32)
            continue
        vtype = f.types[0]
        sub = f.types[-1] if vtype == GGUFValueType.ARRAY else None
        w.add_key_value(f.name, f.contents(), vtype, sub_type=sub)
    for t in r.tensors:
        arr = dequantize(t.data, t.tensor_type).astype(np.float32)
        arr = arr.reshape(tuple(int(x) for x in reversed(t.shape.tolist())))
        w.add_tensor(t.name, arr, raw_dtype=GGMLQuantizationType.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llamacpp_f32_check(gguf_path: str, tensors: dict, names: list, threads: int, tmpdir: str) -> dict | None:
    """Tight independent check of the reference: llama.cpp on an F32 copy of the GGUF (every tensor dequantized
    with gguf-py, the same values transformers uses), F32 KV cache, flash attention off. With F32 weights llama.cpp
    does not quantize activations, so what remains are float summation order and its fp16 GELU table. Compared with
    the stored reference: top-16 logit values (llama.cpp's logits at the reference's top-16 ids), the full rows, the
    argmax at every position, and its own cached 64-token greedy continuation."""
    try:
        import llama_cpp as L
    except Exception:  # noqa: BLE001
        return None
    f32_path = os.path.join(tmpdir, "gemma3-270m-dequantized-f32.gguf")
    t0 = time.time()
    write_f32_gguf(gguf_path, f32_path)
    log(f"wrote F32 copy of the GGUF ({os.path.getsize(f32_path) / 1e6:.0f} MB) in {time.time() - t0:.0f}s")
    _quiet_llamacpp(L)
    L.llama_backend_init()
    model = L.llama_model_load_from_file(f32_path.encode(), L.llama_model_default_params())
    if not model:
        os.unlink(f32_path)
        raise SystemExit("llama.cpp could not load the F32 copy")
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    out = {"how": "llama.cpp, F32 copy of the GGUF (gguf-py dequantization), type_k = type_v = F32, flash_attn off",
           "llama_cpp_python": L.__version__}
    try:
        for name in names:
            ids = tensors[f"{name}.input_ids"].tolist()
            tv = tensors[f"{name}.topk_values"].numpy()
            ti = tensors[f"{name}.topk_ids"].numpy()
            greedy = tensors[f"{name}.greedy_ids"].tolist()
            gv = tensors[f"{name}.greedy_topk_values"].numpy()
            gi = tensors[f"{name}.greedy_topk_ids"].numpy()
            T = len(ids)
            cp = L.llama_context_default_params()
            cp.n_ctx = 2048
            cp.n_batch = cp.n_ubatch = max(512, T)
            cp.n_threads = cp.n_threads_batch = threads
            cp.type_k = cp.type_v = 0  # GGML_TYPE_F32
            cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED
            ctx = L.llama_init_from_model(model, cp)
            batch = L.llama_batch_init(T, 0, 1)
            for i, t in enumerate(ids):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = t, i, 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = 1
            batch.n_tokens = T
            if L.llama_decode(ctx, batch) != 0:
                raise SystemExit("llama_decode failed")
            topk_diff, argmax_dis, full_diff = 0.0, [], None
            rows = {}
            for i in range(T):
                row = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, i), shape=(n_vocab,))
                topk_diff = max(topk_diff, float(np.abs(row[ti[i]] - tv[i]).max()))
                if int(row.argmax()) != int(ti[i, 0]):
                    argmax_dis.append(i)
                rows[i] = row
            if f"{name}.full_logits" in tensors:
                fl = tensors[f"{name}.full_logits"].numpy()
                for r, pos in enumerate(tensors[f"{name}.full_logits_positions"].tolist()):
                    full_diff = max(full_diff or 0.0, float(np.abs(rows[pos] - fl[r]).max()))
            last = rows[T - 1].copy()
            del rows
            g, g_topk_diff = [], 0.0
            for step in range(len(greedy)):
                if step < len(greedy) and (not g or g == greedy[:step]):
                    g_topk_diff = max(g_topk_diff, float(np.abs(last[gi[step]] - gv[step]).max()))
                nxt = int(np.argmax(last))
                g.append(nxt)
                batch.token[0], batch.pos[0], batch.n_seq_id[0] = nxt, T + step, 1
                batch.seq_id[0][0] = 0
                batch.logits[0] = 1
                batch.n_tokens = 1
                if L.llama_decode(ctx, batch) != 0:
                    raise SystemExit("llama_decode failed")
                last = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, -1), shape=(n_vocab,)).copy()
            L.llama_batch_free(batch)
            L.llama_free(ctx)
            same = next((k for k in range(len(g)) if g[k] != greedy[k]), len(g))
            margins = tv[:, 0] - tv[:, 1]
            out[name] = {
                "argmax_agree": T - len(argmax_dis),
                "positions": T,
                "argmax_disagree_positions": argmax_dis,
                "reference_margin_at_disagreements": [float(margins[i]) for i in argmax_dis],
                "max_abs_diff_top16_values": topk_diff,
                "max_abs_diff_full_rows": full_diff,
                "greedy_equal_prefix": same,
                "max_abs_diff_greedy_top16_values_while_equal": g_topk_diff,
            }
            log(f"[{name}] llama.cpp F32 vs reference: argmax {T - len(argmax_dis)}/{T}, max|d top16| {topk_diff:.2e}, "
                f"max|d full rows| {full_diff if full_diff is None else f'{full_diff:.2e}'}, greedy equal {same}/{len(greedy)} "
                f"(max|d top16| along it {g_topk_diff:.2e})")
    finally:
        L.llama_model_free(model)
        os.unlink(f32_path)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Running the model
# ----------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def full_forward(model, ids: list[int]) -> torch.Tensor:
    x = torch.tensor([ids], dtype=torch.long)
    return model(input_ids=x, use_cache=False).logits[0].float()  # [T, V]


@torch.no_grad()
def greedy_no_cache(model, ids: list[int], n: int):
    """Step g: argmax of the last-position logits of a full use_cache=False forward over ids + chosen so far."""
    seq = list(ids)
    out_ids, rows = [], []
    for _ in range(n):
        x = torch.tensor([seq], dtype=torch.long)
        last = model(input_ids=x, use_cache=False, logits_to_keep=1).logits[0, -1].float()
        nxt = int(torch.argmax(last))
        out_ids.append(nxt)
        rows.append(last)
        seq.append(nxt)
    return out_ids, torch.stack(rows)


@torch.no_grad()
def greedy_generate(model, ids: list[int], n: int):
    """transformers' cached generate(), greedy, EOS ignored (eos_token_id=None so EOS is neither suppressed nor
    a stop: min_new_tokens would mask EOS out of the argmax, which is not 'ignore EOS')."""
    from transformers import GenerationConfig

    gc = GenerationConfig(
        do_sample=False,
        max_new_tokens=n,
        eos_token_id=None,
        pad_token_id=0,
        bos_token_id=BOS,
        num_beams=1,
        output_logits=True,
        return_dict_in_generate=True,
    )
    x = torch.tensor([ids], dtype=torch.long)
    out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), generation_config=gc)
    new = out.sequences[0, len(ids) :].tolist()
    logits = torch.stack([step[0].float() for step in out.logits])  # [n, V]
    return new, logits


def topk(rows: torch.Tensor, k: int = TOPK):
    v, i = torch.topk(rows, k, dim=-1, largest=True, sorted=True)
    return v.contiguous(), i.to(torch.int64).contiguous()


def margin_stats(values: torch.Tensor) -> dict:
    m = (values[:, 0] - values[:, 1]).numpy()
    return {"min_top1_top2_margin": float(m.min()), "argmin_position": int(m.argmin()),
            "positions_with_margin_below_1e-2": int((m < 1e-2).sum())}


# ----------------------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", default=DEFAULT_GGUF)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--threads", type=int, default=THREADS)
    ap.add_argument("--only", nargs="*", help="(testing) run only these prompts; do not commit such output")
    ap.add_argument("--num-generate", type=int, default=NUM_GENERATE, help="(testing) greedy steps")
    ap.add_argument("--tmpdir", default="/tmp", help="where the temporary 1.1 GB F32 copy of the GGUF goes")
    ap.add_argument("--llamacpp-f32-check-only", action="store_true",
                    help="only run the F32 llama.cpp check against an existing OUT/reference.safetensors and "
                    "update OUT/meta.json (llama_cpp_f32_check)")
    args = ap.parse_args()

    if args.llamacpp_f32_check_only:
        from safetensors.torch import load_file

        tensors = load_file(os.path.join(args.out, "reference.safetensors"))
        with open(os.path.join(args.out, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
        meta["llama_cpp_f32_check"] = llamacpp_f32_check(args.gguf, tensors, meta["prompt_names"], args.threads,
                                                         args.tmpdir)
        with open(os.path.join(args.out, "meta.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f, ensure_ascii=False, indent=1, default=str)
            f.write("\n")
        return 0

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    if not os.path.isfile(args.gguf):
        raise SystemExit(f"{args.gguf}: not found (run bash scripts/fetch-model.sh)")
    gguf_sha = sha256_file(args.gguf)
    if gguf_sha != EXPECTED_GGUF_SHA256:
        log(f"WARNING: {args.gguf} sha256 {gguf_sha} differs from the expected {EXPECTED_GGUF_SHA256}")

    tok, model = load(args.gguf)
    config = check_config(model)
    weights = check_weights(model, args.gguf)

    # --- sanity: a sensible greedy continuation ------------------------------------------------------------------
    sanity_ids = hf_ids(tok, SANITY_TEXT)
    s_new, _ = greedy_no_cache(model, sanity_ids, 16)
    sanity = {"prompt": SANITY_TEXT, "ids": sanity_ids, "greedy_ids": s_new,
              "greedy_text": tok.decode(s_new, skip_special_tokens=False)}
    log(f"sanity: {SANITY_TEXT!r} -> {sanity['greedy_text']!r}")

    # --- tokenizer cross-check with llama.cpp ----------------------------------------------------------------------
    lc = llamacpp_tokenizer(args.gguf)
    tok_cases = []
    for text in TOKENIZER_CASES + [p[1] for p in PROMPTS] + [SANITY_TEXT]:
        hf = hf_ids(tok, text)
        entry = {"text": text, "ids": hf}
        if lc is not None:
            lids = lc[0](text)
            entry["llama_cpp_ids"] = lids if lids != hf else "same"
        tok_cases.append(entry)
    n_disagree = sum(1 for e in tok_cases if e.get("llama_cpp_ids", "same") != "same")
    if lc is None:
        log("tokenizer: llama-cpp-python not installed, no cross-check")
    else:
        log(f"tokenizer: HF vs llama.cpp ({lc[1]}): {len(tok_cases) - n_disagree}/{len(tok_cases)} strings agree")
        for e in tok_cases:
            if e.get("llama_cpp_ids", "same") != "same":
                log(f"  DIFFER {e['text'][:60]!r}: hf {e['ids'][:24]} vs llama.cpp {e['llama_cpp_ids'][:24]}")

    # --- the three prompts ------------------------------------------------------------------------------------------
    tensors: dict[str, torch.Tensor] = {}
    prompts_meta = []
    gen_check = {}
    lc_check: dict = {}
    for name, text, what in PROMPTS:
        if args.only and name not in args.only:
            continue
        ids = hf_ids(tok, text)
        T = len(ids)
        log(f"[{name}] {T} tokens")
        if name == "long" and T <= 600:
            raise SystemExit(f"long prompt has only {T} tokens, needs > 600")
        if name != "long" and (START_OF_TURN not in ids or END_OF_TURN not in ids):
            raise SystemExit(f"{name}: chat markers not tokenized as special tokens: {ids[:12]}")
        t0 = time.time()
        logits = full_forward(model, ids)
        log(f"[{name}] full forward {time.time() - t0:.1f}s")
        v, i = topk(logits)
        tensors[f"{name}.input_ids"] = torch.tensor(ids, dtype=torch.int64)
        tensors[f"{name}.topk_values"] = v
        tensors[f"{name}.topk_ids"] = i
        if name == "long":
            rows = [0, 512, T - 1]
            tensors[f"{name}.full_logits"] = logits[rows].contiguous()
            tensors[f"{name}.full_logits_positions"] = torch.tensor(rows, dtype=torch.int64)

        t0 = time.time()
        g_ids, g_rows = greedy_no_cache(model, ids, args.num_generate)
        log(f"[{name}] no-cache greedy loop {time.time() - t0:.1f}s")
        t0 = time.time()
        h_ids, h_rows = greedy_generate(model, ids, args.num_generate)
        log(f"[{name}] generate() {time.time() - t0:.1f}s")
        # The prompt forward's last row and the no-cache loop's first row are the same computation (except the
        # lm_head over one row instead of T): they must agree closely.
        first_step_diff = float((g_rows[0] - logits[-1]).abs().max())
        agree = g_ids == h_ids
        first_diff = next((k for k in range(args.num_generate) if g_ids[k] != h_ids[k]), None)
        upto = args.num_generate if first_diff is None else first_diff
        max_logit_diff = float((g_rows[:upto] - h_rows[:upto]).abs().max()) if upto else None
        gen_check[name] = {
            "generate_equals_no_cache_loop": agree,
            "first_differing_step": first_diff,
            "max_abs_logit_diff_generate_vs_loop_while_equal": max_logit_diff,
            "max_abs_diff_prompt_last_row_vs_loop_step0": first_step_diff,
        }
        log(f"[{name}] generate == no-cache loop: {agree} (first diff {first_diff}, max logit diff {max_logit_diff})")
        gv, gi = topk(g_rows)
        tensors[f"{name}.greedy_ids"] = torch.tensor(g_ids, dtype=torch.int64)
        tensors[f"{name}.greedy_topk_values"] = gv
        tensors[f"{name}.greedy_topk_ids"] = gi
        g_text = tok.decode(g_ids, skip_special_tokens=False)
        log(f"[{name}] greedy: {g_text!r}")
        lcc = llamacpp_crosscheck(args.gguf, {name: (ids, logits, g_ids)}, args.threads)
        if lcc is not None:
            lc_check.setdefault("llama_cpp_python", lcc.pop("llama_cpp_python"))
            lc_check.setdefault("system_info", lcc.pop("system_info"))
            lc_check[name] = lcc[name]
            lc_check[name]["llama_cpp_greedy_text"] = tok.decode(lcc[name]["llama_cpp_greedy_ids"])
        del logits
        prompts_meta.append({
            "name": name,
            "what": what,
            "text": text,
            "n_tokens": T,
            "greedy_text": g_text,
            "generate_text_if_different": None if agree else tok.decode(h_ids, skip_special_tokens=False),
            "prompt_margins": margin_stats(v),
            "greedy_margins": margin_stats(gv),
            "full_logits_positions": tensors[f"{name}.full_logits_positions"].tolist()
            if f"{name}.full_logits_positions" in tensors else [],
        })

    # --- tight check with llama.cpp on an F32 copy ----------------------------------------------------------------
    lc_f32 = llamacpp_f32_check(args.gguf, tensors, [p["name"] for p in prompts_meta], args.threads, args.tmpdir)

    # --- write ------------------------------------------------------------------------------------------------------
    from safetensors.torch import save_file

    os.makedirs(args.out, exist_ok=True)
    ref_path = os.path.join(args.out, "reference.safetensors")
    save_file(tensors, ref_path, metadata={"source": "tests/reference/make_real_model_reference.py"})
    os.chmod(ref_path, 0o644)  # safetensors creates the file 0600

    prompts_json = {
        "about": "Gemma 3 270M GGUF tokenizer expectations. ids = [BOS=2] + tokenize(text) with special tokens "
        "(<start_of_turn>, <end_of_turn>, ...) in the text parsed as special, no dummy-prefix space. 'ids' come from "
        "the HF tokenizer transformers builds from the GGUF; 'llama_cpp_ids' is 'same' when llama.cpp "
        "(llama_tokenize(add_special=true, parse_special=true)) gives the same ids, else its ids.",
        "gguf_sha256": gguf_sha,
        "prompts": [{"name": n, "text": t, "ids": tensors[f"{n}.input_ids"].tolist()} for n, t, _ in PROMPTS
                    if f"{n}.input_ids" in tensors],
        "tokenizer_cases": tok_cases,
    }
    with open(os.path.join(args.out, "prompts.json"), "w", encoding="utf-8") as f:
        json.dump(prompts_json, f, ensure_ascii=False, indent=1)
        f.write("\n")

    used_noc = all(g["generate_equals_no_cache_loop"] for g in gen_check.values())
    meta = {
        "what": "transformers reference for the real Gemma 3 270M Q4_K_M GGUF: the GGUF's tensors dequantized to "
        "float32 (gguf-py), evaluated by Gemma3ForCausalLM in float32 with eager attention on CPU.",
        "generator": "tests/reference/make_real_model_reference.py",
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": versions(),
        "gguf": {"file": os.path.basename(args.gguf), "sha256": gguf_sha, "bytes": os.path.getsize(args.gguf)},
        "torch_threads": args.threads,
        "config": config,
        "weight_checks": weights,
        "norm_handling": "llama.cpp's converter stores Gemma RMSNorm weights as 1 + w. transformers' GGUF loader "
        "(Gemma2TensorProcessor, used for gemma3) subtracts 1 from every tensor whose name contains 'norm.weight'; "
        "verified: every HF norm weight == stored - 1 exactly (weight_checks.norms). norm_fixup lists any tensor "
        "this script had to fix itself (empty = none).",
        "embed_scale_note": "float32 run: embeddings are scaled by sqrt(640) = 25.2982 in float32 (the bf16-rounded "
        "25.25 only appears when the model runs in bf16).",
        "sanity": sanity,
        "prompts": prompts_meta,
        "generate_check": gen_check,
        "greedy_source": "no-cache greedy loop (the truth); generate() "
        + ("agreed on every prompt" if used_noc else "DIFFERED on some prompt, see generate_check"),
        "tokenizer_check": {
            "llama_cpp_python": None if lc is None else lc[1],
            "strings": len(tok_cases),
            "disagree": None if lc is None else n_disagree,
        },
        "llama_cpp_check": lc_check or "llama-cpp-python not installed: not run",
        "llama_cpp_f32_check": lc_f32 or "llama-cpp-python not installed: not run",
        "llama_cpp_check_note": "same prompts through llama.cpp (llama-cpp-python, CPU, its defaults: activations "
        "quantized to Q8 for the matmuls, F16 KV cache): argmax agreement at every prompt position, logit "
        "differences, and how many of its own 64 greedy tokens equal the reference's. It shows transformers runs the "
        "model llama.cpp runs; exact equality is not expected.",
        "topk": TOPK,
        "num_generate": args.num_generate,
        "tensors": {k.replace("{p}", "<prompt>"): v for k, v in TENSOR_DOC.items()},
        "prompt_names": [p["name"] for p in prompts_meta],
        "full_logits_note": "full rows only for 'long': position 0 (the BOS position; identical for every prompt, "
        "since each starts with BOS), 512 (the first query whose 512-token sliding window excludes key 0) and the "
        "last prompt position.",
        "comparison_hint": "The C++ float path (same dequantized weights, f32 activations) should match these "
        "logits to ~1e-3 relative; llama.cpp quantizes activations to Q8_0/Q8_K and its KV cache to F16, so it "
        "differs in the 3rd-4th significant digit. Greedy ids are only robust where the top1-top2 margin is large "
        "(prompts[].greedy_margins).",
    }
    with open(os.path.join(args.out, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False, indent=1, default=str)
        f.write("\n")

    total = 0
    for fn in sorted(os.listdir(args.out)):
        p = os.path.join(args.out, fn)
        sz = os.path.getsize(p)
        total += sz
        log(f"wrote {p}: {sz} bytes, sha256 {sha256_file(p)[:16]}")
    log(f"total {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
