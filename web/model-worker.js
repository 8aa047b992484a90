// web/model-worker.js -- the dedicated Worker that holds the model (gemma3_web.wasm).
//
// The page (app.js) never blocks: it posts requests here and draws what comes back.
//   load      bytes stream from fetch() or a File straight into one heap buffer
//             (g3_alloc), which the library adopts without a copy (g3_load); the
//             Origin Private File System keeps a copy, so a second visit reads it
//             from disk (cache-writer.js writes it in the background: a Worker the
//             page starts, since a Worker nested in this one would wait on this
//             one's thread, which generation keeps busy).
//   generate  g3_begin, then g3_step in a loop: one prefill chunk or one token per
//             step (prefill chunks of up to 1024 tokens). The Stop flag is an int32
//             in the module's own shared memory (g3_stop_flag): the page sets it,
//             this loop reads it between steps, and the module before each layer,
//             so Stop ends a prefill within one layer and a decode within one token.
// The wasm memory is made here and passed in (wasmMemory), so its current buffer is
// always at hand: after the heap grows, old views of it are stale, so every copy into
// or out of the heap makes a fresh view. Pointers are read with >>> 0 (wasm32 heap
// addresses above 2 GiB).
'use strict';

importScripts('gemma3_web.js');

const MAX_BUFFER = 2047 * 1024 * 1024;   // wasm32: one allocation over 2 GiB fails
const memory = new WebAssembly.Memory({ initial: 64 * 16, maximum: 65536, shared: true });  // 64 MiB .. 4 GiB
let M = null;            // the Emscripten module
let api = null;          // its C functions
let stopFlag = null;     // Int32Array over the module's memory; stopFlag[stopIndex] is the Stop flag
let stopIndex = 0;
let writerState = null;  // Int32Array(2) shared with cache-writer.js: [0] busy, [1] abort
let heapPeak = 0;

const post = (m, transfer) => postMessage(m, transfer || []);
const heap = () => new Uint8Array(memory.buffer);
const json = (s) => JSON.parse(s);

async function init() {
  M = await createGemma3({
    wasmMemory: memory,
    mainScriptUrlOrBlob: new URL('gemma3_web.js', self.location.href).href,
    print: (s) => console.log(s),
    printErr: (s) => console.warn(s),
  });
  api = {
    alloc: M.cwrap('g3_alloc', 'number', ['number']),
    free: M.cwrap('g3_free', null, ['number']),
    load: M.cwrap('g3_load', 'number', ['number', 'number', 'string', 'number']),
    result: M.cwrap('g3_result', 'string', []),
    info: M.cwrap('g3_info', 'string', []),
    setThreads: M.cwrap('g3_set_threads', 'string', ['number']),
    tokenize: M.cwrap('g3_tokenize', 'string', ['string', 'number']),
    begin: M.cwrap('g3_begin', 'string',
      ['string', 'number', 'number', 'number', 'number', 'number', 'number', 'number', 'number', 'number', 'number']),
    step: M.cwrap('g3_step', 'string', ['number']),
    stop: M.cwrap('g3_stop', 'string', []),
    attention: M.cwrap('g3_attention', 'string', ['number', 'number', 'number']),
  };
  stopIndex = (M.cwrap('g3_stop_flag', 'number', [])() >>> 0) / 4;
  stopFlag = new Int32Array(memory.buffer);  // the flag sits in static data: this view stays valid as the heap grows
  post({ type: 'ready', memory, stopIndex, hardwareConcurrency: navigator.hardwareConcurrency, isolated: self.crossOriginIsolated,
         opfs: !!(navigator.storage && navigator.storage.getDirectory) });
}

// ---- the OPFS cache ----
function cacheKey(source) {
  const s = source.url ? 'url:' + new URL(source.url, self.location.href).href
                       : `file:${source.file.name}:${source.file.size}:${source.file.lastModified}`;
  let h = 2166136261 >>> 0;  // FNV-1a, for a short file name
  for (let i = 0; i < s.length; ++i) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619) >>> 0; }
  const base = (source.url || source.file.name).split('/').pop().replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 80);
  return `${base}.${h.toString(16)}`;
}
async function cacheDir() {
  if (!(navigator.storage && navigator.storage.getDirectory)) return null;
  const root = await navigator.storage.getDirectory();
  return root.getDirectoryHandle('gemma3-models', { create: true });
}
// The cached copy's size, or -1: a file counts only once its ".complete" marker is written.
async function cachedSize(dir, key) {
  try {
    const marker = await (await dir.getFileHandle(key + '.complete')).getFile();
    return Number(await marker.text());
  } catch (e) {
    return -1;
  }
}
function stopWriter() {  // the buffer it reads from is about to be freed
  if (!writerState || Atomics.load(writerState, 0) === 0) return;
  Atomics.store(writerState, 1, 1);
  while (Atomics.load(writerState, 0) !== 0) Atomics.wait(writerState, 0, 1, 50);
  Atomics.store(writerState, 1, 0);
}

// ---- loading ----
function progress(source, loaded, total, t0) {
  const s = (performance.now() - t0) / 1000;
  const mbps = loaded / 1e6 / Math.max(s, 1e-3);
  post({ type: 'progress', source, loaded, total, mbps, eta: total ? (total - loaded) / 1e6 / Math.max(mbps, 1e-3) : null });
}

function allocate(size, what) {
  if (size > MAX_BUFFER)
    throw new Error(`${what} is ${(size / 2 ** 30).toFixed(2)} GiB: the browser build holds a model in one wasm32 ` +
                    `buffer of at most 2 GiB (the 270M and 1B files fit; 4B and larger do not)`);
  const ptr = api.alloc(size) >>> 0;
  if (!ptr) throw new Error(`${what}: could not allocate ${(size / 2 ** 20).toFixed(0)} MiB in the wasm heap ` +
                            `(4 GiB in all; the heap holds ${(memory.buffer.byteLength / 2 ** 20).toFixed(0)} MiB now)`);
  return ptr;
}

// Streams a ReadableStream of known size into the heap at ptr.
async function streamInto(reader, ptr, size, what, onChunk) {
  let at = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (at + value.length > size) throw new Error(`${what} is longer than the ${size} bytes it announced`);
    heap().set(value, ptr + at);
    at += value.length;
    onChunk(at);
  }
  if (at !== size) throw new Error(`${what}: the download ended after ${at} of ${size} bytes`);
}

async function load(msg) {
  const t0 = performance.now();
  const source = msg.url ? { url: msg.url } : { file: msg.file };
  const what = msg.url ? msg.url : msg.file.name;
  let ptr = 0, size = 0, from = 'network';
  stopWriter();
  try {
    const dir = msg.useCache ? await cacheDir().catch(() => null) : null;
    const key = cacheKey(source);
    const cached = dir ? await cachedSize(dir, key) : -1;
    if (cached >= 0) {  // OPFS: one synchronous read into the heap
      from = 'opfs';
      size = cached;
      ptr = allocate(size, what);
      const handle = await (await dir.getFileHandle(key)).createSyncAccessHandle();
      try {
        if (handle.getSize() !== size) throw new Error('the cached copy has the wrong size');
        const step = 64 << 20;
        for (let at = 0; at < size; at += step) {
          const n = Math.min(step, size - at);
          const got = handle.read(new Uint8Array(memory.buffer, ptr + at, n), { at });
          if (got !== n) throw new Error(`the cached copy ended early (${at + got} of ${size} bytes)`);
          progress(from, at + n, size, t0);
        }
      } finally {
        handle.close();
      }
    } else if (msg.url) {
      const response = await fetch(msg.url);
      if (!response.ok) throw new Error(`${msg.url}: HTTP ${response.status} ${response.statusText}`);
      size = Number(response.headers.get('Content-Length'));
      if (!size) throw new Error(`${msg.url}: the server did not say how long the file is (no Content-Length)`);
      ptr = allocate(size, what);
      await streamInto(response.body.getReader(), ptr, size, what, (at) => progress(from, at, size, t0));
    } else {
      from = 'file';
      size = msg.file.size;
      ptr = allocate(size, what);
      await streamInto(msg.file.stream().getReader(), ptr, size, what, (at) => progress(from, at, size, t0));
    }
    if (size === 0) throw new Error(`${what} is empty`);
    const bytesSeconds = (performance.now() - t0) / 1000;
    const rc = api.load(ptr, size, what, msg.threads);
    const adopted = ptr;
    ptr = 0;  // g3_load owns the buffer now, whatever happened
    if (rc !== 0) throw new Error(json(api.result()).error);
    heapPeak = Math.max(heapPeak, memory.buffer.byteLength);
    const info = json(api.info());
    post({ type: 'loaded', info, source: from, seconds: (performance.now() - t0) / 1000, bytesSeconds,
           heapBytes: memory.buffer.byteLength, heapPeak });
    if (dir && from !== 'opfs' && writerState) {  // keep a copy for the next visit, off this thread
      Atomics.store(writerState, 0, 1);
      post({ type: 'cache-me', memory, ptr: adopted, size, key });
    }
  } catch (e) {
    if (ptr) api.free(ptr);
    post({ type: 'error', where: 'load', message: String(e.message || e) });
  }
}

async function clearCache() {
  stopWriter();
  try {
    const root = await navigator.storage.getDirectory();
    await root.removeEntry('gemma3-models', { recursive: true });
    post({ type: 'cache-cleared' });
  } catch (e) {
    post({ type: 'cache-cleared', message: String(e.message || e) });
  }
}

// ---- generation ----
function generate(msg) {
  Atomics.store(stopFlag, stopIndex, 0);
  const begun = json(api.begin(msg.text, msg.chat ? 1 : 0, msg.reset ? 1 : 0, msg.temperature, msg.topK, msg.topP,
                               msg.seed, msg.maxTokens, msg.context, msg.recordAttention ? 1 : 0,
                               msg.ignoreEos ? 1 : 0));
  if (begun.error) { post({ type: 'error', where: 'generate', message: begun.error }); return; }
  post({ type: 'begin', ...begun });
  // Prefill chunks of up to 1024 tokens: each chunk streams (and unpacks) all the weights
  // once, so the fewer the better; 1024 bounds the activations' memory (1B: ~30 MB per
  // [T, intermediate_size] matrix), and Stop does not need small chunks (g3_stop_flag).
  const chunk = 1024;
  for (;;) {
    if (Atomics.load(stopFlag, stopIndex)) { post({ type: 'end', ...json(api.stop()) }); break; }
    const r = json(api.step(chunk));
    if (r.error) { post({ type: 'error', where: 'generate', message: r.error }); break; }
    heapPeak = Math.max(heapPeak, memory.buffer.byteLength);
    r.heapBytes = memory.buffer.byteLength;
    r.heapPeak = heapPeak;
    if (r.phase === 'prefill') {
      post({ type: 'prefill', ...r });
    } else if (r.phase === 'token') {
      post({ type: 'token', ...r });
    } else {
      post({ type: 'end', ...r });
      break;
    }
  }
}

function attention(msg) {
  const r = json(api.attention(msg.index, msg.layer, msg.head));
  if (r.error) { post({ type: 'attention', ...msg, error: r.error }); return; }
  const row = new Float32Array(memory.buffer, r.data >>> 0, r.length).slice();  // a copy off the heap
  delete r.data;
  post({ type: 'attention', ...msg, ...r, row }, [row.buffer]);
}

const ready = init().catch((e) => post({ type: 'error', where: 'init', message: String(e.message || e) }));

onmessage = async (e) => {
  await ready;
  const msg = e.data;
  try {
    switch (msg.type) {
      case 'init': writerState = new Int32Array(msg.writer); break;
      case 'load': await load(msg); break;
      case 'tokenize': {
        const r = json(api.tokenize(msg.text, msg.chat ? 1 : 0));
        post({ type: 'tokens', seq: msg.seq, ...r });
        break;
      }
      case 'generate': generate(msg); break;
      case 'attention': attention(msg); break;
      case 'threads': {
        const r = json(api.setThreads(msg.threads));
        if (r.error) post({ type: 'error', where: 'threads', message: r.error });
        else post({ type: 'info', info: r });
        break;
      }
      case 'clear-cache': await clearCache(); break;
    }
  } catch (err) {
    post({ type: 'error', where: msg.type, message: String(err.message || err) });
  }
};
