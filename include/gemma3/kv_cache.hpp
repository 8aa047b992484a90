// gemma3/kv_cache.hpp -- the key/value cache, sized by layer type.
//
//   global layer  : one row per position, 0 .. max_cache_len-1      slot(p) = p
//   sliding layer : a ring of sliding_window rows                    slot(p) = p % sliding_window
//
// A sliding layer's query at position p only ever looks at keys p-W+1 .. p
// (attention_mask.hpp), so keeping W rows is enough: the row for p overwrites the
// row for p-W, which no later query can see. With 5 sliding layers per global one
// this is where Gemma 3's ~5x KV saving at long context comes from;
// bytes_allocated() vs bytes_all_global() reports it live. The rows are reserved
// for max_cache_len positions but committed by the OS only as they are written
// (detail/zeroed_pages.hpp), so resident memory follows bytes_used(), not
// bytes_allocated().
//
// Rows are [num_key_value_heads * head_dim], after QK-norm and RoPE, stored as
// float32 (the default: the reference) or float16 (IEEE half, llama.cpp's default):
//   kv_dtype = F32   row bytes = 2 * KV * D * 4       (K and V)
//   kv_dtype = F16   row bytes = 2 * KV * D * 2       half the memory and half the
//                                                     bytes decode attention reads
// A float16 row is each value rounded to nearest, ties to even, when it is stored.
// This header only holds the rows (plain loops for store / load / round); the
// backends read and write them: backends/reference.hpp row by row in float32,
// backends/cpu.hpp through KVView with SIMD conversions and in place.
// Pinned by tests/test_kv_cache.cpp (ring wrap, memory arithmetic, float16 rounding)
// and the prefill/decode equality tests in tests/test_model.cpp.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "config.hpp"
#include "detail/zeroed_pages.hpp"
#include "dtype.hpp"
#include "tensor.hpp"

namespace gemma3 {

// A [rows, cols] block of cached keys or values, in place: row j starts `stride`
// values after row j - 1, in float32 or float16.
struct KVView {
  DType dtype = DType::F32;  // F32 or F16
  const void* data = nullptr;
  Eigen::Index rows = 0, cols = 0, stride = 0;

  KVView() = default;
  KVView(DType t, const void* d, Eigen::Index r, Eigen::Index c, Eigen::Index s)
      : dtype(t), data(d), rows(r), cols(c), stride(s) {}
  // A float32 matrix, whole.
  KVView(const Matrix& m) : KVView(DType::F32, m.data(), m.rows(), m.cols(), m.cols()) {}

  // Rows r0 .. r0 + n - 1, columns c0 .. c0 + m - 1.
  KVView block(Eigen::Index r0, Eigen::Index c0, Eigen::Index n, Eigen::Index m) const {
    return KVView(dtype, element(r0, c0), n, m, stride);
  }
  // Where value (r, c) is stored.
  const void* element(Eigen::Index r, Eigen::Index c) const {
    return static_cast<const unsigned char*>(data) + std::size_t(r * stride + c) * dtype_size(dtype);
  }
};

// [rows, width] cached values (all K rows of a layer, or all V rows), float32 or float16.
class KVRowStore {
 public:
  KVRowStore() = default;
  KVRowStore(DType dtype, int rows, int width) : dtype_(dtype), rows_(rows), width_(width) {
    if (dtype != DType::F32 && dtype != DType::F16)
      throw std::invalid_argument(std::string("KV cache: the cache holds f32 or f16 values, not ") + dtype_name(dtype));
    // zeroed; resident only where rows are written (detail/zeroed_pages.hpp)
    bytes_ = detail::ZeroedPages(std::size_t(rows) * std::size_t(width) * dtype_size(dtype));
  }
  DType dtype() const { return dtype_; }
  int rows() const { return rows_; }
  int width() const { return width_; }
  std::size_t bytes() const { return bytes_.size(); }

  // Row r = x [width], rounded to the store's dtype.
  void store(int r, const float* x) {
    if (dtype_ == DType::F32) std::copy(x, x + width_, reinterpret_cast<float*>(row_ptr(r)));
    else for (int i = 0; i < width_; ++i) reinterpret_cast<std::uint16_t*>(row_ptr(r))[i] = f32_to_f16(x[i]);
  }
  // Row r as float32 into out [width].
  void load(int r, float* out) const {
    if (dtype_ == DType::F32) std::copy_n(reinterpret_cast<const float*>(row_ptr(r)), width_, out);
    else for (int i = 0; i < width_; ++i) out[i] = f16_to_f32(reinterpret_cast<const std::uint16_t*>(row_ptr(r))[i]);
  }
  // Each value of x [T, width] replaced by what storing it would keep (F32: unchanged).
  void round(Matrix& x) const {
    if (dtype_ == DType::F32) return;
    for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = f16_to_f32(f32_to_f16(x.data()[i]));
  }
  // Rows r0 .. r0 + n - 1, in place.
  KVView view(int r0, int n) const { return KVView(dtype_, row_ptr(r0), n, width_, width_); }
  // Row r's bytes (a backend may write them itself, e.g. with SIMD conversions).
  unsigned char* row_data(int r) { return row_ptr(r); }

 private:
  const unsigned char* row_ptr(int r) const { return bytes_.data() + std::size_t(r) * std::size_t(width_) * dtype_size(dtype_); }
  unsigned char* row_ptr(int r) { return bytes_.data() + std::size_t(r) * std::size_t(width_) * dtype_size(dtype_); }

  DType dtype_ = DType::F32;
  int rows_ = 0, width_ = 0;
  detail::ZeroedPages bytes_;
};

struct LayerKVCache {
  bool sliding = false;
  int capacity = 0;  // rows: max_cache_len (global) or min(sliding_window, max_cache_len) (sliding)
  KVRowStore k;      // [capacity, num_key_value_heads * head_dim]
  KVRowStore v;      // [capacity, num_key_value_heads * head_dim]
  std::shared_ptr<void> device;  // a device backend's K and V rows (k and v above then hold none)

  // The host rows, or an error naming the mismatch (a cache made by a device backend).
  void require_host_rows(const char* who) const {
    if (k.rows() != capacity || v.rows() != capacity)
      throw std::invalid_argument(std::string(who) + ": this KV cache's rows are not in host memory (it was made by "
                                  "another backend); make the cache with the model's own new_cache()");
  }

  int slot(int position) const { return sliding ? position % capacity : position; }
};

class KVCache {
 public:
  // max_cache_len: the longest sequence this cache will hold (prompt + generated).
  // kv_dtype: DType::F32 (the reference) or DType::F16 (half the memory); BF16 too for
  // a device backend's rows.
  // host_rows = false: the layers' rows are left to a device backend (LayerKVCache::device).
  KVCache(const Gemma3TextConfig& config, int max_cache_len, DType kv_dtype = DType::F32, bool host_rows = true)
      : max_cache_len_(max_cache_len), dtype_(kv_dtype) {
    if (max_cache_len < 1 || max_cache_len > config.max_position_embeddings)
      throw std::invalid_argument("KVCache: max_cache_len must be in [1, max_position_embeddings = " +
                                  std::to_string(config.max_position_embeddings) + "], got " +
                                  std::to_string(max_cache_len));
    // A device backend's rows (host_rows = false) may also be bfloat16 (the CUDA backend's default).
    if (kv_dtype != DType::F32 && kv_dtype != DType::F16 && (host_rows || kv_dtype != DType::BF16))
      throw std::invalid_argument(std::string("KVCache: kv_dtype must be f32 or f16") +
                                  (host_rows ? "" : " or bf16") + ", got " + dtype_name(kv_dtype));
    row_width_ = config.num_key_value_heads * config.head_dim;
    layers_.resize(std::size_t(config.num_hidden_layers));
    for (int i = 0; i < config.num_hidden_layers; ++i) {
      LayerKVCache& l = layers_[std::size_t(i)];
      l.sliding = config.is_sliding(i);
      l.capacity = l.sliding ? std::min(config.sliding_window, max_cache_len) : max_cache_len;
      if (!host_rows) continue;
      l.k = KVRowStore(kv_dtype, l.capacity, row_width_);
      l.v = KVRowStore(kv_dtype, l.capacity, row_width_);
    }
  }

  int max_cache_len() const { return max_cache_len_; }
  DType dtype() const { return dtype_; }
  int length() const { return length_; }  // tokens seen so far = position of the next token
  void advance(int n) { length_ += n; }
  void clear() { length_ = 0; }

  LayerKVCache& layer(int i) { return layers_[std::size_t(i)]; }
  const LayerKVCache& layer(int i) const { return layers_[std::size_t(i)]; }
  int num_layers() const { return int(layers_.size()); }

  // Bytes held by all K and V rows.
  std::size_t bytes_allocated() const {
    std::size_t rows = 0;
    for (const LayerKVCache& l : layers_) rows += std::size_t(l.capacity);
    return rows * bytes_per_row();
  }
  // Bytes holding live tokens now.
  std::size_t bytes_used() const {
    std::size_t rows = 0;
    for (const LayerKVCache& l : layers_) rows += std::size_t(std::min(length_, l.capacity));
    return rows * bytes_per_row();
  }
  // What the same cache would take if every layer were global (no sliding ring).
  std::size_t bytes_all_global() const { return layers_.size() * std::size_t(max_cache_len_) * bytes_per_row(); }

 private:
  std::size_t bytes_per_row() const { return 2 * std::size_t(row_width_) * dtype_size(dtype_); }  // K and V

  std::vector<LayerKVCache> layers_;
  int max_cache_len_ = 0;
  DType dtype_ = DType::F32;
  int row_width_ = 0;
  int length_ = 0;
};

// Closed-form KV bytes for a config at sequence length T, for the memory tables
// (docs/architecture.md, "KV-cache arithmetic"): sum over layers of
// cache_len * 2 * kv_heads * head_dim * bytes.
inline double kv_cache_bytes(const Gemma3TextConfig& c, double T, double bytes_per_element, bool interleaved) {
  double rows = 0;
  for (int i = 0; i < c.num_hidden_layers; ++i)
    rows += (interleaved && c.is_sliding(i)) ? std::min(T, double(c.sliding_window)) : T;
  return rows * 2.0 * c.num_key_value_heads * c.head_dim * bytes_per_element;
}

}  // namespace gemma3
