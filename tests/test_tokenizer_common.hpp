// tests/test_tokenizer_common.hpp -- the real Gemma 3 tokenizer for the tests, and fixture readers.
//
// The vocabulary comes from the real model file through the library's GGUF reader
// (GgufFile + vocabulary_from_gguf); tokenizer_from() is the small adapter from that
// Vocabulary to Tokenizer's plain-vector constructor. The file is
// models/gemma-3-270m-q4_k_m.gguf (bash scripts/fetch-model.sh makes it), or the path in
// the environment variable GEMMA3_GGUF. It is loaded once per test run.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "gemma3/detail/json.hpp"
#include "gemma3/gguf.hpp"
#include "gemma3/gguf_model.hpp"
#include "gemma3/tokenizer.hpp"

namespace tokfix {

inline gemma3::Tokenizer tokenizer_from(const gemma3::Vocabulary& v) {
  gemma3::TokenizerConfig c;
  c.bos_id = v.bos_id;
  c.eos_id = v.eos_id;
  c.unk_id = v.unk_id;
  c.pad_id = v.pad_id;
  c.add_bos = v.add_bos;
  c.add_space_prefix = v.add_space_prefix;
  return gemma3::Tokenizer(v.tokens, v.scores, v.token_types, c);
}

inline std::string gguf_path() {
  if (const char* p = std::getenv("GEMMA3_GGUF")) return p;
  return std::string(GEMMA3_FIXTURES_DIR) + "/../../models/gemma-3-270m-q4_k_m.gguf";
}

inline const gemma3::Tokenizer& gemma3_tokenizer() {
  static const gemma3::Tokenizer tok = [] {
    const std::string path = gguf_path();
    if (!std::ifstream(path))
      throw std::runtime_error(path + " is missing: run `bash scripts/fetch-model.sh` (or set GEMMA3_GGUF)");
    const gemma3::GgufFile f(path);
    return tokenizer_from(gemma3::vocabulary_from_gguf(f));
  }();
  return tok;
}

inline std::string fixture_dir() { return std::string(GEMMA3_FIXTURES_DIR) + "/tokenizer"; }

inline gemma3::detail::Json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return gemma3::detail::parse_json(ss.str());
}

inline std::vector<int> int_array(const gemma3::detail::Json& j) {
  std::vector<int> out;
  for (const auto& x : j.array) out.push_back(int(x.number));
  return out;
}

inline const gemma3::detail::Json& at(const gemma3::detail::Json& j, const std::string& key) {
  const gemma3::detail::Json* p = j.find(key);
  if (!p) throw std::runtime_error("fixture: missing key '" + key + "'");
  return *p;
}

// True if s is well-formed UTF-8.
inline bool valid_utf8(const std::string& s) {
  const auto* b = reinterpret_cast<const unsigned char*>(s.data());
  for (std::size_t i = 0; i < s.size();) {
    const int n = gemma3::detail::utf8_sequence_length(b + i, s.size() - i);
    if (n == 0) return false;
    i += std::size_t(n);
  }
  return true;
}


// ---- a minimal protobuf writer: varint, length-delimited, fixed32 ----
inline void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) { out += char((v & 0x7F) | 0x80); v >>= 7; }
  out += char(v);
}
inline void put_tag(std::string& out, int field, int wire) { put_varint(out, (std::uint64_t(field) << 3) | std::uint64_t(wire)); }
inline void put_int(std::string& out, int field, std::int64_t v) { put_tag(out, field, 0); put_varint(out, std::uint64_t(v)); }
inline void put_bytes(std::string& out, int field, const std::string& s) {
  put_tag(out, field, 2);
  put_varint(out, s.size());
  out += s;
}
inline void put_float(std::string& out, int field, float f) {
  put_tag(out, field, 5);
  char b[4];
  std::memcpy(b, &f, 4);  // little-endian hosts
  out.append(b, 4);
}

// sentencepiece_model.proto: ModelProto{pieces=1, trainer_spec=2, normalizer_spec=3};
// SentencePiece{piece=1, score=2, type=3}; TrainerSpec{model_type=3 (BPE=2), vocab_size=4,
// byte_fallback=35, unk_id=40, bos_id=41, eos_id=42, pad_id=43, unk/bos/eos/pad_piece=45..48};
// NormalizerSpec{name=1, add_dummy_prefix=3, remove_extra_whitespaces=4, escape_whitespaces=5}.
inline std::string sentencepiece_model_from(const gemma3::Vocabulary& v) {
  std::string model;
  for (std::size_t i = 0; i < v.tokens.size(); ++i) {
    int type = v.token_types[i] == 0 ? 1 : v.token_types[i];
    std::string piece = v.tokens[i];
    if (type == 4) piece = gemma3::detail::replace_all(piece, " ", gemma3::detail::kSpaceMarker);
    if (int(i) == v.unk_id) type = 2;  // SentencePiece needs exactly one UNKNOWN piece
    std::string sp;
    put_bytes(sp, 1, piece);
    put_float(sp, 2, v.scores[i]);
    put_int(sp, 3, type);
    put_bytes(model, 1, sp);
  }
  std::string trainer;
  put_int(trainer, 3, 2);  // BPE
  put_int(trainer, 4, std::int64_t(v.tokens.size()));
  put_int(trainer, 35, 1);
  put_int(trainer, 40, v.unk_id);
  put_int(trainer, 41, v.bos_id);
  put_int(trainer, 42, v.eos_id);
  put_int(trainer, 43, v.pad_id);
  put_bytes(trainer, 45, v.tokens[std::size_t(v.unk_id)]);
  put_bytes(trainer, 46, v.tokens[std::size_t(v.bos_id)]);
  put_bytes(trainer, 47, v.tokens[std::size_t(v.eos_id)]);
  put_bytes(trainer, 48, v.tokens[std::size_t(v.pad_id)]);
  put_bytes(model, 2, trainer);
  std::string norm;
  put_bytes(norm, 1, "identity");
  put_int(norm, 3, v.add_space_prefix ? 1 : 0);
  put_int(norm, 4, 0);
  put_int(norm, 5, 1);
  put_bytes(model, 3, norm);
  return model;
}

}  // namespace tokfix
