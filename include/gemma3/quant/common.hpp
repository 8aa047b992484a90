// gemma3/quant/common.hpp -- what every GGUF block type shares: the block sizes,
// round-to-nearest, and the block-by-block reference dot with float32 x. Scalar
// only: the SIMD helpers are in kernels/dequantize_simd.hpp.
//
//   QK   = 32    values per block of the legacy types (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1)
//   QK_K = 256   values per super-block of the K-quants (Q4_K, Q5_K, Q6_K)
//   dot_f32_by_blocks: sum_i w_i x_i, each block dequantized exactly, accumulated in
//   double (the plain reference dot_<type>_f32 of every block type).
//
// Pinned by tests/test_quant.cpp.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "../dtype.hpp"

namespace gemma3 {
namespace quant {

constexpr int QK = 32;     // values per block of the legacy types (and of the int16 activations)
constexpr int QK_K = 256;  // values per super-block of the K-quants

// Round to nearest, ties to even, for |x| < 2^22 (ggml's nearest_int): adding
// 1.5 * 2^23 leaves the rounded integer in the low mantissa bits. Unlike lrintf it
// is inline and does not depend on the rounding mode... as long as the build does
// not use -ffast-math (which would fold the addition away).
inline int nearest_int(float x) {
  float v = x + 12582912.0f;
  std::int32_t i;
  std::memcpy(&i, &v, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// The dot of a quantized row with float32 x by dequantizing one block at a time;
// the plain reference behind every dot_<type>_f32 (double accumulation).
template <int BlockSize, std::size_t BlockBytes, class Dequantize>
inline float dot_f32_by_blocks(const void* row, const float* x, std::int64_t n, Dequantize dequantize) {
  const auto* p = static_cast<const unsigned char*>(row);
  float tmp[BlockSize];
  double acc = 0.0;
  for (std::int64_t b = 0; b < n / BlockSize; ++b) {
    dequantize(p + b * BlockBytes, tmp, BlockSize);
    for (int j = 0; j < BlockSize; ++j) acc += double(tmp[j]) * double(x[b * BlockSize + j]);
  }
  return float(acc);
}


}  // namespace quant
}  // namespace gemma3
