// gemma3/kernels/fdot.hpp -- fused "dequantize a block and FMA it against float32 x"
// dot products: the float-activation path of matvec (the default, kernels/isa.hpp).
//
//   float fdot_<type>_avx2(row, x, xsum, n)     row . x, x float32 [n]
//   fdot_many_<type>_avx2<NT>(row, x, ldx, ...)  the same for NT <= 4 tokens at once (a small
//                                                decode batch, kernels/matmul.hpp), each block
//                                                widened once; fused_dot_many() picks one
//
// xsum [n / 32] holds the sums of x over each run of 32 values (block_sums_32, once
// per matvec); the types with a minimum (Q4_1, Q5_1, Q4_K, Q5_K) use it so that the
// minimum costs one multiply per 32 values instead of one per value:
//   sum_i (d q_i + m) x_i = d * sum_i q_i x_i + m * xsum.
// Per block (or sub-block) the quants are unpacked to 32 bytes in a register with the
// AVX2 helpers of the dequantizers (kernels/dequantize_simd.hpp; Q8_0: read
// straight from the block), widened 8 at a time (vpmovsx/zx to int32, vcvtdq2ps) and
// FMA'd against x in float32; the block's float sum is then scaled once by its scale
// (d, or d * sc_j for the K-quants). Nothing is rounded to 8 bits:
// the result is the float32 dot of the dequantized row with x, to float rounding.
//
// The scalar twins are the plain references dot_<type>_f32 (quant/: dequantize a
// block, accumulate in double). Under WebAssembly (and on CPUs without AVX2) matvec keeps
// the former path: dequantize a row to float32 and use the SIMD f32 dot.
// Pinned by tests/test_quant.cpp ("fused float dots").
#pragma once

#include <cmath>
#include <cstdint>

#include "../quant/quant.hpp"
#include "dequantize_simd.hpp"
#include "../dtype.hpp"
#include "isa.hpp"

namespace gemma3 {
namespace quant {

// row . x with x float32; xsum [n / 32] = block_sums_32(x).
using FusedDotFn = float (*)(const void* row, const float* x, const float* xsum, std::int64_t n);

// The same for nt <= 4 tokens: y[t] = row . (x + t * ldx), xsum + t * ldxs its block sums.
using FusedDotManyFn = void (*)(const void* row, const float* x, std::int64_t ldx, const float* xsum,
                                std::int64_t ldxs, int nt, float* y, std::int64_t n);

// xsum[b] = sum of x[32 b .. 32 b + 31], n a multiple of 32.
inline void block_sums_32_scalar(const float* x, float* xsum, std::int64_t n) {
  for (std::int64_t b = 0; b < n / QK; ++b) {
    float s = 0.0f;
    for (int j = 0; j < QK; ++j) s += x[b * QK + j];
    xsum[b] = s;
  }
}

#if GEMMA3_HAVE_X86_SIMD
namespace avx2 {

GEMMA3_TARGET_AVX2 inline void block_sums_32(const float* x, float* xsum, std::int64_t n) {
  for (std::int64_t b = 0; b < n / QK; ++b, x += QK) {
    const __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(x + 8)),
                                   _mm256_add_ps(_mm256_loadu_ps(x + 16), _mm256_loadu_ps(x + 24)));
    xsum[b] = hsum(s);
  }
}

// 8 bytes at q (signed or unsigned) -> 8 floats.
template <bool Signed>
GEMMA3_TARGET_AVX2 inline __m256 widen8(const void* q) {
  const __m128i v = _mm_loadl_epi64(static_cast<const __m128i*>(q));
  return _mm256_cvtepi32_ps(Signed ? _mm256_cvtepi8_epi32(v) : _mm256_cvtepu8_epi32(v));
}

// 8 lanes whose sum is sum_{i < 16} q[i] * x[i].
template <bool Signed>
GEMMA3_TARGET_AVX2 inline __m256 fsum16(const void* q, const float* x) {
  const auto* p = static_cast<const std::uint8_t*>(q);
  return _mm256_fmadd_ps(widen8<Signed>(p + 8), _mm256_loadu_ps(x + 8),
                         _mm256_mul_ps(widen8<Signed>(p), _mm256_loadu_ps(x)));
}

// 8 lanes whose sum is sum_{i < 32} q[i] * x[i] (two independent chains).
template <bool Signed>
GEMMA3_TARGET_AVX2 inline __m256 fsum32(const void* q, const float* x) {
  const auto* p = static_cast<const std::uint8_t*>(q);
  __m256 a = _mm256_mul_ps(widen8<Signed>(p), _mm256_loadu_ps(x));
  __m256 b = _mm256_mul_ps(widen8<Signed>(p + 8), _mm256_loadu_ps(x + 8));
  a = _mm256_fmadd_ps(widen8<Signed>(p + 16), _mm256_loadu_ps(x + 16), a);
  b = _mm256_fmadd_ps(widen8<Signed>(p + 24), _mm256_loadu_ps(x + 24), b);
  return _mm256_add_ps(a, b);
}

// summ + m0 * xs0 + m1 * xs1 (m0, m1 float16) as two explicit FMAs: the minimums' part of
// a legacy block pair, rounded the same way wherever it is inlined (a plain expression
// leaves the FMA contraction to the compiler, which may choose differently per caller).
GEMMA3_TARGET_AVX2 inline float min_sum2(float summ, std::uint16_t m0, float xs0, std::uint16_t m1, float xs1) {
  return std::fma(f16(m1), xs1, std::fma(f16(m0), xs0, summ));
}

// The same for 32 bytes held in a register (no round trip through memory).
template <bool Signed>
GEMMA3_TARGET_AVX2 inline __m256 widen8r(__m128i t) {
  return _mm256_cvtepi32_ps(Signed ? _mm256_cvtepi8_epi32(t) : _mm256_cvtepu8_epi32(t));
}
template <bool Signed>
GEMMA3_TARGET_AVX2 inline __m256 fsum32r(__m256i v, const float* x) {
  const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
#define w widen8r<Signed>
  __m256 a = _mm256_mul_ps(w(lo), _mm256_loadu_ps(x));
  __m256 b = _mm256_mul_ps(w(_mm_unpackhi_epi64(lo, lo)), _mm256_loadu_ps(x + 8));
  a = _mm256_fmadd_ps(w(hi), _mm256_loadu_ps(x + 16), a);
  b = _mm256_fmadd_ps(w(_mm_unpackhi_epi64(hi, hi)), _mm256_loadu_ps(x + 24), b);
#undef w
  return _mm256_add_ps(a, b);
}

// 8 lanes whose sum is sum_{i < 16} t[i] * x[i], t 16 signed bytes in a register.
GEMMA3_TARGET_AVX2 inline __m256 fsum16r(__m128i t, const float* x) {
  return _mm256_fmadd_ps(widen8r<true>(_mm_unpackhi_epi64(t, t)), _mm256_loadu_ps(x + 8),
                         _mm256_mul_ps(widen8r<true>(t), _mm256_loadu_ps(x)));
}

}  // namespace avx2

// ---- the 32-wide legacy types ----

GEMMA3_TARGET_AVX2 inline float fdot_q8_0_avx2(const void* row, const float* x, const float*, std::int64_t n) {
  const auto* w = static_cast<const block_q8_0*>(row);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  const std::int64_t nb = n / QK;
  std::int64_t b = 0;
  for (; b + 1 < nb; b += 2) {
    acc0 = _mm256_fmadd_ps(avx2::fsum32<true>(w[b].qs, x + b * QK), _mm256_set1_ps(avx2::f16(w[b].d)), acc0);
    acc1 = _mm256_fmadd_ps(avx2::fsum32<true>(w[b + 1].qs, x + (b + 1) * QK), _mm256_set1_ps(avx2::f16(w[b + 1].d)),
                           acc1);
  }
  for (; b < nb; ++b)
    acc0 = _mm256_fmadd_ps(avx2::fsum32<true>(w[b].qs, x + b * QK), _mm256_set1_ps(avx2::f16(w[b].d)), acc0);
  return avx2::hsum(_mm256_add_ps(acc0, acc1));
}

// Legacy 32-wide blocks: Unpack(block) -> 32 bytes in output order (signed when
// Signed: q - offset already applied); Scale(block) = d; Min(block) = m (0 if none).
template <class Block, bool Signed, bool HasMin, class Unpack>
GEMMA3_TARGET_AVX2 inline float fdot_legacy_avx2(const void* row, const float* x, const float* xsum, std::int64_t n,
                                                 Unpack unpack) {
  const auto* w = static_cast<const Block*>(row);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  float summ = 0.0f;
  const std::int64_t nb = n / QK;
  std::int64_t b = 0;
  for (; b + 1 < nb; b += 2) {
    acc0 = _mm256_fmadd_ps(avx2::fsum32r<Signed>(unpack(w[b]), x + b * QK), _mm256_set1_ps(avx2::f16(w[b].d)), acc0);
    acc1 = _mm256_fmadd_ps(avx2::fsum32r<Signed>(unpack(w[b + 1]), x + (b + 1) * QK), _mm256_set1_ps(avx2::f16(w[b + 1].d)), acc1);
    if constexpr (HasMin) summ = avx2::min_sum2(summ, w[b].m, xsum[b], w[b + 1].m, xsum[b + 1]);
  }
  for (; b < nb; ++b) {
    acc0 = _mm256_fmadd_ps(avx2::fsum32r<Signed>(unpack(w[b]), x + b * QK), _mm256_set1_ps(avx2::f16(w[b].d)), acc0);
    if constexpr (HasMin) summ = std::fma(avx2::f16(w[b].m), xsum[b], summ);
  }
  (void)xsum;
  return avx2::hsum(_mm256_add_ps(acc0, acc1)) + summ;
}

namespace detail {
struct UnpackQ4_0 {
  GEMMA3_TARGET_AVX2 __m256i operator()(const block_q4_0& b) const {
    return _mm256_sub_epi8(avx2::nibbles32(b.qs), _mm256_set1_epi8(8));
  }
};
struct UnpackQ4_1 {
  GEMMA3_TARGET_AVX2 __m256i operator()(const block_q4_1& b) const { return avx2::nibbles32(b.qs); }
};
struct UnpackQ5_0 {
  GEMMA3_TARGET_AVX2 __m256i operator()(const block_q5_0& b) const {
    return _mm256_or_si256(avx2::nibbles32(b.qs), _mm256_andnot_si256(avx2::bits32(b.qh), _mm256_set1_epi8(char(0xf0))));
  }
};
struct UnpackQ5_1 {
  GEMMA3_TARGET_AVX2 __m256i operator()(const block_q5_1& b) const {
    return _mm256_or_si256(avx2::nibbles32(b.qs), _mm256_and_si256(avx2::bits32(b.qh), _mm256_set1_epi8(0x10)));
  }
};
}  // namespace detail

GEMMA3_TARGET_AVX2 inline float fdot_q4_0_avx2(const void* row, const float* x, const float* xs, std::int64_t n) {
  return fdot_legacy_avx2<block_q4_0, true, false>(row, x, xs, n, detail::UnpackQ4_0{});
}
GEMMA3_TARGET_AVX2 inline float fdot_q4_1_avx2(const void* row, const float* x, const float* xs, std::int64_t n) {
  return fdot_legacy_avx2<block_q4_1, false, true>(row, x, xs, n, detail::UnpackQ4_1{});
}
GEMMA3_TARGET_AVX2 inline float fdot_q5_0_avx2(const void* row, const float* x, const float* xs, std::int64_t n) {
  return fdot_legacy_avx2<block_q5_0, true, false>(row, x, xs, n, detail::UnpackQ5_0{});
}
GEMMA3_TARGET_AVX2 inline float fdot_q5_1_avx2(const void* row, const float* x, const float* xs, std::int64_t n) {
  return fdot_legacy_avx2<block_q5_1, false, true>(row, x, xs, n, detail::UnpackQ5_1{});
}

// ---- Q4_K / Q5_K: per super-block, 8 sub-blocks of 32 with scale d*sc_j, min dmin*m_j ----

template <bool Q5>
GEMMA3_TARGET_AVX2 inline float fdot_k4_avx2(const std::uint8_t* base, std::size_t block_bytes, const float* x,
                                             const float* xsum, std::int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  float summ = 0.0f;
  for (std::int64_t b = 0; b < n / QK_K; ++b, x += QK_K, xsum += 8) {
    const std::uint8_t* blk = base + std::size_t(b) * block_bytes;
    const block_q4_K& w4 = *reinterpret_cast<const block_q4_K*>(blk);  // d, dmin, scales are in the same place
    const std::uint8_t* qs = Q5 ? reinterpret_cast<const block_q5_K*>(blk)->qs : w4.qs;
    std::uint8_t sm[16];
    unpack_scales_k4_bytes(w4.scales, sm);
    const float d = avx2::f16(w4.d), dmin = avx2::f16(w4.dmin);
    // the minimums: dmin * sum_j m_j * xsum_j
    const __m256 mins = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sm + 8))));
    summ = std::fma(dmin, avx2::hsum(_mm256_mul_ps(mins, _mm256_loadu_ps(xsum))), summ);
    __m256i hb = Q5 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(reinterpret_cast<const block_q5_K*>(blk)->qh))
                    : _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      __m256i lo, hi;
      avx2::unpack_k4_chunk<Q5>(qs, c, hb, lo, hi);
      acc0 = _mm256_fmadd_ps(avx2::fsum32r<false>(lo, x + 64 * c), _mm256_set1_ps(d * float(sm[2 * c])), acc0);
      acc1 = _mm256_fmadd_ps(avx2::fsum32r<false>(hi, x + 64 * c + 32), _mm256_set1_ps(d * float(sm[2 * c + 1])), acc1);
    }
  }
  return avx2::hsum(_mm256_add_ps(acc0, acc1)) - summ;
}

GEMMA3_TARGET_AVX2 inline float fdot_q4_K_avx2(const void* row, const float* x, const float* xs, std::int64_t n) {
  return fdot_k4_avx2<false>(static_cast<const std::uint8_t*>(row), sizeof(block_q4_K), x, xs, n);
}
GEMMA3_TARGET_AVX2 inline float fdot_q5_K_avx2(const void* row, const float* x, const float* xs, std::int64_t n) {
  return fdot_k4_avx2<true>(static_cast<const std::uint8_t*>(row), sizeof(block_q5_K), x, xs, n);
}

// ---- Q6_K: 16 sub-blocks of 16 with scale d * scales[g], values q - 32 ----

GEMMA3_TARGET_AVX2 inline float fdot_q6_K_avx2(const void* row, const float* x, const float*, std::int64_t n) {
  const auto* w = static_cast<const block_q6_K*>(row);
  const __m256i off = _mm256_set1_epi8(32);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  for (std::int64_t b = 0; b < n / QK_K; ++b, x += QK_K) {
    const float d = avx2::f16(w[b].d);
    const std::int8_t* sc = w[b].scales;
    for (int h = 0; h < 2; ++h) {
      __m256i v[4];
      avx2::unpack_q6_K_half(w[b], h, v);
      const float* xh = x + 128 * h;
      const std::int8_t* sh = sc + 8 * h;
      for (int k = 0; k < 4; ++k) {  // group k: outputs 32k .. 32k+31 of this half = sub-blocks 2k, 2k+1
        const __m256i t = _mm256_sub_epi8(v[k], off);
        acc0 = _mm256_fmadd_ps(avx2::fsum16r(_mm256_castsi256_si128(t), xh + 32 * k), _mm256_set1_ps(d * float(sh[2 * k])),
                               acc0);
        acc1 = _mm256_fmadd_ps(avx2::fsum16r(_mm256_extracti128_si256(t, 1), xh + 32 * k + 16),
                               _mm256_set1_ps(d * float(sh[2 * k + 1])), acc1);
      }
    }
  }
  return avx2::hsum(_mm256_add_ps(acc0, acc1));
}
// ---- several tokens per row: fdot_many_<type>_avx2 ----
//
//   y[t] = row . x_t,  x_t = x + t * ldx,  xsum_t = xsum + t * ldxs,  t < nt <= 4
//
// A small decode batch (kernels/matmul.hpp) multiplies each weight row by a few tokens.
// These unpack and widen each block of the row once and FMA it against every token,
// where nt calls of fdot_<type>_avx2 would unpack and widen it nt times. Each token's
// sums run in the same order, through the same operations, as fdot_<type>_avx2's, so y[t]
// equals fdot_<type>_avx2(row, x_t, xsum_t, n) bit for bit (tests/test_quant.cpp).

namespace avx2 {

// 32 weights widened to float, in the order fsum32 / fsum32r multiply them.
struct W32 {
  __m256 w[4];
};
template <bool Signed>
GEMMA3_TARGET_AVX2 inline W32 widen32(const void* q) {
  const auto* p = static_cast<const std::uint8_t*>(q);
  return W32{{widen8<Signed>(p), widen8<Signed>(p + 8), widen8<Signed>(p + 16), widen8<Signed>(p + 24)}};
}
template <bool Signed>
GEMMA3_TARGET_AVX2 inline W32 widen32r(__m256i v) {
  const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
  return W32{{widen8r<Signed>(lo), widen8r<Signed>(_mm_unpackhi_epi64(lo, lo)), widen8r<Signed>(hi),
              widen8r<Signed>(_mm_unpackhi_epi64(hi, hi))}};
}
// fsum32's arithmetic on widened weights.
GEMMA3_TARGET_AVX2 inline __m256 dot32(const W32& w, const float* x) {
  __m256 a = _mm256_mul_ps(w.w[0], _mm256_loadu_ps(x));
  __m256 b = _mm256_mul_ps(w.w[1], _mm256_loadu_ps(x + 8));
  a = _mm256_fmadd_ps(w.w[2], _mm256_loadu_ps(x + 16), a);
  b = _mm256_fmadd_ps(w.w[3], _mm256_loadu_ps(x + 24), b);
  return _mm256_add_ps(a, b);
}
// fsum16r's arithmetic on 16 widened signed weights (w[0]: bytes 0-7, w[1]: bytes 8-15).
GEMMA3_TARGET_AVX2 inline __m256 dot16(const __m256 w[2], const float* x) {
  return _mm256_fmadd_ps(w[1], _mm256_loadu_ps(x + 8), _mm256_mul_ps(w[0], _mm256_loadu_ps(x)));
}

}  // namespace avx2

template <int NT>
GEMMA3_TARGET_AVX2 inline void fdot_many_q8_0_avx2(const void* row, const float* x, std::int64_t ldx, float* y,
                                                   std::int64_t n) {
  const auto* w = static_cast<const block_q8_0*>(row);
  __m256 acc0[NT], acc1[NT];
  for (int t = 0; t < NT; ++t) acc0[t] = acc1[t] = _mm256_setzero_ps();
  const std::int64_t nb = n / QK;
  for (std::int64_t b = 0; b < nb; ++b) {
    const avx2::W32 wb = avx2::widen32<true>(w[b].qs);
    const __m256 d = _mm256_set1_ps(avx2::f16(w[b].d));
    const bool second = (b % 2 == 1) && b < nb - (nb % 2);  // fdot_q8_0_avx2 pairs blocks; a lone last one goes to acc0
    for (int t = 0; t < NT; ++t) {
      __m256& acc = second ? acc1[t] : acc0[t];
      acc = _mm256_fmadd_ps(avx2::dot32(wb, x + t * ldx + b * QK), d, acc);
    }
  }
  for (int t = 0; t < NT; ++t) y[t] = avx2::hsum(_mm256_add_ps(acc0[t], acc1[t]));
}

template <int NT, class Block, bool Signed, bool HasMin, class Unpack>
GEMMA3_TARGET_AVX2 inline void fdot_many_legacy_avx2(const void* row, const float* x, std::int64_t ldx,
                                                     const float* xsum, std::int64_t ldxs, float* y, std::int64_t n,
                                                     Unpack unpack) {
  const auto* w = static_cast<const Block*>(row);
  __m256 acc0[NT], acc1[NT];
  float summ[NT];
  for (int t = 0; t < NT; ++t) {
    acc0[t] = acc1[t] = _mm256_setzero_ps();
    summ[t] = 0.0f;
  }
  const std::int64_t nb = n / QK;
  std::int64_t b = 0;
  for (; b + 1 < nb; b += 2) {
    const avx2::W32 wa = avx2::widen32r<Signed>(unpack(w[b])), wb = avx2::widen32r<Signed>(unpack(w[b + 1]));
    const __m256 da = _mm256_set1_ps(avx2::f16(w[b].d)), db = _mm256_set1_ps(avx2::f16(w[b + 1].d));
    for (int t = 0; t < NT; ++t) {
      const float* xt = x + t * ldx;
      acc0[t] = _mm256_fmadd_ps(avx2::dot32(wa, xt + b * QK), da, acc0[t]);
      acc1[t] = _mm256_fmadd_ps(avx2::dot32(wb, xt + (b + 1) * QK), db, acc1[t]);
      if constexpr (HasMin) {
        const float* xs = xsum + t * ldxs;
        summ[t] = avx2::min_sum2(summ[t], w[b].m, xs[b], w[b + 1].m, xs[b + 1]);
      }
    }
  }
  for (; b < nb; ++b) {
    const avx2::W32 wa = avx2::widen32r<Signed>(unpack(w[b]));
    const __m256 da = _mm256_set1_ps(avx2::f16(w[b].d));
    for (int t = 0; t < NT; ++t) {
      acc0[t] = _mm256_fmadd_ps(avx2::dot32(wa, x + t * ldx + b * QK), da, acc0[t]);
      if constexpr (HasMin) summ[t] = std::fma(avx2::f16(w[b].m), xsum[t * ldxs + b], summ[t]);
    }
  }
  (void)xsum;
  (void)ldxs;
  for (int t = 0; t < NT; ++t) y[t] = avx2::hsum(_mm256_add_ps(acc0[t], acc1[t])) + summ[t];
}

template <int NT, bool Q5>
GEMMA3_TARGET_AVX2 inline void fdot_many_k4_avx2(const std::uint8_t* base, std::size_t block_bytes, const float* x,
                                                 std::int64_t ldx, const float* xsum, std::int64_t ldxs, float* y,
                                                 std::int64_t n) {
  __m256 acc0[NT], acc1[NT];
  float summ[NT];
  for (int t = 0; t < NT; ++t) {
    acc0[t] = acc1[t] = _mm256_setzero_ps();
    summ[t] = 0.0f;
  }
  for (std::int64_t b = 0; b < n / QK_K; ++b) {
    const std::uint8_t* blk = base + std::size_t(b) * block_bytes;
    const block_q4_K& w4 = *reinterpret_cast<const block_q4_K*>(blk);
    const std::uint8_t* qs = Q5 ? reinterpret_cast<const block_q5_K*>(blk)->qs : w4.qs;
    std::uint8_t sm[16];
    unpack_scales_k4_bytes(w4.scales, sm);
    const float d = avx2::f16(w4.d), dmin = avx2::f16(w4.dmin);
    const __m256 mins = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sm + 8))));
    for (int t = 0; t < NT; ++t)
      summ[t] = std::fma(dmin, avx2::hsum(_mm256_mul_ps(mins, _mm256_loadu_ps(xsum + t * ldxs + 8 * b))), summ[t]);
    __m256i hb = Q5 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(reinterpret_cast<const block_q5_K*>(blk)->qh))
                    : _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      __m256i lo, hi;
      avx2::unpack_k4_chunk<Q5>(qs, c, hb, lo, hi);
      const avx2::W32 wl = avx2::widen32r<false>(lo), wh = avx2::widen32r<false>(hi);
      const __m256 sl = _mm256_set1_ps(d * float(sm[2 * c])), sh = _mm256_set1_ps(d * float(sm[2 * c + 1]));
      for (int t = 0; t < NT; ++t) {
        const float* xt = x + t * ldx + b * QK_K + 64 * c;
        acc0[t] = _mm256_fmadd_ps(avx2::dot32(wl, xt), sl, acc0[t]);
        acc1[t] = _mm256_fmadd_ps(avx2::dot32(wh, xt + 32), sh, acc1[t]);
      }
    }
  }
  for (int t = 0; t < NT; ++t) y[t] = avx2::hsum(_mm256_add_ps(acc0[t], acc1[t])) - summ[t];
}

template <int NT>
GEMMA3_TARGET_AVX2 inline void fdot_many_q6_K_avx2(const void* row, const float* x, std::int64_t ldx, float* y,
                                                   std::int64_t n) {
  const auto* w = static_cast<const block_q6_K*>(row);
  const __m256i off = _mm256_set1_epi8(32);
  __m256 acc0[NT], acc1[NT];
  for (int t = 0; t < NT; ++t) acc0[t] = acc1[t] = _mm256_setzero_ps();
  for (std::int64_t b = 0; b < n / QK_K; ++b) {
    const float d = avx2::f16(w[b].d);
    const std::int8_t* sc = w[b].scales;
    for (int h = 0; h < 2; ++h) {
      __m256i v[4];
      avx2::unpack_q6_K_half(w[b], h, v);
      const std::int8_t* sh = sc + 8 * h;
      for (int k = 0; k < 4; ++k) {
        const __m256i q = _mm256_sub_epi8(v[k], off);
        const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
        const __m256 wl[2] = {avx2::widen8r<true>(lo), avx2::widen8r<true>(_mm_unpackhi_epi64(lo, lo))};
        const __m256 wh[2] = {avx2::widen8r<true>(hi), avx2::widen8r<true>(_mm_unpackhi_epi64(hi, hi))};
        const __m256 s0 = _mm256_set1_ps(d * float(sh[2 * k])), s1 = _mm256_set1_ps(d * float(sh[2 * k + 1]));
        for (int t = 0; t < NT; ++t) {
          const float* xh = x + t * ldx + b * QK_K + 128 * h + 32 * k;
          acc0[t] = _mm256_fmadd_ps(avx2::dot16(wl, xh), s0, acc0[t]);
          acc1[t] = _mm256_fmadd_ps(avx2::dot16(wh, xh + 16), s1, acc1[t]);
        }
      }
    }
  }
  for (int t = 0; t < NT; ++t) y[t] = avx2::hsum(_mm256_add_ps(acc0[t], acc1[t]));
}

namespace detail {
// A FusedDotManyFn: the nt of the call as K's template argument (1 to 4).
template <template <int> class K>
GEMMA3_TARGET_AVX2 inline void by_nt(const void* row, const float* x, std::int64_t ldx, const float* xsum,
                                     std::int64_t ldxs, int nt, float* y, std::int64_t n) {
  switch (nt) {
    case 1: return K<1>::run(row, x, ldx, xsum, ldxs, y, n);
    case 2: return K<2>::run(row, x, ldx, xsum, ldxs, y, n);
    case 3: return K<3>::run(row, x, ldx, xsum, ldxs, y, n);
    default: return K<4>::run(row, x, ldx, xsum, ldxs, y, n);
  }
}
template <int NT>
struct ManyQ8_0 {
  GEMMA3_TARGET_AVX2 static void run(const void* r, const float* x, std::int64_t ldx, const float*, std::int64_t,
                                     float* y, std::int64_t n) {
    fdot_many_q8_0_avx2<NT>(r, x, ldx, y, n);
  }
};
template <int NT>
struct ManyQ6_K {
  GEMMA3_TARGET_AVX2 static void run(const void* r, const float* x, std::int64_t ldx, const float*, std::int64_t,
                                     float* y, std::int64_t n) {
    fdot_many_q6_K_avx2<NT>(r, x, ldx, y, n);
  }
};
template <bool Q5>
struct ManyK4 {
  template <int NT>
  struct K {
    GEMMA3_TARGET_AVX2 static void run(const void* r, const float* x, std::int64_t ldx, const float* xs,
                                       std::int64_t ldxs, float* y, std::int64_t n) {
      fdot_many_k4_avx2<NT, Q5>(static_cast<const std::uint8_t*>(r), Q5 ? sizeof(block_q5_K) : sizeof(block_q4_K), x,
                                ldx, xs, ldxs, y, n);
    }
  };
};
template <class Block, bool Signed, bool HasMin, class Unpack>
struct ManyLegacy {
  template <int NT>
  struct K {
    GEMMA3_TARGET_AVX2 static void run(const void* r, const float* x, std::int64_t ldx, const float* xs,
                                       std::int64_t ldxs, float* y, std::int64_t n) {
      fdot_many_legacy_avx2<NT, Block, Signed, HasMin>(r, x, ldx, xs, ldxs, y, n, Unpack{});
    }
  };
};
}  // namespace detail

#endif  // GEMMA3_HAVE_X86_SIMD

// x [n] -> xsum [n / 32] with the given Isa.
inline void block_sums_32(const float* x, float* xsum, std::int64_t n, Isa isa) {
#if GEMMA3_HAVE_X86_SIMD
  if (isa_has_avx2(isa)) return avx2::block_sums_32(x, xsum, n);
#endif
  (void)isa;
  block_sums_32_scalar(x, xsum, n);
}

// Adapters so the references dot_<type>_f32 fit FusedDotFn (they ignore xsum).
template <float (*F)(const void*, const float*, std::int64_t)>
inline float fused_ref(const void* row, const float* x, const float*, std::int64_t n) {
  return F(row, x, n);
}

// The fused float dot of a quantized dtype for `isa`; nullptr where none is built
// (plain dtypes, and Isas without one: matvec then dequantizes rows instead).
// Isa::scalar gives the reference dot_<type>_f32.
inline FusedDotFn fused_dot(DType t, Isa isa);

// The many-token fused dot of a quantized dtype (AVX2 and up), or nullptr.
inline FusedDotManyFn fused_dot_many(DType t, Isa isa) {
#if GEMMA3_HAVE_X86_SIMD
  if (isa_has_avx2(isa)) {
    switch (t) {
      case DType::Q8_0: return detail::by_nt<detail::ManyQ8_0>;
      case DType::Q4_0: return detail::by_nt<detail::ManyLegacy<block_q4_0, true, false, detail::UnpackQ4_0>::K>;
      case DType::Q4_1: return detail::by_nt<detail::ManyLegacy<block_q4_1, false, true, detail::UnpackQ4_1>::K>;
      case DType::Q5_0: return detail::by_nt<detail::ManyLegacy<block_q5_0, true, false, detail::UnpackQ5_0>::K>;
      case DType::Q5_1: return detail::by_nt<detail::ManyLegacy<block_q5_1, false, true, detail::UnpackQ5_1>::K>;
      case DType::Q4_K: return detail::by_nt<detail::ManyK4<false>::K>;
      case DType::Q5_K: return detail::by_nt<detail::ManyK4<true>::K>;
      case DType::Q6_K: return detail::by_nt<detail::ManyQ6_K>;
      default: return nullptr;
    }
  }
#endif
  (void)t;
  (void)isa;
  return nullptr;
}

inline FusedDotFn fused_dot(DType t, Isa isa) {
  if (isa == Isa::scalar) {
    switch (t) {
      case DType::Q8_0: return fused_ref<dot_q8_0_f32>;
      case DType::Q4_0: return fused_ref<dot_q4_0_f32>;
      case DType::Q4_1: return fused_ref<dot_q4_1_f32>;
      case DType::Q5_0: return fused_ref<dot_q5_0_f32>;
      case DType::Q5_1: return fused_ref<dot_q5_1_f32>;
      case DType::Q4_K: return fused_ref<dot_q4_K_f32>;
      case DType::Q5_K: return fused_ref<dot_q5_K_f32>;
      case DType::Q6_K: return fused_ref<dot_q6_K_f32>;
      default: return nullptr;
    }
  }
#if GEMMA3_HAVE_X86_SIMD
  if (isa_has_avx2(isa)) {
    switch (t) {
      case DType::Q8_0: return fdot_q8_0_avx2;
      case DType::Q4_0: return fdot_q4_0_avx2;
      case DType::Q4_1: return fdot_q4_1_avx2;
      case DType::Q5_0: return fdot_q5_0_avx2;
      case DType::Q5_1: return fdot_q5_1_avx2;
      case DType::Q4_K: return fdot_q4_K_avx2;
      case DType::Q5_K: return fdot_q5_K_avx2;
      case DType::Q6_K: return fdot_q6_K_avx2;
      default: return nullptr;
    }
  }
#endif
  return nullptr;
}

}  // namespace quant
}  // namespace gemma3
