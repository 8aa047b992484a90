// gemma3/vocabulary.hpp -- a SentencePiece vocabulary as three plain arrays plus its special ids.
//
//   tokens[i]       the piece's UTF-8 text ("▁the", "<0x0A>", "<start_of_turn>", ...)
//   scores[i]       its BPE merge priority (higher merges first)
//   token_types[i]  SentencePiece's piece type: 1 normal, 2 unknown, 3 control,
//                   4 user-defined, 5 unused, 6 byte (0 undefined)
//
// The defaults are Gemma 3's: <pad> 0, <eos> 1, <bos> 2, <unk> 3, a <bos> in front of
// every prompt, no dummy-prefix space. Two readers fill it: gguf_vocabulary.hpp (the
// tokenizer.ggml.* arrays of a GGUF) and tokenizer_files.hpp (an HF folder's
// tokenizer.model); tokenizer_files.hpp turns it into a Tokenizer. It depends on
// nothing but the standard library. Pinned by tests/test_tokenizer_files.cpp (both
// readers give the same vocabulary for the real 270M model).
#pragma once

#include <string>
#include <vector>

namespace gemma3 {

struct Vocabulary {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int> token_types;
  int bos_id = 2, eos_id = 1, unk_id = 3, pad_id = 0;
  bool add_bos = true, add_space_prefix = false;
  // The checkpoint's chat template (GGUF tokenizer.chat_template; in an HF folder,
  // chat_template.jinja or tokenizer_config.json's "chat_template"). Instruction-tuned
  // Gemma 3 files carry one; a base model's file has none, and a program should then
  // feed prompts as plain text (the chat template makes a base model echo and ramble).
  std::string chat_template;
  bool has_chat_template() const { return !chat_template.empty(); }
};

}  // namespace gemma3
