#!/usr/bin/env python3
"""Seed corpora for the image, config_json, tokenizer_model and tokenizer_text fuzz targets
(fuzz/make_corpus.cpp writes the GGUF and safetensors ones). Every seed stays under 16 KB.

    python3 fuzz/make_corpus.py            # writes fuzz/corpus/{image,config_json,tokenizer_model,tokenizer_text}/
Needs only the Python standard library; the image seeds are copies of test fixtures plus
hand-made headers.
"""
import json
import os
import shutil
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "tests", "fixtures")
OUT = os.path.join(ROOT, "fuzz", "corpus")


def write(target: str, name: str, data: bytes) -> None:
    os.makedirs(os.path.join(OUT, target), exist_ok=True)
    assert len(data) <= 16384, (target, name, len(data))
    with open(os.path.join(OUT, target, name), "wb") as f:
        f.write(data)


def images() -> None:
    src = os.path.join(FIX, "vision_images")
    for d in (src, os.path.join(src, "pillow")):
        for n in sorted(os.listdir(d)):
            if n.endswith((".png", ".jpg", ".bmp")):
                with open(os.path.join(d, n), "rb") as f:
                    write("image", n, f.read())
    gif = (b"GIF89a" + struct.pack("<HH", 2, 2) + bytes([0x80, 0, 0, 0, 0, 0, 255, 255, 255]) +
           bytes([0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 0x01, 0, 0x3B]))
    write("image", "tiny.gif", gif)
    write("image", "bomb.gif", gif[:6] + struct.pack("<HH", 14344, 8272) + gif[10:])
    write("image", "tiny.ppm", b"P6\n# a comment\n2 2\n255\n" + bytes(range(12)))
    write("image", "tiny16.pgm", b"P5 2 1 65535 " + bytes([1, 2, 255, 255]))
    tga = bytes([0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2, 0, 24, 0]) + bytes(range(12))
    write("image", "tiny.tga", tga)
    with open(os.path.join(src, "photo.jpg"), "rb") as f:
        jpg = bytearray(f.read())
    i = jpg.index(b"\xff\xc4")
    for k in range(16):
        jpg[i + 5 + k] = 20
    write("image", "huffman_320_codes.jpg", bytes(jpg))


def configs() -> None:
    for d in ("tiny_global_last", "tiny_local_last", "tiny_sharded_f16", "vision_tiny"):
        with open(os.path.join(FIX, d, "config.json"), "rb") as f:
            write("config_json", d + ".json", f.read())
    write("config_json", "empty_object.json", b"{}")
    write("config_json", "nested_text_config.json",
          json.dumps({"model_type": "gemma3", "text_config": {"hidden_size": 64, "num_hidden_layers": 2},
                      "vision_config": {"hidden_size": 32}}).encode())
    write("config_json", "escapes.json", b'{"model_type": "gemma3_text", "x": "\\ud83d\\ude42\\n", "n": 1e3}')


def varint(v: int) -> bytes:
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        out += bytes([b | (0x80 if v else 0)])
        if not v:
            return out


def field(num: int, wire: int, payload: bytes) -> bytes:
    key = varint(num << 3 | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def piece(text: bytes, score: float, typ: int) -> bytes:
    body = field(1, 2, text) + field(2, 5, struct.pack("<f", score))
    if typ != 1:
        body += field(3, 0, varint(typ))
    return field(1, 2, body)


def tokenizer_models() -> None:
    pieces = [(b"<pad>", 0.0, 3), (b"<eos>", 0.0, 3), (b"<bos>", 0.0, 3), (b"<unk>", 0.0, 2)]
    pieces += [(f"<0x{b:02X}>".encode(), 0.0, 6) for b in range(256)]
    pieces += [(b"\xe2\x96\x81", -1.0, 1), (b"a", -2.0, 1), (b"b", -3.0, 1), (b"ab", -4.0, 1),
               (b"\n\n", 0.0, 4), (b"<start_of_turn>", 0.0, 3)]
    trainer = field(40, 0, varint(3)) + field(41, 0, varint(2)) + field(42, 0, varint(1)) + field(43, 0, varint(0))
    normalizer = field(3, 0, varint(0))
    model = b"".join(piece(*p) for p in pieces) + field(2, 2, trainer) + field(3, 2, normalizer)
    write("tokenizer_model", "small.model", model)
    write("tokenizer_model", "pieces_only.model", b"".join(piece(*p) for p in pieces[:8]))
    write("tokenizer_model", "bad_type.model", piece(b"x", 0.0, 9))
    write("tokenizer_model", "truncated.model", model[:37])


def texts() -> None:
    with open(os.path.join(FIX, "tokenizer", "corpus.json"), encoding="utf-8") as f:
        corpus = json.load(f)
    for i, t in enumerate(corpus[:24]):
        write("tokenizer_text", f"corpus_{i:02d}.txt", t.encode("utf-8"))
    write("tokenizer_text", "invalid_utf8.txt", b"ab\xff\xfe\xc3(\xe2\x82 \xf0\x9f\x99 end")
    write("tokenizer_text", "specials.txt", b"<bos><start_of_turn>user\nab ab<end_of_turn>\n\n<b>  x")
    write("tokenizer_text", "nul_and_controls.txt", b"a\x00b\x01\x7f\tc\r\n")


if __name__ == "__main__":
    images()
    configs()
    tokenizer_models()
    texts()
