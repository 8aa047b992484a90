// tests/test_quant_helpers.hpp -- random valid GGUF blocks and float vectors for
// the kernel tests (tests/test_quant.cpp), the wasm test (tests/wasm/) and
// bench/bench_quant.cpp. No Catch2, no Eigen: plain C++17.
//
// "Valid" blocks: every quant byte random (all bit patterns occur), the f16 scale
// fields set to finite values chosen by the caller's mode:
//   Scales::real      random sign * 10^U(-3, -1) (d), 10^U(-3,-1) (m, dmin)
//   Scales::integer   d = 1 and m / dmin = small integers, so that every dequantized
//                     value is an integer and float sums of them are exact
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "gemma3/dtype.hpp"
#include "gemma3/weight.hpp"
#include "gemma3/quant/quant.hpp"

namespace quant_test {

class Rng {  // splitmix64
 public:
  explicit Rng(std::uint64_t seed) : s_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float uniform(float lo, float hi) { return lo + (hi - lo) * float(next() >> 40) * (1.0f / 16777216.0f); }
  int integer(int lo, int hi) { return lo + int(next() % std::uint64_t(hi - lo + 1)); }  // [lo, hi]

 private:
  std::uint64_t s_;
};

enum class Scales { real, integer };

// Byte offsets of the f16 fields of one block: {d, m-or-dmin or -1}.
inline void f16_fields(gemma3::DType t, int& d_off, int& m_off) {
  using gemma3::DType;
  m_off = -1;
  switch (t) {
    case DType::Q8_0: case DType::Q4_0: case DType::Q5_0: d_off = 0; return;
    case DType::Q4_1: case DType::Q5_1: case DType::Q4_K: case DType::Q5_K: d_off = 0; m_off = 2; return;
    case DType::Q6_K: d_off = 208; return;
    default: d_off = -1; return;
  }
}

inline void put_f16(unsigned char* p, float v) {
  const std::uint16_t h = gemma3::f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

// rows x cols values of block type t (cols a multiple of its block size).
inline std::vector<unsigned char> random_blocks(gemma3::DType t, std::int64_t rows, std::int64_t cols, Rng& rng,
                                                Scales mode = Scales::real) {
  const std::size_t bb = gemma3::dtype_block_bytes(t);
  const std::size_t nblocks = std::size_t(rows) * std::size_t(cols) / gemma3::dtype_block_size(t);
  std::vector<unsigned char> bytes(nblocks * bb);
  for (std::size_t i = 0; i < bytes.size(); i += 8) {
    const std::uint64_t r = rng.next();
    std::memcpy(&bytes[i], &r, std::min<std::size_t>(8, bytes.size() - i));
  }
  int d_off, m_off;
  f16_fields(t, d_off, m_off);
  for (std::size_t b = 0; b < nblocks; ++b) {
    unsigned char* blk = &bytes[b * bb];
    if (mode == Scales::integer) {
      put_f16(blk + d_off, 1.0f);
      if (m_off >= 0) put_f16(blk + m_off, float(rng.integer(-3, 3)));
    } else {
      const float sign = (rng.next() & 1) ? 1.0f : -1.0f;
      put_f16(blk + d_off, sign * std::pow(10.0f, rng.uniform(-3.0f, -1.0f)));
      if (m_off >= 0) put_f16(blk + m_off, std::pow(10.0f, rng.uniform(-3.0f, -1.0f)));
    }
  }
  return bytes;
}

inline std::vector<float> random_floats(std::size_t n, Rng& rng, float a = 1.0f) {
  std::vector<float> v(n);
  for (float& x : v) x = rng.uniform(-a, a);
  return v;
}

// A Weight viewing rows x cols values of dtype t stored in bytes (which must outlive it).
inline gemma3::Weight weight_view(gemma3::DType t, std::int64_t rows, std::int64_t cols,
                                  const std::vector<unsigned char>& bytes) {
  gemma3::Weight w;
  w.dtype = t;
  w.data = bytes.data();
  w.rows = rows;
  w.cols = cols;
  return w;
}

// The block types, in DType order.
inline std::vector<gemma3::DType> block_types() {
  using gemma3::DType;
  return {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K};
}

}  // namespace quant_test
