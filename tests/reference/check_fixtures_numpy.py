#!/usr/bin/env python3
"""Independent cross-check of tests/fixtures: a from-the-spec Gemma 3 text decoder in plain numpy (float32).

Needs only numpy (no torch / transformers). Reads config.json and the raw safetensors bytes itself (F32 / BF16 /
F16, single file or sharded via model.safetensors.index.json, key prefix `model.` or `language_model.model.`), the
way the C++ loader has to, runs the full forward and a ring-buffer KV-cache greedy decode, and compares with
expected.safetensors and components.safetensors at relative error 1e-4 (|a - b| <= 1e-4 * max(1, |b|)).

Not run by CI; run by hand after regenerating the fixtures:
    python3 tests/reference/check_fixtures_numpy.py [FIXTURES_DIR]
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.normpath(os.path.join(HERE, "..", "fixtures"))
RTOL = 1e-4
f32 = np.float32


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = body[a:b]
        dt, shape = info["dtype"], info["shape"]
        if dt == "F32":
            arr = np.frombuffer(raw, "<f4")
        elif dt == "F16":
            arr = np.frombuffer(raw, "<f2").astype(f32)
        elif dt == "BF16":
            arr = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(f32)
        elif dt == "I64":
            arr = np.frombuffer(raw, "<i8")
        else:
            raise ValueError(dt)
        out[name] = arr.reshape(shape).copy()
    return out


def load_weights(folder: str) -> dict[str, np.ndarray]:
    idx = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    w = {}
    for f in files:
        w.update(read_safetensors(os.path.join(folder, f)))
    norm = {}
    for k, v in w.items():
        for p in ("language_model.model.", "model.language_model.", "model."):
            if k.startswith(p):
                k = k[len(p) :]
                break
        norm[k] = v
    return norm


def rms(x, w, eps=1e-6):
    x = x.astype(f32)
    ms = np.mean(x * x, axis=-1, keepdims=True, dtype=f32)
    return (x / np.sqrt(ms + f32(eps))) * (f32(1) + w)


def gelu_tanh(u):
    c = f32(math.sqrt(2.0 / math.pi))
    return f32(0.5) * u * (f32(1) + np.tanh(c * (u + f32(0.044715) * u * u * u)))


def inv_freq(base: float, dim: int, factor: float = 1.0) -> np.ndarray:
    # Same float32 recipe as HF: 1 / base ** (arange(0, dim, 2) / dim), all in float32; then / factor.
    exps = (np.arange(0, dim, 2).astype(f32) / f32(dim)).astype(f32)
    inv = (f32(1) / np.power(f32(base), exps, dtype=f32)).astype(f32)
    return (inv / f32(factor)).astype(f32)


def rope(x, pos, inv):
    # x [T, N, D]; rotate-half
    ang = (pos.astype(f32)[:, None] * inv[None, :]).astype(f32)  # [T, D/2]
    ang = np.concatenate([ang, ang], -1)
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    h = x.shape[-1] // 2
    rot = np.concatenate([-x[..., h:], x[..., :h]], -1)
    return x * cos + rot * sin


class Model:
    def __init__(self, folder):
        with open(os.path.join(folder, "config.json")) as f:
            c = json.load(f)
        self.c = c
        self.w = load_weights(folder)
        self.H, self.L = c["hidden_size"], c["num_hidden_layers"]
        self.NH, self.KV, self.D = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        self.W = c["sliding_window"]
        self.types = c.get("layer_types") or [
            "sliding_attention" if (i + 1) % c.get("sliding_window_pattern", 6) else "full_attention"
            for i in range(self.L)
        ]
        rp = c.get("rope_parameters")
        if rp is None:  # older spellings
            sc = c.get("rope_scaling") or {}
            rp = {
                "full_attention": {"rope_theta": c.get("rope_theta", 1e6), "factor": sc.get("factor", 1.0)},
                "sliding_attention": {"rope_theta": c.get("rope_local_base_freq", 1e4)},
            }
        self.inv = {
            t: inv_freq(p["rope_theta"], self.D, p.get("factor", 1.0) if p.get("rope_type") == "linear" else 1.0)
            for t, p in rp.items()
        }
        self.scale = f32(c["query_pre_attn_scalar"] ** -0.5)
        self.attn_cap = c.get("attn_logit_softcapping")
        self.final_cap = c.get("final_logit_softcapping")
        self.E = self.w["embed_tokens.weight"]
        self.embed_scale = f32(math.sqrt(self.H))  # float32 sqrt(H): compute dtype is float32

    def layer_w(self, i, n):
        return self.w[f"layers.{i}.{n}.weight"]

    def attn(self, i, x, pos, cache, apply_attn_cap=False):
        T = x.shape[0]
        q = (x @ self.layer_w(i, "self_attn.q_proj").T).reshape(T, self.NH, self.D)
        k = (x @ self.layer_w(i, "self_attn.k_proj").T).reshape(T, self.KV, self.D)
        v = (x @ self.layer_w(i, "self_attn.v_proj").T).reshape(T, self.KV, self.D)
        q = rms(q, self.layer_w(i, "self_attn.q_norm"))
        k = rms(k, self.layer_w(i, "self_attn.k_norm"))
        t = self.types[i]
        q, k = rope(q, pos, self.inv[t]), rope(k, pos, self.inv[t])
        # cache: list of (pos, k, v); sliding layers keep only the last W entries (a ring buffer)
        for j in range(T):
            cache.append((int(pos[j]), k[j], v[j]))
        if t == "sliding_attention":
            del cache[: max(0, len(cache) - (self.W + T - 1))]
        kpos = np.array([p for p, _, _ in cache])
        K = np.stack([a for _, a, _ in cache])  # [S, KV, D]
        V = np.stack([b for _, _, b in cache])
        G = self.NH // self.KV
        out = np.zeros((T, self.NH, self.D), f32)
        for h in range(self.NH):
            s = (q[:, h, :] @ K[:, h // G, :].T) * self.scale  # [T, S]
            if apply_attn_cap and self.attn_cap:
                s = np.tanh(s / f32(self.attn_cap)) * f32(self.attn_cap)
            allowed = kpos[None, :] <= pos[:, None]
            if t == "sliding_attention":
                allowed &= kpos[None, :] > pos[:, None] - self.W
            s = np.where(allowed, s, -np.inf)
            s = s - s.max(-1, keepdims=True)
            p = np.exp(s)
            p /= p.sum(-1, keepdims=True)
            out[:, h, :] = p @ V[:, h // G, :]
        if t == "sliding_attention":
            del cache[: max(0, len(cache) - (self.W - 1))]  # what a decode step needs next
        return out.reshape(T, -1) @ self.layer_w(i, "self_attn.o_proj").T

    def forward(self, ids, pos, caches, apply_attn_cap=False):
        h = self.E[ids] * self.embed_scale
        emb = h.copy()
        outs = []
        for i in range(self.L):
            a = self.attn(i, rms(h, self.layer_w(i, "input_layernorm")), pos, caches[i], apply_attn_cap)
            h = h + rms(a, self.layer_w(i, "post_attention_layernorm"))
            m = rms(h, self.layer_w(i, "pre_feedforward_layernorm"))
            m = (gelu_tanh(m @ self.layer_w(i, "mlp.gate_proj").T) * (m @ self.layer_w(i, "mlp.up_proj").T)) @ self.layer_w(
                i, "mlp.down_proj"
            ).T
            h = h + rms(m, self.layer_w(i, "post_feedforward_layernorm"))
            outs.append(h)
        fin = rms(h, self.w["norm.weight"])
        logits = fin @ self.E.T
        if self.final_cap:
            logits = np.tanh(logits / f32(self.final_cap)) * f32(self.final_cap)
        return emb, np.stack(outs), fin, logits


failures = 0


def compare(label, got, want):
    global failures
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (label, got.shape, want.shape)
    err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    ok = float(err.max()) <= RTOL
    failures += not ok
    print(f"  {'ok  ' if ok else 'FAIL'} {label:32s} max rel err {float(err.max()):.2e}")


def check_model(name):
    folder = os.path.join(FIXTURES, name)
    print(name)
    m = Model(folder)
    e = read_safetensors(os.path.join(folder, "expected.safetensors"))
    ids = e["input_ids"]
    T = len(ids)
    caches = [[] for _ in range(m.L)]
    emb, outs, fin, logits = m.forward(ids, np.arange(T), caches)
    compare("embeddings", emb, e["embeddings"])
    compare("layer_outputs", outs, e["layer_outputs"])
    compare("final_hidden", fin, e["final_hidden"])
    compare("logits", logits, e["logits"])
    if "alt_logits_with_attn_softcap" in e:
        _, _, _, lc = m.forward(ids, np.arange(T), [[] for _ in range(m.L)], apply_attn_cap=True)
        compare("alt_logits_with_attn_softcap", lc, e["alt_logits_with_attn_softcap"])
    # greedy decode with the ring-buffer cache
    toks, step_logits = [], []
    last = logits[-1]
    for g in range(len(e["greedy_continuation"])):
        step_logits.append(last)
        t = int(np.argmax(last))
        toks.append(t)
        _, _, _, lg = m.forward(np.array([t]), np.array([T + g]), caches)
        last = lg[-1]
    compare("greedy_logits (cached decode)", np.stack(step_logits), e["greedy_logits"])
    global failures
    same = toks == e["greedy_continuation"].tolist()
    failures += not same
    print(f"  {'ok  ' if same else 'FAIL'} greedy_continuation {toks}")


def check_components():
    print("components")
    c = read_safetensors(os.path.join(FIXTURES, "components", "components.safetensors"))
    compare("rms_norm.y", rms(c["rms_norm.x"], c["rms_norm.weight"]), c["rms_norm.y"])
    x, pos = c["rope.x"], c["rope.positions"]
    D = x.shape[-1]
    for label, base, fac in [("local", 1e4, 1.0), ("global", 1e6, 1.0), ("global_scaled", 1e6, 8.0)]:
        inv = inv_freq(base, D, fac)
        compare(f"rope.{label}_inv_freq", inv, c[f"rope.{label}_inv_freq"])
        compare(f"rope.{label}_y", rope(x, pos, inv), c[f"rope.{label}_y"])
    xm = c["mlp.x"]
    y = (gelu_tanh(xm @ c["mlp.gate_proj"].T) * (xm @ c["mlp.up_proj"].T)) @ c["mlp.down_proj"].T
    compare("mlp.y", y, c["mlp.y"])
    for H in [640, 1152, 2560, 3840, 5376]:
        s = f32(math.sqrt(H))
        bf = (np.array([s], f32).view(np.uint32) + 0x7FFF + ((np.array([s], f32).view(np.uint32) >> 16) & 1)) >> 16 << 16
        compare(f"embed_scale.{H}", [s], c[f"embed_scale.{H}"])
        compare(f"embed_scale_bf16.{H}", bf.astype(np.uint32).view(f32), c[f"embed_scale_bf16.{H}"])
        compare(f"embed_scale_f16.{H}", [np.float16(s)], c[f"embed_scale_f16.{H}"])


def main():
    global FIXTURES
    if len(sys.argv) > 1:
        FIXTURES = sys.argv[1]
    for name in sorted(os.listdir(FIXTURES)):
        if os.path.exists(os.path.join(FIXTURES, name, "expected.safetensors")):
            check_model(name)
    check_components()
    print("all fixtures agree" if failures == 0 else f"{failures} check(s) failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
