#!/usr/bin/python3
"""The browser build against the native one, on the same machine in the same run.

    /usr/bin/python3 web/bench.py [--models models/gemma-3-270m-q4_k_m.gguf models/gemma-3-1b-shaped-q4_k_m.gguf]
                         [--rounds 3] [--prompt-tokens 512] [--decode 128] [--threads 2]

Needs `make build` (gemma3-cli) and `make web` (build-web/web/); every model must sit in
one folder, which is served as /models/ beside the page (web/serve.py). For each model
and round, native and browser alternate: gemma3-cli generate (greedy, --ignore-eos,
--threads N) and the page in headless Chromium (the same prompt text, raw completion,
greedy, ignore <eos>, attention recording off, N threads), both timing prefill and decode
inside the library the same way (generate.hpp's definition: decode tok/s = decode calls /
decode seconds). Each round's browser load is timed twice: from the server with an empty
browser profile (first visit: fetch into the heap, then parse) and again after a reload
(OPFS). The wasm heap's size after the runs is its peak (the heap only grows).
Prints one table per model: medians over the rounds, browser / native ratios of the same
round. The 1B-shaped file (python3 scripts/make-shaped-gguf.py 1b
models/gemma-3-1b-shaped-q4_k_m.gguf) has random weights: its text is noise, but its
shapes, types and bytes per token are the 1B's.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "web"))
from test_web import Page  # noqa: E402  (the same selenium driver the end-to-end test uses)


def prompt_of(cli, model, tokens):
    """A raw-text prompt that tokenizes to `tokens` ids (+-1) for this model's tokenizer."""
    words = ("the quick brown fox jumps over a lazy dog while seven wizards quietly judge "
             "boxing matches near old mills and rivers in early spring").split()

    def count(n):
        text = " ".join(words[i % len(words)] for i in range(n))
        out = subprocess.run([cli, "tokenize", "--model", model, "--raw", "--prompt", text],
                             capture_output=True, text=True, check=True).stdout
        return int(out.split()[0]), text

    lo, hi = 1, tokens * 4
    while lo < hi:  # fewest words giving >= tokens ids
        mid = (lo + hi) // 2
        if count(mid)[0] >= tokens:
            hi = mid
        else:
            lo = mid + 1
    return count(lo)


def native(cli, model, text, decode, threads):
    out = subprocess.run([cli, "generate", "--model", model, "--prompt", text, "--raw", "--greedy", "--ignore-eos",
                          "--max-tokens", str(decode), "--threads", str(threads), "--stats-json", "--context", "4096"],
                         capture_output=True, text=True, check=True).stdout
    stats = json.loads(out.strip().splitlines()[-1])
    return stats["prefill_tok_s"], stats["decode_tok_s"]


def browser(url, name, text, decode, threads):
    profile = tempfile.mkdtemp(prefix="gemma3-bench-")
    page = Page(url, profile)
    try:
        page.open("?autoload=0")
        page.set_value("threads", threads)
        page.js("document.getElementById('model-url').value = arguments[0]", "models/" + name)
        page.el("load-url").click()
        first = page.wait_loaded(1, timeout=600)
        page.wait("window.demo.cached", 600, "the OPFS copy")
        page.open("?autoload=0")
        page.set_value("threads", threads)
        page.js("document.getElementById('model-url').value = arguments[0]", "models/" + name)
        page.el("load-url").click()
        cached = page.wait_loaded(1, timeout=600)
        page.js("document.getElementById('ignore-eos').checked = true")
        run = page.generate(text, "completion", decode, context=4096, record=False, timeout=1800)
        s = run["stats"]
        return dict(first=first["seconds"], first_source=first["source"], cached=cached["seconds"],
                    cached_source=cached["source"], prefill=s["prefill_tokens"] / s["prefill_seconds"],
                    decode=s["decode_calls"] / s["decode_seconds"], heap=s["heapPeak"], kv=s["kv"]["reserved_bytes"],
                    prompt_tokens=s["prefill_tokens"], generated=len(run["ids"]), reason=run["reason"])
    finally:
        page.quit()
        shutil.rmtree(profile, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description="browser / native speed of the gemma3 web build")
    ap.add_argument("--models", nargs="+", default=[os.path.join(REPO, "models", "gemma-3-270m-q4_k_m.gguf"),
                                                    os.path.join(REPO, "models", "gemma-3-1b-shaped-q4_k_m.gguf")])
    ap.add_argument("--cli", default=os.path.join(REPO, "build", "examples", "gemma3-cli"))
    ap.add_argument("--site", default=os.path.join(REPO, "build-web", "web"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--decode", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--long-prompt", type=int, default=0,
                    help="instead of the table: one browser run per model with a prompt of this many tokens "
                         "(4 decoded, 4096-position cache), printing the heap's peak against file + KV")
    args = ap.parse_args()
    folders = {os.path.dirname(os.path.abspath(m)) for m in args.models}
    if len(folders) != 1:
        sys.exit("bench: put every model in one folder (it is served as /models/)")
    server = subprocess.Popen([sys.executable, os.path.join(HERE, "serve.py"), "--root", args.site, "--models",
                               folders.pop(), "--port", "0"], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "GEMMA3_SERVE_QUIET": "1"})
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+/", server.stdout.readline()).group(0)
        for model in args.models:
            name = os.path.basename(model)
            if args.long_prompt:
                n, text = prompt_of(args.cli, model, args.long_prompt)
                b = browser(url, name, text, 4, args.threads)
                size = os.path.getsize(model)
                print(f"{name}: {b['prompt_tokens']}-token prompt, prefill {b['prefill']:.1f} tok/s, peak wasm heap "
                      f"{b['heap'] / 2**20:.0f} MiB = file {size / 2**20:.0f} + KV {b['kv'] / 2**20:.0f} + "
                      f"{(b['heap'] - size - b['kv']) / 2**20:.0f} MiB", flush=True)
                continue
            n, text = prompt_of(args.cli, model, args.prompt_tokens)
            rows = []
            for r in range(args.rounds):
                npre, ndec = native(args.cli, model, text, args.decode, args.threads)
                b = browser(url, name, text, args.decode, args.threads)
                rows.append(dict(npre=npre, ndec=ndec, **b))
                print(f"  {name} round {r + 1}: native prefill {npre:.1f} decode {ndec:.2f} tok/s | browser prefill "
                      f"{b['prefill']:.1f} decode {b['decode']:.2f} tok/s | load {b['first']:.2f} s ({b['first_source']}), "
                      f"{b['cached']:.2f} s ({b['cached_source']}) | heap {b['heap'] / 2**20:.0f} MiB", flush=True)
            med = lambda k: statistics.median(x[k] for x in rows)  # noqa: E731
            size = os.path.getsize(model)
            print(f"\n{name}: {n} prompt tokens, {args.decode} decoded, {args.threads} threads, "
                  f"{args.rounds} rounds (medians)")
            print("| | native | browser | browser / native |\n|---|---|---|---|")
            print(f"| prefill tok/s | {med('npre'):.1f} | {med('prefill'):.1f} | "
                  f"{statistics.median(x['prefill'] / x['npre'] for x in rows):.2f} |")
            print(f"| decode tok/s | {med('ndec'):.2f} | {med('decode'):.2f} | "
                  f"{statistics.median(x['decode'] / x['ndec'] for x in rows):.2f} |")
            print(f"| first load from 127.0.0.1 (s) | | {med('first'):.2f} | |")
            print(f"| cached load, OPFS (s) | | {med('cached'):.2f} | |")
            heap = med('heap')
            print(f"| peak wasm heap | | {heap / 2**20:.0f} MiB | file {size / 2**20:.0f} MiB + KV "
                  f"{med('kv') / 2**20:.0f} MiB (4K) + {(heap - size - med('kv')) / 2**20:.0f} MiB |\n", flush=True)
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
