#!/usr/bin/env python3
"""Generate the Gemma 3 *vision* reference fixtures under tests/fixtures/vision*/ from Hugging Face `transformers`.

Not run by CI: what it writes is committed. Re-run by hand (see README.md beside this file) only to change a
fixture. CPU, float32, eager attention, fixed seeds, one thread; byte-for-byte deterministic with the versions
in requirements.txt (plus pillow, which the image processor's PIL path needs).

Image processor: `Gemma3ImageProcessorPil` (transformers 5.24: `AutoImageProcessor` picks the torchvision class
`Gemma3ImageProcessor` whenever torchvision is installed; the PIL class is the one the released
preprocessor_config.json was written for, and the one this library matches). It is instantiated directly with
the released preprocessor_config.json values (resample 2 = BILINEAR, rescale 1/255, mean = std = 0.5) and the
Gemma3Processor's Pan-and-Scan defaults (min crop 256, max 4 crops, ratio 1.2).

Writes:
  tests/fixtures/vision_images/*.png, *.jpg      small committed test images (file decoding, RGB conversion)
  tests/fixtures/vision_pixels/expected.safetensors + meta.json
      pixel values from the processor at 56x56 (full tensors) for every test image, with and without
      Pan-and-Scan; at 896x896 an FNV-1a 64 hash of every resized uint8 image plus three rows of it;
      HF's Pan-and-Scan crop boxes for a list of image sizes and options; PIL's decode of the JPEG.
  tests/fixtures/vision_tiny/    a tiny random Gemma3ForConditionalGeneration checkpoint folder
      (config.json, model.safetensors as save_pretrained writes it) + expected.safetensors + meta.json:
      a prompt with two images (the first Pan-and-Scanned into 3 crops: 5 image groups), its pixel values,
      vision tower hidden states, projector output, merged input embeddings, per-layer text hidden states,
      logits, and a greedy continuation.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import PIL
import PIL.Image
import safetensors
import torch
import transformers
from safetensors.torch import save_file
from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessorPil

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "fixtures"))

SEED = 4325  # first seed from 4321 whose greedy continuation is not one token repeated
WEIGHT_STD = 0.3
EMBED_STD = 0.1
SMALL = 56  # the tiny model's image_size; every pixel fixture is stored in full at this size
BIG = 896  # the released size; hashed + three rows
BIG_ROWS = [0, 447, 895]

# Released preprocessor_config.json + Gemma3Processor defaults (transformers' image_processing_gemma3.py).
PROC_KW = dict(
    resample=2,
    do_rescale=True,
    rescale_factor=1 / 255,
    do_normalize=True,
    image_mean=[0.5, 0.5, 0.5],
    image_std=[0.5, 0.5, 0.5],
    do_convert_rgb=True,
    pan_and_scan_min_crop_size=256,
    pan_and_scan_max_num_crops=4,
    pan_and_scan_min_ratio_to_activate=1.2,
)


def versions() -> dict:
    return {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "python": sys.version.split()[0],
    }


def write_json(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def report_folder(folder: str) -> None:
    print(f"== {folder}")
    total = 0
    for f in sorted(os.listdir(folder)):
        p = os.path.join(folder, f)
        size = os.path.getsize(p)
        total += size
        print(f"   {size:>9}  {f}  sha256:{sha256(p)[:16]}")
    print(f"   {total:>9}  total")


# --------------------------------------------------------------------------------------------------------------
# Test images. The "formula" images are integer functions of (x, y, c) that tests/test_vision_preprocess.cpp
# recomputes (gemma3_test_formula_image), so the large ones need no committed file.
# --------------------------------------------------------------------------------------------------------------


def formula_image(w: int, h: int, seed: int) -> np.ndarray:
    """[h, w, 3] uint8: a horizontal gradient (R), a vertical gradient with a 4x4 checker (G), texture (B)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    r = (x * 255 // max(w - 1, 1) + seed * 37) % 256
    g = (y * 255 // max(h - 1, 1) + ((x // 4 + y // 4) % 2) * 64) % 256
    b = (x * 7 + y * 13 + (x * y) // 3 + seed * 11) % 256
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


# name -> (w, h, seed); pan-and-scan behaviour noted
FORMULA_IMAGES = {
    "square": (40, 40, 1),  # upscaled to 56 and 896; no crops (ratio 1)
    "wide": (1001, 300, 2),  # 3 crops of 334x300, the last truncated to 333 wide
    "tall": (300, 800, 3),  # portrait: 3 crops of 300x267, the last truncated to 266 tall
    "tiny": (3, 2, 4),  # extreme upscale
    "odd": (97, 61, 5),  # downscale in one axis, upscale in the other at 56; no crops (ratio 1.59 but 97 < 512)
}


def file_images(folder: str) -> dict:
    """Small images written as files, covering the modes HF's convert_to_rgb treats differently."""
    rgb = formula_image(24, 16, 6)
    out = {}

    def save(name, img, **kw):
        path = os.path.join(folder, name)
        img.save(path, **kw)
        out[name] = path

    save("rgb.png", PIL.Image.fromarray(rgb, "RGB"))
    gray = ((np.arange(20 * 13).reshape(13, 20) * 7) % 256).astype(np.uint8)
    save("gray.png", PIL.Image.fromarray(gray, "L"))
    la = np.stack([gray, ((np.arange(20 * 13).reshape(13, 20) * 29) % 256).astype(np.uint8)], axis=-1)
    save("gray_alpha.png", PIL.Image.fromarray(la, "LA"))
    alpha = ((np.arange(24 * 16).reshape(16, 24) * 11) % 256).astype(np.uint8)
    alpha[0, :4] = 0
    alpha[1, :4] = 255
    save("rgba.png", PIL.Image.fromarray(np.concatenate([rgb, alpha[..., None]], axis=-1), "RGBA"))
    pal = PIL.Image.fromarray(rgb, "RGB").quantize(colors=16, method=PIL.Image.Quantize.MEDIANCUT, dither=0)
    save("palette.png", pal)
    save("photo.jpg", PIL.Image.fromarray(formula_image(32, 24, 7), "RGB"), quality=90)
    # A BMP too (stb_image reads it; PIL reads it the same way, no lossy step).
    save("rgb.bmp", PIL.Image.fromarray(formula_image(9, 7, 8), "RGB"))
    return out


# --------------------------------------------------------------------------------------------------------------
# Pixels
# --------------------------------------------------------------------------------------------------------------


def processor(size: int, pan_and_scan: bool) -> Gemma3ImageProcessorPil:
    return Gemma3ImageProcessorPil(size={"height": size, "width": size}, do_pan_and_scan=pan_and_scan, **PROC_KW)


def to_uint8(pixel_values: np.ndarray) -> np.ndarray:
    """Invert (k / 255 - 0.5) / 0.5 exactly: k = round((v + 1) * 127.5)."""
    k = np.rint((pixel_values.astype(np.float64) + 1.0) * 127.5)
    assert np.all(np.abs((pixel_values.astype(np.float64) + 1.0) * 127.5 - k) < 1e-3)
    return k.astype(np.uint8)


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    arr = np.frombuffer(data, dtype=np.uint8)
    # plain loop in chunks is slow in python; use numpy-free incremental but vectorised by 8? keep simple
    for byte in arr.tobytes():
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def crop_boxes(w: int, h: int, min_crop: int, max_crops: int, ratio: float) -> list[tuple[int, int, int, int]]:
    """HF's own pan_and_scan on an image whose channels hold y and x: each crop's corner gives its origin."""
    img = np.zeros((2, h, w), dtype=np.int32)
    img[0] = np.arange(h, dtype=np.int32)[:, None]
    img[1] = np.arange(w, dtype=np.int32)[None, :]
    crops = processor(SMALL, True).pan_and_scan(img, min_crop, max_crops, ratio)
    return [(int(c[1, 0, 0]), int(c[0, 0, 0]), int(c.shape[2]), int(c.shape[1])) for c in crops]  # x, y, w, h


CROP_CASES = [
    # (w, h, min_crop, max_crops, ratio)
    (1000, 800, 256, 4, 1.2),  # spec worked examples
    (1920, 1080, 256, 4, 1.2),
    (3000, 1000, 256, 4, 1.2),
    (5000, 1000, 256, 4, 1.2),
    (720, 1280, 256, 4, 1.2),
    (500, 300, 256, 4, 1.2),  # none: crop 250 < 256
    (1001, 300, 256, 4, 1.2),  # truncated last crop (333 wide)
    (300, 800, 256, 4, 1.2),  # portrait, truncated last crop (266 tall)
    (1000, 1000, 256, 4, 1.2),  # square: none
    (1199, 1000, 256, 4, 1.2),  # ratio 1.199 < 1.2: none
    (1200, 1000, 256, 4, 1.2),  # ratio exactly 1.2: activates (2 crops of 600)
    (1000, 1200, 256, 4, 1.2),  # portrait, ratio exactly 1.2
    (10000, 300, 256, 4, 1.2),  # very wide: capped at 4 crops
    (512, 256, 256, 4, 1.2),  # 2 crops of exactly 256
    (513, 256, 256, 4, 1.2),  # crop 257 wide, last 256
    (1000, 800, 256, 4, 1.5),  # PT's threshold: none
    (1280, 1024, 256, 4, 1.5),  # none
    (3000, 1000, 128, 6, 1.2),  # other options: 3 crops (ratio rounding wins)
    (6000, 1000, 128, 6, 1.2),  # 6 crops
    (6000, 1000, 1000, 6, 1.2),  # min crop 1000: 6 crops of 1000
    (6000, 999, 1000, 6, 1.2),  # crop height 999 < 1000: none
    (257, 1000, 128, 3, 1.2),  # portrait, capped at 3
    (1, 1, 256, 4, 1.2),  # degenerate
]


def make_pixels(out_root: str, images_dir: str, files: dict) -> None:
    folder = os.path.join(out_root, "vision_pixels")
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    out: dict[str, torch.Tensor] = {}
    meta_images = {}

    sources = {}
    for name, (w, h, seed) in FORMULA_IMAGES.items():
        sources[name] = PIL.Image.fromarray(formula_image(w, h, seed), "RGB")
        meta_images[name] = {"kind": "formula", "width": w, "height": h, "seed": seed}
    for fname, path in files.items():
        key = "file_" + fname.replace(".", "_")
        sources[key] = PIL.Image.open(path)
        meta_images[key] = {"kind": "file", "file": fname, "mode": sources[key].mode,
                            "width": sources[key].size[0], "height": sources[key].size[1]}

    big_names = {"square", "wide", "tall", "tiny", "file_rgba_png"}
    for key, img in sources.items():
        for pas in (False, True):
            tag = f"{key}.{'pas' if pas else 'plain'}"
            res = processor(SMALL, pas)(img, return_tensors="np")
            pv = res["pixel_values"].astype(np.float32)
            out[f"{tag}.pixel_values"] = torch.from_numpy(pv)
            out[f"{tag}.num_crops"] = torch.tensor([int(res["num_crops"][0])], dtype=torch.int64)
            meta_images[key][f"num_crops_{'pas' if pas else 'plain'}"] = int(res["num_crops"][0])
            if key in big_names and (pas or key not in ("wide", "tall")):
                big = processor(BIG, pas)(img, return_tensors="np")["pixel_values"]
                u8 = to_uint8(big)  # [n, 3, 896, 896]
                hashes = [fnv1a64(u8[i].tobytes()) for i in range(u8.shape[0])]
                # store as two uint32 halves in I64 (safetensors has U64, but keep the test reader simple)
                out[f"{tag}.big_hash"] = torch.tensor([[h >> 32, h & 0xFFFFFFFF] for h in hashes], dtype=torch.int64)
                out[f"{tag}.big_rows"] = torch.from_numpy(np.ascontiguousarray(u8[:, :, BIG_ROWS, :]))

    # Crop boxes straight from HF's pan_and_scan.
    boxes_meta = []
    for i, (w, h, mc, mx, ratio) in enumerate(CROP_CASES):
        boxes = crop_boxes(w, h, mc, mx, ratio)
        out[f"crops.{i}.case"] = torch.tensor([w, h, mc, mx], dtype=torch.int64)
        out[f"crops.{i}.ratio"] = torch.tensor([ratio], dtype=torch.float32)
        out[f"crops.{i}.boxes"] = torch.tensor(boxes if boxes else np.zeros((0, 4)), dtype=torch.int64).reshape(-1, 4)
        boxes_meta.append({"w": w, "h": h, "min_crop_size": mc, "max_num_crops": mx, "min_ratio": ratio,
                           "boxes_xywh": boxes})
    out["crops.count"] = torch.tensor([len(CROP_CASES)], dtype=torch.int64)

    # RGBA -> RGB as HF's convert_to_rgb does it: alpha_composite over white, exhaustively (value, alpha).
    v, a = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    rgba = np.stack([v, v, v, a], axis=-1).astype(np.uint8)  # [256 values, 256 alphas, 4]
    comp = transformers.image_transforms.convert_to_rgb(PIL.Image.fromarray(rgba, "RGBA"), return_numpy=True)
    out["alpha_composite_over_white"] = torch.from_numpy(np.ascontiguousarray(comp[..., 0]))  # [value, alpha] uint8

    # PIL's decode of the JPEG (stb_image's decoder differs in its IDCT / upsampling; the test reports by how much)
    out["jpeg_pil_decode"] = torch.from_numpy(np.array(PIL.Image.open(files["photo.jpg"]).convert("RGB")))

    out = {k: v.contiguous() for k, v in out.items()}
    save_file(out, os.path.join(folder, "expected.safetensors"), metadata={"format": "pt"})
    write_json(os.path.join(folder, "meta.json"), {
        "fixture": "vision_pixels",
        "versions": versions(),
        "image_processor": "transformers Gemma3ImageProcessorPil (PIL path), instantiated directly",
        "processor_kwargs": {k: (v if not isinstance(v, float) else repr(v)) for k, v in PROC_KW.items()},
        "small_size": SMALL,
        "big_size": BIG,
        "big_rows": BIG_ROWS,
        "images": meta_images,
        "crop_cases": boxes_meta,
        "tensors": {
            "<image>.<plain|pas>.pixel_values": f"F32 [1 + num_crops, 3, {SMALL}, {SMALL}] processor output at {SMALL}x{SMALL}",
            "<image>.<plain|pas>.num_crops": "I64 [1]",
            "<image>.<plain|pas>.big_hash": f"I64 [1 + num_crops, 2]: FNV-1a 64 (hi, lo 32 bits) of the uint8 CHW image "
            f"after the {BIG}x{BIG} resize, recovered exactly as round((v + 1) * 127.5)",
            "<image>.<plain|pas>.big_rows": f"U8 [1 + num_crops, 3, {len(BIG_ROWS)}, {BIG}]: rows {BIG_ROWS} of it",
            "crops.<i>.case": "I64 [w, h, min_crop_size, max_num_crops]",
            "crops.<i>.ratio": "F32 [1] min_ratio_to_activate",
            "crops.<i>.boxes": "I64 [n, 4] (x, y, w, h) of each crop, in HF's order",
            "alpha_composite_over_white": "U8 [256 value, 256 alpha]: RGB value after HF convert_to_rgb of an RGBA pixel",
            "jpeg_pil_decode": "U8 [24, 32, 3]: PIL (libjpeg) decode of vision_images/photo.jpg",
        },
    })
    report_folder(folder)


# --------------------------------------------------------------------------------------------------------------
# Tiny model
# --------------------------------------------------------------------------------------------------------------

TEXT = dict(
    vocab_size=320,
    hidden_size=48,
    intermediate_size=96,
    num_hidden_layers=3,
    layer_types=["sliding_attention", "full_attention", "sliding_attention"],
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    query_pre_attn_scalar=24,
    sliding_window=3,  # < mm_tokens_per_image (4): pins how sliding layers combine the window with the image block
    rope_parameters={
        "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1_000_000.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
    },
)
VISION = dict(
    hidden_size=32,
    intermediate_size=40,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=SMALL,
    patch_size=7,  # 8x8 = 64 patches, pooled 4x4 -> 2x2 = 4 tokens
    layer_norm_eps=1e-5,  # != 1e-6: the projector's RMSNorm and the LayerNorms must read it from the config
    vision_use_head=False,
)
MM = dict(mm_tokens_per_image=4, image_token_index=300, boi_token_index=301, eoi_token_index=302)
NEWLINE2 = 108  # "\n\n"
# Stand-ins for the tokenized Pan-and-Scan phrases (no tokenizer here; see meta.json "prompt").
PAS_BEFORE_ORIGINAL = [40, 41, 42, 43, 44]  # "Here is the original image "
PAS_BEFORE_CROPS = [45, 46, 47, 48, 49, 50]  # " and here are some crops to help you see better "
PAS_BETWEEN_CROPS = [51]  # " "
NUM_GENERATE = 4


def image_block(n: int) -> list[int]:
    return [NEWLINE2, MM["boi_token_index"]] + [MM["image_token_index"]] * n + [MM["eoi_token_index"], NEWLINE2]


def pas_block(n: int, num_crops: int) -> list[int]:
    ids = PAS_BEFORE_ORIGINAL + image_block(n) + PAS_BEFORE_CROPS + image_block(n)
    for _ in range(num_crops - 1):
        ids += PAS_BETWEEN_CROPS + image_block(n)
    return ids


def randomize_(model: torch.nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            std = EMBED_STD if name.endswith("embed_tokens.weight") else WEIGHT_STD
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32) * std)


def mask_dict(token_type_ids: torch.Tensor, rule: str) -> dict:
    """4D additive masks for each layer type under a given image rule (0 = may attend, float32 min = not).

    hf:     global  causal OR same_image;  sliding  (k > q - W) AND (causal OR same_image)   (transformers 5.24)
    or:     global  causal OR same_image;  sliding  (causal AND k > q - W) OR same_image     (the older transformers spelling)
    causal: no image rule (what HF does without token_type_ids)
    one_group: every image token in one group (transformers 4.50's bug: images see later images)
    """
    tt = token_type_ids[0]
    T = tt.numel()
    is_img = tt == 1
    prev = torch.cat([torch.tensor([False]), is_img[:-1]])
    group = torch.where(is_img, torch.cumsum((is_img & ~prev).int(), 0) - 1, torch.tensor(-1))
    if rule == "one_group":
        group = torch.where(is_img, torch.tensor(0), torch.tensor(-1))
    q = torch.arange(T)[:, None]
    k = torch.arange(T)[None, :]
    causal = k <= q
    window = k > q - TEXT["sliding_window"]
    same = (group[:, None] == group[None, :]) & (group[:, None] >= 0)
    if rule == "causal":
        same = torch.zeros_like(same)
    full = causal | same
    sliding = ((causal & window) | same) if rule == "or" else (window & (causal | same))
    to_add = lambda m: torch.where(m, 0.0, torch.finfo(torch.float32).min)[None, None].float()
    return {"full_attention": to_add(full), "sliding_attention": to_add(sliding)}


def make_tiny(out_root: str) -> None:
    folder = os.path.join(out_root, "vision_tiny")
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    cfg = Gemma3Config(text_config=TEXT, vision_config=VISION, **MM)
    cfg.text_config._attn_implementation = "eager"
    cfg.vision_config._attn_implementation = "eager"
    cfg._attn_implementation = "eager"
    model = Gemma3ForConditionalGeneration(cfg).eval()
    model.set_attn_implementation("eager")
    randomize_(model, gen)

    # Images: "wide" with Pan-and-Scan (full + 3 crops), then "square" without.
    wide = PIL.Image.fromarray(formula_image(*FORMULA_IMAGES["wide"]), "RGB")
    square = PIL.Image.fromarray(formula_image(*FORMULA_IMAGES["square"]), "RGB")
    a = processor(SMALL, True)(wide, return_tensors="pt")
    b = processor(SMALL, True)(square, return_tensors="pt")
    assert int(a["num_crops"][0]) == 3 and int(b["num_crops"][0]) == 0
    pixel_values = torch.cat([a["pixel_values"], b["pixel_values"]]).float()  # [5, 3, 56, 56]
    n = MM["mm_tokens_per_image"]
    ids = [2, 105, 20, 21, 22] + pas_block(n, 3) + [23, 24, 25] + image_block(n) + [26, 27, 106, 107, 105, 28]
    input_ids = torch.tensor([ids], dtype=torch.int64)
    token_type_ids = (input_ids == MM["image_token_index"]).long()
    T = input_ids.shape[1]

    vision_layers = []
    hooks = [layer.register_forward_hook(lambda m, i, o: vision_layers.append(o[0] if isinstance(o, tuple) else o))
             for layer in model.model.vision_tower.encoder.layers]
    text_layers = []
    hooks += [layer.register_forward_hook(lambda m, i, o: text_layers.append(o[0] if isinstance(o, tuple) else o))
              for layer in model.model.language_model.layers]
    captured = {}
    hooks.append(model.model.language_model.register_forward_pre_hook(
        lambda m, args, kwargs: captured.__setitem__("inputs_embeds", kwargs["inputs_embeds"]), with_kwargs=True))
    with torch.no_grad():
        vis = model.model.vision_tower(pixel_values=pixel_values)
        vision_hidden = vis.last_hidden_state  # [5, 64, 32]
        features = model.model.multi_modal_projector(vision_hidden)  # [5, 4, 48]
        vision_layers.clear()
        out = model(input_ids=input_ids, pixel_values=pixel_values, token_type_ids=token_type_ids, use_cache=False)
        logits = out.logits[0]
        # Causal instead (no token_type_ids): HF falls back to the plain causal mask -- must differ.
        causal_logits = model(input_ids=input_ids, pixel_values=pixel_values, use_cache=False).logits[0]
        # The same rules as explicit masks: "hf" must reproduce `logits` (proves the rule written in
        # attention_mask.hpp is HF's), the others are the wrong ways the C++ tests must tell apart.
        alt = {rule: model(input_ids=input_ids, pixel_values=pixel_values, use_cache=False,
                           attention_mask=mask_dict(token_type_ids, rule)).logits[0]
               for rule in ("hf", "or", "causal", "one_group")}
    for h in hooks:
        h.remove()
    vision_layer_outputs = torch.stack(vision_layers[: VISION["num_hidden_layers"]])  # [L, 5, 64, 32]
    text_layer_outputs = torch.stack([t[0] for t in text_layers[: TEXT["num_hidden_layers"]]])  # [L, T, 48]

    # Greedy continuation: full no-cache forwards (token_type_ids extended with 0), checked against generate().
    cont = []
    greedy_logits = []
    cur = input_ids
    with torch.no_grad():
        for _ in range(NUM_GENERATE):
            tt = (cur == MM["image_token_index"]).long()
            lg = model(input_ids=cur, pixel_values=pixel_values, token_type_ids=tt, use_cache=False).logits[0, -1]
            nxt = int(lg.argmax())
            greedy_logits.append(lg.clone())
            cont.append(nxt)
            cur = torch.cat([cur, torch.tensor([[nxt]])], dim=1)
        gen_ids = model.generate(input_ids=input_ids, pixel_values=pixel_values, token_type_ids=token_type_ids,
                                 attention_mask=torch.ones_like(input_ids), do_sample=False,
                                 max_new_tokens=NUM_GENERATE, min_new_tokens=NUM_GENERATE)[0, T:].tolist()
    top2 = torch.stack(greedy_logits).topk(2, dim=-1).values
    margin = float((top2[:, 0] - top2[:, 1]).min())

    # Checkpoint folder as save_pretrained writes it (transformers 5.24 keys: language_model.model.*,
    # vision_tower.* without vision_model., multi_modal_projector.*; lm_head not stored).
    tmp = tempfile.mkdtemp(prefix="gemma3_vision_fixture_")
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        saved = sorted(os.listdir(tmp))
        for f in saved:
            shutil.copy2(os.path.join(tmp, f), os.path.join(folder, f))
    finally:
        shutil.rmtree(tmp)
    with safetensors.safe_open(os.path.join(folder, "model.safetensors"), "pt") as sf:
        keys = sorted(sf.keys())

    expected = {
        "input_ids": input_ids[0],
        "token_type_ids": token_type_ids[0],
        "pixel_values": pixel_values,
        "num_crops": torch.tensor([3, 0], dtype=torch.int64),
        "vision_layer_outputs": vision_layer_outputs,
        "vision_hidden": vision_hidden,
        "image_features": features,
        "inputs_embeds": captured["inputs_embeds"][0],
        "layer_outputs": text_layer_outputs,
        "logits": logits,
        "causal_logits": causal_logits,
        "alt_logits_or_rule": alt["or"],
        "alt_logits_one_group": alt["one_group"],
        "greedy_continuation": torch.tensor(cont, dtype=torch.int64),
        "greedy_logits": torch.stack(greedy_logits),
    }
    expected = {k: v.detach().contiguous() for k, v in expected.items()}
    save_file(expected, os.path.join(folder, "expected.safetensors"), metadata={"format": "pt"})
    rel = float((logits - causal_logits).abs().max() / logits.abs().max())
    rule_rel = {r: float((logits - v).abs().max() / logits.abs().max()) for r, v in alt.items()}
    causal_check = float((causal_logits - alt["causal"]).abs().max() / logits.abs().max())
    if rule_rel["hf"] > 1e-6 or causal_check > 1e-6:
        raise SystemExit(f"explicit masks do not reproduce HF's own: {rule_rel}, causal {causal_check}")
    for r in ("or", "causal", "one_group"):
        if rule_rel[r] < 1e-2:
            raise SystemExit(f"rule {r} is not told apart from HF's ({rule_rel[r]}); change the prompt or SEED")
    write_json(os.path.join(folder, "meta.json"), {
        "fixture": "vision_tiny",
        "versions": versions(),
        "seed": SEED,
        "weights": f"every parameter ~ N(0, {WEIGHT_STD}^2) including norms and LayerNorm biases; embed_tokens "
        f"~ N(0, {EMBED_STD}^2); float32, eager attention",
        "text_config": TEXT,
        "vision_config": VISION,
        "multimodal": MM,
        "keys_in_model_safetensors": keys,
        "files": saved,
        "prompt": {
            "T": T,
            "layout": "[bos, 105, 20, 21, 22] + PanAndScan(wide, 3 crops) + [23, 24, 25] + image(square) + "
            "[26, 27, 106, 107, 105, 28]",
            "image_block": "[108 '\\n\\n', boi, image x mm_tokens_per_image, eoi, 108] (JAX's id-level insertion)",
            "pan_and_scan": "before_original + block + before_crops + block + (between_crops + block) x (n-1); "
            f"stand-in ids before_original={PAS_BEFORE_ORIGINAL}, before_crops={PAS_BEFORE_CROPS}, "
            f"between_crops={PAS_BETWEEN_CROPS} (HF tokenizes the string 'Here is the original image ' ... "
            "with the real tokenizer)",
            "images": "pixel_values = [wide full, wide crop 1..3, square full]: 5 image groups",
        },
        "checks": {
            "generate_matches_nocache_greedy": gen_ids == cont,
            "generate_ids": gen_ids,
            "greedy_min_top1_top2_margin": margin,
            "causal_vs_bidirectional_logits_relative_difference": rel,
            "explicit_mask_rules_vs_hf_logits_relative_difference": rule_rel,
        },
        "expected": {
            "input_ids": "I64 [T]",
            "token_type_ids": "I64 [T]: 1 at image soft tokens (id 300), passed to HF so it builds the image masks",
            "pixel_values": "F32 [5, 3, 56, 56] from Gemma3ImageProcessorPil (size 56, Pan-and-Scan on)",
            "num_crops": "I64 [2]",
            "vision_layer_outputs": "F32 [2, 5, 64, 32]: each SigLIP encoder layer's output",
            "vision_hidden": "F32 [5, 64, 32]: vision_tower(...).last_hidden_state (after post_layernorm)",
            "image_features": "F32 [5, 4, 48]: multi_modal_projector output (pool 4x4, RMSNorm, x . W)",
            "inputs_embeds": "F32 [T, 48]: what the language model receives (scaled text embeddings, image rows replaced)",
            "layer_outputs": "F32 [3, T, 48]: each text decoder layer's output",
            "logits": "F32 [T, 320]: model(input_ids, pixel_values, token_type_ids, use_cache=False).logits[0]",
            "causal_logits": "F32 [T, 320]: the same without token_type_ids (HF falls back to causal masks)",
            "alt_logits_or_rule": "F32 [T, 320]: with explicit masks where sliding layers use (causal AND window) OR "
            "same_image (the older transformers spelling) instead of HF 5.24's window AND (causal OR same_image)",
            "alt_logits_one_group": "F32 [T, 320]: with every image token in one group (v4.50's bug)",
            "greedy_continuation": f"I64 [{NUM_GENERATE}]: greedy tokens from no-cache full forwards",
            "greedy_logits": f"F32 [{NUM_GENERATE}, 320]: the last-position logits that chose them",
        },
    })
    if gen_ids != cont:
        print(f"WARNING: generate {gen_ids} != no-cache greedy {cont}")
    if margin < 5e-3:
        raise SystemExit(f"greedy margin {margin} too small; change SEED")
    report_folder(folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT, help="fixtures root (default: tests/fixtures)")
    ap.add_argument("--only", nargs="*", choices=["pixels", "tiny"], help="parts to regenerate (default all)")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    print("versions:", json.dumps(versions()))
    images_dir = os.path.join(args.out, "vision_images")
    if not args.only or "pixels" in args.only:
        if os.path.isdir(images_dir):
            shutil.rmtree(images_dir)
        os.makedirs(images_dir)
        files = file_images(images_dir)
        report_folder(images_dir)
        make_pixels(args.out, images_dir, files)
    if not args.only or "tiny" in args.only:
        make_tiny(args.out)


if __name__ == "__main__":
    main()
