// gemma3/quant/common.hpp -- what every GGUF block type shares: the block sizes,
// round-to-nearest, the block-by-block reference dot with float32 x, and the small
// AVX2 helpers of the dequantizer twins (quant/q*.hpp), the fused float dots
// (quant/fdot.hpp) and the int16-activation kernels (kernels/dot_q16.hpp).
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

#include "../kernels/dtype.hpp"
#include "../kernels/isa.hpp"

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

#if GEMMA3_HAVE_X86_SIMD
namespace avx2 {

// f16 -> f32 in one instruction (F16C, exact like f16_to_f32).
GEMMA3_TARGET_AVX2 inline float f16(std::uint16_t h) { return _cvtsh_ss(h); }

// Sum of the 8 lanes.
GEMMA3_TARGET_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

GEMMA3_TARGET_AVX2 inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// 16 bytes of nibbles -> 32 bytes: the low nibbles (values 0..15) then the high ones
// (values 16..31), the order of every legacy 32-wide block.
GEMMA3_TARGET_AVX2 inline __m256i nibbles32(const std::uint8_t* qs) {
  const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0f));
}

// 32 bits (4 bytes, little-endian) -> 32 bytes, 0xff where the bit is set.
GEMMA3_TARGET_AVX2 inline __m256i bits32(const std::uint8_t* qh) {
  std::uint32_t x;
  std::memcpy(&x, qh, 4);
  const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
  __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(int(x)), shuf);  // byte j = source byte j / 8
  bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));  // all bits but bit j % 8
  return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
}

// 8 signed bytes -> 8 floats (exact).
GEMMA3_TARGET_AVX2 inline __m256 i8x8_to_ps(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)); }

// 32 signed bytes q -> y[0..31] = d * float(q) (one float multiply each, as the
// scalar dequantizers do; mul is commutative so d * q == q * d bit for bit).
GEMMA3_TARGET_AVX2 inline void store_scaled_i8x32(__m256i q, __m256 d, float* y) {
  const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
  _mm256_storeu_ps(y + 0, _mm256_mul_ps(d, i8x8_to_ps(lo)));
  _mm256_storeu_ps(y + 8, _mm256_mul_ps(d, i8x8_to_ps(_mm_srli_si128(lo, 8))));
  _mm256_storeu_ps(y + 16, _mm256_mul_ps(d, i8x8_to_ps(hi)));
  _mm256_storeu_ps(y + 24, _mm256_mul_ps(d, i8x8_to_ps(_mm_srli_si128(hi, 8))));
}

}  // namespace avx2
#endif

}  // namespace quant
}  // namespace gemma3
