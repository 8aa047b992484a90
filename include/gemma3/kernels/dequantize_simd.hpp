// gemma3/kernels/dequantize_simd.hpp -- the AVX2 twins of the GGUF row dequantizers,
// and the small AVX2 helpers they share with the fused float dots (kernels/fdot.hpp)
// and the int16-activation kernels (kernels/dot_q16.hpp).
//
//   dequantize_row_<type>_avx2(src, y, n)   for Q8_0, Q5_0, Q4_K, Q6_K: bit for bit the
//                                           scalar dequantize_row_<type> (quant/), the
//                                           same float multiply (and subtract) per value
//   dequantize_fn(t, isa)                   the row dequantizer of dtype t for isa: the
//                                           AVX2 twin where one exists, else the scalar
//   avx2::f16, hsum, hsum_i32, nibbles32, bits32, i8x8_to_ps, store_scaled_i8x32,
//   unpack_k4_chunk (Q4_K / Q5_K), unpack_q6_K_half (Q6_K): the unpacking of a block's
//   quants into bytes in a register, in the layouts quant/q4_k.hpp and quant/q6_k.hpp
//   draw.
// The names stay in namespace gemma3::quant, next to the scalar dequantizers.
// Pinned by tests/test_quant.cpp ("dequantize_fn: SIMD == scalar dequantize_row bitwise").
#pragma once

#include <cstdint>
#include <cstring>

#include "../quant/quant.hpp"
#include "isa.hpp"

namespace gemma3 {
namespace quant {

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

// Chunk c (0..3) of a Q4_K / Q5_K super-block -> its sub-blocks 2c (lo) and 2c + 1
// (hi) as 32 bytes each, values 0..15 (Q4_K) or 0..31 (Q5_K). For Q5_K, hb starts as
// the 32 qh bytes and moves one bit per sub-block: bit 2c, then 2c + 1, of every qh
// byte goes to bit 4 (16-bit shifts cannot leak: only bit 0 of each byte is used).
template <bool Q5>
GEMMA3_TARGET_AVX2 inline void unpack_k4_chunk(const std::uint8_t* qs, int c, __m256i& hb, __m256i& lo, __m256i& hi) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
  const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * c));
  lo = _mm256_and_si256(bits, m4);
  hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
  if (Q5) {
    lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(hb, one), 4));
    hb = _mm256_srli_epi16(hb, 1);
    hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(hb, one), 4));
    hb = _mm256_srli_epi16(hb, 1);
  }
}

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

// dequantize_row_q8_0 with AVX2: the same float multiply per value, bit for bit.
GEMMA3_TARGET_AVX2 inline void dequantize_row_q8_0_avx2(const void* src, float* y, std::int64_t n) {
  const auto* x = static_cast<const block_q8_0*>(src);
  for (std::int64_t b = 0; b < n / QK; ++b, y += QK) {
    const __m256 d = _mm256_set1_ps(avx2::f16(x[b].d));
    avx2::store_scaled_i8x32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs)), d, y);
  }
}

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

// dequantize_row_q4_K with AVX2, bit for bit: per sub-block the scalar d1 and m1, then
// (d1 * float(q)) - m1 as a separate multiply and subtract (no FMA, like the scalar).
GEMMA3_TARGET_AVX2 inline void dequantize_row_q4_K_avx2(const void* src, float* y, std::int64_t n) {
  const auto* x = static_cast<const block_q4_K*>(src);
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  for (std::int64_t b = 0; b < n / QK_K; ++b, y += QK_K) {
    const float d = avx2::f16(x[b].d), dmin = avx2::f16(x[b].dmin);
    int sc[8], m[8];
    unpack_scales_k4(x[b].scales, sc, m);
    for (int c = 0; c < 4; ++c) {
      const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs + 32 * c));
      const __m256i nib[2] = {_mm256_and_si256(bytes, m4), _mm256_and_si256(_mm256_srli_epi16(bytes, 4), m4)};
      for (int h = 0; h < 2; ++h) {
        const int j = 2 * c + h;
        const __m256 d1 = _mm256_set1_ps(d * float(sc[j])), m1 = _mm256_set1_ps(dmin * float(m[j]));
        const __m128i lo = _mm256_castsi256_si128(nib[h]), hi = _mm256_extracti128_si256(nib[h], 1);
        const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
        float* out = y + 32 * j;
        for (int k = 0; k < 4; ++k)
          _mm256_storeu_ps(out + 8 * k, _mm256_sub_ps(_mm256_mul_ps(d1, avx2::i8x8_to_ps(parts[k])), m1));
      }
    }
  }
}

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
#endif  // GEMMA3_HAVE_X86_SIMD

// The row dequantizer of dtype t for Isa isa: an AVX2 twin where one exists (Q8_0,
// Q5_0, Q4_K, Q6_K; bit for bit equal to the scalar one), else the scalar one.
inline DequantizeFn dequantize_fn(DType t, Isa isa) {
#if GEMMA3_HAVE_X86_SIMD
  if (isa_has_avx2(isa)) switch (t) {
      case DType::Q8_0: return dequantize_row_q8_0_avx2;
      case DType::Q5_0: return dequantize_row_q5_0_avx2;
      case DType::Q4_K: return dequantize_row_q4_K_avx2;
      case DType::Q6_K: return dequantize_row_q6_K_avx2;
      default: break;
    }
#endif
  (void)isa;
  return scalar_kernels(t).dequantize;
}

}  // namespace quant
}  // namespace gemma3
