// Helpers for tests/test_loader_errors.cpp: build safetensors files and tiny HF
// checkpoint folders in memory / in a temp directory, and check that a call
// throws a given exception type whose message names given substrings.
//
// Portable across Catch2 v2 and v3 (no matchers: plain substring checks).
#pragma once

#include "catch.hpp"

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace loader_errors {

namespace fs = std::filesystem;
using Bytes = std::vector<unsigned char>;

// ---- exception checks --------------------------------------------------------

// Runs f; returns what() of the E it throws. FAILs the test case if f returns or
// throws anything that is not an E (the message says what it threw instead).
template <class E, class F>
std::string message_of(F&& f, const char* what) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL(what << ": threw the wrong exception type; its message: " << e.what());
  } catch (...) {
    FAIL(what << ": threw something that is not a std::exception");
  }
  FAIL(what << ": did not throw");
  return {};
}

inline void check_contains(const std::string& message, std::initializer_list<std::string> parts) {
  for (const std::string& part : parts) {
    INFO("message:  " << message);
    INFO("must contain: " << part);
    CHECK(message.find(part) != std::string::npos);
  }
}

}  // namespace loader_errors

// REQUIRE_THROWS_NAMING(gemma3::SafetensorsError, expr, "file.safetensors", "tensor 'w'", "F33")
// expr must throw exactly that type (or a subclass); its what() must contain every string.
#define REQUIRE_THROWS_NAMING(ExceptionType, expr, ...)                                                  \
  do {                                                                                                   \
    const std::string gemma3_test_msg_ =                                                                 \
        ::loader_errors::message_of<ExceptionType>([&]() { (void)(expr); }, #ExceptionType " from " #expr); \
    ::loader_errors::check_contains(gemma3_test_msg_, {__VA_ARGS__});                                    \
  } while (0)

namespace loader_errors {

// ---- bytes -----------------------------------------------------------------

inline Bytes to_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

inline void append_u64_le(Bytes& out, std::uint64_t n) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<unsigned char>((n >> (8 * i)) & 0xff));
}

// 8-byte LE header length (given explicitly) + header text + `data_bytes` bytes of data.
inline Bytes safetensors_with_length(std::uint64_t header_len, const std::string& header, std::size_t data_bytes) {
  Bytes out;
  append_u64_le(out, header_len);
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data_bytes, static_cast<unsigned char>(0xab));
  return out;
}

// A safetensors file from a hand-written header; the length field is the header's size.
inline Bytes raw_safetensors(const std::string& header, std::size_t data_bytes) {
  return safetensors_with_length(header.size(), header, data_bytes);
}

inline Bytes f32_bytes(const std::vector<float>& v) {
  Bytes b(v.size() * 4);
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

inline std::string shape_json(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

struct StTensor {
  std::string name;
  std::string dtype;
  std::vector<std::int64_t> shape;
  Bytes bytes;
};

// Serialise tensors into a valid safetensors file: offsets assigned in order, the
// header padded with spaces to a multiple of 8 (as the reference writer does).
inline Bytes serialize_safetensors(const std::vector<StTensor>& tensors, const std::string& metadata_json = "") {
  std::string header = "{";
  bool first = true;
  if (!metadata_json.empty()) {
    header += "\"__metadata__\":" + metadata_json;
    first = false;
  }
  std::size_t offset = 0;
  for (const StTensor& t : tensors) {
    header += (first ? "" : ",");
    first = false;
    header += "\"" + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":" + shape_json(t.shape) +
              ",\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.bytes.size()) + "]}";
    offset += t.bytes.size();
  }
  header += "}";
  while (header.size() % 8 != 0) header += ' ';
  Bytes out;
  append_u64_le(out, header.size());
  out.insert(out.end(), header.begin(), header.end());
  for (const StTensor& t : tensors) out.insert(out.end(), t.bytes.begin(), t.bytes.end());
  return out;
}

// ---- files -----------------------------------------------------------------

inline void write_file(const fs::path& path, const Bytes& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  REQUIRE(f.good());
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  REQUIRE(f.good());
}
inline void write_file(const fs::path& path, const std::string& text) { write_file(path, to_bytes(text)); }

// A fresh directory under temp_directory_path(), removed with everything in it.
class TempDir {
 public:
  TempDir() {
    static unsigned counter = 0;
    std::random_device rd;
    const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    for (int attempt = 0; attempt < 100; ++attempt) {
      const std::string name = "gemma3_loader_errors_" + std::to_string(rd()) + "_" + std::to_string(now) + "_" +
                               std::to_string(counter++);
      path_ = fs::temp_directory_path() / name;
      std::error_code ec;
      if (fs::create_directory(path_, ec)) return;
    }
    throw std::runtime_error("TempDir: cannot create a directory under " + fs::temp_directory_path().string());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

// ---- config.json -----------------------------------------------------------

// An ordered JSON object of raw JSON values, editable per field.
struct JsonFields {
  std::vector<std::pair<std::string, std::string>> kv;

  JsonFields& set(const std::string& key, const std::string& raw_value) {
    for (auto& p : kv)
      if (p.first == key) {
        p.second = raw_value;
        return *this;
      }
    kv.emplace_back(key, raw_value);
    return *this;
  }
  JsonFields& erase(const std::string& key) {
    for (auto it = kv.begin(); it != kv.end(); ++it)
      if (it->first == key) {
        kv.erase(it);
        return *this;
      }
    return *this;
  }
  std::string str() const {
    std::string s = "{\n";
    for (std::size_t i = 0; i < kv.size(); ++i)
      s += "  \"" + kv[i].first + "\": " + kv[i].second + (i + 1 < kv.size() ? ",\n" : "\n");
    return s + "}\n";
  }
};

// The tiny model every checkpoint test uses: vocab 16, hidden 8, 2 layers
// (sliding, global), 2 query heads, 1 KV head, head_dim 4, intermediate 16, window 2.
constexpr int kVocab = 16, kHidden = 8, kLayers = 2, kHeads = 2, kKvHeads = 1, kHeadDim = 4, kInter = 16;

// A complete model_type "gemma3_text" config (every field HF writes).
inline JsonFields tiny_config_fields() {
  JsonFields f;
  f.set("architectures", "[\"Gemma3ForCausalLM\"]")
      .set("model_type", "\"gemma3_text\"")
      .set("vocab_size", std::to_string(kVocab))
      .set("hidden_size", std::to_string(kHidden))
      .set("intermediate_size", std::to_string(kInter))
      .set("num_hidden_layers", std::to_string(kLayers))
      .set("num_attention_heads", std::to_string(kHeads))
      .set("num_key_value_heads", std::to_string(kKvHeads))
      .set("head_dim", std::to_string(kHeadDim))
      .set("max_position_embeddings", "32")
      .set("query_pre_attn_scalar", "4")
      .set("sliding_window", "2")
      .set("layer_types", "[\"sliding_attention\", \"full_attention\"]")
      .set("attention_bias", "false")
      .set("attention_dropout", "0.0")
      .set("attn_logit_softcapping", "null")
      .set("final_logit_softcapping", "null")
      .set("use_bidirectional_attention", "false")
      .set("rope_theta", "1000000.0")
      .set("rope_local_base_freq", "10000.0")
      .set("rope_scaling", "null")
      .set("rms_norm_eps", "1e-06")
      .set("hidden_activation", "\"gelu_pytorch_tanh\"")
      .set("tie_word_embeddings", "true")
      .set("initializer_range", "0.02")
      .set("use_cache", "true")
      .set("pad_token_id", "0")
      .set("bos_token_id", "2")
      .set("eos_token_id", "1")
      .set("torch_dtype", "\"float32\"");
  return f;
}

// ---- tiny checkpoint -------------------------------------------------------

// Deterministic small values; `seed` varies per tensor.
inline std::vector<float> pattern(std::size_t n, int seed) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = 0.25f * float(std::sin(0.37 * double(i) + 1.3 * double(seed) + 0.1));
  return v;
}

inline StTensor f32_tensor(const std::string& name, std::vector<std::int64_t> shape, int seed) {
  std::size_t n = 1;
  for (std::int64_t d : shape) n *= std::size_t(d);
  return StTensor{name, "F32", std::move(shape), f32_bytes(pattern(n, seed))};
}

// Every tensor load_hf_model reads for the tiny config, F32, under `prefix`.
inline std::vector<StTensor> tiny_tensors(const std::string& prefix = "model.") {
  const std::int64_t H = kHidden, I = kInter, D = kHeadDim, Q = kHeads * kHeadDim, KV = kKvHeads * kHeadDim;
  std::vector<StTensor> t;
  int seed = 0;
  t.push_back(f32_tensor(prefix + "embed_tokens.weight", {kVocab, H}, seed++));
  t.push_back(f32_tensor(prefix + "norm.weight", {H}, seed++));
  for (int i = 0; i < kLayers; ++i) {
    const std::string p = prefix + "layers." + std::to_string(i) + ".";
    t.push_back(f32_tensor(p + "input_layernorm.weight", {H}, seed++));
    t.push_back(f32_tensor(p + "self_attn.q_proj.weight", {Q, H}, seed++));
    t.push_back(f32_tensor(p + "self_attn.k_proj.weight", {KV, H}, seed++));
    t.push_back(f32_tensor(p + "self_attn.v_proj.weight", {KV, H}, seed++));
    t.push_back(f32_tensor(p + "self_attn.o_proj.weight", {H, Q}, seed++));
    t.push_back(f32_tensor(p + "self_attn.q_norm.weight", {D}, seed++));
    t.push_back(f32_tensor(p + "self_attn.k_norm.weight", {D}, seed++));
    t.push_back(f32_tensor(p + "post_attention_layernorm.weight", {H}, seed++));
    t.push_back(f32_tensor(p + "pre_feedforward_layernorm.weight", {H}, seed++));
    t.push_back(f32_tensor(p + "mlp.gate_proj.weight", {I, H}, seed++));
    t.push_back(f32_tensor(p + "mlp.up_proj.weight", {I, H}, seed++));
    t.push_back(f32_tensor(p + "mlp.down_proj.weight", {H, I}, seed++));
    t.push_back(f32_tensor(p + "post_feedforward_layernorm.weight", {H}, seed++));
  }
  return t;
}

inline StTensor& tensor_named(std::vector<StTensor>& tensors, const std::string& name) {
  for (StTensor& t : tensors)
    if (t.name == name) return t;
  throw std::logic_error("test helper: no tensor " + name);
}

inline void erase_tensor(std::vector<StTensor>& tensors, const std::string& name) {
  for (auto it = tensors.begin(); it != tensors.end(); ++it)
    if (it->name == name) {
      tensors.erase(it);
      return;
    }
  throw std::logic_error("test helper: no tensor " + name);
}

// config.json + model.safetensors in `dir`.
inline void write_checkpoint(const fs::path& dir, const std::vector<StTensor>& tensors,
                             const std::string& config = tiny_config_fields().str()) {
  write_file(dir / "config.json", config);
  write_file(dir / "model.safetensors", serialize_safetensors(tensors, "{\"format\":\"pt\"}"));
}

// config.json + two shards + model.safetensors.index.json in `dir`; tensors of
// layer 1 go to the second shard, the rest to the first. Returns the shard names.
// `in_second` (optional) overrides which tensors go to the second shard.
inline std::pair<std::string, std::string> write_sharded_checkpoint(
    const fs::path& dir, const std::vector<StTensor>& tensors, JsonFields* weight_map_out = nullptr,
    const std::function<bool(const std::string&)>& in_second = nullptr,
    const std::string& config = tiny_config_fields().str()) {
  const std::string s1 = "model-00001-of-00002.safetensors", s2 = "model-00002-of-00002.safetensors";
  std::vector<StTensor> a, b;
  JsonFields weight_map;
  for (const StTensor& t : tensors) {
    const bool second = in_second ? in_second(t.name) : t.name.find("layers.1.") != std::string::npos;
    (second ? b : a).push_back(t);
    weight_map.set(t.name, "\"" + (second ? s2 : s1) + "\"");
  }
  write_file(dir / "config.json", config);
  write_file(dir / s1, serialize_safetensors(a, "{\"format\":\"pt\"}"));
  write_file(dir / s2, serialize_safetensors(b, "{\"format\":\"pt\"}"));
  if (weight_map_out) {
    *weight_map_out = weight_map;  // the caller edits it and writes the index itself
  } else {
    write_file(dir / "model.safetensors.index.json",
               "{\"metadata\": {\"total_size\": 0}, \"weight_map\": " + weight_map.str() + "}");
  }
  return {s1, s2};
}

inline void write_index(const fs::path& dir, const JsonFields& weight_map) {
  write_file(dir / "model.safetensors.index.json",
             "{\"metadata\": {\"total_size\": 0}, \"weight_map\": " + weight_map.str() + "}");
}

}  // namespace loader_errors
