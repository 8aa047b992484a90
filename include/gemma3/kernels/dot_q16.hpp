// gemma3/kernels/dot_q16.hpp -- the AVX-512 VNNI kernels on int16 activations
// (quant/q16.hpp has the format, the formulas and the scalar references), and the
// dispatch by Isa that matvec (kernels/matmul.hpp) and the prefill GEMM
// (kernels/gemm_q16.hpp) call:
//
//   quantize_row_q16(x, q, d, s, n, isa)       x -> int16 activations (identical q, d)
//   split_q16_bytes(q, d, n, hi, lo, dX, sum16, isa)   the byte split (identical)
//   q16_dot(t, isa), q16_dot_rows(t, isa)     row . x for dtype t, one row / many rows
//   unpack_q16_row(t, row, n, u, scale, min, isa)      w_i = scale_b * u_i + min_b
// Each picks the avx512 twin under Isa::avx512 and the scalar reference otherwise.
// The names stay in namespace gemma3::quant, next to the scalar references.
//
// The avx512 dots come in two ways, which agree with the scalar to float rounding (the
// order of the float additions differs):
//   int16 walk (every type): AVX-512 BW's vpmaddwd does a block's 32 int16 products
//     into 16 int32 lanes; the lanes are converted and FMA'd with scale_b * d_b.
//   byte kernels (Q5_0, Q4_K, Q5_K, Q6_K, when x carries its byte split): the weights
//     stay unsigned bytes and x is split as q = 256 hi + lo (split_q16_bytes): two
//     vpdpbusd give the same exact int32 sums with 4 products per lane; Q4_K/Q5_K/Q6_K
//     go 64 weights per 512-bit register, one float epilogue for two blocks, Q5_0 one
//     block per 256-bit register (no cross-lane shuffle); a weight offset (Q5_0's 16,
//     Q6_K's 32) becomes one float term per block from the integer block sums of q.
// Speed (bench/bench_quant BM_matvec_dtype, one thread, cache-resident, AMD EPYC Zen 4),
// int16 walk -> byte kernel: Q5_0 [2048 x 640] 75 -> 60 us (-> 55 us in 256-bit form),
// Q4_K [640 x 2048] 76 -> 47 us, Q6_K [640 x 2048] 88 -> 53 us. The int16 activations
// measured no slower than 8-bit ones (docs/kernels.md) and are 129x finer.
// Pinned by tests/test_q16.cpp (and tests/test_gemm_q16.cpp for unpack_q16_row).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../quant/q16.hpp"
#include "dequantize_simd.hpp"
#include "isa.hpp"

namespace gemma3 {
namespace quant {

// Whether dtype t has int16-activation kernels (every GGUF block type).
inline bool has_q16_kernels(DType t) { return dtype_is_quantized(t); }

// Whether the avx512 dot of dtype t uses the byte split of x when the row carries it
// (the byte kernels); the other types read only q, d and s.
inline bool q16_uses_bytes(DType t) {
  return t == DType::Q5_0 || t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K;
}

#if GEMMA3_HAVE_X86_SIMD
namespace avx512 {

// x [n] -> q, d, s; q and d bit for bit the scalar twin's (the same float operations,
// and vcvtps2dq rounds to nearest even like nearest_int), s to float rounding.
GEMMA3_TARGET_AVX512 inline void quantize_row_q16(const float* x, std::int16_t* q, float* d, float* s, std::int64_t n) {
  const __m512 sign = _mm512_set1_ps(-0.0f);
  const __m512i lim = _mm512_set1_epi32(kQ16Max), nlim = _mm512_set1_epi32(-kQ16Max);
  for (std::int64_t b = 0; b < n / QK; ++b, x += QK, q += QK) {
    const __m512 a = _mm512_loadu_ps(x), c = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_andnot_ps(sign, a), _mm512_andnot_ps(sign, c)));
    const float db = amax / float(kQ16Max);
    const __m512 id = _mm512_set1_ps(db != 0.0f ? 1.0f / db : 0.0f);
    const __m512i qa = _mm512_max_epi32(nlim, _mm512_min_epi32(lim, _mm512_cvtps_epi32(_mm512_mul_ps(a, id))));
    const __m512i qc = _mm512_max_epi32(nlim, _mm512_min_epi32(lim, _mm512_cvtps_epi32(_mm512_mul_ps(c, id))));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), _mm512_cvtepi32_epi16(qa));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 16), _mm512_cvtepi32_epi16(qc));
    d[b] = db;
    s[b] = _mm512_reduce_add_ps(_mm512_add_ps(a, c));
  }
}

// The byte split (bit for bit the scalar twin's: integer arithmetic and the same one
// float product per block).
GEMMA3_TARGET_AVX512 inline void split_q16_bytes(const std::int16_t* q, const float* d, std::int64_t n, std::int8_t* hi,
                                                 std::int8_t* lo, float* dX, float* sum16) {
  for (std::int64_t b = 0; b < n / QK; ++b) {
    const __m512i v = _mm512_loadu_si512(q + b * QK);
    const __m512i h = _mm512_srai_epi16(_mm512_add_epi16(v, _mm512_set1_epi16(128)), 8);
    const __m512i l = _mm512_sub_epi16(v, _mm512_slli_epi16(h, 8));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(hi + b * QK), _mm512_cvtepi16_epi8(h));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(lo + b * QK), _mm512_cvtepi16_epi8(l));
    const __m512i w = _mm512_madd_epi16(v, _mm512_set1_epi16(1));  // 16 lanes: 8 per half of 16
    const int X0 = avx2::hsum_i32(_mm512_castsi512_si256(w)), X1 = avx2::hsum_i32(_mm512_extracti64x4_epi64(w, 1));
    sum16[2 * b] = float(X0);
    sum16[2 * b + 1] = float(X1);
    dX[b] = d[b] * float(X0 + X1);
  }
}

// Q5_0 on the byte split, one block (32 weights) per 256-bit register: the 16 bytes of
// nibbles are loaded into both halves, the low half keeps the low nibbles (outputs
// 0..15) and the high half the high ones (16..31), the 5th bits come in as the lane
// mask, so the bytes are q_w = nibble | bit << 4 in [0, 31] in output order; two
// vpdpbusd (against hi and lo) give the block's dot in 8 int32 lanes, and the offset
// 16 becomes -16 d_w d_x X per block (see split_q16_bytes). Needs x.hi, x.lo and x.dX.
// (256-bit registers and no cross-lane shuffle: on Zen 4 this beats two blocks per
// 512-bit register: 2.7 against 3.0 ns per two blocks, cache-resident, one thread.)
GEMMA3_TARGET_AVX512 inline void q5_0_block_bytes(const block_q5_0& w, const std::int8_t* xh, const std::int8_t* xl,
                                                 const float* scale, __m256& acc) {
  const __m256i q2 = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.qs)));
  __m256i qw = _mm256_and_si256(_mm256_srlv_epi64(q2, _mm256_set_epi64x(4, 4, 0, 0)), _mm256_set1_epi8(0x0f));
  std::uint32_t qh;
  std::memcpy(&qh, w.qh, 4);
  qw = _mm256_mask_add_epi8(qw, _cvtu32_mask32(qh), qw, _mm256_set1_epi8(16));
  __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), qw, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xh)));
  p = _mm256_dpbusd_epi32(_mm256_slli_epi32(p, 8), qw, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xl)));
  acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_broadcast_ss(scale), acc);
}

// Four blocks per step share the making of their scales d_w d_b (and the offset
// terms d_w d_b X_b); four accumulators; a remainder of 1..3 blocks one by one.
GEMMA3_TARGET_AVX512 inline float dot_q5_0_bytes(const void* row, const Q16Row& x, std::int64_t n) {
  const auto* w = static_cast<const block_q5_0*>(row);
  const std::int64_t nb = n / QK;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  __m128 corr = _mm_setzero_ps();  // sum_b d_w d_b X_b, four lanes
  alignas(16) float scale[4];      // d_w d_b of the step's four blocks
  std::int64_t b = 0;
  for (; b + 3 < nb; b += 4) {
    const std::uint64_t dd = std::uint64_t(w[b].d) | std::uint64_t(w[b + 1].d) << 16 | std::uint64_t(w[b + 2].d) << 32 |
                             std::uint64_t(w[b + 3].d) << 48;
    const __m128 dw = _mm_cvtph_ps(_mm_cvtsi64_si128(std::int64_t(dd)));  // 4 x d_w
    _mm_store_ps(scale, _mm_mul_ps(dw, _mm_loadu_ps(x.d + b)));
    corr = _mm_fmadd_ps(dw, _mm_loadu_ps(x.dX + b), corr);
    q5_0_block_bytes(w[b], x.hi + b * QK, x.lo + b * QK, scale, acc0);
    q5_0_block_bytes(w[b + 1], x.hi + (b + 1) * QK, x.lo + (b + 1) * QK, scale + 1, acc1);
    q5_0_block_bytes(w[b + 2], x.hi + (b + 2) * QK, x.lo + (b + 2) * QK, scale + 2, acc2);
    q5_0_block_bytes(w[b + 3], x.hi + (b + 3) * QK, x.lo + (b + 3) * QK, scale + 3, acc3);
  }
  float tail = 0.0f;
  for (; b < nb; ++b) {
    const float dw = avx2::f16(w[b].d);
    scale[0] = dw * x.d[b];
    tail += dw * x.dX[b];
    q5_0_block_bytes(w[b], x.hi + b * QK, x.lo + b * QK, scale, acc0);
  }
  const __m128 h = _mm_add_ps(corr, _mm_movehl_ps(corr, corr));
  const float offset = _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h))) + tail;
  return avx2::hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3))) - 16.0f * offset;
}

// Super-block sb of a Q4_K / Q5_K row: the header shared by both layouts (d, dmin, the
// 6-bit scales and mins, unpacked to bytes sm[0..7] and sm[8..15]), the quants and
// (Q5_K) the 5th bits.
template <bool Q5>
struct K4Super {
  const block_q4_K* w4;
  const std::uint8_t* qs;
  const std::uint8_t* qh;  // nullptr for Q4_K
  std::uint8_t sm[16];
  K4Super(const void* row, std::int64_t sb) {
    const std::size_t bytes = Q5 ? sizeof(block_q5_K) : sizeof(block_q4_K);
    const std::uint8_t* blk = static_cast<const std::uint8_t*>(row) + std::size_t(sb) * bytes;
    w4 = reinterpret_cast<const block_q4_K*>(blk);
    qs = Q5 ? reinterpret_cast<const block_q5_K*>(blk)->qs : w4->qs;
    qh = Q5 ? reinterpret_cast<const block_q5_K*>(blk)->qh : nullptr;
    unpack_scales_k4_bytes(w4->scales, sm);
  }
  GEMMA3_TARGET_AVX512 __m256i high_bits() const {
    return Q5 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh)) : _mm256_setzero_si256();
  }
};

// 64 weights as unsigned bytes qw against 64 activations (x.hi, x.lo at xh, xl):
// acc += float(qw . q per 4 bytes) * scale, the 16 int32 lanes holding 4 products each.
GEMMA3_TARGET_AVX512 inline void bytes_chunk(__m512i qw, const std::int8_t* xh, const std::int8_t* xl, __m512 scale,
                                            __m512& acc) {
  __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), qw, _mm512_loadu_si512(xh));
  p = _mm512_dpbusd_epi32(_mm512_slli_epi32(p, 8), qw, _mm512_loadu_si512(xl));
  acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), scale, acc);
}

// Q4_K / Q5_K on the byte split: a chunk of 64 outputs is sub-blocks j = 2c, 2c + 1 as
// bytes q in [0, 15] ([0, 31] for Q5_K), lanes 0..7 and 8..15 of the dot; their scales
// d * sc_j * d_x are made once per super-block (8 floats) and spread by one permute.
// The minimum as the int16 walk: - dmin * m_j * s_j.
template <bool Q5>
GEMMA3_TARGET_AVX512 inline float dot_k4_bytes(const void* row, const Q16Row& x, std::int64_t n) {
  const __m512i spread = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  __m256 macc = _mm256_setzero_ps();
  for (std::int64_t sb = 0; sb < n / QK_K; ++sb) {
    const K4Super<Q5> k(row, sb);
    const std::uint8_t* qs = k.qs;
    const __m256 sc = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(k.sm))));
    const __m256 m = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(k.sm + 8))));
    const __m512 s8 = _mm512_castps256_ps512(
        _mm256_mul_ps(_mm256_mul_ps(sc, _mm256_set1_ps(avx2::f16(k.w4->d))), _mm256_loadu_ps(x.d + sb * 8)));
    macc = _mm256_fmadd_ps(_mm256_mul_ps(m, _mm256_set1_ps(avx2::f16(k.w4->dmin))), _mm256_loadu_ps(x.s + sb * 8), macc);
    __m256i hb = k.high_bits();
    const std::int8_t* xh = x.hi + sb * QK_K;
    const std::int8_t* xl = x.lo + sb * QK_K;
    for (int c = 0; c < 4; ++c) {
      __m256i lo, hi;
      avx2::unpack_k4_chunk<Q5>(qs, c, hb, lo, hi);
      const __m512i qw = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
      const __m512 scale = _mm512_permutexvar_ps(_mm512_add_epi32(spread, _mm512_set1_epi32(2 * c)), s8);
      bytes_chunk(qw, xh + 64 * c, xl + 64 * c, scale, c % 2 ? acc1 : acc0);
    }
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) - avx2::hsum(macc);
}

// Q6_K on the byte split: bytes q in [0, 63], a chunk of 64 outputs is four groups of 16
// (4 lanes each) with scales d * sc_g * d_x made once per super-block (16 floats); the
// offset 32 as - 32 * sum_g (d sc_g d_x) X16_g.
GEMMA3_TARGET_AVX512 inline float dot_q6_K_bytes(const void* row, const Q16Row& x, std::int64_t n) {
  const auto* w = static_cast<const block_q6_K*>(row);
  const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);  // d_x of group g: block g / 2
  const __m512i spread = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), corr = _mm512_setzero_ps();
  for (std::int64_t sb = 0; sb < n / QK_K; ++sb) {
    const __m512 sc = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[sb].scales))));
    const __m512 dx = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_loadu_ps(x.d + sb * 8)));
    const __m512 s16 = _mm512_mul_ps(_mm512_mul_ps(sc, _mm512_set1_ps(avx2::f16(w[sb].d))), dx);
    corr = _mm512_fmadd_ps(s16, _mm512_loadu_ps(x.sum16 + sb * 16), corr);
    const std::int8_t* xh = x.hi + sb * QK_K;
    const std::int8_t* xl = x.lo + sb * QK_K;
    for (int h = 0; h < 2; ++h) {
      __m256i v[4];
      avx2::unpack_q6_K_half(w[sb], h, v);
      for (int k = 0; k < 2; ++k) {  // outputs 128h + 64k .. + 63: groups 8h + 4k .. + 3
        const int c = 2 * h + k;
        const __m512i qw = _mm512_inserti64x4(_mm512_castsi256_si512(v[2 * k]), v[2 * k + 1], 1);
        const __m512 scale = _mm512_permutexvar_ps(_mm512_add_epi32(spread, _mm512_set1_epi32(4 * c)), s16);
        bytes_chunk(qw, xh + 64 * c, xl + 64 * c, scale, k ? acc1 : acc0);
      }
    }
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) - 32.0f * _mm512_reduce_add_ps(corr);
}

// ---- per type: walk a row's blocks of 32, handing each to a Sink:
//        sink.block<Slot>(b, u, scale)   block b: 32 x int16 u in a register, its scale
//        sink.mins(b0, count, m)         min of blocks b0 .. b0+count-1 (types with one)
//      Slot (0 or 1) alternates between neighbouring blocks, so that a sink can keep
//      two independent accumulators (the FMA latency would bound one). ----

// The legacy 32-wide types: Unpack(block) gives the block's 32 u as int16.
template <class Block, bool HasMin, int Slot, class Unpack, class Sink>
GEMMA3_TARGET_AVX512 inline void legacy_block(const Block& w, std::int64_t b, Unpack unpack, Sink& sink) {
  sink.template block<Slot>(b, unpack(w), avx2::f16(w.d));
  if constexpr (HasMin) {
    const float m = avx2::f16(w.m);
    sink.mins(b, 1, &m);
  }
}
template <class Block, bool HasMin, class Unpack, class Sink>
GEMMA3_TARGET_AVX512 inline void walk_legacy(const void* row, std::int64_t n, Unpack unpack, Sink& sink) {
  const auto* w = static_cast<const Block*>(row);
  const std::int64_t nb = n / QK;
  std::int64_t b = 0;
  for (; b + 1 < nb; b += 2) {
    legacy_block<Block, HasMin, 0>(w[b], b, unpack, sink);
    legacy_block<Block, HasMin, 1>(w[b + 1], b + 1, unpack, sink);
  }
  if (b < nb) legacy_block<Block, HasMin, 0>(w[b], b, unpack, sink);
}

struct UnpackQ8_0 {
  GEMMA3_TARGET_AVX512 __m512i operator()(const block_q8_0& b) const {
    return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs)));
  }
};
struct UnpackQ4_0 {  // nibble - 8
  GEMMA3_TARGET_AVX512 __m512i operator()(const block_q4_0& b) const {
    return _mm512_sub_epi16(_mm512_cvtepu8_epi16(avx2::nibbles32(b.qs)), _mm512_set1_epi16(8));
  }
};
struct UnpackQ4_1 {  // nibble
  GEMMA3_TARGET_AVX512 __m512i operator()(const block_q4_1& b) const { return _mm512_cvtepu8_epi16(avx2::nibbles32(b.qs)); }
};
// Q5_0 and Q5_1: bit i of qh is the 5th bit of output i, so qh is the lane mask as is.
struct UnpackQ5_0 {  // (nibble | bit << 4) - 16: minus 16 where the bit is clear (in bytes, then widened)
  GEMMA3_TARGET_AVX512 __m512i operator()(const block_q5_0& b) const {
    std::uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    const __m256i u = avx2::nibbles32(b.qs);
    return _mm512_cvtepi8_epi16(_mm256_mask_sub_epi8(u, _cvtu32_mask32(~qh), u, _mm256_set1_epi8(16)));
  }
};
struct UnpackQ5_1 {  // nibble | bit << 4: plus 16 where the bit is set
  GEMMA3_TARGET_AVX512 __m512i operator()(const block_q5_1& b) const {
    std::uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    const __m512i u = _mm512_cvtepu8_epi16(avx2::nibbles32(b.qs));
    return _mm512_mask_add_epi16(u, _cvtu32_mask32(qh), u, _mm512_set1_epi16(16));
  }
};

// Q4_K / Q5_K: super-block of 8 sub-blocks of 32.
template <bool Q5, class Sink>
GEMMA3_TARGET_AVX512 inline void walk_k4(const void* row, std::int64_t n, Sink& sink) {
  for (std::int64_t sb = 0; sb < n / QK_K; ++sb) {
    const K4Super<Q5> k(row, sb);
    const std::uint8_t* qs = k.qs;
    const std::uint8_t* sm = k.sm;
    const float d = avx2::f16(k.w4->d), dmin = avx2::f16(k.w4->dmin);
    float mins[8];  // min_j = -dmin * m_j
    _mm256_storeu_ps(mins, _mm256_mul_ps(_mm256_set1_ps(-dmin), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
                                                                    _mm_loadl_epi64(reinterpret_cast<const __m128i*>(sm + 8))))));
    sink.mins(sb * 8, 8, mins);
    __m256i hb = k.high_bits();
    for (int c = 0; c < 4; ++c) {
      __m256i lo, hi;
      avx2::unpack_k4_chunk<Q5>(qs, c, hb, lo, hi);
      const int j = 2 * c;
      sink.template block<0>(sb * 8 + j, _mm512_cvtepu8_epi16(lo), d * float(sm[j]));
      sink.template block<1>(sb * 8 + j + 1, _mm512_cvtepu8_epi16(hi), d * float(sm[j + 1]));
    }
  }
}

// Q6_K: the 8-bit sub-block scales folded into u (16 lanes each): 32 bytes q (0..63)
// of two sub-blocks with scales sc[0], sc[1] -> u = sc * (q - 32) as int16.
GEMMA3_TARGET_AVX512 inline __m512i q6_K_u(__m256i q, const std::int8_t* sc) {
  const __m512i scales = _mm512_inserti64x4(_mm512_set1_epi16(sc[0]), _mm256_set1_epi16(sc[1]), 1);
  return _mm512_mullo_epi16(_mm512_cvtepi8_epi16(_mm256_sub_epi8(q, _mm256_set1_epi8(32))), scales);
}
template <class Sink>
GEMMA3_TARGET_AVX512 inline void walk_q6_K(const void* row, std::int64_t n, Sink& sink) {
  const auto* w = static_cast<const block_q6_K*>(row);
  for (std::int64_t sb = 0; sb < n / QK_K; ++sb) {
    const float d = avx2::f16(w[sb].d);
    const std::int8_t* sc = w[sb].scales;
    for (int h = 0; h < 2; ++h) {
      __m256i v[4];
      avx2::unpack_q6_K_half(w[sb], h, v);
      for (int k = 0; k < 4; k += 2) {  // outputs 128h + 32k .. +31: sub-blocks g = 8h + 2k, 8h + 2k + 1
        sink.template block<0>(sb * 8 + 4 * h + k, q6_K_u(v[k], sc + 8 * h + 2 * k), d);
        sink.template block<1>(sb * 8 + 4 * h + k + 1, q6_K_u(v[k + 1], sc + 8 * h + 2 * k + 2), d);
      }
    }
  }
}

// Calls walk_<type>(row, n, sink) for dtype t; false if t has no walker.
template <class Sink>
GEMMA3_TARGET_AVX512 inline bool walk_row(DType t, const void* row, std::int64_t n, Sink& sink) {
  switch (t) {
    case DType::Q8_0: walk_legacy<block_q8_0, false>(row, n, UnpackQ8_0{}, sink); return true;
    case DType::Q4_0: walk_legacy<block_q4_0, false>(row, n, UnpackQ4_0{}, sink); return true;
    case DType::Q4_1: walk_legacy<block_q4_1, true>(row, n, UnpackQ4_1{}, sink); return true;
    case DType::Q5_0: walk_legacy<block_q5_0, false>(row, n, UnpackQ5_0{}, sink); return true;
    case DType::Q5_1: walk_legacy<block_q5_1, true>(row, n, UnpackQ5_1{}, sink); return true;
    case DType::Q4_K: walk_k4<false>(row, n, sink); return true;
    case DType::Q5_K: walk_k4<true>(row, n, sink); return true;
    case DType::Q6_K: walk_q6_K(row, n, sink); return true;
    default: return false;
  }
}

// The dot-product sink: per block, 32 products into 16 int32 lanes (vpmaddwd), then
// converted and FMA'd with scale * d_b; the minimum times the block sum in scalar.
struct DotSink {
  const std::int16_t* xq;
  const float* xd;
  const float* xs;
  __m512 acc[2];
  float summ;
  template <int Slot>
  GEMMA3_TARGET_AVX512 void block(std::int64_t b, __m512i u, float scale) {
    const __m512i p = _mm512_madd_epi16(u, _mm512_loadu_si512(xq + b * QK));  // 16 x (2 products)
    acc[Slot] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_set1_ps(scale * xd[b]), acc[Slot]);
  }
  GEMMA3_TARGET_AVX512 void mins(std::int64_t b0, int count, const float* m) {
    if (count == 8) {
      summ += avx2::hsum(_mm256_mul_ps(_mm256_loadu_ps(m), _mm256_loadu_ps(xs + b0)));
    } else {
      for (int j = 0; j < count; ++j) summ += m[j] * xs[b0 + j];
    }
  }
};

template <DType T>
GEMMA3_TARGET_AVX512 inline float dot_q16(const void* row, const Q16Row& x, std::int64_t n) {
  if (x.hi) {  // the byte kernels, where a type has one
    if constexpr (T == DType::Q5_0) return dot_q5_0_bytes(row, x, n);
    if constexpr (T == DType::Q4_K) return dot_k4_bytes<false>(row, x, n);
    if constexpr (T == DType::Q5_K) return dot_k4_bytes<true>(row, x, n);
    if constexpr (T == DType::Q6_K) return dot_q6_K_bytes(row, x, n);
  }
  DotSink sink{x.q, x.d, x.s, {_mm512_setzero_ps(), _mm512_setzero_ps()}, 0.0f};
  walk_row(T, row, n, sink);
  return _mm512_reduce_add_ps(_mm512_add_ps(sink.acc[0], sink.acc[1])) + sink.summ;
}

// `count` consecutive rows (row_bytes apart) dotted with x into y [count]. One call per
// chunk of rows instead of an indirect call per row: the dot is inlined, so a row's
// horizontal sum overlaps the next row's blocks (matters for short rows: 20 blocks
// for the 270M's 640-wide rows).
template <DType T>
GEMMA3_TARGET_AVX512 inline void dot_q16_rows(const void* rows, std::size_t row_bytes, std::int64_t count, const Q16Row& x,
                                              std::int64_t n, float* y) {
  const auto* p = static_cast<const unsigned char*>(rows);
  for (std::int64_t r = 0; r < count; ++r) y[r] = dot_q16<T>(p + std::size_t(r) * row_bytes, x, n);
}

// The unpacking sink: u, scale and min to memory (the GEMM's packing step).
struct StoreSink {
  std::int16_t* u;
  float* scale;
  float* min;
  template <int Slot>
  GEMMA3_TARGET_AVX512 void block(std::int64_t b, __m512i v, float s) {
    _mm512_storeu_si512(u + b * QK, v);
    scale[b] = s;
  }
  void mins(std::int64_t b0, int count, const float* m) { std::memcpy(min + b0, m, std::size_t(count) * sizeof(float)); }
};

GEMMA3_TARGET_AVX512 inline void unpack_q16_row(DType t, const void* row, std::int64_t n, std::int16_t* u, float* scale,
                                                float* min) {
  StoreSink sink{u, scale, min};
  std::memset(min, 0, std::size_t(n / QK) * sizeof(float));  // the types with a minimum overwrite it (mins())
  if (!walk_row(t, row, n, sink)) unpack_q16_row_scalar(t, row, n, u, scale, min);
}

}  // namespace avx512
#endif  // GEMMA3_HAVE_X86_SIMD

// row . x with int16 activations.
using Q16DotFn = float (*)(const void* row, const Q16Row& x, std::int64_t n);

// y [count] = rows . x for `count` rows of row_bytes each (the matvec's form).
using Q16RowsFn = void (*)(const void* rows, std::size_t row_bytes, std::int64_t count, const Q16Row& x, std::int64_t n,
                           float* y);

namespace detail {
template <DType T>
inline float dot_q16_scalar_of(const void* row, const Q16Row& x, std::int64_t n) {
  return dot_q16_scalar(T, row, x, n);
}
template <DType T>
inline void dot_q16_rows_scalar_of(const void* rows, std::size_t row_bytes, std::int64_t count, const Q16Row& x,
                                   std::int64_t n, float* y) {
  const auto* p = static_cast<const unsigned char*>(rows);
  for (std::int64_t r = 0; r < count; ++r) y[r] = dot_q16_scalar(T, p + std::size_t(r) * row_bytes, x, n);
}
}  // namespace detail

namespace detail {
// pick(std::integral_constant<DType, T>{}) for the GGUF block type t, nullptr for the
// plain dtypes: the one table behind q16_dot and q16_dot_rows.
template <class Fn, class Pick>
inline Fn by_block_type(DType t, Pick pick) {
  switch (t) {
    case DType::Q8_0: return pick(std::integral_constant<DType, DType::Q8_0>{});
    case DType::Q4_0: return pick(std::integral_constant<DType, DType::Q4_0>{});
    case DType::Q4_1: return pick(std::integral_constant<DType, DType::Q4_1>{});
    case DType::Q5_0: return pick(std::integral_constant<DType, DType::Q5_0>{});
    case DType::Q5_1: return pick(std::integral_constant<DType, DType::Q5_1>{});
    case DType::Q4_K: return pick(std::integral_constant<DType, DType::Q4_K>{});
    case DType::Q5_K: return pick(std::integral_constant<DType, DType::Q5_K>{});
    case DType::Q6_K: return pick(std::integral_constant<DType, DType::Q6_K>{});
    default: return nullptr;
  }
}
}  // namespace detail

// The int16-activation dot of dtype t for `isa`: the avx512 twin under Isa::avx512,
// the scalar reference under any other Isa; nullptr for the plain dtypes.
inline Q16DotFn q16_dot(DType t, Isa isa) {
#if GEMMA3_HAVE_X86_SIMD
  if (isa == Isa::avx512)
    return detail::by_block_type<Q16DotFn>(t, [](auto T) -> Q16DotFn { return avx512::dot_q16<decltype(T)::value>; });
#endif
  (void)isa;
  return detail::by_block_type<Q16DotFn>(t, [](auto T) -> Q16DotFn { return detail::dot_q16_scalar_of<decltype(T)::value>; });
}

// The many-row form of q16_dot: the avx512 twin under Isa::avx512, else the scalar one.
inline Q16RowsFn q16_dot_rows(DType t, Isa isa) {
#if GEMMA3_HAVE_X86_SIMD
  if (isa == Isa::avx512)
    return detail::by_block_type<Q16RowsFn>(t, [](auto T) -> Q16RowsFn { return avx512::dot_q16_rows<decltype(T)::value>; });
#endif
  (void)isa;
  return detail::by_block_type<Q16RowsFn>(
      t, [](auto T) -> Q16RowsFn { return detail::dot_q16_rows_scalar_of<decltype(T)::value>; });
}

// x [n] -> q, d, s with `isa` (avx512 or the scalar twin; identical q and d).
inline void quantize_row_q16(const float* x, std::int16_t* q, float* d, float* s, std::int64_t n, Isa isa) {
#if GEMMA3_HAVE_X86_SIMD
  if (isa == Isa::avx512) return avx512::quantize_row_q16(x, q, d, s, n);
#endif
  (void)isa;
  quantize_row_q16_scalar(x, q, d, s, n);
}

// q, d -> the byte split hi, lo [n], dX [n / 32], sum16 [n / 16] with `isa`
// (identical).
inline void split_q16_bytes(const std::int16_t* q, const float* d, std::int64_t n, std::int8_t* hi, std::int8_t* lo,
                            float* dX, float* sum16, Isa isa) {
#if GEMMA3_HAVE_X86_SIMD
  if (isa == Isa::avx512) return avx512::split_q16_bytes(q, d, n, hi, lo, dX, sum16);
#endif
  (void)isa;
  split_q16_bytes_scalar(q, d, n, hi, lo, dX, sum16);
}

// A row of dtype t -> u [n], scale [n / 32], min [n / 32] with `isa`.
inline void unpack_q16_row(DType t, const void* row, std::int64_t n, std::int16_t* u, float* scale, float* min, Isa isa) {
#if GEMMA3_HAVE_X86_SIMD
  if (isa == Isa::avx512) return avx512::unpack_q16_row(t, row, n, u, scale, min);
#endif
  (void)isa;
  unpack_q16_row_scalar(t, row, n, u, scale, min);
}

}  // namespace quant
}  // namespace gemma3
