#!/usr/bin/env python3
"""Generate the Gemma 3 reference fixtures under tests/fixtures/ from Hugging Face `transformers`.

Not run by CI: the fixtures it writes are committed. Re-run it by hand (see README.md beside this file)
only when a fixture has to change. Everything is CPU, float32, eager attention, fixed seeds.

Fixtures written (each tests/fixtures/NAME/):
  config.json, generation_config.json   as `save_pretrained` wrote them
  model.safetensors | model-0000X-of-0000N.safetensors + model.safetensors.index.json
  expected.safetensors                  reference tensors (see EXPECTED_DOC)
  meta.json                             versions, seed, what the fixture covers, key prefix / dtype / sharding
plus tests/fixtures/components/{components.safetensors,meta.json} with single HF modules run on random inputs.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import safetensors
import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import Gemma3ForCausalLM, Gemma3TextConfig
from transformers.models.gemma3 import modeling_gemma3 as hf_gemma3

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "fixtures"))

SEED = 1234  # base seed; each fixture adds its own offset (chosen so greedy decoding is not degenerate, see below)
WEIGHT_STD = 0.3  # every parameter, including all RMSNorm weights (so (1 + w) vs w matters) ...
EMBED_STD = 0.1  # ... except the (tied) embedding. With std 0.3 the token's own scaled embedding dominates the
# residual stream and a random tied model just copies its input (argmax == current token, greedy output one token
# repeated), which would hide cache/position bugs. With 0.1 the continuation varies.
NUM_GENERATE = 8

EXPECTED_DOC = {
    "input_ids": "I64 [T]: random token ids in [0, vocab_size)",
    "embeddings": "F32 [T, H]: model.model.embed_tokens(input_ids), i.e. embedding rows * sqrt(H) (float32 scale)",
    "layer_outputs": "F32 [L, T, H]: hidden state returned by each decoder layer (forward hooks), full-sequence forward, use_cache=False",
    "final_hidden": "F32 [T, H]: output of model.model.norm (final RMSNorm)",
    "logits": "F32 [T, V]: model(input_ids[None], use_cache=False).logits[0] (after final_logit_softcapping if configured)",
    "greedy_continuation": "I64 [G]: G greedy tokens after input_ids. Step g appends argmax of the last-position logits of "
    "a full use_cache=False forward over input_ids + the g tokens chosen so far. Cross-checked against "
    "model.generate(do_sample=False, max_new_tokens=G, min_new_tokens=G); meta.json checks says whether HF's cached "
    "generate agreed (it does not for sliding_window=1, an HF cache bug)",
    "greedy_logits": "F32 [G, V]: the last-position logits of those G no-cache forwards (what chose each token)",
}

# --------------------------------------------------------------------------------------------------------------
# Fixture definitions
# --------------------------------------------------------------------------------------------------------------

FIXTURES = [
    {
        "name": "tiny_global_last",
        "seed_offset": 701,
        "T": 20,
        "save_dtype": torch.float32,
        "num_shards": 1,
        "key_prefix": "model.",
        "config": dict(
            vocab_size=512,
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=6,  # layer_types left to the default pattern (sliding_window_pattern 6): layer 5 global
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            query_pre_attn_scalar=24,
            sliding_window=4,
            rope_parameters={
                "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1_000_000.0},
                "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
            },
        ),
        "covers": [
            "default layer pattern from sliding_window_pattern=6: layers 0-4 sliding, layer 5 (the last) global",
            "GQA group 2 (4 query heads, 2 kv heads)",
            "head_dim 16 != hidden_size/num_heads (12); q width 64 != hidden 48",
            "query_pre_attn_scalar 24 != head_dim (scale 24^-0.5)",
            "RoPE: global layers theta 1e6 with linear scaling factor 8; sliding layers theta 1e4 unscaled",
            "sliding_window 4 < T=20 (prefill mask) and generation past the window (cache wraps)",
            "random RMSNorm weights everywhere ((1 + w) form), q_norm/k_norm",
            "float32 weights, single model.safetensors, standard HF key names, tied lm_head",
        ],
    },
    {
        "name": "tiny_local_last",
        "seed_offset": 202,
        "T": 12,
        "save_dtype": torch.bfloat16,
        "num_shards": 1,
        "key_prefix": "model.",
        "config": dict(
            vocab_size=384,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=4,
            layer_types=["sliding_attention", "full_attention", "sliding_attention", "sliding_attention"],
            num_attention_heads=2,
            num_key_value_heads=2,
            head_dim=32,
            query_pre_attn_scalar=32,
            sliding_window=2,
            rope_parameters={
                "full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
                "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
            },
        ),
        "covers": [
            "explicit layer_types; last layer is sliding (like 1B/4B/27B), a global layer in the middle",
            "no GQA (group 1: 2 heads, 2 kv heads)",
            "query_pre_attn_scalar == head_dim == 32",
            "no rope scaling (global theta 1e6, local theta 1e4)",
            "sliding_window 2 (each query sees itself and one predecessor)",
            "bfloat16 weights on disk; expected tensors computed in float32 from the bf16-rounded weights "
            "(embed scale is the float32 sqrt(64) = 8, exact in bf16 too)",
        ],
    },
    {
        "name": "tiny_sharded_f16",
        "seed_offset": 903,
        "T": 9,
        "save_dtype": torch.float16,
        "num_shards": 2,
        "key_prefix": "language_model.model.",
        "config": dict(
            vocab_size=257,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=3,
            layer_types=["sliding_attention", "sliding_attention", "full_attention"],
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=8,
            query_pre_attn_scalar=10,
            sliding_window=1,
            final_logit_softcapping=3.0,
            attn_logit_softcapping=5.0,
            rope_parameters={
                "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1_000_000.0},
                "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
            },
        ),
        "covers": [
            "float16 weights on disk, sharded in 2 files with model.safetensors.index.json",
            "key prefix renamed model. -> language_model.model. (multimodal checkpoint layout)",
            "GQA group 4 (4 query heads, 1 kv head, like 270M/1B)",
            "query_pre_attn_scalar 10 (not a power of two, != head_dim 8)",
            "sliding_window 1 (a sliding layer attends only to itself)",
            "final_logit_softcapping 3.0 (logits = 3 * tanh(logits / 3))",
            "attn_logit_softcapping 5.0 in config.json (see meta.json attn_logit_softcapping_applied_by_hf)",
            "RoPE linear scaling factor 2 on the global layer",
            "odd vocab size 257; expected tensors computed in float32 from the f16-rounded weights with the "
            "float32 embed scale sqrt(32)",
        ],
    },
]


# --------------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------------


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def versions() -> dict:
    return {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
    }


def randomize_(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Re-initialise every parameter (tied ones once) with N(0, std^2), in named_parameters order."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            std = EMBED_STD if name.endswith("embed_tokens.weight") else WEIGHT_STD
            p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float32) * std)


def round_weights_(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Round every parameter to `dtype` and back to float32 in place (buffers such as embed_scale untouched)."""
    if dtype == torch.float32:
        return
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.copy_(p.to(dtype).to(torch.float32))


def attn_softcap_applied_by_eager(model: Gemma3ForCausalLM, ids: torch.Tensor) -> tuple[bool, float]:
    """Does HF eager attention honour config.attn_logit_softcapping?  Compare against the same model with it unset."""
    with torch.no_grad():
        a = model(ids[None], use_cache=False).logits
        saved = model.config.attn_logit_softcapping
        model.config.attn_logit_softcapping = None
        for layer in model.model.layers:
            layer.self_attn.attn_logit_softcapping = None
        b = model(ids[None], use_cache=False).logits
        model.config.attn_logit_softcapping = saved
        for layer in model.model.layers:
            layer.self_attn.attn_logit_softcapping = saved
    diff = float((a - b).abs().max())
    return diff > 0.0, diff


def logits_with_forced_attn_softcap(model: Gemma3ForCausalLM, ids: torch.Tensor) -> torch.Tensor:
    """Logits as they would be if eager attention applied tanh softcapping (Gemma 2 style) with the config value."""
    original = hf_gemma3.eager_attention_forward

    def patched(module, *args, **kwargs):
        kwargs["softcap"] = module.config.attn_logit_softcapping
        return original(module, *args, **kwargs)

    hf_gemma3.eager_attention_forward = patched
    try:
        with torch.no_grad():
            out = model(ids[None], use_cache=False).logits[0].clone()
    finally:
        hf_gemma3.eager_attention_forward = original
    return out


def generate_with_fixed_window1_cache(model: Gemma3ForCausalLM, input_ids: torch.Tensor) -> list[int]:
    """HF generate with DynamicSlidingWindowLayer.update keeping exactly the last W - 1 keys (also for W == 1)."""
    from transformers.cache_utils import DynamicSlidingWindowLayer

    original = DynamicSlidingWindowLayer.update

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self.cumulative_length += key_states.shape[-2]
        full_k = torch.cat([self.keys, key_states], dim=-2)
        full_v = torch.cat([self.values, value_states], dim=-2)
        start = full_k.shape[-2] - (self.sliding_window - 1)
        self.keys, self.values = full_k[:, :, start:], full_v[:, :, start:]
        return full_k, full_v

    DynamicSlidingWindowLayer.update = update
    try:
        with torch.no_grad():
            T = input_ids.numel()
            g = model.generate(input_ids[None], attention_mask=torch.ones(1, T, dtype=torch.int64), do_sample=False,
                               max_new_tokens=NUM_GENERATE, min_new_tokens=NUM_GENERATE)
    finally:
        DynamicSlidingWindowLayer.update = original
    return g[0, T:].tolist()


def save_checkpoint(model: Gemma3ForCausalLM, folder: str, fx: dict) -> dict:
    """Write config.json + weights as a user's HF checkpoint folder would look; return sharding info."""
    dtype = fx["save_dtype"]
    num_shards = fx["num_shards"]
    prefix = fx["key_prefix"]
    disk_model = copy.deepcopy(model).to(dtype)
    tmp = tempfile.mkdtemp(prefix="gemma3_fixture_")
    try:
        kwargs = {"safe_serialization": True}
        if num_shards > 1:
            nbytes = sum(t.numel() * t.element_size() for t in disk_model.state_dict().values())
            # Per-tensor granularity: aim a bit above half of the total so exactly two shards come out.
            kwargs["max_shard_size"] = int(nbytes * 0.55)
        disk_model.save_pretrained(tmp, **kwargs)
        files = sorted(os.listdir(tmp))
        shard_files = [f for f in files if f.endswith(".safetensors")]
        if len(shard_files) != num_shards:
            raise RuntimeError(f"{fx['name']}: expected {num_shards} shard(s), save_pretrained wrote {shard_files}")
        saved_keys_original = []
        for f in shard_files:
            with safetensors.safe_open(os.path.join(tmp, f), "pt") as sf:
                saved_keys_original += list(sf.keys())
        if prefix != "model.":
            # Rename model.* -> prefix* in every shard and in the index.
            def rename(k: str) -> str:
                if not k.startswith("model."):
                    raise RuntimeError(f"unexpected key {k}")
                return prefix + k[len("model.") :]

            for f in shard_files:
                path = os.path.join(tmp, f)
                with safetensors.safe_open(path, "pt") as sf:
                    meta = sf.metadata()
                tensors = load_file(path)
                save_file({rename(k): v for k, v in tensors.items()}, path, metadata=meta)
            idx_path = os.path.join(tmp, "model.safetensors.index.json")
            with open(idx_path) as fh:
                index = json.load(fh)
            index["weight_map"] = {rename(k): v for k, v in index["weight_map"].items()}
            write_json(idx_path, index)
        for f in files:
            shutil.copy2(os.path.join(tmp, f), os.path.join(folder, f))
    finally:
        shutil.rmtree(tmp)
    return {
        "files": files,
        "weight_files": shard_files,
        "keys_written_by_save_pretrained": saved_keys_original,
    }


def reload_from_folder(folder: str, fx: dict, cfg: Gemma3TextConfig) -> Gemma3ForCausalLM:
    """Rebuild a float32 model from what is on disk (undoing the prefix rename), to prove the folder is complete."""
    prefix = fx["key_prefix"]
    weights = {}
    for f in sorted(os.listdir(folder)):
        if f.endswith(".safetensors") and f != "expected.safetensors":
            weights.update(load_file(os.path.join(folder, f)))
    if prefix != "model.":
        weights = {"model." + k[len(prefix) :]: v for k, v in weights.items()}
    cfg_disk = Gemma3TextConfig.from_pretrained(folder)
    cfg_disk._attn_implementation = "eager"
    m = Gemma3ForCausalLM(cfg_disk).eval()
    missing, unexpected = m.load_state_dict({k: v.to(torch.float32) for k, v in weights.items()}, strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied
    if missing or unexpected:
        raise RuntimeError(f"reload: missing={missing} unexpected={unexpected}")
    m.tie_weights()
    if fx["key_prefix"] == "model.":
        # Also the plain HF path a user would take.
        m2 = Gemma3ForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
        return m2
    return m


# --------------------------------------------------------------------------------------------------------------
# Model fixtures
# --------------------------------------------------------------------------------------------------------------


def make_model_fixture(out_root: str, fx: dict) -> None:
    name = fx["name"]
    seed = SEED + fx["seed_offset"]
    folder = os.path.join(out_root, name)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)

    torch.manual_seed(seed)
    cfg = Gemma3TextConfig(**fx["config"])
    cfg._attn_implementation = "eager"
    model = Gemma3ForCausalLM(cfg).eval()
    model.config._attn_implementation = "eager"
    assert model.lm_head.weight is model.model.embed_tokens.weight, "lm_head is not tied"

    gen = torch.Generator().manual_seed(seed)
    randomize_(model, gen)
    round_weights_(model, fx["save_dtype"])  # the float32 model now holds exactly the on-disk values

    H, L, V, T = cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size, fx["T"]
    input_ids = torch.randint(0, V, (T,), generator=gen, dtype=torch.int64)

    # Embed scale sanity: float32 sqrt(H) (not rounded to the storage dtype).
    embed_scale = float(model.model.embed_tokens.embed_scale)
    assert model.model.embed_tokens.embed_scale.dtype == torch.float32
    assert embed_scale == float(torch.tensor(H**0.5, dtype=torch.float32)), embed_scale

    # ---- full-sequence forward with hooks ----
    layer_outs: list[torch.Tensor | None] = [None] * L
    hook_returned_tuple = []
    final_hidden_box = {}

    def layer_hook(i):
        def fn(_mod, _inp, out):
            hook_returned_tuple.append(isinstance(out, tuple))
            t = out[0] if isinstance(out, tuple) else out
            layer_outs[i] = t.detach()[0].clone()

        return fn

    def norm_hook(_mod, _inp, out):
        final_hidden_box["y"] = out.detach()[0].clone()

    handles = [model.model.layers[i].register_forward_hook(layer_hook(i)) for i in range(L)]
    handles.append(model.model.norm.register_forward_hook(norm_hook))
    with torch.no_grad():
        embeddings = model.model.embed_tokens(input_ids[None])[0].clone()
        logits = model(input_ids[None], use_cache=False).logits[0].clone()
    for h in handles:
        h.remove()
    assert all(t is not None for t in layer_outs)
    layer_outputs = torch.stack(layer_outs)
    final_hidden = final_hidden_box["y"]

    # ---- greedy generation (HF cache path) ----
    with torch.no_grad():
        g = model.generate(
            input_ids[None],
            attention_mask=torch.ones(1, T, dtype=torch.int64),  # ids may contain pad id 0: never infer a mask
            do_sample=False,
            max_new_tokens=NUM_GENERATE,
            min_new_tokens=NUM_GENERATE,
            output_logits=True,
            return_dict_in_generate=True,
        )
    greedy = g.sequences[0, T:].clone()
    greedy_logits = torch.stack([lg[0] for lg in g.logits]).float()
    assert greedy.numel() == NUM_GENERATE

    # ---- cross-check generation against a no-cache greedy loop ----
    ids = input_ids.clone()
    nocache_tokens, nocache_logits = [], []
    with torch.no_grad():
        for _ in range(NUM_GENERATE):
            lg = model(ids[None], use_cache=False).logits[0, -1]
            tok = int(lg.argmax())
            nocache_tokens.append(tok)
            nocache_logits.append(lg)
            ids = torch.cat([ids, torch.tensor([tok])])
    nocache_logits = torch.stack(nocache_logits)
    gen_matches_nocache = nocache_tokens == greedy.tolist()
    gen_vs_nocache_max_abs = float((nocache_logits - greedy_logits).abs().max())
    # min_new_tokens masks eos; make sure it never changed a choice (plain argmax == generated token)
    raw_argmax = greedy_logits.argmax(-1).tolist()
    eos_interfered = raw_argmax != greedy.tolist()
    top2 = torch.topk(nocache_logits, 2, dim=-1).values
    greedy_min_margin = float((top2[:, 0] - top2[:, 1]).min())
    top2p = torch.topk(logits, 2, dim=-1).values
    prefill_min_margin = float((top2p[:, 0] - top2p[:, 1]).min())

    # ---- attention softcapping check ----
    softcap_applied, softcap_diff = None, None
    extra = {}
    if cfg.attn_logit_softcapping is not None:
        softcap_applied, softcap_diff = attn_softcap_applied_by_eager(model, input_ids)
        forced = logits_with_forced_attn_softcap(model, input_ids)
        if not softcap_applied:
            extra["alt_logits_with_attn_softcap"] = forced

    # ---- write checkpoint + reload check ----
    ckpt = save_checkpoint(model, folder, fx)
    reloaded = reload_from_folder(folder, fx, cfg)
    with torch.no_grad():
        re_logits = reloaded(input_ids[None], use_cache=False).logits[0]
    reload_max_abs = float((re_logits - logits).abs().max())
    if reload_max_abs != 0.0:
        raise RuntimeError(f"{name}: reloaded checkpoint differs from in-memory model by {reload_max_abs}")

    patched_generate_matches = None
    if not gen_matches_nocache and cfg.sliding_window == 1:
        patched_generate_matches = generate_with_fixed_window1_cache(model, input_ids) == nocache_tokens
    if not gen_matches_nocache:
        print(f"NOTE {name}: HF generate (cached) gave {greedy.tolist()}, the no-cache greedy loop "
              f"{nocache_tokens}; the fixture stores the no-cache result (see meta.json)")
    # Acceptance: the continuation must be robust (clear argmax), not degenerate, and untouched by eos masking.
    if greedy_min_margin < 5e-3:
        raise RuntimeError(f"{name}: greedy argmax margin {greedy_min_margin} too small; pick another seed")
    if len(set(nocache_tokens)) < 3:
        raise RuntimeError(f"{name}: degenerate continuation {nocache_tokens}; pick another seed")
    if eos_interfered or cfg.eos_token_id in nocache_tokens:
        raise RuntimeError(f"{name}: eos in the greedy continuation; pick another seed")

    expected = {
        "input_ids": input_ids.contiguous(),
        "embeddings": embeddings.float().contiguous(),
        "layer_outputs": layer_outputs.float().contiguous(),
        "final_hidden": final_hidden.float().contiguous(),
        "logits": logits.float().contiguous(),
        "greedy_continuation": torch.tensor(nocache_tokens, dtype=torch.int64),
        "greedy_logits": nocache_logits.float().contiguous(),
    }
    expected.update({k: v.float().contiguous() for k, v in extra.items()})
    save_file(expected, os.path.join(folder, "expected.safetensors"), metadata={"format": "pt"})

    with open(os.path.join(folder, "config.json")) as fh:
        saved_config = json.load(fh)

    meta = {
        "fixture": name,
        "versions": versions(),
        "seed": seed,
        "weight_init": f"every parameter ~ N(0, {WEIGHT_STD}^2) (all RMSNorm weights included), except the tied "
        f"embed_tokens/lm_head ~ N(0, {EMBED_STD}^2); torch.randn with torch.Generator seeded {seed}, "
        "named_parameters order; then rounded to the storage dtype. input_ids drawn from the same generator after.",
        "T": T,
        "G": NUM_GENERATE,
        "hidden_size": H,
        "num_layers": L,
        "vocab_size": V,
        "layer_types": list(cfg.layer_types),
        "rope_parameters": cfg.rope_parameters,
        "covers": fx["covers"],
        "attn_implementation": "eager",
        "compute_dtype": "float32",
        "weights": {
            "dtype": str(fx["save_dtype"]).replace("torch.", ""),
            "key_prefix": fx["key_prefix"],
            "num_shards": fx["num_shards"],
            "files": ckpt["weight_files"],
            "keys_written_by_save_pretrained_before_rename": ckpt["keys_written_by_save_pretrained"],
            "lm_head_weight_saved": any(k.endswith("lm_head.weight") for k in ckpt["keys_written_by_save_pretrained"]),
            "tied_lm_head": True,
        },
        "embed_scale_float32": embed_scale,
        "config_json_keys": sorted(saved_config.keys()),
        "expected_tensors": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)} for k, v in expected.items()},
        "expected_doc": {k: EXPECTED_DOC.get(k, "") for k in expected},
        "checks": {
            "decoder_layer_hook_returned_tuple": any(hook_returned_tuple),
            "hf_generate_matches_nocache_greedy_loop": gen_matches_nocache,
            "hf_generate_tokens": greedy.tolist(),
            "hf_generate_with_window1_cache_slice_fixed_matches": patched_generate_matches,
            "hf_generate_vs_nocache_logits_max_abs_diff": gen_vs_nocache_max_abs,
            "min_new_tokens_eos_mask_changed_a_choice": eos_interfered,
            "greedy_min_top1_top2_margin": greedy_min_margin,
            "prefill_min_top1_top2_margin": prefill_min_margin,
            "reload_from_disk_logits_max_abs_diff": reload_max_abs,
            "max_abs_activation": float(layer_outputs.abs().max()),
        },
    }
    if cfg.attn_logit_softcapping is not None:
        meta["attn_logit_softcapping_applied_by_hf"] = softcap_applied
        meta["attn_logit_softcapping_note"] = (
            f"transformers {transformers.__version__} eager attention "
            + ("applies" if softcap_applied else "does NOT apply")
            + " config.attn_logit_softcapping for Gemma3 (max |logits diff| with vs without it set: "
            + f"{softcap_diff}). 'logits' etc. follow HF as-is."
            + (
                " 'alt_logits_with_attn_softcap' holds the logits with tanh softcapping forced into eager "
                "attention (scores = c * tanh(scores / c) after scaling, before the mask)."
                if not softcap_applied
                else ""
            )
        )
    if not gen_matches_nocache:
        meta["hf_generate_note"] = (
            f"transformers {transformers.__version__} model.generate disagrees with the no-cache greedy loop here: "
            f"generate gave {greedy.tolist()}, the full forwards give {nocache_tokens} (max |logits diff| "
            f"{gen_vs_nocache_max_abs:.4g}). Cause: DynamicSlidingWindowLayer keeps keys[:, :, -sliding_window + 1:], "
            "which for sliding_window == 1 is [-0:] = every key, while the decode mask is built for 1 key and "
            "broadcasts, so sliding layers attend to all cached tokens during cached decoding. The prefill (first "
            "token) is unaffected. With that slice fixed (keep the last W - 1 = 0 keys) generate gives "
            + ("the same tokens as the no-cache loop. " if patched_generate_matches else "still different tokens. ")
            + "greedy_continuation / greedy_logits follow the model's definition (the no-cache "
            "loop, equal to a ring buffer of W = 1 entries), not HF's cached generate."
        )
    elif gen_vs_nocache_max_abs > 1e-4:
        print(f"WARNING {name}: generate logits differ from the no-cache loop by {gen_vs_nocache_max_abs}")
    if eos_interfered:
        print(f"WARNING {name}: min_new_tokens changed a greedy choice")
    write_json(os.path.join(folder, "meta.json"), meta)
    report_folder(folder)


# --------------------------------------------------------------------------------------------------------------
# Component fixtures
# --------------------------------------------------------------------------------------------------------------


def make_components(out_root: str) -> None:
    folder = os.path.join(out_root, "components")
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    seed = SEED + 100
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}

    # RMSNorm
    norm = hf_gemma3.Gemma3RMSNorm(48, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(48, generator=gen) * 0.5)
        x = torch.randn(5, 48, generator=gen) * 2.0
        out["rms_norm.x"] = x
        out["rms_norm.weight"] = norm.weight.detach().clone()
        out["rms_norm.y"] = norm(x)

    # RoPE
    T, NH, D = 7, 3, 16
    positions = torch.tensor([0, 1, 100, 1000, 5000, 32000, 131000], dtype=torch.int64)
    xr = torch.randn(T, NH, D, generator=gen)
    out["rope.x"] = xr
    out["rope.positions"] = positions

    def rope_cfg(full_params):
        return Gemma3TextConfig(
            vocab_size=16, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=NH,
            num_key_value_heads=NH, head_dim=D, layer_types=["sliding_attention", "full_attention"],
            rope_parameters={"full_attention": full_params,
                             "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0}},
        )

    def run_rope(cfg, layer_type):
        rot = hf_gemma3.Gemma3RotaryEmbedding(cfg)
        q = xr.permute(1, 0, 2)[None]  # [1, NH, T, D]
        cos, sin = rot(q, positions[None], layer_type)  # [1, T, D]
        y, _ = hf_gemma3.apply_rotary_pos_emb(q, q, cos, sin, unsqueeze_dim=1)
        inv = getattr(rot, f"{layer_type}_inv_freq").clone()
        return y[0].permute(1, 0, 2).contiguous(), inv

    with torch.no_grad():
        cfg_plain = rope_cfg({"rope_type": "default", "rope_theta": 1_000_000.0})
        cfg_scaled = rope_cfg({"rope_type": "linear", "factor": 8.0, "rope_theta": 1_000_000.0})
        out["rope.local_y"], out["rope.local_inv_freq"] = run_rope(cfg_plain, "sliding_attention")
        out["rope.global_y"], out["rope.global_inv_freq"] = run_rope(cfg_plain, "full_attention")
        out["rope.global_scaled_y"], out["rope.global_scaled_inv_freq"] = run_rope(cfg_scaled, "full_attention")

    # MLP
    mcfg = Gemma3TextConfig(vocab_size=16, hidden_size=48, intermediate_size=96, num_hidden_layers=1,
                            num_attention_heads=4, num_key_value_heads=2, head_dim=16)
    mlp = hf_gemma3.Gemma3MLP(mcfg)
    with torch.no_grad():
        for n in ("gate_proj", "up_proj", "down_proj"):
            w = getattr(mlp, n).weight
            w.copy_(torch.randn(w.shape, generator=gen) * 0.3)
            out[f"mlp.{n}"] = w.detach().clone()
        xm = torch.randn(4, 48, generator=gen)
        out["mlp.x"] = xm
        out["mlp.y"] = mlp(xm)

    # Embedding scale as HF computes it (Gemma3TextScaledWordEmbedding)
    scales = {}
    for H in [640, 1152, 2560, 3840, 5376]:
        emb = hf_gemma3.Gemma3TextScaledWordEmbedding(2, H, 0, embed_scale=H**0.5)
        with torch.no_grad():
            emb.weight.fill_(1.0)
            s32 = emb(torch.tensor([1]))[0, 0].float()  # float32 weights: scale used as float32
            emb_bf16 = copy.deepcopy(emb)
            emb_bf16.weight.data = emb_bf16.weight.data.to(torch.bfloat16)  # bf16 weights, fp32 buffer (from_pretrained)
            sb = emb_bf16(torch.tensor([1]))[0, 0].float()
            emb_f16 = copy.deepcopy(emb)
            emb_f16.weight.data = emb_f16.weight.data.to(torch.float16)
            sh = emb_f16(torch.tensor([1]))[0, 0].float()
        assert float(s32) == float(emb.embed_scale), (s32, emb.embed_scale)
        out[f"embed_scale.{H}"] = s32.reshape(1)
        out[f"embed_scale_bf16.{H}"] = sb.reshape(1)
        out[f"embed_scale_f16.{H}"] = sh.reshape(1)
        scales[str(H)] = {"float32": float(s32), "bf16": float(sb), "f16": float(sh)}

    out = {k: v.contiguous() for k, v in out.items()}
    save_file(out, os.path.join(folder, "components.safetensors"), metadata={"format": "pt"})
    meta = {
        "fixture": "components",
        "versions": versions(),
        "seed": seed,
        "tensors": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)} for k, v in out.items()},
        "notes": {
            "rms_norm": "transformers Gemma3RMSNorm(48, eps=1e-6): y = x * rsqrt(mean(x^2) + eps) * (1 + w), float32",
            "rope": "rope.x is [T, heads, D] (query-like); positions include large values. "
            "transformers Gemma3RotaryEmbedding + apply_rotary_pos_emb (rotate-half, cos/sin over concat(theta, theta)). "
            "local: theta 1e4, default; global: theta 1e6, default; global_scaled: theta 1e6, linear factor 8 "
            "(inv_freq / 8). *_inv_freq are HF's float32 inverse frequencies [D/2]; angles are float32 "
            "position * inv_freq, so an implementation must reproduce inv_freq bit-exactly to match at 131000.",
            "mlp": "transformers Gemma3MLP, gelu_pytorch_tanh: y = down(gelu_tanh(gate(x)) * up(x)); weights [out, in]",
            "embed_scale": "Gemma3TextScaledWordEmbedding multiplies by embed_scale.to(weight.dtype); embed_scale is a "
            "float32 buffer = sqrt(H). embed_scale.H: float32 weights; embed_scale_bf16.H / embed_scale_f16.H: "
            "value used with bf16 / f16 weights (scale rounded to that dtype), stored as float32.",
            "embed_scale_values": scales,
        },
    }
    write_json(os.path.join(folder, "meta.json"), meta)
    report_folder(folder)


def report_folder(folder: str) -> None:
    print(f"== {folder}")
    total = 0
    for f in sorted(os.listdir(folder)):
        p = os.path.join(folder, f)
        size = os.path.getsize(p)
        total += size
        print(f"   {size:>9}  {f}  sha256:{sha256(p)[:16]}")
    print(f"   {total:>9}  total")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT, help="fixtures root (default: tests/fixtures)")
    ap.add_argument("--only", nargs="*", help="fixture names to (re)generate; default all")
    args = ap.parse_args()

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # bit-stable reductions across runs
    transformers.logging.set_verbosity_error()
    print("versions:", json.dumps(versions()))
    os.makedirs(args.out, exist_ok=True)
    for fx in FIXTURES:
        if args.only and fx["name"] not in args.only:
            continue
        make_model_fixture(args.out, fx)
    if not args.only or "components" in args.only:
        make_components(args.out)


if __name__ == "__main__":
    main()
