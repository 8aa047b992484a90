#!/usr/bin/env python3
"""The browser demo end to end, in a real headless Chromium (selenium + chromedriver).

    test_web.py --url http://127.0.0.1:PORT/ --model models/gemma-3-270m-q4_k_m.gguf \
                --cli build/examples/gemma3-cli --kv-calculator build/examples/kv_cache_calculator \
                [--out DIR] [--screenshot FILE]

Run by tests/web/run_web_test.sh (ctest: web_demo_chromium), which builds the page and
serves it. What it checks, on the real 270M file:
  - the model loads over HTTP and the progress bar reaches 100 %;
  - greedy tokens for fixed prompts (raw completion and chat template) equal gemma3-cli's
    for the same file and prompt;
  - the KV gauge's bytes equal kv_cache_calculator's (kv_cache_bytes) at that length, the
    all-global figure too;
  - an attention row sums to 1; past 512 tokens a local layer's row is 0 outside its
    window and positive inside it, while a global layer's row reaches back to position 0;
  - Stop ends generation within a second, in the middle of a decode and inside a prefill's
    forward pass (the next turn is then right again);
  - bad input gives a message on the page and the page stays usable: a file that is not
    GGUF, a truncated GGUF, a file over the wasm32 buffer limit, a prompt over the context;
  - the second load of the page reads the model from OPFS.
Exit 0 when every check passes, 1 otherwise (each failure printed).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import Select

FAILURES = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        FAILURES.append(what)
    return ok


def native_greedy(cli, model, prompt, n, chat):
    out = subprocess.run([cli, "generate", "--model", model, "--prompt", prompt, "--greedy", "--max-tokens", str(n),
                          "--print-ids", "--threads", "2", "--chat" if chat else "--raw"],
                         capture_output=True, text=True, check=True)
    m = re.search(r"\[generated ids \(\d+\):([^\]]*)\]", out.stderr)
    if not m:
        raise RuntimeError("gemma3-cli printed no generated ids:\n" + out.stderr)
    return [int(x) for x in m.group(1).split()]


def kv_bytes(calc, tokens):
    """(all-global, interleaved) bytes at `tokens` for the 270M in 2-byte elements, from kv_cache_calculator."""
    out = subprocess.run([calc, "270m", str(tokens)], capture_output=True, text=True, check=True).stdout
    m = re.search(r"^\s*%d\s+bf16\s+([\d,]+)\s+\S+\s+([\d,]+)" % tokens, out, re.M)
    if not m:
        raise RuntimeError("kv_cache_calculator output not understood:\n" + out)
    return int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))


class Page:
    def __init__(self, url, profile):
        o = Options()
        o.binary_location = "/usr/bin/chromium"
        for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1800",
                  f"--user-data-dir={profile}"]:
            o.add_argument(a)
        self.d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
        self.url = url

    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    def demo(self, expr):
        return self.js("return JSON.parse(JSON.stringify(" + expr + "))")

    def wait(self, expr, timeout, what):
        t0 = time.time()
        while time.time() - t0 < timeout:
            v = self.js("return " + expr)
            if v:
                return v
            time.sleep(0.1)
        raise TimeoutError(f"waited {timeout} s for {what} ({expr})")

    def el(self, id_):
        return self.d.find_element("id", id_)

    def set_value(self, id_, value):
        self.js("const e = document.getElementById(arguments[0]); e.value = arguments[1];"
                "e.dispatchEvent(new Event('change'));", id_, str(value))

    def open(self, query=""):
        self.d.get(self.url + query)
        self.wait("window.demo && window.demo.state !== 'starting'", 60, "the worker")

    def wait_loaded(self, n_loads, n_errors=0, timeout=120):
        """The n_loads-th load's record; an error after the first n_errors is a failure."""
        self.wait(f"window.demo.loads.length >= {n_loads} || "
                  f"window.demo.errors.slice({n_errors}).some(e => e.where === 'load')", timeout, "the model to load")
        errors = [e for e in self.demo("window.demo.errors")[n_errors:] if e["where"] == "load"]
        if errors:
            raise RuntimeError(f"load failed: {errors}")
        return self.demo("window.demo.loads")[-1]

    def generate(self, prompt, mode, max_tokens, context=4096, record=True, new_chat=True, timeout=300, wait=True):
        if new_chat:
            self.el("new-chat").click()
        Select(self.el("mode")).select_by_value(mode)
        self.set_value("max-tokens", max_tokens)
        self.set_value("context", context)
        self.set_value("temperature", 0)
        self.js("document.getElementById('record-attention').checked = arguments[0]", record)
        self.js("document.getElementById('prompt').value = arguments[0]", prompt)
        n = self.js("return window.demo.runs.length")
        self.el("send").click()
        if wait:
            self.wait(f"window.demo.runs.length > {n}", timeout, "the run to end")
            return self.demo(f"window.demo.runs[{n}]")
        return n

    def quit(self):
        self.d.quit()


def long_text(words):
    """A prompt of roughly `words` words, varied enough that it is not one repeated token."""
    base = ("The river runs past the old mill where the miller kept his books in a wooden chest. "
            "Every spring the water rose, and every autumn the children counted the geese flying south. "
            "A traveller once asked why the wheel turned so slowly; the miller said it had learned patience. ")
    out, i = [], 0
    while len(" ".join(out).split()) < words:
        out.append(base.replace("river", ["river", "stream", "canal", "brook"][i % 4]).replace(
            "spring", ["spring", "summer", "winter", "May"][i % 4]))
        i += 1
    return " ".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--kv-calculator", required=True)
    ap.add_argument("--out", default=tempfile.gettempdir())
    ap.add_argument("--screenshot", default="")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="gemma3-web-profile-")  # a fresh profile: OPFS starts empty

    page = Page(args.url, profile)
    try:
        # ---- first load: over HTTP, progress to 100 % ----
        page.open()
        first = page.wait_loaded(1)
        check(first["source"] == "network", f"first load comes over the network ({first['source']}, {first['seconds']:.2f} s)")
        prog = page.demo("window.demo.progress")
        check(prog["loaded"] == prog["total"] == os.path.getsize(args.model),
              f"progress reached the file's {os.path.getsize(args.model)} bytes ({prog['loaded']})")
        check(page.el("progress-bar").get_attribute("style").find("100%") >= 0, "the progress bar shows 100%")
        info = page.demo("window.demo.info")
        check(not info["has_chat_template"] and page.el("mode").get_attribute("value") == "completion"
              and "no chat template" in page.el("mode-note").text,
              "a base model starts in completion mode and says why")

        # ---- greedy tokens equal the native CLI's ----
        cases = [("The capital of France is", "completion", 32), ("def fibonacci(n):", "completion", 32),
                 ("Write a haiku about the sea.", "chat", 32)]
        for prompt, mode, n in cases:
            run = page.generate(prompt, mode, n)
            want = native_greedy(args.cli, args.model, prompt, n, mode == "chat")
            check(run["ids"] == want, f"greedy {mode} '{prompt}': {len(run['ids'])} tokens equal gemma3-cli's"
                  + ("" if run["ids"] == want else f"\n      page {run['ids']}\n      cli  {want}"))
        # the KV gauge after the last run
        kv = page.demo("window.demo.kv")
        all_global, interleaved = kv_bytes(args.kv_calculator, kv["tokens"])
        check(kv["sliding_bytes"] + kv["global_bytes"] == interleaved == kv["used_bytes"],
              f"KV gauge at {kv['tokens']} tokens: {kv['sliding_bytes'] + kv['global_bytes']} B held = kv_cache_bytes {interleaved}")
        check(kv["all_global_bytes"] == all_global, f"KV gauge all-global {kv['all_global_bytes']} B = {all_global}")

        # ---- attention past the window ----
        text = long_text(520)
        run = page.generate(text, "completion", 3)
        P = run["stats"]["prefill_tokens"]  # the prompt's length; token 0's query sits at P - 1
        check(P > 600, f"the long prompt has {P} tokens (> 512 + a margin)")
        kv = page.demo("window.demo.kv")
        all_global, interleaved = kv_bytes(args.kv_calculator, kv["tokens"])
        check(kv["sliding_bytes"] + kv["global_bytes"] == interleaved and kv["all_global_bytes"] == all_global,
              f"KV gauge at {kv['tokens']} tokens (rings full): {interleaved} B held, {all_global} B all-global "
              f"({all_global / interleaved:.2f}x)")
        layer_types = info["layer_types"]
        local, glob = layer_types.index("local"), layer_types.index("global")
        for layer in (glob, local):  # the local one last: it stays on the page for the screenshot
            page.set_value("attn-token", 0)
            page.set_value("attn-head", 1)
            page.set_value("attn-layer", layer)
            a = page.wait(f"window.demo.attention && window.demo.attention.layer === {layer} && "
                          f"window.demo.attention.head === 1 && window.demo.attention.index === 0 && window.demo.attention",
                          30, "the attention row")
            row = a["row"]
            row = [row[str(i)] for i in range(len(row))] if isinstance(row, dict) else row
            q = a["position"]
            check(q == P - 1 and len(row) == P, f"layer {layer}: the row of token 0 covers positions 0..{q} ({len(row)})")
            check(abs(sum(row) - 1.0) < 1e-4, f"layer {layer} ({layer_types[layer]}): the row sums to {sum(row):.6f}")
            first = q - 511
            if layer_types[layer] == "local":
                check(all(v == 0.0 for v in row[:first]) and all(v > 0.0 for v in row[first:]),
                      f"local layer {layer}: 0 on the {first} positions before the 512-token window, > 0 inside")
                strip = page.js("return [...document.querySelectorAll('#attn-strip span.out')].length")
                check(strip == first, f"the heat strip marks {strip} positions outside the window")
            else:
                check(all(v > 0.0 for v in row), f"global layer {layer}: every earlier position gets weight (row[0] = {row[0]:.2e})")
        page.d.save_screenshot(os.path.join(args.out, "attention.png"))

        # ---- Stop, mid-decode ----
        page.generate("Once upon a time", "completion", 100000, context=8192, record=False, wait=False)
        page.wait("window.demo.state === 'generating' && document.querySelectorAll('#transcript .gen').length >= 12",
                  120, "a dozen tokens")
        if args.screenshot:
            page.d.save_screenshot(args.screenshot)
        page.el("stop").click()
        page.wait("window.demo.state === 'ready'", 10, "the stop")
        run = page.demo("window.demo.runs[window.demo.runs.length - 1]")
        check(run["reason"] == "stopped" and run["stopLatencyMs"] < 1000,
              f"Stop mid-decode: {run['reason']} after {run.get('stopLatencyMs', -1):.0f} ms ({len(run['ids'])} tokens)")
        # ---- Stop, mid-prefill: inside the first prefill chunk's forward pass ----
        page.generate(long_text(1500), "completion", 16, context=8192, record=False, wait=False)
        page.wait("window.demo.state === 'generating' && window.demo.phase === 'prefill'", 60, "the prefill")
        time.sleep(0.05)
        page.el("stop").click()
        page.wait("window.demo.state === 'ready'", 10, "the stop")
        run = page.demo("window.demo.runs[window.demo.runs.length - 1]")
        done = run["stats"].get("kv", {}).get("tokens", -1)
        check(run["reason"] == "stopped" and run["stopLatencyMs"] < 1000 and len(run["ids"]) == 0 and done == 0,
              f"Stop mid-prefill: {run['reason']} after {run.get('stopLatencyMs', -1):.0f} ms, inside the first chunk "
              f"({done} prompt tokens in the cache)")
        run = page.generate("The capital of France is", "completion", 8)
        want = native_greedy(args.cli, args.model, "The capital of France is", 8, False)
        check(run["ids"] == want, "after a stopped prefill, the next turn gives gemma3-cli's greedy tokens")

        # ---- bad input ----
        run = page.generate(long_text(200), "completion", 8, context=64)
        check(run["reason"] == "error" and "context" in page.el("gen-error").text,
              f"a prompt over the context: '{page.el('gen-error').text}'")
        run = page.generate("The capital of France is", "completion", 4)
        check(run["reason"] == "max_new_tokens", "after it, the next prompt runs")

        bad = []
        p = os.path.join(args.out, "not-a-model.gguf")
        with open(p, "wb") as f:
            f.write(b"PK\x03\x04 this is a zip archive, not a GGUF file" * 100)
        bad.append((p, "GGUF"))
        p = os.path.join(args.out, "truncated.gguf")
        with open(args.model, "rb") as src, open(p, "wb") as f:
            f.write(src.read(10 << 20))
        bad.append((p, "truncated.gguf"))
        p = os.path.join(args.out, "too-big.gguf")
        with open(p, "wb") as f:  # sparse: 2.1 GB on paper, nothing on disk
            f.truncate(2100 << 20)
        bad.append((p, "2 GiB"))
        # the file input sits inside a styled label; make it reachable for send_keys
        page.js("document.getElementById('model-file').style.cssText = 'width:auto;height:auto;opacity:1;position:static'")
        for path, needle in bad:
            n_err = len(page.demo("window.demo.errors"))
            page.el("model-file").send_keys(path)
            page.wait(f"window.demo.errors.length > {n_err}", 60, "the error")
            msg = page.el("load-error").text
            check(needle in msg and page.demo("window.demo.state") == "idle",
                  f"{os.path.basename(path)}: '{msg[:160]}'")
        n_err = len(page.demo("window.demo.errors"))
        page.el("load-url").click()
        page.wait_loaded(2, n_err)
        run = page.generate("The capital of France is", "completion", 8)
        check(run["reason"] == "max_new_tokens" and len(run["ids"]) == 8, "after three bad files, the model loads and runs")

        # ---- the second visit reads OPFS ----
        page.wait("window.demo.cached", 120, "the OPFS copy")
        cached = page.demo("window.demo.cached")
        check(cached["ok"], f"the OPFS copy was written ({cached.get('seconds', 0):.2f} s) {cached.get('message', '')}")
        page.open()
        again = page.wait_loaded(1)
        check(again["source"] == "opfs", f"second load from OPFS ({again['source']}, {again['seconds']:.2f} s)")
        run = page.generate("The capital of France is", "completion", 16)
        want = native_greedy(args.cli, args.model, "The capital of France is", 16, False)
        check(run["ids"] == want, "the model read from OPFS gives the same greedy tokens")
    finally:
        page.quit()

    print(f"\n{len(FAILURES)} failure(s)" if FAILURES else "\nall browser checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
