// gemma3/kv_cache.hpp -- the key/value cache, sized by layer type.
//
//   global layer  : one row per position, 0 .. max_cache_len-1      slot(p) = p
//   sliding layer : a ring of sliding_window rows                    slot(p) = p % sliding_window
//
// A sliding layer's query at position p only ever looks at keys p-W+1 .. p
// (attention_mask.hpp), so keeping W rows is enough: the row for p overwrites the
// row for p-W, which no later query can see. With 5 sliding layers per global one
// this is where Gemma 3's ~5x KV saving at long context comes from;
// bytes_allocated() vs bytes_all_global() reports it live.
//
// Rows are [num_key_value_heads * head_dim] float32, after QK-norm and RoPE.
// Pinned by tests/test_kv_cache.cpp (ring wrap, memory arithmetic) and the
// prefill/decode equality tests in tests/test_model.cpp.
#pragma once

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "config.hpp"
#include "tensor.hpp"

namespace gemma3 {

struct LayerKVCache {
  bool sliding = false;
  int capacity = 0;  // rows: max_cache_len (global) or min(sliding_window, max_cache_len) (sliding)
  Matrix k;          // [capacity, num_key_value_heads * head_dim]
  Matrix v;          // [capacity, num_key_value_heads * head_dim]

  int slot(int position) const { return sliding ? position % capacity : position; }
};

class KVCache {
 public:
  // max_cache_len: the longest sequence this cache will hold (prompt + generated).
  KVCache(const Gemma3TextConfig& config, int max_cache_len) : max_cache_len_(max_cache_len) {
    if (max_cache_len < 1 || max_cache_len > config.max_position_embeddings)
      throw std::invalid_argument("KVCache: max_cache_len must be in [1, max_position_embeddings = " +
                                  std::to_string(config.max_position_embeddings) + "], got " +
                                  std::to_string(max_cache_len));
    row_width_ = config.num_key_value_heads * config.head_dim;
    layers_.resize(std::size_t(config.num_hidden_layers));
    for (int i = 0; i < config.num_hidden_layers; ++i) {
      LayerKVCache& l = layers_[std::size_t(i)];
      l.sliding = config.is_sliding(i);
      l.capacity = l.sliding ? std::min(config.sliding_window, max_cache_len) : max_cache_len;
      l.k.setZero(l.capacity, row_width_);
      l.v.setZero(l.capacity, row_width_);
    }
  }

  int max_cache_len() const { return max_cache_len_; }
  int length() const { return length_; }  // tokens seen so far = position of the next token
  void advance(int n) { length_ += n; }
  void clear() { length_ = 0; }

  LayerKVCache& layer(int i) { return layers_[std::size_t(i)]; }
  const LayerKVCache& layer(int i) const { return layers_[std::size_t(i)]; }
  int num_layers() const { return int(layers_.size()); }

  // Bytes held by all K and V rows (float32).
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
  std::size_t bytes_per_row() const { return 2 * std::size_t(row_width_) * sizeof(float); }  // K and V

  std::vector<LayerKVCache> layers_;
  int max_cache_len_ = 0;
  int row_width_ = 0;
  int length_ = 0;
};

// Closed-form KV bytes for a config at sequence length T, for the memory tables
// (gemma3-spec.md 7.2): sum over layers of cache_len * 2 * kv_heads * head_dim * bytes.
inline double kv_cache_bytes(const Gemma3TextConfig& c, double T, double bytes_per_element, bool interleaved) {
  double rows = 0;
  for (int i = 0; i < c.num_hidden_layers; ++i)
    rows += (interleaved && c.is_sliding(i)) ? std::min(T, double(c.sliding_window)) : T;
  return rows * 2.0 * c.num_key_value_heads * c.head_dim * bytes_per_element;
}

}  // namespace gemma3
