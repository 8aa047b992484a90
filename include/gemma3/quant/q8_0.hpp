// gemma3/quant/q8_0.hpp -- GGUF Q8_0: 32 values in 34 bytes (8.5 bits per value).
//
//   block_q8_0
//   byte 0      2                                        34
//        +------+----------------------------------------+
//        | d    | qs[0] qs[1] ...                 qs[31] |
//        | f16  | int8 x 32                              |
//        +------+----------------------------------------+
//
//   y[j] = qs[j] * d                                    j = 0..31
//
// Gemma 3's Q4_K_M files store token_embd (the embedding table, which is also the
// tied LM head) and some attn_v weights in Q8_0 (llama.cpp's src/llama-quant.cpp).
//
// Kernels: dequantize_row_q8_0 (exact, equals the gguf package bit for bit),
// dot_q8_0_f32 (row . float32 x, the plain reference), and the integer dot with
// activations quantized to block_q8_32 (common.hpp), in three twins: scalar, AVX2,
// WASM SIMD128. Per block: isum = sum_j qs_w[j] * qs_x[j] (exact int32), then
// sum += d_w * d_x * isum.
// Pinned by tests/test_quant.cpp and tests/fixtures/quant/.
#pragma once

#include <cstdint>

#include "common.hpp"

namespace gemma3 {
namespace quant {

#pragma pack(push, 1)
struct block_q8_0 {
  std::uint16_t d;     // f16 scale
  std::int8_t qs[QK];  // quants
};
#pragma pack(pop)
static_assert(sizeof(block_q8_0) == 34, "block_q8_0 layout");

// n values (n a multiple of 32) from n / 32 blocks.
inline void dequantize_row_q8_0(const void* src, float* y, std::int64_t n) {
  const auto* x = static_cast<const block_q8_0*>(src);
  for (std::int64_t b = 0; b < n / QK; ++b) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < QK; ++j) y[b * QK + j] = float(x[b].qs[j]) * d;
  }
}

#if GEMMA3_HAVE_X86_SIMD
// dequantize_row_q8_0 with AVX2: the same float multiply per value, bit for bit.
GEMMA3_TARGET_AVX2 inline void dequantize_row_q8_0_avx2(const void* src, float* y, std::int64_t n) {
  const auto* x = static_cast<const block_q8_0*>(src);
  for (std::int64_t b = 0; b < n / QK; ++b, y += QK) {
    const __m256 d = _mm256_set1_ps(avx2::f16(x[b].d));
    avx2::store_scaled_i8x32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs)), d, y);
  }
}
#endif

inline float dot_q8_0_f32(const void* row, const float* x, std::int64_t n) {
  return dot_f32_by_blocks<QK, sizeof(block_q8_0)>(row, x, n, dequantize_row_q8_0);
}

// row (n / 32 blocks_q8_0) . activations (n / 32 blocks_q8_32)
inline float vec_dot_q8_0_scalar(const void* w_row, const void* act, std::int64_t n) {
  const auto* w = static_cast<const block_q8_0*>(w_row);
  const auto* a = static_cast<const block_q8_32*>(act);
  float sum = 0.0f;
  for (std::int64_t b = 0; b < n / QK; ++b) {
    int isum = 0;
    for (int j = 0; j < QK; ++j) isum += int(w[b].qs[j]) * int(a[b].qs[j]);
    sum += f16_to_f32(w[b].d) * a[b].d * float(isum);
  }
  return sum;
}

#if GEMMA3_HAVE_X86_SIMD
GEMMA3_TARGET_AVX2 inline float vec_dot_q8_0_avx2(const void* w_row, const void* act, std::int64_t n) {
  const auto* w = static_cast<const block_q8_0*>(w_row);
  const auto* a = static_cast<const block_q8_32*>(act);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();  // two chains hide the FMA latency
  const std::int64_t nb = n / QK;
  std::int64_t b = 0;
  for (; b + 1 < nb; b += 2) {
    const __m256i p0 = avx2::dot_i8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs)),
                                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].qs)));
    const __m256i p1 = avx2::dot_i8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b + 1].qs)),
                                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b + 1].qs)));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(avx2::f16(w[b].d) * a[b].d), _mm256_cvtepi32_ps(p0), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_set1_ps(avx2::f16(w[b + 1].d) * a[b + 1].d), _mm256_cvtepi32_ps(p1), acc1);
  }
  for (; b < nb; ++b) {
    const __m256i p = avx2::dot_i8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs)),
                                   _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].qs)));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(avx2::f16(w[b].d) * a[b].d), _mm256_cvtepi32_ps(p), acc0);
  }
  return avx2::hsum(_mm256_add_ps(acc0, acc1));
}
#endif

#if GEMMA3_HAVE_WASM_SIMD
inline float vec_dot_q8_0_wasm(const void* w_row, const void* act, std::int64_t n) {
  const auto* w = static_cast<const block_q8_0*>(w_row);
  const auto* a = static_cast<const block_q8_32*>(act);
  v128_t acc = wasm_f32x4_splat(0.0f);
  for (std::int64_t b = 0; b < n / QK; ++b) {
    const v128_t isum = wasm_i32x4_add(wasm::dot_i8(wasm_v128_load(w[b].qs), wasm_v128_load(a[b].qs)),
                                       wasm::dot_i8(wasm_v128_load(w[b].qs + 16), wasm_v128_load(a[b].qs + 16)));
    acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(isum),
                                             wasm_f32x4_splat(wasm::f16(w[b].d) * a[b].d)));
  }
  return wasm::hsum(acc);
}
#endif

}  // namespace quant
}  // namespace gemma3
