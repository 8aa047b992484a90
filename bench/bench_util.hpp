// bench/bench_util.hpp -- random weights and activations for the benchmarks.
//
// Benchmarks need weights of the right shape and dtype, not trained values, so
// everything here is filled from a fixed-seed splitmix64 stream (fast enough to
// fill a few hundred MB of weights in a second or two, and reproducible).
// Owned buffers are handed out as shared_ptr so they can live in
// Gemma3TextWeights::storage next to the Weight views that point into them.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include <gemma3/dtype.hpp>
#include <gemma3/weight.hpp>
#include <gemma3/kv_cache.hpp>
#include <gemma3/tensor.hpp>

namespace gemma3_bench {

// splitmix64: tiny, fast, good enough for filling buffers.
class Rng {
 public:
  explicit Rng(std::uint64_t seed = 0x9e3779b97f4a7c15ull) : s_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [-a, a).
  float uniform(float a) { return a * (float(next() >> 40) * (2.0f / 16777216.0f) - 1.0f); }

 private:
  std::uint64_t s_;
};

// A random [rows, cols] weight of dtype t, uniform in +-1/sqrt(cols) (keeps
// activations O(1) through a stack of layers). The buffer is appended to
// `storage`, which must outlive the returned view.
inline gemma3::Weight random_weight(Rng& rng, gemma3::DType t, std::int64_t rows, std::int64_t cols,
                                    std::vector<std::shared_ptr<const void>>& storage) {
  const std::size_t n = std::size_t(rows * cols);
  const float a = 1.0f / std::sqrt(float(cols));
  gemma3::Weight w;
  w.dtype = t;
  w.rows = rows;
  w.cols = cols;
  if (t == gemma3::DType::F32) {
    auto buf = std::make_shared<std::vector<float>>(n);
    for (float& x : *buf) x = rng.uniform(a);
    w.data = buf->data();
    storage.push_back(buf);
  } else {
    auto buf = std::make_shared<std::vector<std::uint16_t>>(n);
    const bool bf16 = t == gemma3::DType::BF16;
    for (std::uint16_t& x : *buf) {
      const float f = rng.uniform(a);
      x = bf16 ? gemma3::f32_to_bf16(f) : gemma3::f32_to_f16(f);
    }
    w.data = buf->data();
    storage.push_back(buf);
  }
  return w;
}

// Bytes a weight occupies (what one matvec over it has to read).
inline std::int64_t weight_bytes(const gemma3::Weight& w) {
  return w.rows * w.cols * std::int64_t(gemma3::dtype_size(w.dtype));
}

// Fill a matrix with uniform values in +-a.
inline void fill_random(Rng& rng, gemma3::Matrix& m, float a = 1.0f) {
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = rng.uniform(a);
}

// Every row of a KV cache store, random (stands in for earlier tokens' keys or values).
inline void fill_random(Rng& rng, gemma3::KVRowStore& kv, float a = 1.0f) {
  gemma3::Matrix row(1, kv.width());
  for (int r = 0; r < kv.rows(); ++r) {
    fill_random(rng, row, a);
    kv.store(r, row.data());
  }
}
inline gemma3::Matrix random_matrix(Rng& rng, Eigen::Index rows, Eigen::Index cols, float a = 1.0f) {
  gemma3::Matrix m(rows, cols);
  fill_random(rng, m, a);
  return m;
}

inline gemma3::Vector random_vector(Rng& rng, Eigen::Index n, float a = 0.1f) {
  gemma3::Vector v(n);
  for (Eigen::Index i = 0; i < n; ++i) v[i] = rng.uniform(a);
  return v;
}

}  // namespace gemma3_bench
