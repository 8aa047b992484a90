#!/usr/bin/env python3
"""Puts a model file in the page cache in 2 MiB pieces, so that an mmap of it can use 2 MiB pages.

    python3 scripts/page-cache.py FILE...            # report how much of each maps with 2 MiB pages
    python3 scripts/page-cache.py --evict FILE...    # drop FILE's cached pages, re-read them huge, report

Why: a decode step streams every weight once, and with 4 KiB pages the TLB misses cost bandwidth (on the
2-vCPU Zen 4 VM of docs/performance.md a 1-thread read of the 270M GGUF ran at 17.7 GB/s with 4 KiB
pages and 26-29 GB/s with 2 MiB pages). Linux maps a file with 2 MiB entries only where its page cache
holds 2 MiB folios. A file that was just written (scripts/fetch-model.sh assembles the model with `cat`)
or copied sits in the cache in small folios, and stays so until its pages are dropped. --evict writes the
file's dirty pages back (fsync), drops its clean cached pages (posix_fadvise DONTNEED; pages that another
running process has mapped stay), then maps it with madvise(MADV_HUGEPAGE) and touches every page, which
reads it back in 2 MiB folios where the kernel and file system allow (ext4 on Linux 6.x does).

Linux only; elsewhere it says so and exits 0. Never fails a build: problems are printed, exit status 0.
"""

from __future__ import annotations

import mmap
import os
import sys

HUGE = 2 << 20


def smaps_pmd_kib(matches) -> int:
    """Sum of FilePmdMapped (KiB) over this process's mappings whose /proc/self/smaps header line
    ("start-end perms offset dev inode path") satisfies matches(line); -1 if none does or smaps is unreadable.
    (bench/compare_llamacpp.py uses it too.)"""
    try:
        with open("/proc/self/smaps") as f:
            inside, found, kib = False, False, 0
            for line in f:
                head = line.split(" ", 1)[0]
                if "-" in head and all(c in "0123456789abcdef-" for c in head):
                    inside = matches(line.rstrip("\n"))
                    found = found or inside
                elif inside and line.startswith("FilePmdMapped:"):
                    kib += int(line.split()[1])
            return kib if found else -1
    except OSError:
        return -1


def pmd_mapped_bytes(start: int) -> int:
    """FilePmdMapped of this process's mapping that starts at `start` (bytes), -1 if not found."""
    kib = smaps_pmd_kib(lambda line: int(line.split("-", 1)[0], 16) == start)
    return kib * 1024 if kib >= 0 else -1


def touch_and_report(path: str) -> str:
    size = os.path.getsize(path)
    if size == 0:
        return "empty"
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ)
    try:
        if hasattr(m, "madvise") and hasattr(mmap, "MADV_HUGEPAGE"):
            m.madvise(mmap.MADV_HUGEPAGE)
        view = memoryview(m)
        total = 0
        for off in range(0, size, 4096):  # one byte per 4 KiB page: faults every page in
            total += view[off]
        view.release()
        start = _mapping_start(m)
        huge = pmd_mapped_bytes(start) if start is not None else -1
    finally:
        m.close()
    mib = lambda b: b / (1 << 20)
    if huge < 0:
        return f"{mib(size):.1f} MiB read; 2 MiB mappings unknown (no /proc/self/smaps entry)"
    return f"{mib(size):.1f} MiB read; {mib(huge):.1f} MiB of it mapped with 2 MiB pages ({100 * huge / size:.0f}%)"


def _mapping_start(m: mmap.mmap) -> int | None:
    # The address of a read-only mmap's buffer: ctypes' from_buffer wants a writable one, so ask the C
    # buffer protocol (PyObject_GetBuffer, every CPython 3.x) for the pointer.
    import ctypes

    class Py_buffer(ctypes.Structure):
        _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.py_object), ("len", ctypes.c_ssize_t),
                    ("itemsize", ctypes.c_ssize_t), ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                    ("format", ctypes.c_char_p), ("shape", ctypes.c_void_p), ("strides", ctypes.c_void_p),
                    ("suboffsets", ctypes.c_void_p), ("internal", ctypes.c_void_p)]
    pb = Py_buffer()
    get = ctypes.pythonapi.PyObject_GetBuffer
    get.argtypes = [ctypes.py_object, ctypes.POINTER(Py_buffer), ctypes.c_int]
    rel = ctypes.pythonapi.PyBuffer_Release
    rel.argtypes = [ctypes.POINTER(Py_buffer)]
    if get(m, ctypes.byref(pb), 0) != 0:
        return None
    try:
        return pb.buf
    finally:
        rel(ctypes.byref(pb))


def evict(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # dirty pages cannot be dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--evict"]
    if not args or any(a in ("-h", "--help") for a in args):
        print(__doc__.strip())
        return 0
    if not sys.platform.startswith("linux"):
        print("page-cache: Linux only; nothing done")
        return 0
    for path in args:
        try:
            if "--evict" in argv:
                evict(path)
            print(f"page-cache: {path}: {touch_and_report(path)}")
        except OSError as e:
            print(f"page-cache: {path}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
