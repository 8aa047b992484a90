// gemma3/quant/q6_k.hpp -- GGUF Q6_K: 256-value super-blocks of 16 sub-blocks of 16,
// 6-bit quants, one signed 8-bit scale per sub-block.
//
//   block_q6_K (210 bytes, 6.5625 bits per value)
//   byte 0                     128               192              208    210
//        +---------------------+-----------------+----------------+------+
//        | ql[128]: low 4 bits | qh[64]: high 2  | scales[16]     | d    |
//        |                     | bits, 4 a byte  | int8           | f16  |
//        +---------------------+-----------------+----------------+------+
//
// Two halves h = 0, 1 of 128 outputs; half h reads L = ql + 64h, H = qh + 32h.
// For l = 0..31:
//   out 128h + l       q = (L[l]      & 0xF) | ((H[l] >> 0) & 3) << 4
//   out 128h + l + 32  q = (L[l + 32] & 0xF) | ((H[l] >> 2) & 3) << 4
//   out 128h + l + 64  q = (L[l]      >> 4)  | ((H[l] >> 4) & 3) << 4
//   out 128h + l + 96  q = (L[l + 32] >> 4)  | ((H[l] >> 6) & 3) << 4
//
//   y[o] = (d * scales[o / 16]) * (q - 32)          q in 0..63
//
// Gemma 3 270M Q4_K_M stores ffn_down of the "more bits" layers in Q6_K
// (llama.cpp's src/llama-quant.cpp).
//
// Kernels: dequantize_row_q6_K (exact, equals the gguf package bit for bit) and its
// AVX2 twin (bit for bit), dot_q6_K_f32 (row . float32 x, the plain reference), and
// avx2::unpack_q6_K_half, which the fused and int16 kernels share.
// Pinned by tests/test_quant.cpp and tests/fixtures/quant/.
#pragma once

#include <cstdint>

#include "common.hpp"

namespace gemma3 {
namespace quant {

#pragma pack(push, 1)
struct block_q6_K {
  std::uint8_t ql[QK_K / 2];       // low 4 bits
  std::uint8_t qh[QK_K / 4];       // high 2 bits
  std::int8_t scales[QK_K / 16];   // sub-block scales
  std::uint16_t d;                 // f16 super-block scale
};
#pragma pack(pop)
static_assert(sizeof(block_q6_K) == 210, "block_q6_K layout");

// The 256 quants (0..63) of one super-block in output order.
inline void unpack_q6_K(const block_q6_K& x, int q[QK_K]) {
  for (int h = 0; h < 2; ++h) {
    const std::uint8_t* L = x.ql + 64 * h;
    const std::uint8_t* H = x.qh + 32 * h;
    int* out = q + 128 * h;
    for (int l = 0; l < 32; ++l) {
      out[l] = (L[l] & 0x0f) | ((H[l] >> 0) & 3) << 4;
      out[l + 32] = (L[l + 32] & 0x0f) | ((H[l] >> 2) & 3) << 4;
      out[l + 64] = (L[l] >> 4) | ((H[l] >> 4) & 3) << 4;
      out[l + 96] = (L[l + 32] >> 4) | ((H[l] >> 6) & 3) << 4;
    }
  }
}

inline void dequantize_row_q6_K(const void* src, float* y, std::int64_t n) {
  const auto* x = static_cast<const block_q6_K*>(src);
  int q[QK_K];
  for (std::int64_t b = 0; b < n / QK_K; ++b, y += QK_K) {
    const float d = f16_to_f32(x[b].d);
    unpack_q6_K(x[b], q);
    for (int g = 0; g < QK_K / 16; ++g) {
      const float dg = d * float(x[b].scales[g]);
      for (int l = 0; l < 16; ++l) y[16 * g + l] = dg * float(q[16 * g + l] - 32);
    }
  }
}

#if GEMMA3_HAVE_X86_SIMD
namespace avx2 {
// Half h of a Q6_K super-block -> its four groups of 32 outputs as bytes 0..63:
// q[k] holds outputs 128h + 32k .. 128h + 32k + 31 (16-bit shifts cannot leak
// across bytes: every value is masked before it moves).
GEMMA3_TARGET_AVX2 inline void unpack_q6_K_half(const block_q6_K& w, int h, __m256i q[4]) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
  const __m256i L0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.ql + 64 * h));
  const __m256i L1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.ql + 64 * h + 32));
  const __m256i H = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qh + 32 * h));
  q[0] = _mm256_or_si256(_mm256_and_si256(L0, m4), _mm256_slli_epi16(_mm256_and_si256(H, m2), 4));
  q[1] = _mm256_or_si256(_mm256_and_si256(L1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(H, 2), m2), 4));
  q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(L0, 4), m4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(H, 4), m2), 4));
  q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(L1, 4), m4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(H, 6), m2), 4));
}
}  // namespace avx2
#endif

#if GEMMA3_HAVE_X86_SIMD
// dequantize_row_q6_K with AVX2, bit for bit: q - 32 is exact in int8, then the same
// dg * float(q - 32) with the scalar dg = d * float(scales[g]).
GEMMA3_TARGET_AVX2 inline void dequantize_row_q6_K_avx2(const void* src, float* y, std::int64_t n) {
  const auto* x = static_cast<const block_q6_K*>(src);
  const __m256i off = _mm256_set1_epi8(32);
  for (std::int64_t b = 0; b < n / QK_K; ++b, y += QK_K) {
    const float d = avx2::f16(x[b].d);
    for (int h = 0; h < 2; ++h) {
      __m256i q[4];
      avx2::unpack_q6_K_half(x[b], h, q);
      for (int k = 0; k < 4; ++k) {
        const __m256i v = _mm256_sub_epi8(q[k], off);  // q - 32 in [-32, 31]
        const int g = (128 * h + 32 * k) / 16;
        const __m256 d0 = _mm256_set1_ps(d * float(x[b].scales[g])), d1 = _mm256_set1_ps(d * float(x[b].scales[g + 1]));
        const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
        float* out = y + 128 * h + 32 * k;
        _mm256_storeu_ps(out + 0, _mm256_mul_ps(d0, avx2::i8x8_to_ps(lo)));
        _mm256_storeu_ps(out + 8, _mm256_mul_ps(d0, avx2::i8x8_to_ps(_mm_srli_si128(lo, 8))));
        _mm256_storeu_ps(out + 16, _mm256_mul_ps(d1, avx2::i8x8_to_ps(hi)));
        _mm256_storeu_ps(out + 24, _mm256_mul_ps(d1, avx2::i8x8_to_ps(_mm_srli_si128(hi, 8))));
      }
    }
  }
}
#endif

inline float dot_q6_K_f32(const void* row, const float* x, std::int64_t n) {
  return dot_f32_by_blocks<QK_K, sizeof(block_q6_K)>(row, x, n, dequantize_row_q6_K);
}

}  // namespace quant
}  // namespace gemma3
