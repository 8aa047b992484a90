// fuzz/fuzz_targets.hpp -- the bodies of the fuzz targets, shared by the libFuzzer
// entry points (fuzz/fuzz_<target>.cpp) and by the normal test build
// (tests/test_fuzz_corpus.cpp runs every committed corpus file and crash
// reproducer through them, so the targets always compile and the corpus stays clean).
//
// Each target feeds the bytes to a reader as an in-memory file and then uses
// everything the reader handed out: every metadata getter on every key, the first
// and last byte of every tensor (AddressSanitizer checks they are inside the
// buffer), and for GGUF the gemma3 config, vocabulary and model loaders (on the
// reference backend: a default CPU backend would start a thread pool per input,
// which held the GGUF target to ~450 inputs/s). Only the
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

#include <gemma3/backends/reference.hpp>
#include <gemma3/config_json.hpp>
#include <gemma3/gguf.hpp>
#include <gemma3/gguf_model.hpp>
#include <gemma3/mapped_file.hpp>
#include <gemma3/safetensors.hpp>
#include <gemma3/tokenizer.hpp>
#include <gemma3/tokenizer_files.hpp>
#include <gemma3/vision/config.hpp>
#ifdef GEMMA3_HAVE_IMAGE_DECODERS  // the image target needs stb_image (fuzz/run.sh defines it)
#include <gemma3/vision/image_file.hpp>
#include <gemma3/vision/pan_and_scan.hpp>
#include <gemma3/vision/preprocess.hpp>
#endif

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
      static const auto backend = std::make_shared<const gemma3::ReferenceBackend>();
      const gemma3::Gemma3ForCausalLM m =
          gemma3::load_gguf_model(g, &vocab, [&](double f) { sink += f > 0.5; }, backend);
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

#ifdef GEMMA3_HAVE_IMAGE_DECODERS
// Image files: the header reader, the decoder, and what the processor does next
// (Pan-and-Scan crop boxes, a resize), under limits small enough that every input
// runs in well under a millisecond: sides up to 4096, at most 65536 pixels (a larger
// image decodes the same way, only slower; the limit checks run on every header).
inline int image_one_input(const std::uint8_t* data, std::size_t size) {
  gemma3::ImageLimits limits;
  limits.max_width = limits.max_height = 4096;
  limits.max_pixels = limits.max_gif_pixels = std::int64_t(1) << 16;
  try {
    const gemma3::Image img = gemma3::decode_image(data, size, "fuzz.img", limits);
    if (img.pixels.size() != std::size_t(img.width) * std::size_t(img.height) * 3) std::abort();
    unsigned sink = touch(img.pixels.data(), img.pixels.size());
    for (const gemma3::CropBox& b : gemma3::pan_and_scan_crops(img.width, img.height)) {
      if (b.x < 0 || b.y < 0 || b.x + b.width > img.width || b.y + b.height > img.height) std::abort();
      sink += unsigned(b.width);
    }
    // The resize's cost grows with the image (each output pixel averages its share of the
    // input) while its arithmetic is pinned to PIL's by the tests: fuzz it on small images.
    if (img.pixels.size() <= 3 * 4096) {
      const gemma3::Image small = gemma3::resize_bilinear(img, 7, 5);
      sink += touch(small.pixels.data(), small.pixels.size());
    }
    (void)sink;
  } catch (const gemma3::ImageError&) {
  }
  return 0;
}
#endif

// config.json text: the text config and, for a multimodal config, the vision config.
inline int config_json_one_input(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const gemma3::Gemma3TextConfig c = gemma3::parse_config_json(text, "fuzz/config.json");
    if (c.num_hidden_layers < 1 || int(c.layer_types.size()) != c.num_hidden_layers) std::abort();
  } catch (const gemma3::ConfigError&) {
  }
  try {
    (void)gemma3::parse_vision_config_json(text, "fuzz/config.json");
  } catch (const gemma3::ConfigError&) {
  }
  return 0;
}

// tokenizer.model bytes: the protobuf reader, then a Tokenizer from the vocabulary and
// one encode / decode round trip through it.
inline int tokenizer_model_one_input(const std::uint8_t* data, std::size_t size) {
  auto file = gemma3::MappedFile::from_bytes(std::vector<unsigned char>(data, data + size), "fuzz/tokenizer.model");
  gemma3::Vocabulary v;
  try {
    v = gemma3::load_sentencepiece_model(file);
  } catch (const std::runtime_error&) {
    return 0;
  }
  try {
    const gemma3::Tokenizer tok = gemma3::tokenizer_from_vocabulary(v);
    const std::string text = "Hello \xF0\x9F\x99\x82  world\n\n<start_of_turn>\xFF";
    const std::vector<int> ids = tok.encode(text);
    for (int id : ids)
      if (id < 0 || id >= tok.vocab_size()) std::abort();
    (void)tok.decode(ids);
  } catch (const std::invalid_argument&) {  // a vocabulary the Tokenizer refuses, with the reason
  }
  return 0;
}

// The tokenizer's text input (any bytes, valid UTF-8 or not) on a small vocabulary that
// has every kind of piece: control, byte fallback <0x00>..<0xFF>, user-defined, normal
// pieces that merge. encode() must not throw, every id must be in range, and decode()
// must give the bytes back; the same bytes read as ids go through decode and the
// streaming decoder.
inline const gemma3::Tokenizer& fuzz_tokenizer() {
  static const gemma3::Tokenizer tok = [] {
    std::vector<std::string> pieces = {"<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"};
    std::vector<int> types = {3, 3, 3, 2, 3, 3};
    for (int b = 0; b < 256; ++b) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "<0x%02X>", b);
      pieces.push_back(buf);
      types.push_back(6);
    }
    for (const char* p : {"\n\n", "<b>", "  "}) { pieces.push_back(p); types.push_back(4); }
    const std::string sp = "\xE2\x96\x81";  // U+2581, SentencePiece's space
    for (const std::string& p : {sp, std::string("a"), std::string("b"), std::string("ab"), sp + "a", sp + "ab",
                                 std::string("\xC3\xA9"), sp + sp, std::string("abab"), std::string("ba"),
                                 std::string("\xF0\x9F\x99\x82"), std::string("\n"), std::string("<"), std::string(">")}) {
      pieces.push_back(p);
      types.push_back(1);
    }
    std::vector<float> scores(pieces.size());
    for (std::size_t i = 0; i < scores.size(); ++i) scores[i] = -float(i);
    gemma3::TokenizerConfig c;
    return gemma3::Tokenizer(pieces, scores, types, c);
  }();
  return tok;
}

inline int tokenizer_text_one_input(const std::uint8_t* data, std::size_t size) {
  const gemma3::Tokenizer& tok = fuzz_tokenizer();
  const std::string text(reinterpret_cast<const char*>(data), size);
  gemma3::EncodeOptions no_bos;
  no_bos.add_bos = false;
  const std::vector<int> ids = tok.encode(text, no_bos);
  for (int id : ids)
    if (id < 0 || id >= tok.vocab_size()) std::abort();
  // Byte fallback: every input comes back, except that a literal U+2581 (SentencePiece's
  // own space marker) comes back as the space it stands for, as in sentencepiece.
  std::string expected = text;
  for (std::size_t p = expected.find("\xE2\x96\x81"); p != std::string::npos; p = expected.find("\xE2\x96\x81", p + 1))
    expected.replace(p, 3, " ");
  if (tok.decode(ids) != expected) std::abort();
  std::vector<int> as_ids;
  for (std::size_t i = 0; i + 1 < size; i += 2) as_ids.push_back((data[i] << 8 | data[i + 1]) % tok.vocab_size());
  (void)tok.decode(as_ids);
  gemma3::TokenStreamDecoder stream(tok);
  std::string streamed;
  for (int id : as_ids) streamed += stream.push(id);
  streamed += stream.flush();
  (void)streamed;
  return 0;
}

}  // namespace gemma3_fuzz
