// fuzz/fuzz_targets.hpp -- the bodies of the fuzz targets, shared by the libFuzzer
// entry points (fuzz_gguf.cpp, fuzz_safetensors.cpp) and by the normal test build
// (tests/test_gguf_fuzz_corpus.cpp runs every committed corpus file and crash
// reproducer through them, so the targets always compile and the corpus stays clean).
//
// Each target feeds the bytes to a reader as an in-memory file and then uses
// everything the reader handed out: every metadata getter on every key, the first
// and last byte of every tensor (AddressSanitizer checks they are inside the
// buffer), and for GGUF the gemma3 config, vocabulary and model loaders. Only the
// library's own "bad input" exceptions are caught; anything else escaping (a
// std::bad_alloc, std::length_error, a logic_error) is a finding, as is any
// sanitizer report.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <gemma3/gguf.hpp>
#include <gemma3/gguf_model.hpp>
#include <gemma3/mapped_file.hpp>
#include <gemma3/safetensors.hpp>

namespace gemma3_fuzz {

inline unsigned touch(const unsigned char* p, std::size_t n) {
  if (n == 0) return 0;
  const volatile unsigned char* v = p;
  return unsigned(v[0]) + unsigned(v[n - 1]);
}

inline int gguf_one_input(const std::uint8_t* data, std::size_t size) {
  auto file = gemma3::MappedFile::from_bytes(std::vector<unsigned char>(data, data + size), "fuzz.gguf");
  try {
    const gemma3::GgufFile g(file);
    unsigned sink = 0;
    for (const auto& kv : g.metadata()) {
      const std::string& key = kv.first;
      sink += unsigned(kv.second.summary().size() + kv.second.type_string().size());
      if (g.find(key) != &kv.second) std::abort();
      try { sink += unsigned(g.get_int(key)); } catch (const gemma3::GgufError&) {}
      try { sink += unsigned(g.get_float(key) != 0); } catch (const gemma3::GgufError&) {}
      try { sink += unsigned(g.get_bool(key)); } catch (const gemma3::GgufError&) {}
      try { sink += unsigned(g.get_string(key).size()); } catch (const gemma3::GgufError&) {}
      try { sink += unsigned(g.get_string_array(key).size()); } catch (const gemma3::GgufError&) {}
      try { sink += unsigned(g.get_float_array(key).size()); } catch (const gemma3::GgufError&) {}
      try { sink += unsigned(g.get_int_array(key).size()); } catch (const gemma3::GgufError&) {}
    }
    for (const gemma3::GgufTensorInfo& t : g.tensors()) {
      sink += touch(t.data, t.nbytes);
      if (g.find_tensor(t.name) != &t) std::abort();
    }
    try { sink += unsigned(gemma3::config_from_gguf(g).hidden_size); } catch (const gemma3::GgufError&) {}
    try { sink += unsigned(gemma3::vocabulary_from_gguf(g).tokens.size()); } catch (const gemma3::GgufError&) {}
    try {
      gemma3::Vocabulary vocab;
      const gemma3::Gemma3ForCausalLM m = gemma3::load_gguf_model(g, &vocab, [&](double f) { sink += f > 0.5; });
      for (const auto& l : m.weights().layers)
        sink += touch(static_cast<const unsigned char*>(l.mlp.down_proj.data),
                      l.mlp.down_proj.row_bytes() * std::size_t(l.mlp.down_proj.rows));
    } catch (const gemma3::GgufError&) {}
    (void)sink;
  } catch (const gemma3::GgufError&) {
  }
  return 0;
}

inline int safetensors_one_input(const std::uint8_t* data, std::size_t size) {
  auto file = gemma3::MappedFile::from_bytes(std::vector<unsigned char>(data, data + size), "fuzz.safetensors");
  try {
    const gemma3::SafetensorsFile st(file);
    unsigned sink = 0;
    for (const gemma3::TensorView& t : st.tensors()) {
      sink += touch(t.data, t.nbytes);
      sink += unsigned(t.numel());
      if (st.find(t.name) != &t) std::abort();
    }
    for (const auto& m : st.metadata()) sink += unsigned(m.first.size() + m.second.size());
    (void)sink;
  } catch (const gemma3::SafetensorsError&) {
  }
  return 0;
}

}  // namespace gemma3_fuzz
