// gemma3/quant/common.hpp -- what every GGUF block type shares: the 8-bit activation
// blocks that the integer dot products read, and small SIMD helpers.
//
// How a quantized matvec works (the approach of llama.cpp's CPU backend: each weight
// type's vec_dot_type in ggml/src/ggml-cpu/ggml-cpu.c, the row quantizers in
// ggml/src/ggml-quants.c):
// the activation vector x [n] is quantized ONCE per matvec to 8-bit blocks,
//
//   block_q8_32  (for the 32-wide types Q8_0, Q4_0, Q4_1, Q5_0, Q5_1)     40 bytes
//   +--------+--------+---------------------------------+
//   | d: f32 | s: f32 | qs: 32 x int8                   |   x[i] ~= d * qs[i]
//   +--------+--------+---------------------------------+   s = d * sum(qs)
//
//   block_q8_K   (for the 256-wide K-quants Q4_K, Q5_K, Q6_K)             292 bytes
//   +--------+---------------------------+-----------------------+
//   | d: f32 | qs: 256 x int8            | bsums: 16 x int16     |   x[i] ~= d * qs[i]
//   +--------+---------------------------+-----------------------+   bsums[g] = sum qs[16g .. 16g+15]
//
// with d = max|x_block| / 127 and qs = round(x / d) in [-127, 127], and then every
// weight row is dotted with it in integers: per block, sum(q_w * q_x) is an exact
// int32, scaled once by d_w * d_x. Differences from llama.cpp: block_q8_32 keeps d
// and s in float32 (llama.cpp's Q8_0 / Q8_1 round them to f16), and Q8_K is
// symmetric (+-127, llama.cpp maps the signed max to -127 and allows -128 elsewhere).
// Neither costs speed; both keep a little more precision. The symmetric range is
// also what lets the AVX2 kernels use the sign trick (_mm256_sign_epi8) safely.
//
// The bsums let the K-quants apply their per-sub-block minimum (Q4_K, Q5_K) or
// their -32 offset (Q6_K) as one small integer sum instead of per element.
//
// Pinned by tests/test_quant.cpp (and tests/wasm/ for SIMD128).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "../kernels/dtype.hpp"
#include "../kernels/isa.hpp"

namespace gemma3 {
namespace quant {

constexpr int QK = 32;     // values per block of the legacy types and of block_q8_32
constexpr int QK_K = 256;  // values per super-block of the K-quants and of block_q8_K

#pragma pack(push, 1)
struct block_q8_32 {
  float d;             // scale
  float s;             // d * sum(qs), for the types with an offset (Q4_1, Q5_1)
  std::int8_t qs[QK];  // quants in [-127, 127]
};
struct block_q8_K {
  float d;
  std::int8_t qs[QK_K];
  std::int16_t bsums[QK_K / 16];  // sum of each group of 16 qs
};
#pragma pack(pop)
static_assert(sizeof(block_q8_32) == 40, "block_q8_32 layout");
static_assert(sizeof(block_q8_K) == 292, "block_q8_K layout");

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

// Activations x [n] (n a multiple of 32) -> n / 32 blocks.
inline void quantize_row_q8_32(const float* x, block_q8_32* y, std::int64_t n) {
  for (std::int64_t b = 0; b < n / QK; ++b, x += QK) {
    float amax = 0.0f;
    for (int j = 0; j < QK; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < QK; ++j) {
      int q = nearest_int(x[j] * id);
      q = q > 127 ? 127 : q < -127 ? -127 : q;
      y[b].qs[j] = std::int8_t(q);
      sum += q;
    }
    y[b].d = d;
    y[b].s = d * float(sum);
  }
}

// Activations x [n] (n a multiple of 256) -> n / 256 blocks.
inline void quantize_row_q8_K(const float* x, block_q8_K* y, std::int64_t n) {
  for (std::int64_t b = 0; b < n / QK_K; ++b, x += QK_K) {
    float amax = 0.0f;
    for (int j = 0; j < QK_K; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < QK_K; ++j) {
      int q = nearest_int(x[j] * id);
      y[b].qs[j] = std::int8_t(q > 127 ? 127 : q < -127 ? -127 : q);
    }
    for (int g = 0; g < QK_K / 16; ++g) {
      int s = 0;
      for (int j = 0; j < 16; ++j) s += y[b].qs[16 * g + j];
      y[b].bsums[g] = std::int16_t(s);
    }
    y[b].d = d;
  }
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

// 8 int32 lanes, each the sum of 4 products u[i] * y[i]: u unsigned bytes, y signed,
// and 2 * max(u) * 127 < 32768 so _mm256_maddubs_epi16 cannot saturate (u <= 128).
GEMMA3_TARGET_AVX2 inline __m256i dot_u8_i8(__m256i u, __m256i y) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), _mm256_set1_epi16(1));
}

// The same for two signed vectors: |x| times y with x's sign moved onto y (the sign
// trick). Exact when y is in [-127, 127]; x may be -128 (|x| = 128 as unsigned).
GEMMA3_TARGET_AVX2 inline __m256i dot_i8(__m256i x, __m256i y) {
  return dot_u8_i8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
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

#if GEMMA3_HAVE_WASM_SIMD
namespace wasm {

// f16 -> f32 without branches: the 15 magnitude bits moved to f32's place and
// rebiased by a multiplication by 2^112 (exact; subnormal f16 become normal f32).
// Exact for every finite f16 (the scales of valid blocks); inf and NaN are not kept.
inline float f16(std::uint16_t h) {
  const std::uint32_t mag = std::uint32_t(h & 0x7fffu) << 13, sign = std::uint32_t(h & 0x8000u) << 16;
  float f;
  std::memcpy(&f, &mag, 4);
  f *= 5.192296858534828e33f;  // 2^112
  std::uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits |= sign;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline float hsum(v128_t v) {
  return wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1) + wasm_f32x4_extract_lane(v, 2) +
         wasm_f32x4_extract_lane(v, 3);
}

inline int hsum_i32(v128_t v) {
  return wasm_i32x4_extract_lane(v, 0) + wasm_i32x4_extract_lane(v, 1) + wasm_i32x4_extract_lane(v, 2) +
         wasm_i32x4_extract_lane(v, 3);
}

// 4 int32 lanes, the sums of products of 16 signed bytes (widened to int16: exact).
inline v128_t dot_i8(v128_t a, v128_t b) {
  const v128_t lo = wasm_i32x4_dot_i16x8(wasm_i16x8_extend_low_i8x16(a), wasm_i16x8_extend_low_i8x16(b));
  const v128_t hi = wasm_i32x4_dot_i16x8(wasm_i16x8_extend_high_i8x16(a), wasm_i16x8_extend_high_i8x16(b));
  return wasm_i32x4_add(lo, hi);
}

// Bits first .. first+15 of the 32-bit x -> 16 bytes, 0xff where the bit is set.
inline v128_t bits16(std::uint32_t x, int first) {
  const v128_t v = wasm_i16x8_splat(std::int16_t(std::uint16_t(x >> first)));
  const v128_t bytes = wasm_i8x16_swizzle(v, wasm_i8x16_make(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
  const v128_t mask = wasm_u8x16_make(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
  return wasm_i8x16_eq(wasm_v128_and(bytes, mask), mask);
}

}  // namespace wasm
#endif

}  // namespace quant
}  // namespace gemma3
