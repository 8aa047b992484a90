#!/usr/bin/env python3
"""Reference token ids and chat prompts for the Gemma 3 tokenizer tests (tests/test_tokenizer*.cpp, test_chat.cpp).

Not run by CI: what it writes is committed (ids only, a few tens of KB). Re-run it by hand when the corpus or the
conversations change:

    pip install gguf sentencepiece protobuf transformers tokenizers jinja2    # PyPI only, CPU
    python3 tests/reference/make_tokenizer_fixtures.py [--gguf models/gemma-3-270m-q4_k_m.gguf]
                                                       [--sp-model build/gemma3-vocab.model]

Inputs
  tests/fixtures/tokenizer/corpus.json         the committed corpus: a JSON list of strings (multilingual text,
                                               code, HTML, emoji, runs of spaces / tabs / newlines, specials, ...)
  the GGUF file                                its tokenizer.ggml.{tokens,scores,token_type} arrays (262,144 each)

Two independent references, both built from the GGUF vocabulary; the expected ids are SentencePiece's (A), the
tokenizer Gemma 3 actually ships, and every line where transformers (B) disagrees is printed and recorded in
expected_ids.json ("transformers_disagrees"):

  A. SentencePiece itself (the `sentencepiece` package). The GGUF vocabulary is turned back into a SentencePiece
     ModelProto: model_type BPE, byte_fallback true; normalizer "identity" with add_dummy_prefix false,
     remove_extra_whitespaces false, escape_whitespaces true; pieces in id order with their GGUF scores; types
     mapped 1:1 (NORMAL, CONTROL, USER_DEFINED, BYTE, ...), except that <unk> (id 3, CONTROL in the GGUF because
     the converter marks HF special tokens CONTROL) becomes UNKNOWN, which SentencePiece requires; user-defined
     pieces get back their U+2581 for each space (the GGUF converter "pre-normalizes" them to real spaces).
     SentencePiece matches USER_DEFINED pieces in the text itself (leftmost-longest, never merged) but treats
     CONTROL pieces ("<start_of_turn>", "<bos>", "<unused0>", ...) as plain text, so for `parse_special` ids this
     script first cuts out every CONTROL/UNKNOWN piece (leftmost-longest, as HF's added-token matcher does) and
     encodes the fragments in between. `--sp-model PATH` also writes that .model file (about 4 MB), which the
     optional C++ cross-check against Debian's libsentencepiece reads (tests/sentencepiece_check/).
  B. transformers' own GGUF tokenizer: AutoTokenizer.from_pretrained(dir, gguf_file=name) (a `tokenizers` BPE
     with byte fallback whose merges transformers rebuilds from the vocabulary), encode(add_special_tokens=False).
     Observed with transformers 5.24: identical ids on every line except runs of more than 31 spaces. SentencePiece
     (and llama.cpp) cut the longest user-defined space piece (31 spaces, id 167) from the left and continue after
     it ("32 spaces + x" -> [167, "\u2581x"]); transformers' GGUF tokenizer keeps the space pieces as ordinary BPE
     tokens with rebuilt merges and splits the run by merge order instead ([16 spaces, 16 spaces, "x"]).

Outputs (tests/fixtures/tokenizer/)
  expected_ids.json   {"versions": {...}, "gguf": ..., "lines": [{"special": [ids], "plain": [ids]}, ...]}
                      "special": parse_special = true (control tokens in the text are split out), no BOS;
                      "plain":   parse_special = false (only USER_DEFINED pieces are split out), no BOS, from A
                      (HF has no switch that leaves its added tokens alone but keeps user-defined ones).
  chat.json           conversations rendered by transformers' apply_chat_template with Gemma 3's chat template
                      (the text of google/gemma-3-*-it tokenizer_config.json, CHAT_TEMPLATE below), with and
                      without the generation prompt, the ids HF's tokenizer gives the rendered prompt
                      (tokenize=True), and the conversations that must raise.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "tokenizer")

# Gemma 3's chat template as shipped in google/gemma-3-*-it tokenizer_config.json ("chat_template").
CHAT_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    "    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    "        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n"
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\\n'}}\n"
    "{%- endif -%}\n"
)

# Conversations for chat.json. Content is a string or a list of {"type": "text"|"image"} items.
CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "user", "content": "  Why is the sky blue?\n\n"}],
    [{"role": "system", "content": "You are a terse assistant."}, {"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "  System text is not trimmed \n"}, {"role": "user", "content": " user text is "}],
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"},
     {"role": "user", "content": "And 3+3?"}],
    [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Good morning"},
     {"role": "assistant", "content": " Bonjour ! \n"}, {"role": "user", "content": "Thanks\t"},
     {"role": "model", "content": "De rien."}],
    [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": " Describe this image. "}]}],
    [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
     {"role": "user", "content": [{"type": "text", "text": "Compare "}, {"type": "image"}, {"type": "text", "text": " and "},
                                  {"type": "image"}]}],
    [{"role": "user", "content": "日本語で答えてください。\u3000"}, {"role": "assistant", "content": "\u00a0はい。\u2003"}],
    [{"role": "user", "content": ""}],
    [{"role": "system", "content": "only a system message"}],
    [{"role": "user", "content": "a"}, {"role": "tool", "content": "tool output in the model's slot"}],
    # The template checks only "user at even places, not user at odd ones", so any other role may take the
    # model's turn and is written as is.
    [{"role": "user", "content": "a"}, {"role": "system", "content": "late system"}, {"role": "user", "content": "b"},
     {"role": "system", "content": "x"}],
]
BAD_CONVERSATIONS = [
    [{"role": "assistant", "content": "I speak first"}],
    [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    [{"role": "system", "content": "s"}, {"role": "assistant", "content": "x"}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "assistant", "content": "c"}],
    [{"role": "user", "content": "a"}, {"role": "model", "content": "b"}, {"role": "system", "content": "c"}],
]

TYPE_NAMES = {1: "NORMAL", 2: "UNKNOWN", 3: "CONTROL", 4: "USER_DEFINED", 5: "UNUSED", 6: "BYTE"}


def read_gguf_vocab(path):
    import gguf

    r = gguf.GGUFReader(path)
    f = r.fields
    tokens = f["tokenizer.ggml.tokens"].contents()
    scores = [float(s) for s in f["tokenizer.ggml.scores"].contents()]
    types = [int(t) for t in f["tokenizer.ggml.token_type"].contents()]
    meta = {k: f[k].contents() for k in f if k.startswith("tokenizer.ggml.") and k not in
            ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type")}
    return tokens, scores, types, meta


def build_sp_model(tokens, scores, types, meta) -> bytes:
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = pb.ModelProto()
    ts = m.trainer_spec
    ts.model_type = pb.TrainerSpec.BPE
    ts.vocab_size = len(tokens)
    ts.byte_fallback = True
    ts.unk_id = int(meta["tokenizer.ggml.unknown_token_id"])
    ts.bos_id = int(meta["tokenizer.ggml.bos_token_id"])
    ts.eos_id = int(meta["tokenizer.ggml.eos_token_id"])
    ts.pad_id = int(meta["tokenizer.ggml.padding_token_id"])
    ts.unk_piece, ts.bos_piece, ts.eos_piece, ts.pad_piece = (tokens[ts.unk_id], tokens[ts.bos_id], tokens[ts.eos_id],
                                                              tokens[ts.pad_id])
    ns = m.normalizer_spec
    ns.name = "identity"
    ns.add_dummy_prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", False))
    ns.remove_extra_whitespaces = False
    ns.escape_whitespaces = True
    kind = pb.ModelProto.SentencePiece
    type_map = {1: kind.NORMAL, 2: kind.UNKNOWN, 3: kind.CONTROL, 4: kind.USER_DEFINED, 5: kind.UNUSED, 6: kind.BYTE}
    for i, (t, s, ty) in enumerate(zip(tokens, scores, types)):
        p = m.pieces.add()
        p.piece = t.replace(" ", "\u2581") if ty == 4 else t
        p.score = s
        p.type = kind.UNKNOWN if i == ts.unk_id else type_map[ty]
    return m.SerializeToString()


def leftmost_longest_split(text, specials):
    """[(is_special, str)] cutting out every string of `specials` (a dict str -> id), leftmost-longest first."""
    by_first = {}
    for s in specials:
        by_first.setdefault(s[0], set()).add(len(s))
    lengths = {c: sorted(v, reverse=True) for c, v in by_first.items()}
    out, start, i = [], 0, 0
    while i < len(text):
        hit = next((n for n in lengths.get(text[i], ()) if text[i:i + n] in specials), 0)
        if hit:
            if start < i:
                out.append((False, text[start:i]))
            out.append((True, text[i:i + hit]))
            i += hit
            start = i
        else:
            i += 1
    if start < len(text):
        out.append((False, text[start:]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", default=os.path.join(ROOT, "models", "gemma-3-270m-q4_k_m.gguf"))
    ap.add_argument("--sp-model", default=None, help="also write the SentencePiece .model built from the GGUF here")
    ap.add_argument("--out", default=FIXTURES)
    args = ap.parse_args()

    import gguf
    import jinja2
    import sentencepiece as spm
    import tokenizers
    import transformers
    from transformers import AutoTokenizer

    tokens, scores, types, meta = read_gguf_vocab(args.gguf)
    model_bytes = build_sp_model(tokens, scores, types, meta)
    if args.sp_model:
        with open(args.sp_model, "wb") as fh:
            fh.write(model_bytes)
        print(f"wrote {args.sp_model} ({len(model_bytes)} bytes)")
    sp = spm.SentencePieceProcessor(model_proto=model_bytes)

    control = {t: i for i, (t, ty) in enumerate(zip(tokens, types)) if ty in (2, 3) or i == sp.unk_id()}

    def sp_encode(text, parse_special):
        if not parse_special:
            return sp.encode(text)
        ids = []
        for is_special, frag in leftmost_longest_split(text, control):
            ids += [control[frag]] if is_special else sp.encode(frag)
        return ids

    hf = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(args.gguf)),
                                       gguf_file=os.path.basename(args.gguf))

    with open(os.path.join(FIXTURES, "corpus.json"), encoding="utf-8") as fh:
        corpus = json.load(fh)

    lines, mismatches, n_ids, disagreements = [], 0, 0, []
    for k, text in enumerate(corpus):
        a = sp_encode(text, parse_special=True)
        b = hf.encode(text, add_special_tokens=False)
        plain = sp_encode(text, parse_special=False)
        n_ids += len(a)
        if a != b:
            mismatches += 1
            disagreements.append({"line": k, "transformers": b})
            print(f"line {k}: sentencepiece and transformers disagree on {text!r}\n  sp: {a}\n  hf: {b}")
        # Decoding the ids must give the text back (a literal U+2581 in the input reads back as a space).
        back = hf.decode(b, skip_special_tokens=False)
        if back != text.replace("\u2581", " "):
            print(f"line {k}: note: HF decode does not round-trip {text!r} -> {back!r}")
        lines.append({"special": a, "plain": plain})
    print(f"{len(corpus)} lines, {n_ids} ids: {len(corpus) - mismatches} lines identical in sentencepiece and "
          f"transformers, {mismatches} differ")

    with_bos = hf.encode(corpus[0], add_special_tokens=True)
    versions = {"sentencepiece": spm.__version__, "transformers": transformers.__version__,
                "tokenizers": tokenizers.__version__, "gguf": importlib.metadata.version("gguf"),
                "jinja2": jinja2.__version__, "python": sys.version.split()[0]}
    expected = {
        "about": "Reference ids for corpus.json (same order), written by tests/reference/make_tokenizer_fixtures.py. "
                 "special: parse_special=true, plain: parse_special=false; neither has the BOS.",
        "versions": versions,
        "gguf": os.path.basename(args.gguf),
        "vocab_size": len(tokens),
        "transformers_disagrees": disagreements,
        "line0_with_bos": with_bos,
        "lines": lines,
    }
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "expected_ids.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(expected, fh, ensure_ascii=True, separators=(",", ":"))
        fh.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")

    # ---- chat template ----
    hf.chat_template = CHAT_TEMPLATE
    chats = []
    for conv in CONVERSATIONS:
        entry = {"messages": conv}
        for gen in (False, True):
            text = hf.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen)
            ids = hf.apply_chat_template(conv, tokenize=True, add_generation_prompt=gen)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            key = "with_generation_prompt" if gen else "without_generation_prompt"
            entry[key] = {"text": text, "ids": list(ids)}
            if sp_encode(text, parse_special=True) != list(ids):
                raise SystemExit(f"chat: sentencepiece ids differ from HF for {conv!r}")
        chats.append(entry)
    bad = []
    for conv in BAD_CONVERSATIONS:
        try:
            hf.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        except Exception as e:  # jinja2 TemplateError from raise_exception
            bad.append({"messages": conv, "error": str(e)})
        else:
            raise SystemExit(f"expected an error for {conv!r}")
    path = os.path.join(args.out, "chat.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"about": "Gemma 3 chat template rendered by transformers.apply_chat_template; "
                            "written by tests/reference/make_tokenizer_fixtures.py",
                   "versions": versions, "template": CHAT_TEMPLATE, "conversations": chats, "errors": bad},
                  fh, ensure_ascii=True, indent=1)
        fh.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
