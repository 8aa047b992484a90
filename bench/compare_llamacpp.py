#!/usr/bin/env python3
"""Prefill and decode speed of this library vs llama.cpp on the same GGUF, same thread count, same tokens.

    python3 bench/compare_llamacpp.py [--model models/gemma-3-270m-q4_k_m.gguf] [--threads 2] [--runs 3]
    python3 bench/compare_llamacpp.py --ours build/examples/gemma3-cli --ours-baseline /tmp/gemma3-cli.before \
        [--skip-llamacpp]          # a change against the build before it, in the same rounds

llama.cpp side: llama-cpp-python's low-level API (the C functions, not the `Llama` wrapper): one llama_decode of
the whole prompt as a single batch (n_batch = n_ubatch >= prompt length), then one llama_decode per generated token,
greedy (argmax of the last logits), EOS ignored. Times are llama.cpp's own (llama_perf_context: t_p_eval_ms /
n_p_eval for prefill, t_eval_ms / n_eval for decode), i.e. the time inside llama_decode; wall-clock times around
the calls are reported too. Fresh context per run, one untimed warm-up run per engine, then --runs rounds with
llama.cpp and ours interleaved (both see the same machine load); the median and the best run are reported. On a
shared machine each timed run first waits (--wait-idle seconds at most) until the CPUs are nearly idle.

Our side: `build/examples/gemma3-cli generate --model PATH --prompt-ids-file FILE --max-tokens 128 --threads 2
--greedy --ignore-eos --stats-json --kv-type f16`, whose last stdout line must be
    {"prefill_tokens": N, "prefill_tok_s": X, "decode_tokens": M, "decode_tok_s": Y}
FILE holds the prompt token ids as decimal integers separated by whitespace (BOS first). If the binary is missing or
fails, the script says so and still reports llama.cpp.

Baseline: --ours-baseline PATH names a second build of our CLI, e.g. the binary from before a change, to check the
change for speed regressions in one run. It gets its own untimed warm-up run and then runs in the same rounds as
--ours, with the same prompt ids and the same flags; the two builds swap places every round (ours first in odd
rounds, baseline first in even ones), so neither always runs second. It has its own rows in the table and in the
information lines, and the script prints ours / baseline for the median prefill and decode tok/s, plus, for
information, the median and range of the per-round ratios and whether both builds printed the same generated text
in every round. --json-out adds "ours_baseline" (runs and medians), "ratio_ours_baseline" and, with llama.cpp,
"ratio_baseline". --skip-llamacpp runs the two builds alone (llama-cpp-python need not be installed); --skip-ours
skips both builds.

Page cache: both engines mmap the GGUF, and a file cached in small folios maps with 4 KiB pages, which stream the
weights ~9 % slower than 2 MiB pages here (include/gemma3/mapped_file.hpp). So before the runs the script drops the
file's cached pages and re-reads them with scripts/page-cache.py --evict (2 MiB folios where the kernel allows),
and it reports how much of the file each engine had mapped with 2 MiB pages (--page-cache keep skips this).

Floor: a decode step reads every weight matrix once (the tied LM head reads the whole token_embd; the embedding
row lookup and the KV cache are ignored), i.e. bytes/token = sum of the GGUF's tensor bytes. Divided into the
machine's memory read bandwidth, measured here with numpy on a 1 GiB array (best of several passes, 1 and 2
threads), it gives "floor tokens/s": the decode rate no CPU engine can beat on this machine without caching the
weights (the files are larger than L3). This VM's bandwidth drifts (35-60 GB/s between runs minutes apart), so it
is measured before the first round and again after every round, and the floor uses the median of those. A last
line adds, for information only, the floor from each measurement's median pass instead of its best one, and one the
bandwidth each engine draws in decode: (weights + the K and V rows a token reads, f16 in both engines: our CLI
runs with --kv-type f16, its default) times its median decode rate, as a fraction of the table's bandwidth.

Prompt: --prompt-ids-file, else the first N ids of the "long" prompt in tests/fixtures/real270m/prompts.json (real
English text, tokenized for Gemma 3; N = --prompt-tokens, default 512), else a fixed deterministic id sequence.
Token ids do not change the speed; the same ids are used for every model (all Gemma 3 sizes share the vocabulary).
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, ".."))
DEFAULT_MODEL = os.path.join(REPO, "models", "gemma-3-270m-q4_k_m.gguf")
DEFAULT_BIN = os.path.join(REPO, "build", "examples", "gemma3-cli")
PROMPTS_JSON = os.path.join(REPO, "tests", "fixtures", "real270m", "prompts.json")


def log(msg: str = "") -> None:
    print(msg, flush=True)


# ----------------------------------------------------------------------------------------------------------------
# Prompt ids
# ----------------------------------------------------------------------------------------------------------------


def prompt_ids(args) -> tuple[list[int], str]:
    if args.prompt_ids_file:
        with open(args.prompt_ids_file) as f:
            ids = [int(x) for x in f.read().split()]
        return ids, f"file {args.prompt_ids_file}"
    n = args.prompt_tokens
    if os.path.isfile(PROMPTS_JSON):
        with open(PROMPTS_JSON, encoding="utf-8") as f:
            p = {q["name"]: q for q in json.load(f)["prompts"]}
        ids = p.get("long", {}).get("ids", [])
        if len(ids) >= n:
            return ids[:n], f"first {n} ids of the 'long' prompt in {os.path.relpath(PROMPTS_JSON, REPO)}"
    # Fallback: BOS then a fixed pseudo-random walk over ordinary vocabulary ids (LCG, no RNG library dependency).
    ids, x = [2], 12345
    while len(ids) < n:
        x = (1103515245 * x + 12345) % (1 << 31)
        ids.append(1000 + x % 200000)
    return ids, f"{n} fixed pseudo-random ids (BOS + LCG), prompts.json not found"


# ----------------------------------------------------------------------------------------------------------------
# GGUF bytes read per decoded token
# ----------------------------------------------------------------------------------------------------------------


def gguf_decode_bytes(path: str) -> dict:
    from gguf import GGUFReader

    r = GGUFReader(path)
    by_type: dict[str, int] = {}
    total = 0
    embd = 0
    for t in r.tensors:
        n = int(t.n_bytes)
        total += n
        by_type[t.tensor_type.name] = by_type.get(t.tensor_type.name, 0) + n
        if t.name == "token_embd.weight":
            embd = n
    tied = not any(t.name == "output.weight" for t in r.tensors)
    # Every tensor is read once per decoded token: layer matrices and norms, plus token_embd as the tied LM head.
    # (With an untied output.weight, token_embd would only be read for one row; then subtract it.)
    per_token = total if tied else total - embd
    return {"file_bytes": os.path.getsize(path), "tensor_bytes": total, "token_embd_bytes": embd, "tied": tied,
            "bytes_per_decoded_token": per_token, "by_type": by_type}


def kv_read_bytes_per_token(path: str, prompt_len: int, n_gen: int) -> dict:
    """K and V bytes one decoded token reads, averaged over the decode positions prompt_len .. prompt_len + n_gen - 1:
    a global layer reads every earlier position, a sliding one at most sliding_window (every 6th layer global, the
    5:1 rule, unless the file carries a pattern). Per element: 2 bytes (f16: llama.cpp's default and ours here) or
    4 (float32, our library's default cache).
    Not part of the floor (which counts weights only); used for the information line on the bandwidth actually drawn."""
    from gguf import GGUFReader

    r = GGUFReader(path)

    def scalar(key, default=None):
        f = r.fields.get(key)
        return default if f is None or not f.data else f.parts[f.data[0]][0]

    layers = int(scalar("gemma3.block_count"))
    width = int(scalar("gemma3.attention.head_count_kv")) * (int(scalar("gemma3.attention.key_length")) +
                                                             int(scalar("gemma3.attention.value_length")))
    window = int(scalar("gemma3.attention.sliding_window", 0))
    rows = 0
    for p in range(prompt_len, prompt_len + n_gen):
        for i in range(layers):
            sliding = window > 0 and (i + 1) % 6 != 0
            rows += min(p + 1, window) if sliding else p + 1
    elements = rows / n_gen * width
    return {"elements_per_token": elements, "f32_bytes": 4 * elements, "f16_bytes": 2 * elements}


# ----------------------------------------------------------------------------------------------------------------
# Memory bandwidth
# ----------------------------------------------------------------------------------------------------------------


def _read_kernels():
    # Reductions that numpy runs with SIMD and without the GIL. The best of them is taken as "read bandwidth".
    return {
        "sum_f32": lambda a: np.add.reduce(a.view(np.float32)),
        "or_u64": lambda a: np.bitwise_or.reduce(a.view(np.uint64)),
        "max_i8": lambda a: np.maximum.reduce(a.view(np.int8)),
    }


def measure_bandwidth(gib: float = 1.0, passes: int = 5, threads_list=(1, 2)) -> dict:
    nbytes = int(gib * (1 << 30)) // 64 * 64
    a = np.ones(nbytes // 8, dtype=np.uint64)  # touched, so every page is resident
    res = {"array_bytes": nbytes, "passes": passes, "method": "numpy reductions over a 1 GiB array, best pass", }
    for nt in threads_list:
        chunks = np.array_split(a, nt)
        best_kernel, best, passes_gbs = None, 0.0, []
        for kname, k in _read_kernels().items():
            for _ in range(passes):
                if nt == 1:
                    t0 = time.perf_counter()
                    k(chunks[0])
                    dt = time.perf_counter() - t0
                else:
                    bar = threading.Barrier(nt + 1)
                    ths = [threading.Thread(target=lambda c=c: (bar.wait(), k(c))) for c in chunks]
                    for th in ths:
                        th.start()
                    bar.wait()
                    t0 = time.perf_counter()
                    for th in ths:
                        th.join()
                    dt = time.perf_counter() - t0
                gbs = nbytes / dt / 1e9
                passes_gbs.append(gbs)
                if gbs > best:
                    best, best_kernel = gbs, kname
        res[f"read_GBps_{nt}t"] = best
        res[f"kernel_{nt}t"] = best_kernel
        res[f"median_pass_GBps_{nt}t"] = statistics.median(passes_gbs)
    del a
    res["read_GBps"] = max(res[f"read_GBps_{nt}t"] for nt in threads_list)
    # for information: the typical pass rather than the best one (this VM's bandwidth has fast and slow phases)
    res["median_pass_GBps"] = max(res[f"median_pass_GBps_{nt}t"] for nt in threads_list)
    return res


def _page_cache_script():
    """scripts/page-cache.py as a module (its smaps reader)."""
    spec = importlib.util.spec_from_file_location("page_cache", os.path.join(REPO, "scripts", "page-cache.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def huge_mapped_mib(path: str) -> float:
    """MiB of `path` that this process maps with 2 MiB pages now (FilePmdMapped in /proc/self/smaps); -1 if unknown."""
    real = os.path.realpath(path)
    kib = _page_cache_script().smaps_pmd_kib(lambda line: line.endswith(" " + real))
    return kib / 1024 if kib >= 0 else -1.0


def prepare_page_cache(path: str) -> str:
    """scripts/page-cache.py --evict PATH: the file re-read into the page cache in 2 MiB folios."""
    script = os.path.join(REPO, "scripts", "page-cache.py")
    p = subprocess.run([sys.executable, script, "--evict", path], capture_output=True, text=True)
    return (p.stdout + p.stderr).strip()


# ----------------------------------------------------------------------------------------------------------------
# llama.cpp
# ----------------------------------------------------------------------------------------------------------------


class LlamaCpp:
    def __init__(self, model_path: str, threads: int, n_ctx: int, n_batch: int):
        import llama_cpp as L

        self.L = L
        L.llama_backend_init()
        # Silence llama.cpp's loader chatter (it goes to stderr).
        self._log_cb = L.llama_log_callback(lambda level, text, user: None)
        L.llama_log_set(self._log_cb, ctypes.c_void_p(0))
        mp = L.llama_model_default_params()
        mp.n_gpu_layers = 0
        self.model = L.llama_model_load_from_file(model_path.encode(), mp)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {model_path}")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.threads, self.n_ctx, self.n_batch = threads, n_ctx, n_batch
        self.model_path = model_path

    def context_params(self):
        L = self.L
        cp = L.llama_context_default_params()
        cp.n_ctx = self.n_ctx
        cp.n_batch = self.n_batch
        cp.n_ubatch = self.n_batch
        cp.n_threads = self.threads
        cp.n_threads_batch = self.threads
        cp.no_perf = False
        cp.swa_full = False  # ring-sized SWA cache, as llama-cli / llama-server use by default
        return cp

    def run(self, ids: list[int], n_gen: int) -> dict:
        L = self.L
        cp = self.context_params()
        ctx = L.llama_init_from_model(self.model, cp)
        if not ctx:
            raise RuntimeError("llama_init_from_model failed")
        try:
            n = len(ids)
            batch = L.llama_batch_init(max(n, 1), 0, 1)
            try:
                for i, t in enumerate(ids):
                    batch.token[i] = t
                    batch.pos[i] = i
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = 0
                    batch.logits[i] = 1 if i == n - 1 else 0
                batch.n_tokens = n
                L.llama_perf_context_reset(ctx)
                t0 = time.perf_counter()
                rc = L.llama_decode(ctx, batch)
                t_prefill = time.perf_counter() - t0
                if rc != 0:
                    raise RuntimeError(f"llama_decode(prompt) returned {rc}")
                out = []
                nv = self.n_vocab
                t_decode = 0.0
                for step in range(n_gen):
                    logits = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, -1), shape=(nv,))
                    tok = int(np.argmax(logits))
                    out.append(tok)
                    batch.token[0] = tok
                    batch.pos[0] = n + step
                    batch.n_seq_id[0] = 1
                    batch.seq_id[0][0] = 0
                    batch.logits[0] = 1
                    batch.n_tokens = 1
                    t0 = time.perf_counter()
                    rc = L.llama_decode(ctx, batch)
                    t_decode += time.perf_counter() - t0
                    if rc != 0:
                        raise RuntimeError(f"llama_decode(step {step}) returned {rc}")
                # The perf counters are updated when a decode's results are synchronized (normally when its logits
                # are read); the last decode's logits are never read, so synchronize explicitly.
                L.llama_synchronize(ctx)
                perf = L.llama_perf_context(ctx)
                huge = huge_mapped_mib(self.model_path)
            finally:
                L.llama_batch_free(batch)
        finally:
            L.llama_free(ctx)
        return {
            "prefill_tokens": int(perf.n_p_eval),
            "prefill_tok_s": perf.n_p_eval / (perf.t_p_eval_ms / 1e3) if perf.t_p_eval_ms > 0 else float("nan"),
            "decode_tokens": int(perf.n_eval),
            "decode_tok_s": perf.n_eval / (perf.t_eval_ms / 1e3) if perf.t_eval_ms > 0 else float("nan"),
            "wall_prefill_tok_s": n / t_prefill,
            "wall_decode_tok_s": n_gen / t_decode,
            "huge_mapped_mib": huge,
            "generated": out,
        }


# ----------------------------------------------------------------------------------------------------------------
# Shared machine: wait for the CPUs to be idle before each timed run
# ----------------------------------------------------------------------------------------------------------------


def cpu_busy(interval: float = 0.5) -> float:
    """Fraction of all CPUs busy (any process) over `interval` seconds, from /proc/stat; nan if unavailable."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v[:8]), idle
    try:
        t0, i0 = snap()
        time.sleep(interval)
        t1, i1 = snap()
        return 1.0 - (i1 - i0) / max(1, t1 - t0)
    except OSError:
        return float("nan")


def wait_idle(max_wait: float, threshold: float) -> float:
    """Block until the machine is (nearly) idle or max_wait seconds passed; returns the last busy fraction."""
    deadline = time.time() + max_wait
    busy = cpu_busy()
    while busy > threshold and time.time() < deadline:
        time.sleep(1.0)
        busy = cpu_busy()
    return busy


# ----------------------------------------------------------------------------------------------------------------
# Ours
# ----------------------------------------------------------------------------------------------------------------


def run_ours(binary: str, model: str, ids_file: str, n_gen: int, threads: int, timeout: float) -> dict:
    return run_ours_text(binary, model, ids_file, n_gen, threads, timeout)[0]


def run_ours_text(binary: str, model: str, ids_file: str, n_gen: int, threads: int, timeout: float) -> tuple[dict, str]:
    """run_ours, plus what the CLI printed on stdout before its stats line (the generated text)."""
    cmd = [binary, "generate", "--model", model, "--prompt-ids-file", ids_file, "--max-tokens", str(n_gen),
           "--threads", str(threads), "--greedy", "--ignore-eos", "--stats-json",
           "--kv-type", "f16"]  # the CLI's default, and llama.cpp's: both engines keep K and V in f16
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-500:]}")
    lines = [ln for ln in p.stdout.strip().splitlines() if ln.strip()]
    if not lines:
        raise RuntimeError(f"{' '.join(cmd)} printed nothing on stdout")
    try:
        stats = json.loads(lines[-1])
    except json.JSONDecodeError as e:
        raise RuntimeError(f"last stdout line is not JSON ({e}): {lines[-1][:200]!r}") from None
    for k in ("prefill_tokens", "prefill_tok_s", "decode_tokens", "decode_tok_s"):
        if k not in stats:
            raise RuntimeError(f"stats JSON lacks {k!r}: {lines[-1][:200]!r}")
    return stats, "\n".join(lines[:-1])


# ----------------------------------------------------------------------------------------------------------------


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def machine_summary() -> dict:
    out = {"platform": platform.platform(), "python": platform.python_version(), "cpus_online": os.cpu_count()}
    try:
        txt = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in txt.splitlines():
            k, _, v = line.partition(":")
            if k.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "L2 cache", "L3 cache", "Hypervisor vendor"):
                out[k.strip()] = v.strip()
    except OSError:
        pass
    try:
        out["loadavg_at_start"] = open("/proc/loadavg").read().split()[:3]
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            out["MemTotal"] = f.readline().split(":")[1].strip()
    except OSError:
        pass
    return out


def fmt(x, nd=1):
    return "-" if x is None or (isinstance(x, float) and x != x) else f"{x:.{nd}f}"


def main() -> int:
    ap = argparse.ArgumentParser(description="llama.cpp vs gemma3 prefill/decode tokens/s")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--prompt-ids-file", help="whitespace-separated prompt ids (default: see module doc)")
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--n-ctx", type=int, default=1024)
    ap.add_argument("--ours", default=DEFAULT_BIN, help="our CLI binary (default build/examples/gemma3-cli)")
    ap.add_argument("--ours-baseline", metavar="PATH",
                    help="a second build of our CLI (e.g. the binary from before a change), run in the same rounds "
                    "as --ours with the same prompt and flags; prints the ratios ours/baseline")
    ap.add_argument("--ours-timeout", type=float, default=1800)
    ap.add_argument("--skip-llamacpp", action="store_true")
    ap.add_argument("--skip-ours", action="store_true", help="run neither --ours nor --ours-baseline")
    ap.add_argument("--skip-bandwidth", action="store_true")
    ap.add_argument("--bandwidth-gib", type=float, default=1.0)
    ap.add_argument("--page-cache", choices=("evict", "keep"), default="evict",
                    help="evict: re-read the model into the page cache in 2 MiB folios first (default); keep: as is")
    ap.add_argument("--json-out", help="also write every number to this JSON file")
    ap.add_argument("--wait-idle", type=float, default=60.0,
                    help="before each timed run wait up to this many seconds for the CPUs to be idle (shared "
                    "machines; 0 = do not wait)")
    ap.add_argument("--idle-threshold", type=float, default=0.15,
                    help="'idle' = at most this fraction of all CPUs busy over 0.5 s")
    args = ap.parse_args()

    if not os.path.isfile(args.model):
        log(f"error: model {args.model} not found (bash scripts/fetch-model.sh, or "
            f"python3 scripts/make-shaped-gguf.py 1b /tmp/gemma3-1b-shaped.gguf)")
        return 2
    ids, ids_src = prompt_ids(args)
    if len(ids) + args.gen_tokens + 1 > args.n_ctx:
        log(f"error: prompt {len(ids)} + {args.gen_tokens} generated tokens do not fit n_ctx {args.n_ctx}")
        return 2
    n_batch = max(512, len(ids))
    report: dict = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
        "model": os.path.abspath(args.model),
        "threads": args.threads,
        "prompt_tokens": len(ids),
        "prompt_source": ids_src,
        "gen_tokens": args.gen_tokens,
        "runs": args.runs,
        "machine": machine_summary(),
    }
    log(f"model   {args.model}")
    log(f"prompt  {len(ids)} tokens ({ids_src}); generate {args.gen_tokens} (greedy, EOS ignored); "
        f"threads {args.threads}; n_ctx {args.n_ctx}, n_batch {n_batch}; {args.runs} runs + 1 warm-up, median")

    # ---- bytes per token and bandwidth floor ----
    gb = gguf_decode_bytes(args.model)
    report["weights"] = gb
    log(f"weights {gb['bytes_per_decoded_token'] / 1e6:.1f} MB read per decoded token "
        f"(token_embd {gb['token_embd_bytes'] / 1e6:.1f} MB as tied LM head; by type: "
        + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sorted(gb["by_type"].items(), key=lambda kv: -kv[1])) + ")")
    bw = None
    if not args.skip_bandwidth:
        busy = wait_idle(args.wait_idle, args.idle_threshold)
        bw = measure_bandwidth(args.bandwidth_gib)
        bw["cpu_busy_before"] = busy
        bw["rounds"] = [bw["read_GBps"]]
        bw["rounds_median_pass"] = [bw["median_pass_GBps"]]
        report["bandwidth"] = bw
        log(f"memory  read bandwidth {bw['read_GBps_1t']:.1f} GB/s (1 thread, {bw['kernel_1t']}), "
            f"{bw.get('read_GBps_2t', float('nan')):.1f} GB/s (2 threads, {bw.get('kernel_2t')})  "
            f"[CPUs {busy:.0%} busy before]")

    if args.page_cache == "evict":
        msg = prepare_page_cache(args.model)
        report["page_cache"] = msg
        log(f"pages   {msg}")

    # ---- engines: one untimed warm-up each, then --runs rounds, llama.cpp and ours interleaved ----
    eng = None
    if not args.skip_llamacpp:
        try:
            import llama_cpp

            eng = LlamaCpp(args.model, args.threads, args.n_ctx, n_batch)
            report["llama_cpp"] = {"llama_cpp_python": llama_cpp.__version__,
                                   "system_info": llama_cpp.llama_print_system_info().decode().strip(),
                                   "context": "n_ctx %d, n_batch = n_ubatch = %d, flash_attn auto, KV f16, "
                                   "swa_full false, mmap" % (args.n_ctx, n_batch),
                                   "runs": []}
            eng.run(ids, min(8, args.gen_tokens))  # warm-up (page cache, thread pool)
        except ImportError:
            log("llama.cpp: llama-cpp-python is not installed (pip install llama-cpp-python); skipped")
            report["llama_cpp"] = {"error": "llama-cpp-python not installed"}
        except Exception as e:  # noqa: BLE001
            log(f"llama.cpp: failed: {e}")
            report["llama_cpp"] = {"error": str(e)}
            eng = None

    # Our binaries: "ours", and with --ours-baseline a second build run in the same rounds.
    sides = []
    if not args.skip_ours:
        sides.append({"name": "ours", "key": "ours", "binary": args.ours, "runs": [], "by_round": {}})
        if args.ours_baseline:
            sides.append({"name": "baseline", "key": "ours_baseline", "binary": args.ours_baseline, "runs": [],
                          "by_round": {}})
    ids_file = None
    for side in sides:
        side["active"] = False
        if not (os.path.isfile(side["binary"]) and os.access(side["binary"], os.X_OK)):
            if side["name"] == "ours":
                log(f"ours: {args.ours} not found -- build the examples first (cmake --build build -j2); "
                    f"reporting llama.cpp only")
            else:
                log(f"baseline: {side['binary']} not found; reporting without it")
            report[side["key"]] = {"error": f"{side['binary']} not found"}
            continue
        if ids_file is None:
            with tempfile.NamedTemporaryFile("w", suffix=".ids", delete=False) as f:
                f.write(" ".join(str(i) for i in ids) + "\n")
                ids_file = f.name
        report[side["key"]] = {"binary": side["binary"], "runs": []}
        try:
            run_ours(side["binary"], args.model, ids_file, min(8, args.gen_tokens), args.threads, args.ours_timeout)
            side["active"] = True
        except Exception as e:  # noqa: BLE001
            log(f"{side['name']}: failed: {e}")
            report[side["key"]] = {"error": str(e)}
    if len(sides) == 2 and all(side["active"] for side in sides):
        report["ours_baseline"]["order"] = "ours first in odd rounds, baseline first in even rounds"

    lc_runs = []
    for r in range(args.runs):
        if eng is not None:
            busy = wait_idle(args.wait_idle, args.idle_threshold)
            res = eng.run(ids, args.gen_tokens)
            res["cpu_busy_before"] = busy
            lc_runs.append(res)
            log(f"  llama.cpp run {r + 1}: prefill {res['prefill_tok_s']:.1f} tok/s ({res['prefill_tokens']} tok), "
                f"decode {res['decode_tok_s']:.1f} tok/s ({res['decode_tokens']} tok)  [CPUs {busy:.0%} busy before; "
                f"{res['huge_mapped_mib']:.0f} MiB mapped with 2 MiB pages]")
        # With a baseline, the two builds swap places every round, so neither always runs second.
        failed = False
        for side in (sides if r % 2 == 0 else sides[::-1]):
            if not side["active"]:
                continue
            busy = wait_idle(args.wait_idle, args.idle_threshold)
            try:
                res, text = run_ours_text(side["binary"], args.model, ids_file, args.gen_tokens, args.threads,
                                          args.ours_timeout)
            except Exception as e:  # noqa: BLE001
                log(f"{side['name']}: failed: {e}")
                report[side["key"]] = {"error": str(e)}
                side["active"] = False
                failed = True
                continue
            res["cpu_busy_before"] = busy
            side["runs"].append(res)
            side["by_round"][r] = (res, text)
            log(f"  {side['name']:9s} run {r + 1}: prefill {res['prefill_tok_s']:.1f} tok/s "
                f"({res['prefill_tokens']} tok), decode {res['decode_tok_s']:.1f} tok/s ({res['decode_tokens']} tok)  "
                f"[CPUs {busy:.0%} busy before; {res.get('huge_mapped_mib', -1):.0f} MiB mapped with 2 MiB pages]")
        if failed:
            continue
        if bw is not None:
            again = measure_bandwidth(args.bandwidth_gib, passes=3)
            bw["rounds"].append(again["read_GBps"])
            bw["rounds_median_pass"].append(again["median_pass_GBps"])
            log(f"  memory read bandwidth after round {r + 1}: {again['read_GBps']:.1f} GB/s")
    if ids_file is not None:
        os.unlink(ids_file)
    if bw is not None:
        bw["read_GBps_first"] = bw["read_GBps"]
        bw["read_GBps"] = statistics.median(bw["rounds"])

    keys = ("prefill_tok_s", "decode_tok_s")
    lc = ours = base = None
    if lc_runs:
        lc = {k: median_of(lc_runs, k) for k in keys + ("wall_prefill_tok_s", "wall_decode_tok_s")}
        lc.update({"best_" + k: max(r[k] for r in lc_runs) for k in keys})
        lc["prefill_tokens"] = lc_runs[0]["prefill_tokens"]
        lc["decode_tokens"] = lc_runs[0]["decode_tokens"]
        lc["first_generated_ids"] = lc_runs[0]["generated"][:16]
        report["llama_cpp"]["median"] = lc
        report["llama_cpp"]["runs"] = [{k: v for k, v in r.items() if k != "generated"} for r in lc_runs]
    medians = {}
    for side in sides:
        if side["runs"]:
            d = {k: median_of(side["runs"], k) for k in keys}
            d.update({"best_" + k: max(r[k] for r in side["runs"]) for k in keys})
            report[side["key"]]["median"] = d
            report[side["key"]]["runs"] = side["runs"]
            medians[side["name"]] = d
    ours, base = medians.get("ours"), medians.get("baseline")

    # ---- table ----
    floor = None
    if bw is not None:
        floor = bw["read_GBps"] * 1e9 / gb["bytes_per_decoded_token"]
        report["floor_tok_s"] = floor
    log("")
    log(f"median of {args.runs} runs (best run in brackets)")
    log(f"{'':22s} {'prefill tok/s':>18s} {'decode tok/s':>16s} {'decode / floor':>15s}")
    rows = (("llama.cpp", lc), ("gemma3 (ours)", ours))
    if args.ours_baseline and not args.skip_ours:
        rows += (("gemma3 (baseline)", base),)
    for label, d in rows:
        if d:
            pf = f"{fmt(d['prefill_tok_s'])} [{fmt(d['best_prefill_tok_s'])}]"
            dc = f"{fmt(d['decode_tok_s'])} [{fmt(d['best_decode_tok_s'])}]"
            log(f"{label:22s} {pf:>18s} {dc:>16s} {fmt(d['decode_tok_s'] / floor if floor else None, 2):>15s}")
        else:
            log(f"{label:22s} {'(not run)':>18s}")
    if lc and ours:
        log(f"{'ratio ours/llama.cpp':22s} {fmt(ours['prefill_tok_s'] / lc['prefill_tok_s'], 2):>18s} "
            f"{fmt(ours['decode_tok_s'] / lc['decode_tok_s'], 2):>16s}")
        report["ratio"] = {"prefill": ours["prefill_tok_s"] / lc["prefill_tok_s"],
                           "decode": ours["decode_tok_s"] / lc["decode_tok_s"]}
    if lc and base:
        log(f"{'ratio base/llama.cpp':22s} {fmt(base['prefill_tok_s'] / lc['prefill_tok_s'], 2):>18s} "
            f"{fmt(base['decode_tok_s'] / lc['decode_tok_s'], 2):>16s}")
        report["ratio_baseline"] = {"prefill": base["prefill_tok_s"] / lc["prefill_tok_s"],
                                    "decode": base["decode_tok_s"] / lc["decode_tok_s"]}
    if ours and base:
        # Ratio of the medians, and, for information, the median of the per-round ratios over the rounds where both
        # builds ran (each pair ran back to back, so it shares the machine's phase).
        log(f"{'ratio ours/baseline':22s} {fmt(ours['prefill_tok_s'] / base['prefill_tok_s'], 3):>18s} "
            f"{fmt(ours['decode_tok_s'] / base['decode_tok_s'], 3):>16s}")
        rb = {"prefill": ours["prefill_tok_s"] / base["prefill_tok_s"],
              "decode": ours["decode_tok_s"] / base["decode_tok_s"]}
        new_by, old_by = sides[0]["by_round"], sides[1]["by_round"]
        paired = sorted(set(new_by) & set(old_by))
        if paired:
            parts = []
            for k in keys:
                q = [new_by[r][0][k] / old_by[r][0][k] for r in paired]
                rb["paired_" + k.replace("_tok_s", "")] = statistics.median(q)
                rb["paired_" + k.replace("_tok_s", "") + "_range"] = [min(q), max(q)]
                parts.append(f"{k.replace('_tok_s', '')} {statistics.median(q):.3f} ({min(q):.3f}-{max(q):.3f})")
            differ = [r + 1 for r in paired if new_by[r][1] != old_by[r][1]]
            rb["rounds_paired"] = len(paired)
            rb["same_output_text"] = not differ
            same = ("the same in every round" if not differ else
                    "DIFFERENT in round" + ("s " if len(differ) > 1 else " ") + ", ".join(map(str, differ)))
            rounds = f"{len(paired)} round" + ("s" if len(paired) > 1 else "")
            log(f"{'':22s} (paired: median of the per-round ratios ours/baseline over {rounds}, "
                f"{'; '.join(parts)}; generated text {same})")
        report["ratio_ours_baseline"] = rb
    if floor:
        log(f"{'floor (bandwidth)':22s} {'':>18s} {fmt(floor):>16s}   = {bw['read_GBps']:.1f} GB/s / "
            f"{gb['bytes_per_decoded_token'] / 1e6:.1f} MB per token")
        log(f"{'':22s} bandwidth: median of {len(bw['rounds'])} measurements "
            f"({', '.join(f'{x:.1f}' for x in bw['rounds'])} GB/s)")
        # For information only (the floor above, from each measurement's best pass, is the one the table uses):
        # the same measurements' median passes, which bursts of bandwidth move less.
        sustained = statistics.median(bw["rounds_median_pass"])
        floor_s = sustained * 1e9 / gb["bytes_per_decoded_token"]
        report["floor_median_pass_tok_s"] = floor_s
        ratios = ", ".join(f"{name} {fmt(d['decode_tok_s'] / floor_s, 2)}"
                           for name, d in (("llama.cpp", lc), ("ours", ours), ("baseline", base)) if d)
        log(f"{'':22s} (for information: the median pass of each measurement, "
            f"{', '.join(f'{x:.1f}' for x in bw['rounds_median_pass'])} GB/s, median {sustained:.1f}, gives a floor of "
            f"{fmt(floor_s)} tok/s; decode / that floor: {ratios})")
    if bw is not None:
        # For information: the bytes a decoded token really draws (weights + the KV cache it reads; both engines keep
        # K and V in f16 here) times the median decode rate, against the median bandwidth measurement.
        kv = kv_read_bytes_per_token(args.model, len(ids), args.gen_tokens)
        report["kv_read_bytes_per_token"] = kv
        parts = []
        for name, d, kvb in (("llama.cpp", lc, kv["f16_bytes"]), ("ours", ours, kv["f16_bytes"]),
                             ("baseline", base, kv["f16_bytes"])):
            if d:
                drawn = (gb["bytes_per_decoded_token"] + kvb) * d["decode_tok_s"] / 1e9
                parts.append(f"{name} {(gb['bytes_per_decoded_token'] + kvb) / 1e6:.1f} MB/token "
                             f"(KV {kvb / 1e6:.1f}) x {fmt(d['decode_tok_s'])} = {drawn:.1f} GB/s, "
                             f"{drawn / bw['read_GBps']:.2f} of {bw['read_GBps']:.1f}")
                report.setdefault("drawn_GBps", {})[name] = drawn
        log(f"{'':22s} (for information: bandwidth drawn in decode, weights + KV cache read: {'; '.join(parts)})")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(report, f, indent=1, default=str)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
