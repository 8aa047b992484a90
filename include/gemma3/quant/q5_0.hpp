// gemma3/quant/q5_0.hpp -- GGUF Q5_0 and Q5_1: 32 values of 5 bits.
//
//   block_q5_0 (22 bytes, 5.5 bits per value)
//   byte 0      2             6                             22
//        +------+-------------+-----------------------------+
//        | d    | qh          | qs[0] ... qs[15]            |
//        | f16  | 32 bits, LE | low 4 bits, as in Q4_0      |
//        +------+-------------+-----------------------------+
//
//   h = qh as a little-endian uint32; bit j of h is the 5th bit of value j:
//   y[j]    = (((qs[j] & 0x0F) | ((h >>  j      ) & 1) << 4) - 16) * d      j = 0..15
//   y[j+16] = (((qs[j] >>   4) | ((h >> (j + 16)) & 1) << 4) - 16) * d
//
//   block_q5_1 (24 bytes, 6 bits per value)
//   byte 0      2      4             8                      24
//        +------+------+-------------+----------------------+
//        | d    | m    | qh          | qs[0] ... qs[15]     |
//        +------+------+-------------+----------------------+
//
//   y = q * d + m    with q = the same 5-bit value, no -16 offset.
//
// Gemma 3 270M Q4_K_M stores attn_q, attn_k, ffn_gate, ffn_up (and most attn_v) in
// Q5_0: their rows of 640 (1152 for 1B) are not a multiple of 256, so llama.cpp
// falls back from Q4_K to Q5_0 (src/llama-quant.cpp). It is the most used type of
// the file.
//
// Integer dot with block_q8_32 activations (common.hpp):
//   Q5_0: sum += d_w * d_x * sum_j (q_j - 16) * qx_j
//   Q5_1: sum += d_w * d_x * sum_j q_j * qx_j + m_w * s_x
// The SIMD versions build the 5-bit values as bytes: spread the 32 bits of h into
// 32 bytes (0xff / 0x00), then OR 0x10 (Q5_1) or, for Q5_0, OR 0xF0 where the bit is
// CLEAR: as int8, (q4 | 0xF0) = q4 - 16 and (q4 | 0x10) - 16 = q4, i.e. q - 16.
// Pinned by tests/test_quant.cpp and tests/fixtures/quant/.
#pragma once

#include <cstdint>
#include <cstring>

#include "common.hpp"

namespace gemma3 {
namespace quant {

#pragma pack(push, 1)
struct block_q5_0 {
  std::uint16_t d;          // f16 scale
  std::uint8_t qh[4];       // 5th bits, little-endian uint32
  std::uint8_t qs[QK / 2];  // low 4 bits
};
struct block_q5_1 {
  std::uint16_t d;  // f16 scale
  std::uint16_t m;  // f16 minimum
  std::uint8_t qh[4];
  std::uint8_t qs[QK / 2];
};
#pragma pack(pop)
static_assert(sizeof(block_q5_0) == 22, "block_q5_0 layout");
static_assert(sizeof(block_q5_1) == 24, "block_q5_1 layout");

inline std::uint32_t load_u32_le(const std::uint8_t* p) {
  return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 | std::uint32_t(p[3]) << 24;
}

// The 5-bit values (0..31) of one block, in output order.
inline void unpack_q5(const std::uint8_t* qh, const std::uint8_t* qs, int q[QK]) {
  const std::uint32_t h = load_u32_le(qh);
  for (int j = 0; j < QK / 2; ++j) {
    q[j] = (qs[j] & 0x0f) | int((h >> j) & 1u) << 4;
    q[j + QK / 2] = (qs[j] >> 4) | int((h >> (j + 16)) & 1u) << 4;
  }
}

inline void dequantize_row_q5_0(const void* src, float* y, std::int64_t n) {
  const auto* x = static_cast<const block_q5_0*>(src);
  int q[QK];
  for (std::int64_t b = 0; b < n / QK; ++b, y += QK) {
    const float d = f16_to_f32(x[b].d);
    unpack_q5(x[b].qh, x[b].qs, q);
    for (int j = 0; j < QK; ++j) y[j] = d * float(q[j] - 16);
  }
}

#if GEMMA3_HAVE_X86_SIMD
// dequantize_row_q5_0 with AVX2: q - 16 is exact in int8, then the same d * float(q - 16).
GEMMA3_TARGET_AVX2 inline void dequantize_row_q5_0_avx2(const void* src, float* y, std::int64_t n) {
  const auto* x = static_cast<const block_q5_0*>(src);
  const __m256i bit4 = _mm256_set1_epi8(0x10);
  for (std::int64_t b = 0; b < n / QK; ++b, y += QK) {
    const __m256 d = _mm256_set1_ps(avx2::f16(x[b].d));
    const __m256i q = _mm256_or_si256(avx2::nibbles32(x[b].qs), _mm256_and_si256(avx2::bits32(x[b].qh), bit4));
    avx2::store_scaled_i8x32(_mm256_sub_epi8(q, bit4), d, y);
  }
}
#endif

inline void dequantize_row_q5_1(const void* src, float* y, std::int64_t n) {
  const auto* x = static_cast<const block_q5_1*>(src);
  int q[QK];
  for (std::int64_t b = 0; b < n / QK; ++b, y += QK) {
    const float d = f16_to_f32(x[b].d), m = f16_to_f32(x[b].m);
    unpack_q5(x[b].qh, x[b].qs, q);
    for (int j = 0; j < QK; ++j) y[j] = d * float(q[j]) + m;
  }
}

inline float dot_q5_0_f32(const void* row, const float* x, std::int64_t n) {
  return dot_f32_by_blocks<QK, sizeof(block_q5_0)>(row, x, n, dequantize_row_q5_0);
}
inline float dot_q5_1_f32(const void* row, const float* x, std::int64_t n) {
  return dot_f32_by_blocks<QK, sizeof(block_q5_1)>(row, x, n, dequantize_row_q5_1);
}

// ---- integer dot with block_q8_32 activations: scalar twins ----

inline float vec_dot_q5_0_scalar(const void* w_row, const void* act, std::int64_t n) {
  const auto* w = static_cast<const block_q5_0*>(w_row);
  const auto* a = static_cast<const block_q8_32*>(act);
  float sum = 0.0f;
  int q[QK];
  for (std::int64_t b = 0; b < n / QK; ++b) {
    unpack_q5(w[b].qh, w[b].qs, q);
    int isum = 0;
    for (int j = 0; j < QK; ++j) isum += (q[j] - 16) * a[b].qs[j];
    sum += f16_to_f32(w[b].d) * a[b].d * float(isum);
  }
  return sum;
}

inline float vec_dot_q5_1_scalar(const void* w_row, const void* act, std::int64_t n) {
  const auto* w = static_cast<const block_q5_1*>(w_row);
  const auto* a = static_cast<const block_q8_32*>(act);
  float sum = 0.0f;
  int q[QK];
  for (std::int64_t b = 0; b < n / QK; ++b) {
    unpack_q5(w[b].qh, w[b].qs, q);
    int isum = 0;
    for (int j = 0; j < QK; ++j) isum += q[j] * a[b].qs[j];
    sum += f16_to_f32(w[b].d) * a[b].d * float(isum) + f16_to_f32(w[b].m) * a[b].s;
  }
  return sum;
}

// ---- AVX2 ----
#if GEMMA3_HAVE_X86_SIMD
GEMMA3_TARGET_AVX2 inline float vec_dot_q5_0_avx2(const void* w_row, const void* act, std::int64_t n) {
  const auto* w = static_cast<const block_q5_0*>(w_row);
  const auto* a = static_cast<const block_q8_32*>(act);
  const __m256i f0 = _mm256_set1_epi8(char(0xf0));
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  const std::int64_t nb = n / QK;
  std::int64_t b = 0;
  for (; b + 1 < nb; b += 2) {  // two blocks per step: two independent FMA chains
    const __m256i q0 = _mm256_or_si256(avx2::nibbles32(w[b].qs), _mm256_andnot_si256(avx2::bits32(w[b].qh), f0));
    const __m256i q1 =
        _mm256_or_si256(avx2::nibbles32(w[b + 1].qs), _mm256_andnot_si256(avx2::bits32(w[b + 1].qh), f0));
    const __m256i p0 = avx2::dot_i8(q0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].qs)));
    const __m256i p1 = avx2::dot_i8(q1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b + 1].qs)));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(avx2::f16(w[b].d) * a[b].d), _mm256_cvtepi32_ps(p0), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_set1_ps(avx2::f16(w[b + 1].d) * a[b + 1].d), _mm256_cvtepi32_ps(p1), acc1);
  }
  for (; b < nb; ++b) {
    const __m256i q = _mm256_or_si256(avx2::nibbles32(w[b].qs), _mm256_andnot_si256(avx2::bits32(w[b].qh), f0));
    const __m256i p = avx2::dot_i8(q, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].qs)));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(avx2::f16(w[b].d) * a[b].d), _mm256_cvtepi32_ps(p), acc0);
  }
  return avx2::hsum(_mm256_add_ps(acc0, acc1));
}

GEMMA3_TARGET_AVX2 inline float vec_dot_q5_1_avx2(const void* w_row, const void* act, std::int64_t n) {
  const auto* w = static_cast<const block_q5_1*>(w_row);
  const auto* a = static_cast<const block_q8_32*>(act);
  const __m256i b4 = _mm256_set1_epi8(0x10);
  __m256 acc = _mm256_setzero_ps();
  float summ = 0.0f;
  for (std::int64_t b = 0; b < n / QK; ++b) {
    const __m256i q = _mm256_or_si256(avx2::nibbles32(w[b].qs), _mm256_and_si256(avx2::bits32(w[b].qh), b4));
    const __m256i p = avx2::dot_u8_i8(q, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].qs)));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(avx2::f16(w[b].d) * a[b].d), _mm256_cvtepi32_ps(p), acc);
    summ += avx2::f16(w[b].m) * a[b].s;
  }
  return avx2::hsum(acc) + summ;
}
#endif

// ---- WASM SIMD128 ----
#if GEMMA3_HAVE_WASM_SIMD
inline float vec_dot_q5_0_wasm(const void* w_row, const void* act, std::int64_t n) {
  const auto* w = static_cast<const block_q5_0*>(w_row);
  const auto* a = static_cast<const block_q8_32*>(act);
  const v128_t m4 = wasm_i8x16_splat(0x0f), f0 = wasm_i8x16_splat(char(0xf0));
  v128_t acc = wasm_f32x4_splat(0.0f);
  for (std::int64_t b = 0; b < n / QK; ++b) {
    const std::uint32_t h = load_u32_le(w[b].qh);
    const v128_t v = wasm_v128_load(w[b].qs);
    const v128_t lo = wasm_v128_or(wasm_v128_and(v, m4), wasm_v128_andnot(f0, wasm::bits16(h, 0)));
    const v128_t hi = wasm_v128_or(wasm_u8x16_shr(v, 4), wasm_v128_andnot(f0, wasm::bits16(h, 16)));
    const v128_t isum =
        wasm_i32x4_add(wasm::dot_i8(lo, wasm_v128_load(a[b].qs)), wasm::dot_i8(hi, wasm_v128_load(a[b].qs + 16)));
    acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(isum), wasm_f32x4_splat(wasm::f16(w[b].d) * a[b].d)));
  }
  return wasm::hsum(acc);
}

inline float vec_dot_q5_1_wasm(const void* w_row, const void* act, std::int64_t n) {
  const auto* w = static_cast<const block_q5_1*>(w_row);
  const auto* a = static_cast<const block_q8_32*>(act);
  const v128_t m4 = wasm_i8x16_splat(0x0f), b4 = wasm_i8x16_splat(0x10);
  v128_t acc = wasm_f32x4_splat(0.0f);
  float summ = 0.0f;
  for (std::int64_t b = 0; b < n / QK; ++b) {
    const std::uint32_t h = load_u32_le(w[b].qh);
    const v128_t v = wasm_v128_load(w[b].qs);
    const v128_t lo = wasm_v128_or(wasm_v128_and(v, m4), wasm_v128_and(wasm::bits16(h, 0), b4));
    const v128_t hi = wasm_v128_or(wasm_u8x16_shr(v, 4), wasm_v128_and(wasm::bits16(h, 16), b4));
    const v128_t isum =
        wasm_i32x4_add(wasm::dot_i8(lo, wasm_v128_load(a[b].qs)), wasm::dot_i8(hi, wasm_v128_load(a[b].qs + 16)));
    acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(isum), wasm_f32x4_splat(wasm::f16(w[b].d) * a[b].d)));
    summ += wasm::f16(w[b].m) * a[b].s;
  }
  return wasm::hsum(acc) + summ;
}
#endif

}  // namespace quant
}  // namespace gemma3
