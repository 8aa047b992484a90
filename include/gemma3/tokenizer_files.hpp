// gemma3/tokenizer_files.hpp -- where a Tokenizer's vocabulary comes from.
//
//   GGUF file:       tokenizer.ggml.tokens / scores / token_type (gguf_vocabulary.hpp)
//   HF folder:       tokenizer.model, SentencePiece's ModelProto (protobuf):
//                      ModelProto   { repeated SentencePiece pieces = 1; TrainerSpec trainer_spec = 2; ... }
//                      SentencePiece{ string piece = 1; float score = 2; Type type = 3 (default NORMAL = 1) }
//                    read here by a ~40-line protobuf wire-format walker (no protobuf dependency).
//   Both give the same Vocabulary (vocabulary.hpp: three vectors and the special ids), so
//   tokenizer.hpp never knows where they came from. Neither needs the model.
//
// Pinned by tests/test_tokenizer_files.cpp (the real GGUF's vocabulary written as a
// tokenizer.model and read back gives identical ids).
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "detail/json.hpp"
#include "gguf_vocabulary.hpp"
#include "mapped_file.hpp"
#include "tokenizer.hpp"
#include "vocabulary.hpp"

namespace gemma3 {

// The tokenizer of a GGUF file's vocabulary.
inline Tokenizer tokenizer_from_vocabulary(const Vocabulary& v) {
  TokenizerConfig c;
  c.bos_id = v.bos_id;
  c.eos_id = v.eos_id;
  c.unk_id = v.unk_id;
  c.pad_id = v.pad_id;
  c.add_bos = v.add_bos;
  c.add_space_prefix = v.add_space_prefix;
  return Tokenizer(v.tokens, v.scores, v.token_types, c);
}

namespace detail {

class ProtoReader {
 public:
  ProtoReader(const unsigned char* p, std::size_t n, const std::string& file) : p_(p), end_(p + n), file_(file) {}
  bool done() const { return p_ >= end_; }
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) fail("a varint", "the end of the data");
      const unsigned char b = *p_++;
      v |= std::uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("a varint of at most 10 bytes", "a longer one");
  }
  // A length-delimited field's bytes.
  std::pair<const unsigned char*, std::size_t> bytes() {
    const std::uint64_t n = varint();
    if (n > std::uint64_t(end_ - p_)) fail("a length within the data", std::to_string(n));
    const unsigned char* start = p_;
    p_ += n;
    return {start, std::size_t(n)};
  }
  float fixed32_float() {
    if (end_ - p_ < 4) fail("4 bytes of a float", "the end of the data");
    float f;
    std::memcpy(&f, p_, 4);
    p_ += 4;
    return f;
  }
  void skip(unsigned wire_type) {
    switch (wire_type) {
      case 0: varint(); return;
      case 1: if (end_ - p_ < 8) fail("8 bytes", "the end"); p_ += 8; return;
      case 2: bytes(); return;
      case 5: if (end_ - p_ < 4) fail("4 bytes", "the end"); p_ += 4; return;
      default: fail("a protobuf wire type 0, 1, 2 or 5", std::to_string(wire_type));
    }
  }
  [[noreturn]] void fail(const std::string& expected, const std::string& found) const {
    throw std::runtime_error(file_ + ": tokenizer.model (SentencePiece ModelProto): expected " + expected + ", found " + found);
  }

 private:
  const unsigned char* p_;
  const unsigned char* end_;
  std::string file_;
};

}  // namespace detail

// The vocabulary of a SentencePiece tokenizer.model (as shipped in HF Gemma 3 folders):
// pieces, scores and types, the special ids from its TrainerSpec and add_dummy_prefix
// from its NormalizerSpec (each defaulting to Gemma's: <pad> 0, <eos> 1, <bos> 2,
// <unk> 3, no dummy prefix, when the file does not set it).
inline Vocabulary load_sentencepiece_model(const std::shared_ptr<const MappedFile>& file) {
  const std::string& path = file->path();
  detail::ProtoReader top(file->data(), file->size(), path);
  Vocabulary v;  // Gemma's defaults (vocabulary.hpp) until the file says otherwise
  while (!top.done()) {
    const std::uint64_t key = top.varint();
    if ((key & 7) == 2 && ((key >> 3) == 2 || (key >> 3) == 3)) {
      // TrainerSpec (2): unk_id 40, bos_id 41, eos_id 42, pad_id 43.
      // NormalizerSpec (3): add_dummy_prefix 3.
      const bool trainer = (key >> 3) == 2;
      const auto [sp, sn] = top.bytes();
      detail::ProtoReader spec(sp, sn, path);
      while (!spec.done()) {
        const std::uint64_t k = spec.varint();
        const std::uint64_t field = k >> 3;
        if ((k & 7) != 0) { spec.skip(unsigned(k & 7)); continue; }
        const int value = int(std::int32_t(std::uint32_t(spec.varint())));
        if (trainer && field == 40) v.unk_id = value;
        else if (trainer && field == 41) v.bos_id = value;
        else if (trainer && field == 42) v.eos_id = value;
        else if (trainer && field == 43) v.pad_id = value;
        else if (!trainer && field == 3) v.add_space_prefix = value != 0;
      }
      continue;
    }
    if ((key >> 3) != 1 || (key & 7) != 2) { top.skip(unsigned(key & 7)); continue; }
    const auto [p, n] = top.bytes();
    detail::ProtoReader piece(p, n, path);
    std::string text;
    float score = 0.0f;
    int type = 1;  // NORMAL
    while (!piece.done()) {
      const std::uint64_t k = piece.varint();
      if (k == (1 << 3 | 2)) { const auto [s, len] = piece.bytes(); text.assign(reinterpret_cast<const char*>(s), len); }
      else if (k == (2 << 3 | 5)) score = piece.fixed32_float();
      else if (k == (3 << 3 | 0)) type = int(piece.varint());
      else piece.skip(unsigned(k & 7));
    }
    if (type < 1 || type > 6) piece.fail("a piece type 1..6", std::to_string(type));
    v.tokens.push_back(std::move(text));
    v.scores.push_back(score);
    v.token_types.push_back(type);
  }
  if (v.tokens.empty()) top.fail("at least one piece", "none");
  return v;
}
inline Vocabulary load_sentencepiece_model(const std::string& path) {
  return load_sentencepiece_model(MappedFile::open(path));
}

// The chat template of an HF folder: chat_template.jinja, else the "chat_template"
// string of tokenizer_config.json (or of chat_template.json); "" when there is none
// (a base model). Throws naming the file when one exists but cannot be read.
inline std::string load_hf_chat_template(const std::string& folder) {
  auto read = [](const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error(path + ": cannot open the file");
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  };
  const std::string jinja = folder + "/chat_template.jinja";
  if (std::filesystem::exists(jinja)) return read(jinja);
  for (const char* name : {"/chat_template.json", "/tokenizer_config.json"}) {
    const std::string path = folder + name;
    if (!std::filesystem::exists(path)) continue;
    detail::Json j;
    try {
      j = detail::parse_json(read(path));
    } catch (const detail::JsonError& e) {
      throw std::runtime_error(path + ": " + e.what());
    }
    const detail::Json* t = j.is_object() ? j.find("chat_template") : nullptr;
    if (t && t->is_string()) return t->string;
  }
  return "";
}

}  // namespace gemma3
