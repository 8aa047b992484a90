// gemma3/gguf_vocabulary.hpp -- the tokenizer vocabulary a GGUF file carries, as a Vocabulary.
//
//   tokenizer.ggml.model                  "llama" (SentencePiece; the only model Gemma 3 uses)
//   tokenizer.ggml.tokens                 ARRAY[STRING]   -> Vocabulary::tokens
//   tokenizer.ggml.scores                 ARRAY[FLOAT32]  -> scores       (absent: all 0)
//   tokenizer.ggml.token_type             ARRAY[INT32]    -> token_types  (absent: all 1, normal)
//   tokenizer.ggml.bos/eos/unknown/padding_token_id       -> the special ids (absent: Gemma's)
//   tokenizer.ggml.add_bos_token / add_space_prefix       -> add_bos / add_space_prefix
//
// Key names and token types: the GGUF spec (ggml's docs/gguf.md, "Tokenizer" keys) and
// llama.cpp's gguf-py/gguf/constants.py (Keys.Tokenizer, TokenType). It reads metadata
// only, so it needs gguf.hpp and vocabulary.hpp and nothing of the model. Every rule
// throws GgufError naming the file, the key, the expected and the found value.
// Pinned by tests/test_gguf.cpp, tests/test_gguf_errors.cpp and
// tests/test_tokenizer_files.cpp.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "detail/piece_index.hpp"
#include "gguf.hpp"
#include "vocabulary.hpp"

namespace gemma3 {

// The tokenizer data of a GGUF file. tokenizer.ggml.model must be "llama" (SentencePiece);
// scores and token_type, when present, have one entry per token; special ids must be
// tokens; no token string may appear twice (llama.cpp refuses such a vocabulary).
inline Vocabulary vocabulary_from_gguf(const GgufFile& f) {
  const std::string model = f.get_string("tokenizer.ggml.model");
  if (model != "llama")
    throw GgufError(f.path() + ": metadata 'tokenizer.ggml.model': expected \"llama\" (SentencePiece, as Gemma 3 " +
                    "uses), found \"" + model + "\"");
  Vocabulary v;
  v.tokens = f.get_string_array("tokenizer.ggml.tokens");
  const std::size_t n = v.tokens.size();
  if (n == 0 || n > std::size_t(std::numeric_limits<int>::max()))
    throw GgufError(f.path() + ": metadata 'tokenizer.ggml.tokens': expected at least one token, found " +
                    std::to_string(n));
  if (f.find("tokenizer.ggml.scores")) {
    v.scores = f.get_float_array("tokenizer.ggml.scores");
    if (v.scores.size() != n)
      throw GgufError(f.path() + ": metadata 'tokenizer.ggml.scores': expected " + std::to_string(n) +
                      " scores (one per token), found " + std::to_string(v.scores.size()));
  } else {
    v.scores.assign(n, 0.0f);
  }
  if (f.find("tokenizer.ggml.token_type")) {
    const std::vector<std::int32_t> types = f.get_int_array("tokenizer.ggml.token_type");
    if (types.size() != n)
      throw GgufError(f.path() + ": metadata 'tokenizer.ggml.token_type': expected " + std::to_string(n) +
                      " types (one per token), found " + std::to_string(types.size()));
    for (std::size_t i = 0; i < n; ++i)
      if (types[i] < 0 || types[i] > 6)
        throw GgufError(f.path() + ": metadata 'tokenizer.ggml.token_type[" + std::to_string(i) +
                        "]': expected a token type 0..6, found " + std::to_string(types[i]));
    v.token_types.assign(types.begin(), types.end());
  } else {
    v.token_types.assign(n, 1);
  }
  const long long last = (long long)(n) - 1;
  v.bos_id = detail::gguf_int_key(f, "tokenizer.ggml.bos_token_id", 0, last, v.bos_id);
  v.eos_id = detail::gguf_int_key(f, "tokenizer.ggml.eos_token_id", 0, last, v.eos_id);
  v.unk_id = detail::gguf_int_key(f, "tokenizer.ggml.unknown_token_id", 0, last, v.unk_id);
  v.pad_id = detail::gguf_int_key(f, "tokenizer.ggml.padding_token_id", 0, last, v.pad_id);
  for (const auto* id : {&v.bos_id, &v.eos_id, &v.unk_id, &v.pad_id})
    if (*id > last)  // a default id of a tiny vocabulary
      throw GgufError(f.path() + ": tokenizer: expected special token ids below " + std::to_string(n) +
                      " (the vocabulary size), found the default id " + std::to_string(*id) +
                      "; set tokenizer.ggml.*_token_id");
  if (f.find("tokenizer.ggml.add_bos_token")) v.add_bos = f.get_bool("tokenizer.ggml.add_bos_token");
  if (f.find("tokenizer.ggml.add_space_prefix")) v.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix");
  if (f.find("tokenizer.chat_template")) v.chat_template = f.get_string("tokenizer.chat_template");

  detail::PieceIndex seen;  // no token twice
  seen.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const int first = seen.insert(v.tokens[i], int(i));
    if (first != int(i))
      throw GgufError(f.path() + ": metadata 'tokenizer.ggml.tokens[" + std::to_string(i) +
                      "]': expected a token string not already in the vocabulary, found a duplicate of token " +
                      std::to_string(first) + " (\"" + v.tokens[i].substr(0, 64) + "\")");
  }
  return v;
}

}  // namespace gemma3
