// gemma3/load_model.hpp -- one call for either model format.
//
//   load_model("models/gemma-3-270m-q4_k_m.gguf")   a GGUF file       -> gguf_model.hpp, load_gguf_model
//   load_model("path/to/gemma-3-1b-it")             an HF folder      -> checkpoint.hpp, load_hf_model
//
// A path is read as GGUF when it names a file ending in ".gguf" or a file whose
// first four bytes are the GGUF magic; a directory is read as a Hugging Face
// checkpoint folder (config.json + model.safetensors or its sharded index). Any
// other file is refused with a message saying which two things were expected.
// Pinned by tests/test_gguf.cpp.
#pragma once

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "checkpoint.hpp"
#include "gguf_model.hpp"

namespace gemma3 {

// True when `path` is a regular file that ends in ".gguf" (any case) or starts with "GGUF".
inline bool is_gguf_path(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  if (path.size() >= 5) {
    std::string ext = path.substr(path.size() - 5);
    for (char& ch : ext) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    if (ext == ".gguf") return true;
  }
  unsigned char magic[4] = {0, 0, 0, 0};
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) return false;
  const std::size_t n = std::fread(magic, 1, 4, fp);
  std::fclose(fp);
  return n == 4 && magic[0] == 'G' && magic[1] == 'G' && magic[2] == 'U' && magic[3] == 'F';
}

// The text model at `path` (see the top of this file). For a GGUF file `vocab`, if
// given, receives the tokenizer data and `progress` reports the fraction of tensors
// checked; an HF folder keeps its tokenizer in tokenizer.json / tokenizer.model, so
// there `*vocab` is set to an empty Vocabulary (tokens.empty()) and progress is only
// called with 0 and 1.
// `backend`: the one the model runs on (null: CpuBackend from the environment, model.hpp).
inline Gemma3ForCausalLM load_model(const std::string& path, Vocabulary* vocab = nullptr,
                                    std::function<void(double fraction)> progress = {},
                                    std::shared_ptr<const Backend> backend = nullptr) {
  if (is_gguf_path(path)) return load_gguf_model(path, vocab, std::move(progress), std::move(backend));
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) {
    if (!std::filesystem::exists(path, ec))
      throw FileError(path + ": expected a .gguf file or a Hugging Face checkpoint folder, found nothing there");
    throw FileError(path + ": expected a GGUF file (.gguf, starting with \"GGUF\") or a Hugging Face checkpoint "
                           "folder (config.json + model.safetensors), found a file that is neither");
  }
  if (progress) progress(0.0);
  Gemma3ForCausalLM model = load_hf_model(path, std::move(backend));
  if (vocab) *vocab = Vocabulary{};
  if (progress) progress(1.0);
  return model;
}

}  // namespace gemma3
