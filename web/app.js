// web/app.js -- the page: controls, streamed text, the KV gauge, the attention map and
// the tokenizer view. All model work happens in model-worker.js; this file only posts
// requests and draws the answers, so the page stays responsive while the model runs.
// window.demo holds the page's state (loads, runs, the last KV numbers and attention
// row) for anyone who wants to script it; tests/web/test_web.py reads it.
'use strict';

const $ = (id) => document.getElementById(id);
const demo = window.demo = { state: 'starting', info: null, progress: null, loads: [], runs: [], kv: null,
                             attention: null, errors: [], tokens: null, stopClickedAt: 0 };

const worker = new Worker('model-worker.js');
let stopFlag = null, stopIndex = 0;  // the Stop flag: an int32 in the module's shared memory (model-worker.js)
const writerBuffer = new SharedArrayBuffer(8);  // cache-writer.js: [0] busy, [1] abort (model-worker.js)
let writer = null;

let info = null;          // the loaded model (g3_info)
let seqPieces = [];       // the conversation's token pieces, by position
let run = null;           // the turn being generated
let modelSpan = null;     // where its text goes
let tokSeq = 0;           // the latest tokenizer request
let recordCount = 0;      // attention records the worker holds for this conversation

// ---- small helpers ----
const mib = (b) => b >= 2 ** 20 ? (b / 2 ** 20).toFixed(2) + ' MiB' : (b / 1024).toFixed(1) + ' KiB';
const shown = (p) => p.replace(/\n/g, '\\n').replace(/\t/g, '\\t').replace(/ /g, '·');
function setState(s) { demo.state = s; document.body.dataset.state = s; }
function busy(b) {
  $('send').disabled = b || !info;
  $('stop').disabled = !b;
  $('load-url').disabled = b;
  $('model-file').disabled = b;
}
function option(select, value, text) {
  const o = document.createElement('option');
  o.value = value; o.textContent = text;
  select.appendChild(o);
}

// ---- loading ----
function load(source) {
  $('load-error').textContent = '';
  $('progress-bar').style.width = '0%';
  $('progress-text').textContent = 'starting…';
  setState('loading');
  busy(true);
  $('stop').disabled = true;
  worker.postMessage({ type: 'load', ...source, threads: Number($('threads').value) || 1, useCache: $('use-cache').checked });
}
$('load-url').onclick = () => load({ url: $('model-url').value.trim() });
$('model-file').onchange = (e) => { if (e.target.files[0]) load({ file: e.target.files[0] }); e.target.value = ''; };
const drop = $('drop-zone');
drop.ondragover = (e) => { e.preventDefault(); drop.classList.add('over'); };
drop.ondragleave = () => drop.classList.remove('over');
drop.ondrop = (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  if (e.dataTransfer.files[0]) load({ file: e.dataTransfer.files[0] });
};
$('clear-cache').onclick = () => worker.postMessage({ type: 'clear-cache' });
$('threads').onchange = () => { if (info) worker.postMessage({ type: 'threads', threads: Number($('threads').value) }); };

function showInfo(i) {
  const globals = i.layer_types.filter((t) => t === 'global').length;
  $('model-info').textContent =
    `${i.name.split('/').pop()} · ${(i.file_bytes / 1e6).toFixed(0)} MB · ${i.layers} layers (${i.layers - globals} local with a ` +
    `${i.sliding_window}-token window, ${globals} global) · hidden ${i.hidden_size} · ${i.heads} heads / ${i.kv_heads} ` +
    `KV head${i.kv_heads > 1 ? 's' : ''} of ${i.head_dim} · ${i.weights} weights · ${i.backend}`;
}

function modelLoaded(m) {
  info = demo.info = m.info;
  demo.loads.push({ source: m.source, seconds: m.seconds, bytesSeconds: m.bytesSeconds, heapBytes: m.heapBytes, heapPeak: m.heapPeak });
  showInfo(info);
  $('progress-bar').style.width = '100%';
  $('progress-text').textContent = `loaded in ${m.seconds.toFixed(2)} s from ${m.source === 'opfs' ? 'browser storage (OPFS)' : m.source}` +
    ` · wasm heap ${mib(m.heapBytes)}`;
  const layer = $('attn-layer'), head = $('attn-head');
  layer.innerHTML = ''; head.innerHTML = '';
  info.layer_types.forEach((t, i) => option(layer, i, `${i} · ${t}`));
  for (let h = 0; h < info.heads; ++h) option(head, h, String(h));
  // A base model has no chat template: completion mode, and one line saying why.
  if (!info.has_chat_template) {
    $('mode').value = 'completion';
    $('mode-note').textContent = 'This file has no chat template (a base model), so the page starts in completion ' +
      'mode: the model continues your text. Chat mode wraps it in Gemma\'s chat template anyway.';
  } else {
    $('mode').value = 'chat';
    $('mode-note').textContent = '';
  }
  newChat();
  setState('ready');
  busy(false);
  tokenize();
}

// ---- generation ----
function newChat() {
  $('transcript').innerHTML = '';
  seqPieces = [];
  run = null;
  demo.reset = true;
}
$('new-chat').onclick = newChat;

function send() {
  if (!info || demo.state === 'generating') return;
  $('gen-error').textContent = '';
  const chat = $('mode').value === 'chat';
  const text = $('prompt').value;
  const msg = {
    type: 'generate', text, chat, reset: !!demo.reset || !chat,
    temperature: Number($('temperature').value), topK: Number($('top-k').value), topP: Number($('top-p').value),
    seed: Number($('seed').value), maxTokens: Number($('max-tokens').value), context: Number($('context').value),
    recordAttention: $('record-attention').checked, ignoreEos: $('ignore-eos').checked,
  };
  demo.reset = false;
  tokenize();
  run = { ids: [], text: '', reason: null, prompt: text, chat, startedAt: performance.now(), records: [] };
  setState('generating');
  busy(true);
  worker.postMessage(msg);
}
$('send').onclick = send;
$('prompt').addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) send(); });
$('stop').onclick = () => { demo.stopClickedAt = performance.now(); Atomics.store(stopFlag, stopIndex, 1); };

function begin(m) {
  flushTokens();  // anything a failed turn left undrawn goes to that turn's text
  demo.phase = 'prefill';
  if (!m.continued) { seqPieces = []; recordCount = 0; $('transcript').innerHTML = ''; delete $('attn-summary').dataset.capped; }
  m.pieces.forEach((p, i) => { seqPieces[m.pos0 + i] = p; });
  const t = $('transcript');
  const u = document.createElement('div');
  u.className = 'user';
  u.textContent = (run.chat ? '> ' : '') + run.prompt;
  t.appendChild(u);
  modelSpan = document.createElement('div');
  modelSpan.className = 'model';
  t.appendChild(modelSpan);
  updateKv(m.kv);
}

function token(m) {
  demo.phase = 'decode';
  run.ids.push(m.id);
  run.text += m.text;
  seqPieces[m.position] = m.piece;
  const recorded = m.attention_records > recordCount ? m.attention_records - 1 : -1;  // this token's row, if kept
  recordCount = m.attention_records;
  run.records.push(recorded);
  const s = document.createElement('span');
  s.className = 'gen';
  s.textContent = m.text;
  s.dataset.record = recorded;
  s.title = `generated token ${run.ids.length - 1}: id ${m.id} "${m.piece}"`;
  s.onclick = () => { if (recorded >= 0) { $('attn-token').value = recorded; requestAttention(); } };
  pending.spans.appendChild(s);
  pending.last = m;
  demo.kv = m.kv;
  if (!pending.timer) pending.timer = setTimeout(flushTokens, kDrawEveryMs);
}

// The page draws the streamed tokens, the speed line and the KV gauge at most every
// kDrawEveryMs, not per token: each draw lays out and paints the page, and on a machine
// with as many cores as model threads that work is taken from the model. Drawing per
// token cost the 1B-shaped decode about 10 % in headless Chromium on 2 cores.
const kDrawEveryMs = 200;
const pending = { spans: document.createDocumentFragment(), last: null, timer: 0 };
function flushTokens() {
  clearTimeout(pending.timer);
  pending.timer = 0;
  if (!pending.last) return;
  if (modelSpan) modelSpan.appendChild(pending.spans);
  pending.spans = document.createDocumentFragment();
  $('transcript').scrollTop = $('transcript').scrollHeight;
  speed(pending.last);
  updateKv(pending.last.kv);
  pending.last = null;
}

function capNote(m) {
  if (m.attention_capped)
    $('attn-summary').dataset.capped = 'attention recording stopped: the rows kept so far fill 256 MiB';
}

function end(m) {
  flushTokens();
  capNote(m);
  if (modelSpan && m.text) modelSpan.appendChild(document.createTextNode(m.text));
  run.reason = m.reason;
  run.text += m.text || '';
  run.stats = m;
  run.endedAt = performance.now();
  if (m.reason === 'stopped' && demo.stopClickedAt) run.stopLatencyMs = run.endedAt - demo.stopClickedAt;
  const e = document.createElement('div');
  e.className = 'end';
  e.textContent = `[${m.reason}]`;
  if (modelSpan) modelSpan.appendChild(e);
  demo.runs.push(run);
  if (m.kv) updateKv(m.kv);
  if (m.prefill_seconds !== undefined) speed(m);
  setState('ready');
  busy(false);
  if (run.records.some((r) => r >= 0)) requestAttention();
}

function speed(m) {
  const pre = m.prefill_seconds > 0 ? m.prefill_tokens / m.prefill_seconds : 0;
  const dec = m.decode_seconds > 0 ? m.decode_calls / m.decode_seconds : 0;
  demo.speed = { prefill: pre, decode: dec };
  $('speed').textContent = `prefill ${m.prefill_tokens} tok at ${pre.toFixed(1)} tok/s · decode ${m.decode_calls} tok at ` +
    `${dec.toFixed(1)} tok/s · ${info ? info.threads : '?'} threads`;
}

// ---- the KV gauge ----
function updateKv(kv) {
  if (!kv) return;
  demo.kv = kv;
  const top = Math.max(kv.all_global_bytes, 1);
  $('kv-sliding').style.width = (100 * kv.sliding_bytes / top) + '%';
  $('kv-global').style.width = (100 * kv.global_bytes / top) + '%';
  $('kv-all').style.width = (100 * kv.all_global_bytes / top) + '%';
  $('kv-sliding-text').textContent = mib(kv.sliding_bytes);
  $('kv-global-text').textContent = mib(kv.global_bytes);
  $('kv-all-text').textContent = mib(kv.all_global_bytes);
  const held = kv.sliding_bytes + kv.global_bytes;
  $('kv-summary').textContent = `${kv.tokens} tokens: ${mib(held)} held (${kv.dtype}); an all-global cache would hold ` +
    `${mib(kv.all_global_bytes)}${held > 0 ? `, ${(kv.all_global_bytes / held).toFixed(2)}x more` : ''}. ` +
    `Reserved for ${kv.max_tokens} positions: ${mib(kv.reserved_bytes)}.`;
}

// ---- the attention map ----
function requestAttention() {
  if (!info) return;
  worker.postMessage({ type: 'attention', index: Number($('attn-token').value), layer: Number($('attn-layer').value),
                       head: Number($('attn-head').value) });
}
['attn-token', 'attn-layer', 'attn-head'].forEach((id) => { $(id).onchange = requestAttention; });

function drawAttention(m) {
  demo.attention = m;
  document.querySelectorAll('#transcript .gen.chosen').forEach((e) => e.classList.remove('chosen'));
  if (m.error) {
    $('attn-summary').textContent = m.error;
    $('attn-strip').innerHTML = '';
    return;
  }
  document.querySelectorAll(`#transcript .gen[data-record="${m.index}"]`).forEach((e) => e.classList.add('chosen'));
  const row = m.row, n = row.length, p = m.position;
  let max = 0, arg = 0;
  for (let j = 0; j < n; ++j) if (row[j] > max) { max = row[j]; arg = j; }
  // Many heads park most of their weight on <bos> (an "attention sink"); the colours are
  // scaled to the strongest of the other positions, so the rest of the row stays visible.
  let rest = 0;
  for (let j = 1; j < n; ++j) rest = Math.max(rest, row[j]);
  const scale = rest > 0 ? rest : max;
  const shade = (v) => Math.min(1, Math.sqrt(v / scale)).toFixed(3);
  const first = m.sliding ? Math.max(0, p - m.window + 1) : 0;
  const heat = getComputedStyle(document.documentElement).getPropertyValue('--heat').trim();
  // Overview: one column per position, so a local layer's window shows as a band.
  const c = $('attn-overview'), g = c.getContext('2d');
  c.width = Math.max(200, Math.min(2000, n));
  g.clearRect(0, 0, c.width, c.height);
  for (let x = 0; x < c.width; ++x) {
    const j0 = Math.floor(x * n / c.width), j1 = Math.max(j0 + 1, Math.floor((x + 1) * n / c.width));
    let v = 0;
    for (let j = j0; j < j1; ++j) v = Math.max(v, row[j]);
    g.fillStyle = `rgba(${heat}, ${shade(v)})`;
    g.fillRect(x, 0, 1, c.height);
  }
  if (first > 0) {  // the window's first key
    g.fillStyle = 'rgb(234, 134, 0)';
    g.fillRect(Math.floor(first * c.width / n), 0, 2, c.height);
  }
  $('attn-summary').textContent = ($('attn-summary').dataset.capped ? $('attn-summary').dataset.capped + '. ' : '') +
    `generated token ${m.index} was produced by the query at position ${p} · layer ${m.layer} ` +
    (m.sliding ? `(local: keys ${first}..${p}, a ${m.window}-token window; the ${first} before it get 0)` : '(global: keys 0..' + p + ')') +
    ` · head ${m.head} · row sums to ${m.sum.toFixed(6)} · strongest: position ${arg} "${shown(seqPieces[arg] || '?')}" (${max.toFixed(3)})` +
    (arg === 0 && n > 1 ? `; colours scaled to the strongest other position (${rest.toFixed(3)})` : '');
  const strip = $('attn-strip');
  strip.innerHTML = '';
  const frag = document.createDocumentFragment();
  for (let j = 0; j < n; ++j) {
    const s = document.createElement('span');
    s.textContent = shown(seqPieces[j] !== undefined ? seqPieces[j] : '?');
    s.style.background = `rgba(${heat}, ${shade(row[j])})`;
    s.title = `position ${j}: ${row[j].toExponential(3)}`;
    if (j < first) s.className = 'out';
    frag.appendChild(s);
  }
  strip.appendChild(frag);
}

// ---- the tokenizer view ----
let tokTimer = 0;
function tokenize() {
  clearTimeout(tokTimer);
  tokTimer = setTimeout(() => {
    if (info) worker.postMessage({ type: 'tokenize', text: $('prompt').value, chat: $('mode').value === 'chat', seq: ++tokSeq });
  }, 150);
}
$('prompt').addEventListener('input', tokenize);
$('mode').addEventListener('change', () => { demo.reset = true; tokenize(); });
function drawTokens(m) {
  if (m.seq !== tokSeq) return;
  demo.tokens = m;
  const v = $('tok-view');
  v.innerHTML = '';
  if (m.error) { $('tok-summary').textContent = m.error; return; }
  $('tok-summary').textContent = `${m.ids.length} tokens (${$('mode').value === 'chat' ? 'chat template, as a first turn' : 'raw text'})`;
  const frag = document.createDocumentFragment();
  m.ids.forEach((id, i) => {
    const s = document.createElement('span');
    s.textContent = shown(m.pieces[i]);
    const small = document.createElement('small');
    small.textContent = id;
    s.appendChild(small);
    frag.appendChild(s);
  });
  v.appendChild(frag);
}

// ---- messages from the worker ----
worker.onmessage = (e) => {
  const m = e.data;
  switch (m.type) {
    case 'ready': {
      const hc = m.hardwareConcurrency || 1;
      for (let t = 1; t <= hc; ++t) option($('threads'), t, String(t));
      $('threads').value = String(Math.min(hc, 8));
      $('env').textContent = `${hc} hardware threads · cross-origin isolated: ${m.isolated ? 'yes' : 'NO (serve with web/serve.py)'}` +
        ` · OPFS: ${m.opfs ? 'yes' : 'no'}`;
      stopFlag = new Int32Array(m.memory.buffer);
      stopIndex = m.stopIndex;
      worker.postMessage({ type: 'init', writer: writerBuffer });
      setState('idle');
      busy(false);
      $('send').disabled = true;
      if (new URLSearchParams(location.search).get('autoload') !== '0') load({ url: $('model-url').value.trim() });
      break;
    }
    case 'progress': {
      demo.progress = m;
      const pct = m.total ? 100 * m.loaded / m.total : 0;
      $('progress-bar').style.width = pct + '%';
      $('progress-text').textContent = `${(m.loaded / 1e6).toFixed(1)} / ${(m.total / 1e6).toFixed(1)} MB · ` +
        `${m.mbps.toFixed(0)} MB/s · ETA ${m.eta !== null ? m.eta.toFixed(1) + ' s' : '?'} · from ` +
        `${m.source === 'opfs' ? 'browser storage (OPFS)' : m.source}`;
      break;
    }
    case 'loaded': modelLoaded(m); break;
    case 'cache-me': {  // the model worker's heap buffer, written to OPFS by a Worker of the page's
      if (!writer) {
        writer = new Worker('cache-writer.js');
        writer.onmessage = (e) => { demo.cached = e.data; };
      }
      writer.postMessage({ memory: m.memory, ptr: m.ptr, size: m.size, key: m.key, state: writerBuffer });
      break;
    }
    case 'cache-cleared': demo.cacheCleared = true; $('progress-text').textContent = m.message || 'stored models forgotten'; break;
    case 'info': info = demo.info = m.info; showInfo(info); break;
    case 'tokens': drawTokens(m); break;
    case 'begin': begin(m); break;
    case 'prefill': updateKv(m.kv); speed(m); break;
    case 'token': token(m); break;
    case 'end': end(m); break;
    case 'attention': drawAttention(m); break;
    case 'error': {
      demo.errors.push(m);
      if (m.where === 'load') {
        $('load-error').textContent = `Could not load the model: ${m.message}`;
        $('progress-text').textContent = info ? 'the previous model is gone: load another file' : '';
        info = demo.info = null;
        setState('idle');
        busy(false);
        $('send').disabled = true;
      } else {
        $('gen-error').textContent = m.message;
        if (run && !run.reason) { run.reason = 'error'; run.error = m.message; demo.runs.push(run); }
        setState(info ? 'ready' : 'idle');
        busy(false);
      }
      break;
    }
  }
};
worker.onerror = (e) => { $('load-error').textContent = `The model worker failed: ${e.message}`; };
if (!self.crossOriginIsolated)
  $('env').textContent = 'This page is not cross-origin isolated, so it has no threads: serve it with web/serve.py (make web-run).';
