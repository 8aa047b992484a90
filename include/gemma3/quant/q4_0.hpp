// gemma3/quant/q4_0.hpp -- GGUF Q4_0 and Q4_1: 32 values of 4 bits.
//
//   block_q4_0 (18 bytes, 4.5 bits per value)
//   byte 0      2                                   18
//        +------+-----------------------------------+
//        | d    | qs[0] ... qs[15]                  |   qs[j] = (q[j+16] << 4) | q[j]
//        | f16  | 16 bytes, two 4-bit quants each   |
//        +------+-----------------------------------+
//
//   y[j]    = ((qs[j] & 0x0F) - 8) * d                  j = 0..15
//   y[j+16] = ((qs[j] >>   4) - 8) * d
//
//   block_q4_1 (20 bytes, 5 bits per value)
//   byte 0      2      4                            20
//        +------+------+----------------------------+
//        | d    | m    | qs[0] ... qs[15]           |   same nibble order as Q4_0
//        | f16  | f16  |                            |
//        +------+------+----------------------------+
//
//   y[j]    = (qs[j] & 0x0F) * d + m
//   y[j+16] = (qs[j] >>   4) * d + m
//
// The nibbles are not interleaved: byte j holds values j (low) and j+16 (high).
// Gemma 3's Q4_K_M files use neither (llama.cpp's src/llama-quant.cpp); Q4_0
// appears in QAT / Q4_0 files, Q4_1 for robustness.
//
// Integer dot with block_q8_32 activations (common.hpp):
//   Q4_0: sum += d_w * d_x * sum_j (q_j - 8) * qx_j
//   Q4_1: sum += d_w * d_x * sum_j q_j * qx_j + m_w * s_x        (s_x = d_x * sum_j qx_j)
// Pinned by tests/test_quant.cpp and tests/fixtures/quant/.
#pragma once

#include <cstdint>

#include "common.hpp"

namespace gemma3 {
namespace quant {

#pragma pack(push, 1)
struct block_q4_0 {
  std::uint16_t d;          // f16 scale
  std::uint8_t qs[QK / 2];  // nibbles
};
struct block_q4_1 {
  std::uint16_t d;  // f16 scale
  std::uint16_t m;  // f16 minimum (offset)
  std::uint8_t qs[QK / 2];
};
#pragma pack(pop)
static_assert(sizeof(block_q4_0) == 18, "block_q4_0 layout");
static_assert(sizeof(block_q4_1) == 20, "block_q4_1 layout");

inline void dequantize_row_q4_0(const void* src, float* y, std::int64_t n) {
  const auto* x = static_cast<const block_q4_0*>(src);
  for (std::int64_t b = 0; b < n / QK; ++b, y += QK) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < QK / 2; ++j) {
      y[j] = d * float((x[b].qs[j] & 0x0f) - 8);
      y[j + QK / 2] = d * float((x[b].qs[j] >> 4) - 8);
    }
  }
}

inline void dequantize_row_q4_1(const void* src, float* y, std::int64_t n) {
  const auto* x = static_cast<const block_q4_1*>(src);
  for (std::int64_t b = 0; b < n / QK; ++b, y += QK) {
    const float d = f16_to_f32(x[b].d), m = f16_to_f32(x[b].m);
    for (int j = 0; j < QK / 2; ++j) {
      y[j] = d * float(x[b].qs[j] & 0x0f) + m;
      y[j + QK / 2] = d * float(x[b].qs[j] >> 4) + m;
    }
  }
}

inline float dot_q4_0_f32(const void* row, const float* x, std::int64_t n) {
  return dot_f32_by_blocks<QK, sizeof(block_q4_0)>(row, x, n, dequantize_row_q4_0);
}
inline float dot_q4_1_f32(const void* row, const float* x, std::int64_t n) {
  return dot_f32_by_blocks<QK, sizeof(block_q4_1)>(row, x, n, dequantize_row_q4_1);
}

// ---- integer dot with block_q8_32 activations: scalar twins ----

inline float vec_dot_q4_0_scalar(const void* w_row, const void* act, std::int64_t n) {
  const auto* w = static_cast<const block_q4_0*>(w_row);
  const auto* a = static_cast<const block_q8_32*>(act);
  float sum = 0.0f;
  for (std::int64_t b = 0; b < n / QK; ++b) {
    int isum = 0;
    for (int j = 0; j < QK / 2; ++j) {
      isum += ((w[b].qs[j] & 0x0f) - 8) * a[b].qs[j];
      isum += ((w[b].qs[j] >> 4) - 8) * a[b].qs[j + QK / 2];
    }
    sum += f16_to_f32(w[b].d) * a[b].d * float(isum);
  }
  return sum;
}

inline float vec_dot_q4_1_scalar(const void* w_row, const void* act, std::int64_t n) {
  const auto* w = static_cast<const block_q4_1*>(w_row);
  const auto* a = static_cast<const block_q8_32*>(act);
  float sum = 0.0f;
  for (std::int64_t b = 0; b < n / QK; ++b) {
    int isum = 0;
    for (int j = 0; j < QK / 2; ++j) {
      isum += (w[b].qs[j] & 0x0f) * a[b].qs[j];
      isum += (w[b].qs[j] >> 4) * a[b].qs[j + QK / 2];
    }
    sum += f16_to_f32(w[b].d) * a[b].d * float(isum) + f16_to_f32(w[b].m) * a[b].s;
  }
  return sum;
}

// ---- AVX2 ----
#if GEMMA3_HAVE_X86_SIMD
GEMMA3_TARGET_AVX2 inline float vec_dot_q4_0_avx2(const void* w_row, const void* act, std::int64_t n) {
  const auto* w = static_cast<const block_q4_0*>(w_row);
  const auto* a = static_cast<const block_q8_32*>(act);
  __m256 acc = _mm256_setzero_ps();
  for (std::int64_t b = 0; b < n / QK; ++b) {
    const __m256i q = _mm256_sub_epi8(avx2::nibbles32(w[b].qs), _mm256_set1_epi8(8));  // [-8, 7]
    const __m256i p = avx2::dot_i8(q, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].qs)));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(avx2::f16(w[b].d) * a[b].d), _mm256_cvtepi32_ps(p), acc);
  }
  return avx2::hsum(acc);
}

GEMMA3_TARGET_AVX2 inline float vec_dot_q4_1_avx2(const void* w_row, const void* act, std::int64_t n) {
  const auto* w = static_cast<const block_q4_1*>(w_row);
  const auto* a = static_cast<const block_q8_32*>(act);
  __m256 acc = _mm256_setzero_ps();
  float summ = 0.0f;
  for (std::int64_t b = 0; b < n / QK; ++b) {
    const __m256i p = avx2::dot_u8_i8(avx2::nibbles32(w[b].qs), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].qs)));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(avx2::f16(w[b].d) * a[b].d), _mm256_cvtepi32_ps(p), acc);
    summ += avx2::f16(w[b].m) * a[b].s;
  }
  return avx2::hsum(acc) + summ;
}
#endif

// ---- WASM SIMD128 ----
#if GEMMA3_HAVE_WASM_SIMD
inline float vec_dot_q4_0_wasm(const void* w_row, const void* act, std::int64_t n) {
  const auto* w = static_cast<const block_q4_0*>(w_row);
  const auto* a = static_cast<const block_q8_32*>(act);
  v128_t acc = wasm_f32x4_splat(0.0f);
  const v128_t m4 = wasm_i8x16_splat(0x0f), eight = wasm_i8x16_splat(8);
  for (std::int64_t b = 0; b < n / QK; ++b) {
    const v128_t v = wasm_v128_load(w[b].qs);
    const v128_t lo = wasm_i8x16_sub(wasm_v128_and(v, m4), eight);
    const v128_t hi = wasm_i8x16_sub(wasm_u8x16_shr(v, 4), eight);
    const v128_t isum =
        wasm_i32x4_add(wasm::dot_i8(lo, wasm_v128_load(a[b].qs)), wasm::dot_i8(hi, wasm_v128_load(a[b].qs + 16)));
    acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(isum), wasm_f32x4_splat(wasm::f16(w[b].d) * a[b].d)));
  }
  return wasm::hsum(acc);
}

inline float vec_dot_q4_1_wasm(const void* w_row, const void* act, std::int64_t n) {
  const auto* w = static_cast<const block_q4_1*>(w_row);
  const auto* a = static_cast<const block_q8_32*>(act);
  v128_t acc = wasm_f32x4_splat(0.0f);
  float summ = 0.0f;
  const v128_t m4 = wasm_i8x16_splat(0x0f);
  for (std::int64_t b = 0; b < n / QK; ++b) {
    const v128_t v = wasm_v128_load(w[b].qs);
    const v128_t isum = wasm_i32x4_add(wasm::dot_i8(wasm_v128_and(v, m4), wasm_v128_load(a[b].qs)),
                                       wasm::dot_i8(wasm_u8x16_shr(v, 4), wasm_v128_load(a[b].qs + 16)));
    acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(isum), wasm_f32x4_splat(wasm::f16(w[b].d) * a[b].d)));
    summ += wasm::f16(w[b].m) * a[b].s;
  }
  return wasm::hsum(acc) + summ;
}
#endif

}  // namespace quant
}  // namespace gemma3
