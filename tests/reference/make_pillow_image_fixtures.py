#!/usr/bin/env python3
"""Image files and the RGB pixels Pillow decodes from them, for tests/test_vision_image.cpp.

transformers' Gemma 3 processor sees what Pillow decodes, then convert_to_rgb (RGBA composited
over white). For each file here, NAME.rgb holds those pixels: height * width * 3 bytes, and
index.txt lists "NAME WIDTH HEIGHT what-it-is". The files are the lossless kinds where a decoder
can disagree with Pillow: 16-bit grayscale PNG (Pillow clips to 255), 32-bit BMP without bit
fields (Pillow reads the 4th byte as padding), and BMP header variants (16-bit 5-5-5 and 5-6-5,
32-bit with an alpha mask in a V4 header). jpeg.txt lists JPEG files in the same way.

    pip install pillow numpy && python3 tests/reference/make_pillow_image_fixtures.py
"""
import os
import struct
import zlib

import numpy as np
import PIL
from PIL import Image

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "vision_images", "pillow")


def convert_to_rgb(im: Image.Image) -> np.ndarray:
    """transformers.image_transforms.convert_to_rgb on a PIL image."""
    if im.mode == "RGB":
        return np.asarray(im)
    rgba = im.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255))
    return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))


def pattern(h: int, w: int, c: int, seed: int, hi: int = 256) -> np.ndarray:
    y, x, k = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
    return ((x * 37 + y * 101 + k * 53 + seed * 7919 + (x * y) % 13 * 311) % hi).astype(np.int64)


def bmp(path: str, w: int, h: int, bpp: int, header: int, compression: int, masks: list, rows: list) -> None:
    """A bottom-up BMP with the given DIB header size and (optional) bit masks."""
    row_bytes = [bytes(r) + b"\0" * ((-len(r)) % 4) for r in rows]
    pixels = b"".join(reversed(row_bytes))
    dib = struct.pack("<IiiHHIIiiII", header, w, h, 1, bpp, compression, len(pixels), 2835, 2835, 0, 0)
    extra = b"".join(struct.pack("<I", m) for m in masks)
    if header == 108:  # BITMAPV4HEADER: masks r, g, b, a, then colour space and endpoints
        dib += extra + b"BGRs" + b"\0" * (108 - 40 - 16 - 4)
        extra = b""
    offset = 14 + len(dib) + len(extra)
    with open(path, "wb") as f:
        f.write(b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + dib + extra + pixels)


def png16(path: str, pixels: np.ndarray, color_type: int) -> None:
    """A 16-bit PNG (Pillow writes only 8-bit colour): pixels [h, w, c] uint16."""
    h, w = pixels.shape[:2]
    raw = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    index = []

    def add(name: str, what: str) -> None:
        im = Image.open(os.path.join(OUT, name))
        rgb = convert_to_rgb(im)
        rgb.astype(np.uint8).tofile(os.path.join(OUT, name + ".rgb"))
        index.append(f"{name} {rgb.shape[1]} {rgb.shape[0]} {what} (Pillow mode {im.mode})")

    for w, h, hi, seed in [(17, 5, 1024, 1), (1, 1, 65536, 2), (9, 13, 65536, 3), (40, 3, 300, 4)]:
        name = f"gray16_{w}x{h}.png"
        Image.fromarray(pattern(h, w, 1, seed, hi)[..., 0].astype(np.uint16)).save(os.path.join(OUT, name))
        add(name, f"16-bit grayscale PNG, values below {hi}")

    for name, ct, c in [("rgb16.png", 2, 3), ("rgba16.png", 6, 4), ("gray_alpha16.png", 4, 2)]:
        png16(os.path.join(OUT, name), pattern(5, 6, c, 8, 65536).astype(np.uint16), ct)
        add(name, f"16-bit PNG, colour type {ct}")

    rgba = pattern(7, 11, 4, 5).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(os.path.join(OUT, "rgba_as_bgrx32.bmp"))
    add("rgba_as_bgrx32.bmp", "32-bit BMP as Pillow writes RGBA (BI_RGB, 40-byte header)")

    p = pattern(6, 5, 3, 6)
    rows555 = [[b for x in range(5) for b in struct.pack("<H", (int(p[y, x, 0]) >> 3) << 10 | (int(p[y, x, 1]) >> 3) << 5
                                                         | int(p[y, x, 2]) >> 3)] for y in range(6)]
    bmp(os.path.join(OUT, "rgb555.bmp"), 5, 6, 16, 40, 0, [], rows555)
    add("rgb555.bmp", "16-bit BMP, 5-5-5 (BI_RGB)")
    rows565 = [[b for x in range(5) for b in struct.pack("<H", (int(p[y, x, 0]) >> 3) << 11 | (int(p[y, x, 1]) >> 2) << 5
                                                         | int(p[y, x, 2]) >> 3)] for y in range(6)]
    bmp(os.path.join(OUT, "rgb565.bmp"), 5, 6, 16, 40, 3, [0xF800, 0x07E0, 0x001F], rows565)
    add("rgb565.bmp", "16-bit BMP, 5-6-5 (BI_BITFIELDS)")
    q = pattern(4, 6, 4, 7)
    rows_v4 = [[int(q[y, x, c]) for x in range(6) for c in (2, 1, 0, 3)] for y in range(4)]
    bmp(os.path.join(OUT, "bgra32_v4.bmp"), 6, 4, 32, 108, 3, [0xFF0000, 0xFF00, 0xFF, 0xFF000000], rows_v4)
    add("bgra32_v4.bmp", "32-bit BMP with an alpha mask (BI_BITFIELDS, V4 header)")

    with open(os.path.join(OUT, "index.txt"), "w") as f:
        f.write(f"# Pillow {PIL.__version__}: NAME WIDTH HEIGHT what (tests/reference/make_pillow_image_fixtures.py)\n")
        f.write("\n".join(index) + "\n")

    # JPEG, listed apart (jpeg.txt): the scan layouts a decoder walks differently:
    # progressive (DC first + refinement, AC bands), grayscale, no chroma subsampling,
    # 4:2:2 at an odd width, restart markers, CMYK (Pillow reads it Adobe-inverted).
    index = []
    y, x = np.meshgrid(np.arange(23), np.arange(37), indexing="ij")
    smooth = np.stack([(x * 6 + y * 3) % 256, 128 + 100 * np.sin(x / 5.0) * np.cos(y / 4.0), (y * 9 + 40) % 256], -1)
    smooth = np.clip(smooth, 0, 255).astype(np.uint8)
    jpegs = [
        ("progressive.jpg", "RGB", dict(progressive=True, quality=90), "progressive RGB, 4:2:0"),
        ("progressive_gray.jpg", "L", dict(progressive=True, quality=90), "progressive grayscale"),
        ("baseline_444.jpg", "RGB", dict(quality=95, subsampling=0), "baseline RGB, 4:4:4"),
        ("baseline_422.jpg", "RGB", dict(quality=85, subsampling=1), "baseline RGB, 4:2:2"),
        ("restart.jpg", "RGB", dict(quality=90, restart_marker_blocks=2), "baseline RGB, 4:2:0, restart every 2 MCUs"),
    ]
    jpegs.append(("cmyk.jpg", "CMYK", dict(quality=90), "CMYK (Adobe marker)"))
    for name, mode, options, what in jpegs:
        im = Image.fromarray(smooth, "RGB")
        if mode != "RGB":
            im = im.convert(mode)
        im.save(os.path.join(OUT, name), "JPEG", **options)
        add(name, "JPEG, " + what)
    with open(os.path.join(OUT, "jpeg.txt"), "w") as f:
        f.write(f"# Pillow {PIL.__version__} (libjpeg-turbo): NAME WIDTH HEIGHT what (tests/reference/make_pillow_image_fixtures.py)\n")
        f.write("\n".join(index) + "\n")


if __name__ == "__main__":
    main()
