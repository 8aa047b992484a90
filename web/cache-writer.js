// web/cache-writer.js -- writes a model the page just loaded into the Origin Private
// File System, in the background, so that the next visit reads it from disk.
//
// The page starts it and passes on what model-worker.js sends: the wasm memory (shared),
// the model's buffer in it and its size. It reads the bytes straight from that heap,
// 16 MiB at a time. state[0] is 1 while it writes; the model worker sets state[1] to
// abort (before it frees that buffer) and waits for state[0] to drop to 0. A file
// only counts as cached once its ".complete" marker (holding the size) exists.
'use strict';

onmessage = async (e) => {
  const { memory, ptr, size, key, state } = e.data;
  const flags = new Int32Array(state);
  const t0 = performance.now();
  let handle = null, ok = false, message = '';
  let dir = null;
  try {
    dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('gemma3-models', { create: true });
    await dir.removeEntry(key + '.complete').catch(() => {});
    handle = await (await dir.getFileHandle(key, { create: true })).createSyncAccessHandle();
    handle.truncate(0);
    const step = 16 << 20;
    let scratch = null;  // used only if write() refuses a view of shared memory
    for (let at = 0; at < size; at += step) {
      if (Atomics.load(flags, 1)) throw new Error('aborted: another model is being loaded');
      const n = Math.min(step, size - at);
      let view = new Uint8Array(memory.buffer, ptr + at, n);
      let wrote;
      try {
        wrote = scratch ? -1 : handle.write(view, { at });
      } catch (err) {
        wrote = -1;
      }
      if (wrote < 0) {
        if (!scratch) scratch = new Uint8Array(step);
        const copy = scratch.subarray(0, n);
        copy.set(view);
        wrote = handle.write(copy, { at });
      }
      if (wrote !== n) throw new Error(`wrote ${wrote} of ${n} bytes (is the disk quota full?)`);
    }
    handle.flush();
    handle.close();
    handle = null;
    const marker = await (await dir.getFileHandle(key + '.complete', { create: true })).createSyncAccessHandle();
    marker.truncate(0);
    marker.write(new TextEncoder().encode(String(size)), { at: 0 });
    marker.flush();
    marker.close();
    ok = true;
  } catch (err) {
    message = String(err.message || err);
    if (handle) handle.close();
    if (dir) await dir.removeEntry(key).catch(() => {});
  }
  Atomics.store(flags, 0, 0);
  Atomics.notify(flags, 0);
  postMessage({ ok, key, size, seconds: (performance.now() - t0) / 1000, message });
};
