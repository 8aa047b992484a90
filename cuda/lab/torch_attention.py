#!/usr/bin/env python3
"""cuda/lab/torch_attention.py -- PyTorch's prefill attention on the same card, the peer
of prefill_lab's table (same shapes, same columns).

  sdpa   torch.nn.functional.scaled_dot_product_attention, is_causal=True, bf16, GQA by
         enable_gqa=True (K / V repeated to num_heads on a PyTorch without it); the
         global rows only (it has no sliding window short of a dense S x S mask)
  flex   torch.nn.attention.flex_attention.flex_attention under torch.compile, with a
         block mask from create_block_mask:
           global    kv <= q
           sliding   kv <= q and q - kv < W      (W counts the query itself: W keys)

  P1  1B-shaped  (num_heads 4, num_kv_heads 1, head_dim 256)  S = 8192   global
  P2  the same, sliding window W = 512
  P3  4B-shaped  (num_heads 8, num_kv_heads 4, head_dim 256)  S = 32768  global
  P4  the same, sliding window W = 1024                          (P3, P4: not with --quick)
  P5  4B-shaped                                               S = 8192   global
  P6  the same, sliding window W = 1024 (the 4B+ window: the issue's 8K local row)

Time: CUDA events around each call, the median of 20 after 3 warm-up calls. Useful
TFLOP/s = 4 head_dim num_heads pairs / time, pairs = S (S + 1) / 2 causal, W S - W (W - 1) / 2
sliding (S >= W): the (query, key) pairs the mask allows.

  python3 cuda/lab/torch_attention.py [--quick] [--csv FILE]

Without PyTorch or without a CUDA device it says so and exits 0.
"""
import argparse
import csv
import statistics
import sys

SHAPES = [
    # row, model, num_heads, num_kv_heads, head_dim, S, window (0: global)
    ("P1", "1B", 4, 1, 256, 8192, 0),
    ("P2", "1B", 4, 1, 256, 8192, 512),
    ("P3", "4B", 8, 4, 256, 32768, 0),
    ("P4", "4B", 8, 4, 256, 32768, 1024),
    ("P5", "4B", 8, 4, 256, 8192, 0),
    ("P6", "4B", 8, 4, 256, 8192, 1024),
]
SCALE = 1.0 / 16.0  # query_pre_attn_scalar 256


def pairs(S, W):
    if W == 0 or W >= S:
        return S * (S + 1) / 2
    return W * S - W * (W - 1) / 2


def time_ms(torch, fn, repeats=20, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def sdpa_call(torch, q, k, v):
    F = torch.nn.functional
    G = q.shape[1] // k.shape[1]
    try:
        F.scaled_dot_product_attention(q[:, :, :16], k[:, :, :16], v[:, :, :16], is_causal=True, scale=SCALE,
                                       enable_gqa=True)
        return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=SCALE, enable_gqa=True)
    except TypeError:  # a PyTorch before enable_gqa: repeat K / V to every query head
        kr = k.repeat_interleave(G, dim=1)
        vr = v.repeat_interleave(G, dim=1)
        return lambda: F.scaled_dot_product_attention(q, kr, vr, is_causal=True, scale=SCALE)


def flex_call(torch, q, k, v, window):
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    S = q.shape[2]
    if window:
        def mask_mod(b, h, q_idx, kv_idx):
            return (kv_idx <= q_idx) & (q_idx - kv_idx < window)
    else:
        def mask_mod(b, h, q_idx, kv_idx):
            return kv_idx <= q_idx
    block_mask = create_block_mask(mask_mod, B=None, H=None, Q_LEN=S, KV_LEN=S, device=q.device)
    flex = torch.compile(flex_attention)
    G = q.shape[1] // k.shape[1]
    if G > 1:
        try:
            flex(q, k, v, block_mask=block_mask, scale=SCALE, enable_gqa=True)
            return lambda: flex(q, k, v, block_mask=block_mask, scale=SCALE, enable_gqa=True)
        except TypeError:
            k = k.repeat_interleave(G, dim=1)
            v = v.repeat_interleave(G, dim=1)
    return lambda: flex(q, k, v, block_mask=block_mask, scale=SCALE)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the S = 8192 rows only (P1, P2, P5, P6)")
    parser.add_argument("--csv", metavar="FILE", help="write the rows as CSV")
    args = parser.parse_args()

    try:
        import torch
    except ImportError:
        print("torch_attention: PyTorch is not installed: nothing to measure")
        return 0
    if not torch.cuda.is_available():
        print("torch_attention: no CUDA device for PyTorch: nothing to measure")
        return 0

    dev = torch.device("cuda")
    prop = torch.cuda.get_device_properties(dev)
    print(f"torch_attention on {prop.name} (sm_{prop.major}{prop.minor}, {prop.multi_processor_count} SMs), "
          f"PyTorch {torch.__version__}\n")
    header = ["row", "kernel", "model", "num_heads", "num_kv_heads", "head_dim", "S", "window", "ms", "useful_tflops",
              "note"]
    rows = []
    print(f"{'row':<4} {'kernel':<7} {'model':<5} {'heads':>5} {'kv':>4} {'dim':>5} {'S':>7} {'window':>6} "
          f"{'ms':>10} {'useful TFLOP/s':>14}")
    torch.manual_seed(0)
    for row, model, nh, kv, d, S, W in SHAPES:
        if args.quick and S > 8192:
            continue
        q = torch.randn(1, nh, S, d, device=dev, dtype=torch.bfloat16)
        k = torch.randn(1, kv, S, d, device=dev, dtype=torch.bfloat16)
        v = torch.randn(1, kv, S, d, device=dev, dtype=torch.bfloat16)
        kernels = []
        if W == 0:
            kernels.append(("sdpa", lambda: sdpa_call(torch, q, k, v)))
        kernels.append(("flex", lambda: flex_call(torch, q, k, v, W)))
        for name, make in kernels:
            note = ""
            try:
                fn = make()
                ms = time_ms(torch, fn)
                tflops = 4.0 * d * nh * pairs(S, W) / (ms * 1e-3) / 1e12
                line = f"{ms:>10.3f} {tflops:>14.1f}"
            except Exception as e:  # a backend this PyTorch lacks: say so, go on
                ms, tflops = float("nan"), float("nan")
                note = f"{type(e).__name__}: {e}".splitlines()[0][:200]
                line = f"{'-':>10} {'-':>14}  {note}"
            print(f"{row:<4} {name:<7} {model:<5} {nh:>5} {kv:>4} {d:>5} {S:>7} {(str(W) if W else '-'):>6} {line}")
            rows.append([row, name, model, nh, kv, d, S, W, ms, tflops, note])
        del q, k, v
        torch.cuda.empty_cache()

    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
