// tests/test_gguf_writer.hpp -- a small GGUF writer for tests and fuzz seeds.
//
// Writes exactly the layout gguf.hpp reads (gguf.md 1.1-1.5): header, key/values,
// tensor infos, zero padding to the alignment, tensor data with each tensor padded
// to the alignment (as gguf-py's writer does). Values are trees, so arrays of
// arrays and raw (invalid) type ids can be written too. bytes() also records where
// each field landed (`at`), so a test can corrupt exactly one field of a valid file.
//
// No Catch2 here: fuzz/ and tests both include it.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace gguf_test {

using Bytes = std::vector<unsigned char>;

enum : std::uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12
};

inline std::size_t scalar_size(std::uint32_t t) {
  switch (t) {
    case UINT8: case INT8: case BOOL: return 1;
    case UINT16: case INT16: return 2;
    case UINT32: case INT32: case FLOAT32: return 4;
    case UINT64: case INT64: case FLOAT64: return 8;
    default: return 0;
  }
}

// A metadata value: a scalar (its bits), a string, or an array of values.
struct Value {
  std::uint32_t type = UINT8;
  std::uint64_t bits = 0;
  std::string str;
  std::uint32_t elem_type = UINT8;  // arrays
  std::vector<Value> elems;

  static Value scalar(std::uint32_t t, std::uint64_t bits) { Value v; v.type = t; v.bits = bits; return v; }
  static Value u8(std::uint8_t x) { return scalar(UINT8, x); }
  static Value i8(std::int8_t x) { return scalar(INT8, std::uint8_t(x)); }
  static Value u16(std::uint16_t x) { return scalar(UINT16, x); }
  static Value i16(std::int16_t x) { return scalar(INT16, std::uint16_t(x)); }
  static Value u32(std::uint32_t x) { return scalar(UINT32, x); }
  static Value i32(std::int32_t x) { return scalar(INT32, std::uint32_t(x)); }
  static Value u64(std::uint64_t x) { return scalar(UINT64, x); }
  static Value i64(std::int64_t x) { return scalar(INT64, std::uint64_t(x)); }
  static Value boolean(bool b) { return scalar(BOOL, b ? 1 : 0); }
  static Value f32(float f) { std::uint32_t b; std::memcpy(&b, &f, 4); return scalar(FLOAT32, b); }
  static Value f64(double d) { std::uint64_t b; std::memcpy(&b, &d, 8); return scalar(FLOAT64, b); }
  static Value string(const std::string& s) { Value v; v.type = STRING; v.str = s; return v; }
  static Value array(std::uint32_t elem_type, std::vector<Value> elems) {
    Value v;
    v.type = ARRAY;
    v.elem_type = elem_type;
    v.elems = std::move(elems);
    return v;
  }
  static Value strings(const std::vector<std::string>& s) {
    std::vector<Value> e;
    for (const std::string& x : s) e.push_back(string(x));
    return array(STRING, std::move(e));
  }
  static Value f32s(const std::vector<float>& f) {
    std::vector<Value> e;
    for (float x : f) e.push_back(f32(x));
    return array(FLOAT32, std::move(e));
  }
  static Value i32s(const std::vector<std::int32_t>& f) {
    std::vector<Value> e;
    for (std::int32_t x : f) e.push_back(i32(x));
    return array(INT32, std::move(e));
  }
  static Value bools(const std::vector<bool>& f) {
    std::vector<Value> e;
    for (bool x : f) e.push_back(boolean(x));
    return array(BOOL, std::move(e));
  }
};

struct Tensor {
  std::string name;
  std::uint32_t type = 0;             // ggml type id
  std::vector<std::uint64_t> dims;    // ne0 first
  Bytes data;
};

class Writer {
 public:
  std::uint32_t version = 3;
  std::uint64_t alignment = 32;  // used for layout; write general.alignment yourself to change the reader's
  std::vector<std::pair<std::string, Value>> kv;
  std::vector<Tensor> tensors;
  // Byte positions of fields in the last bytes(): "version", "tensor_count", "kv_count",
  // "key:K" (the key's length field), "value:K" (after the type id), "type:K",
  // "tensor:N" (name length), "n_dims:N", "dims:N", "ggml_type:N", "offset:N", "data:N",
  // "data_section".
  mutable std::map<std::string, std::size_t> at;

  Writer& add(const std::string& key, Value v) {
    for (auto& p : kv)
      if (p.first == key) { p.second = std::move(v); return *this; }
    kv.emplace_back(key, std::move(v));
    return *this;
  }
  Writer& erase(const std::string& key) {
    for (auto it = kv.begin(); it != kv.end(); ++it)
      if (it->first == key) { kv.erase(it); break; }
    return *this;
  }
  Writer& tensor(const std::string& name, std::uint32_t type, std::vector<std::uint64_t> dims, Bytes data) {
    for (auto& t : tensors)
      if (t.name == name) { t.type = type; t.dims = std::move(dims); t.data = std::move(data); return *this; }
    tensors.push_back(Tensor{name, type, std::move(dims), std::move(data)});
    return *this;
  }
  Tensor* find_tensor(const std::string& name) {
    for (auto& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
  Writer& erase_tensor(const std::string& name) {
    for (auto it = tensors.begin(); it != tensors.end(); ++it)
      if (it->name == name) { tensors.erase(it); break; }
    return *this;
  }

  Bytes bytes() const {
    at.clear();
    Bytes b;
    put(b, "GGUF");
    at["version"] = b.size();
    le(b, version, 4);
    at["tensor_count"] = b.size();
    le(b, tensors.size(), 8);
    at["kv_count"] = b.size();
    le(b, kv.size(), 8);
    for (const auto& p : kv) {
      at["key:" + p.first] = b.size();
      str(b, p.first);
      at["type:" + p.first] = b.size();
      le(b, p.second.type, 4);
      at["value:" + p.first] = b.size();
      value(b, p.second);
    }
    std::vector<std::uint64_t> offsets;
    std::uint64_t off = 0;
    for (const Tensor& t : tensors) {
      offsets.push_back(off);
      off += pad(t.data.size());
    }
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const Tensor& t = tensors[i];
      at["tensor:" + t.name] = b.size();
      str(b, t.name);
      at["n_dims:" + t.name] = b.size();
      le(b, t.dims.size(), 4);
      at["dims:" + t.name] = b.size();
      for (std::uint64_t d : t.dims) le(b, d, 8);
      at["ggml_type:" + t.name] = b.size();
      le(b, t.type, 4);
      at["offset:" + t.name] = b.size();
      le(b, offsets[i], 8);
    }
    b.resize(std::size_t(pad(b.size())), 0);
    at["data_section"] = b.size();
    for (const Tensor& t : tensors) {
      at["data:" + t.name] = b.size();
      b.insert(b.end(), t.data.begin(), t.data.end());
      b.resize(std::size_t(pad(b.size())), 0);
    }
    return b;
  }

 private:
  std::uint64_t pad(std::uint64_t x) const { return x + (alignment - x % alignment) % alignment; }
  static void le(Bytes& b, std::uint64_t v, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) b.push_back(static_cast<unsigned char>((v >> (8 * i)) & 0xff));
  }
  static void put(Bytes& b, const std::string& s) { b.insert(b.end(), s.begin(), s.end()); }
  static void str(Bytes& b, const std::string& s) {
    le(b, s.size(), 8);
    put(b, s);
  }
  static void value(Bytes& b, const Value& v) {
    if (v.type == STRING) return str(b, v.str);
    if (v.type == ARRAY) {
      le(b, v.elem_type, 4);
      le(b, v.elems.size(), 8);
      for (const Value& e : v.elems) value(b, e);  // elements carry no type id of their own
      return;
    }
    le(b, v.bits, scalar_size(v.type) ? scalar_size(v.type) : 4);
  }
};

// ---- helpers for building tensors --------------------------------------------

inline Bytes f32_data(const std::vector<float>& v) {
  Bytes b(v.size() * 4);
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

inline void put_le(Bytes& b, std::size_t pos, std::uint64_t v, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) b.at(pos + i) = static_cast<unsigned char>((v >> (8 * i)) & 0xff);
}

// A complete tiny gemma3 model: every tensor F32 unless `matrix_type` says otherwise
// (8 = Q8_0: ne0 must then be a multiple of 32; the bytes are a valid pattern of
// scale 2^-10 and small int8 values). Norm vectors hold 1 + w as the converter writes.
struct TinyModel {
  int vocab = 8, hidden = 32, inter = 32, layers = 2, heads = 2, kv_heads = 1, head_dim = 16;
  int context = 64, window = 4;
  std::uint32_t matrix_type = 0;

  static float pattern(std::size_t i, int seed) {
    return 0.25f * float(std::sin(0.37 * double(i) + 1.3 * double(seed) + 0.1));
  }
  Bytes matrix_bytes(std::uint64_t rows, std::uint64_t cols, int seed) const {
    if (matrix_type == 8) {  // Q8_0: f16 d = 2^-10 (0x1400), then 32 int8
      Bytes b;
      for (std::uint64_t r = 0; r < rows; ++r)
        for (std::uint64_t blk = 0; blk < cols / 32; ++blk) {
          b.push_back(0x00);
          b.push_back(0x14);
          for (int j = 0; j < 32; ++j)
            b.push_back(static_cast<unsigned char>(std::int8_t((int(r * 7 + blk * 3 + std::uint64_t(j) + std::uint64_t(seed)) % 61) - 30)));
        }
      return b;
    }
    std::vector<float> v(std::size_t(rows * cols));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = pattern(i, seed);
    return f32_data(v);
  }
  Bytes norm_bytes(std::uint64_t n, int seed) const {
    std::vector<float> v(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = 1.0f + pattern(i, seed);
    return f32_data(v);
  }

  Writer writer() const {
    Writer w;
    w.add("general.architecture", Value::string("gemma3"))
        .add("general.name", Value::string("tiny"))
        .add("gemma3.context_length", Value::u32(std::uint32_t(context)))
        .add("gemma3.embedding_length", Value::u32(std::uint32_t(hidden)))
        .add("gemma3.block_count", Value::u32(std::uint32_t(layers)))
        .add("gemma3.feed_forward_length", Value::u32(std::uint32_t(inter)))
        .add("gemma3.attention.head_count", Value::u32(std::uint32_t(heads)))
        .add("gemma3.attention.head_count_kv", Value::u32(std::uint32_t(kv_heads)))
        .add("gemma3.attention.key_length", Value::u32(std::uint32_t(head_dim)))
        .add("gemma3.attention.value_length", Value::u32(std::uint32_t(head_dim)))
        .add("gemma3.attention.layer_norm_rms_epsilon", Value::f32(1e-6f))
        .add("gemma3.rope.freq_base", Value::f32(1000000.0f))
        .add("gemma3.attention.sliding_window", Value::u32(std::uint32_t(window)))
        .add("tokenizer.ggml.model", Value::string("llama"));
    std::vector<std::string> toks;
    std::vector<float> scores;
    std::vector<std::int32_t> types;
    for (int i = 0; i < vocab; ++i) {
      toks.push_back(i == 0 ? "<pad>" : i == 1 ? "<eos>" : i == 2 ? "<bos>" : i == 3 ? "<unk>" : "t" + std::to_string(i));
      scores.push_back(-float(i));
      types.push_back(i < 4 ? 3 : 1);
    }
    w.add("tokenizer.ggml.tokens", Value::strings(toks))
        .add("tokenizer.ggml.scores", Value::f32s(scores))
        .add("tokenizer.ggml.token_type", Value::i32s(types))
        .add("tokenizer.ggml.bos_token_id", Value::u32(2))
        .add("tokenizer.ggml.eos_token_id", Value::u32(1))
        .add("tokenizer.ggml.unknown_token_id", Value::u32(3))
        .add("tokenizer.ggml.padding_token_id", Value::u32(0))
        .add("tokenizer.ggml.add_bos_token", Value::boolean(true))
        .add("tokenizer.ggml.add_space_prefix", Value::boolean(false));
    if (matrix_type != 0) w.add("general.quantization_version", Value::u32(2));

    const std::uint64_t H = std::uint64_t(hidden), I = std::uint64_t(inter), D = std::uint64_t(head_dim);
    const std::uint64_t Q = std::uint64_t(heads) * D, KV = std::uint64_t(kv_heads) * D;
    int seed = 0;
    auto mat = [&](const std::string& name, std::uint64_t rows, std::uint64_t cols) {
      w.tensor(name, matrix_type, {cols, rows}, matrix_bytes(rows, cols, seed++));
    };
    auto norm = [&](const std::string& name, std::uint64_t n) { w.tensor(name, 0, {n}, norm_bytes(n, seed++)); };
    mat("token_embd.weight", std::uint64_t(vocab), H);
    norm("output_norm.weight", H);
    for (int i = 0; i < layers; ++i) {
      const std::string p = "blk." + std::to_string(i) + ".";
      norm(p + "attn_norm.weight", H);
      mat(p + "attn_q.weight", Q, H);
      mat(p + "attn_k.weight", KV, H);
      mat(p + "attn_v.weight", KV, H);
      mat(p + "attn_output.weight", H, Q);
      norm(p + "attn_q_norm.weight", D);
      norm(p + "attn_k_norm.weight", D);
      norm(p + "post_attention_norm.weight", H);
      norm(p + "ffn_norm.weight", H);
      mat(p + "ffn_gate.weight", I, H);
      mat(p + "ffn_up.weight", I, H);
      mat(p + "ffn_down.weight", H, I);
      norm(p + "post_ffw_norm.weight", H);
    }
    return w;
  }
};

}  // namespace gguf_test
