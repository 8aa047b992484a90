// gemma3/kernels/dot_q16.hpp -- the SIMD kernels on int16 activations, AVX-512 VNNI
// and WebAssembly SIMD128 (quant/q16.hpp has the format, the formulas and the scalar
// references), and the dispatch by Isa that matvec (kernels/matmul.hpp) and the prefill
// GEMM (kernels/gemm_q16.hpp) call:
//
//   quantize_row_q16(x, q, d, s, n, isa)       x -> int16 activations (identical q, d)
//   split_q16_bytes(q, d, n, hi, lo, dX, sum16, isa)   the byte split (identical)
//   q16_dot(t, isa), q16_dot_rows(t, isa)     row . x for dtype t, one row / many rows
//   unpack_q16_row(t, row, n, u, scale, min, isa)      w_i = scale_b * u_i + min_b
// Each picks the avx512 twin under Isa::avx512, the wasm twin under Isa::wasm_simd128
// (split_q16_bytes has none: the wasm dots never read the byte split) and the scalar
// reference otherwise. The names stay in namespace gemma3::quant, next to the scalar
// references.
//
// The SIMD dots agree with the scalar to float rounding (the block sums are the same
// exact int32; the order of the float additions differs):
//   avx512, int16 walk (every type): AVX-512 BW's vpmaddwd does a block's 32 int16
//     products into 16 int32 lanes; the lanes are converted and FMA'd with scale_b * d_b.
//   avx512, byte kernels (Q5_0, Q4_K, Q5_K, Q6_K, when x carries its byte split): the
//     weights stay unsigned bytes and x is split as q = 256 hi + lo (split_q16_bytes): two
//     vpdpbusd give the same exact int32 sums with 4 products per lane; Q4_K/Q5_K/Q6_K
//     go 64 weights per 512-bit register, one float epilogue for two blocks, Q5_0 one
//     block per 256-bit register (no cross-lane shuffle); a weight offset (Q5_0's 16,
//     Q6_K's 32) becomes one float term per block from the integer block sums of q.
//   wasm (every type): a block's 32 u are unpacked to four i16x8 (bytes first: nibbles,
//     the 5th bits from a 256-entry table of byte masks, Q6_K's scales folded in with i16x8.mul), and four
//     i32x4.dot_i16x8_s against q give its sum in four int32 lanes; a group of four
//     blocks is summed across lanes into one vector (two rounds of interleave + add),
//     converted once and multiplied by [scale_b d_b] of the four (their f16 scales
//     converted four at a time, f16x4 forced inline: left a call, it cost Q8_0 decode
//     10-15 %); the minimums times s_b four at a time. No FMA in SIMD128: multiply,
//     then add.
//   The dtype -> walker table (detail::walk_block_type) is shared by the avx512 and the
//   wasm twins; each overloads walk_blocks on its kind (LegacyBlocks, K4Blocks, Q6KBlocks).
// Speed (bench/bench_quant BM_matvec_dtype, one thread, cache-resident, AMD EPYC Zen 4),
// avx512 int16 walk -> byte kernel: Q5_0 [2048 x 640] 75 -> 60 us (-> 55 us in 256-bit
// form), Q4_K [640 x 2048] 76 -> 47 us, Q6_K [640 x 2048] 88 -> 53 us. The int16
// activations measured no slower than 8-bit ones (docs/kernels.md) and are 129x finer.
// wasm under node 20.20.2 (2-vCPU Intel Xeon with AVX-512 VNNI, 2026-12-06, 2 threads,
// bench/wasm/run_wasm_bench.sh): 0.41-0.60x the native int16 dots (Q5_0 and Q6_K the
// lowest at 0.41-0.49x, the LM head's Q8_0 0.49-0.59x); docs/performance.md.
// Pinned by tests/test_q16.cpp (and tests/test_gemm_q16.cpp for unpack_q16_row), and
// tests/wasm/test_wasm_kernels.cpp for the wasm twins.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../quant/q16.hpp"
#include "dequantize_simd.hpp"
#include "dot.hpp"
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

namespace detail {
// The one dtype -> walker table of the SIMD twins: walk(kind) with kind one of
//   LegacyBlocks<Block, HasMin>   the legacy 32-wide types
//   K4Blocks<Q5>                  Q4_K (Q5 = false) / Q5_K (Q5 = true)
//   Q6KBlocks                     Q6_K
// for dtype t (each ISA overloads walk_blocks on these); false (nothing called) if t
// has no walker.
template <class Block, bool HasMin>
struct LegacyBlocks {};
template <bool Q5>
struct K4Blocks {};
struct Q6KBlocks {};
template <class Walk>
inline bool walk_block_type(DType t, Walk&& walk) {
  switch (t) {
    case DType::Q8_0: walk(LegacyBlocks<block_q8_0, false>{}); return true;
    case DType::Q4_0: walk(LegacyBlocks<block_q4_0, false>{}); return true;
    case DType::Q4_1: walk(LegacyBlocks<block_q4_1, true>{}); return true;
    case DType::Q5_0: walk(LegacyBlocks<block_q5_0, false>{}); return true;
    case DType::Q5_1: walk(LegacyBlocks<block_q5_1, true>{}); return true;
    case DType::Q4_K: walk(K4Blocks<false>{}); return true;
    case DType::Q5_K: walk(K4Blocks<true>{}); return true;
    case DType::Q6_K: walk(Q6KBlocks{}); return true;
    default: return false;
  }
}
}  // namespace detail

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

// The legacy 32-wide types: Unpack<Block> gives a block's 32 u as int16.
template <class Block, bool HasMin, int Slot, class UnpackFn, class Sink>
GEMMA3_TARGET_AVX512 inline void legacy_block(const Block& w, std::int64_t b, UnpackFn unpack, Sink& sink) {
  sink.template block<Slot>(b, unpack(w), avx2::f16(w.d));
  if constexpr (HasMin) {
    const float m = avx2::f16(w.m);
    sink.mins(b, 1, &m);
  }
}
template <class Block>
struct Unpack;  // Unpack<Block>{}(block): the block's 32 u (below)
template <class Block, bool HasMin, class Sink>
GEMMA3_TARGET_AVX512 inline void walk_blocks(detail::LegacyBlocks<Block, HasMin>, const void* row, std::int64_t n,
                                             Sink& sink) {
  const Unpack<Block> unpack{};
  const auto* w = static_cast<const Block*>(row);
  const std::int64_t nb = n / QK;
  std::int64_t b = 0;
  for (; b + 1 < nb; b += 2) {
    legacy_block<Block, HasMin, 0>(w[b], b, unpack, sink);
    legacy_block<Block, HasMin, 1>(w[b + 1], b + 1, unpack, sink);
  }
  if (b < nb) legacy_block<Block, HasMin, 0>(w[b], b, unpack, sink);
}

template <>
struct Unpack<block_q8_0> {
  GEMMA3_TARGET_AVX512 __m512i operator()(const block_q8_0& b) const {
    return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs)));
  }
};
template <>
struct Unpack<block_q4_0> {  // nibble - 8
  GEMMA3_TARGET_AVX512 __m512i operator()(const block_q4_0& b) const {
    return _mm512_sub_epi16(_mm512_cvtepu8_epi16(avx2::nibbles32(b.qs)), _mm512_set1_epi16(8));
  }
};
template <>
struct Unpack<block_q4_1> {  // nibble
  GEMMA3_TARGET_AVX512 __m512i operator()(const block_q4_1& b) const { return _mm512_cvtepu8_epi16(avx2::nibbles32(b.qs)); }
};
// Q5_0 and Q5_1: bit i of qh is the 5th bit of output i, so qh is the lane mask as is.
template <>
struct Unpack<block_q5_0> {  // (nibble | bit << 4) - 16: minus 16 where the bit is clear (in bytes, then widened)
  GEMMA3_TARGET_AVX512 __m512i operator()(const block_q5_0& b) const {
    std::uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    const __m256i u = avx2::nibbles32(b.qs);
    return _mm512_cvtepi8_epi16(_mm256_mask_sub_epi8(u, _cvtu32_mask32(~qh), u, _mm256_set1_epi8(16)));
  }
};
template <>
struct Unpack<block_q5_1> {  // nibble | bit << 4: plus 16 where the bit is set
  GEMMA3_TARGET_AVX512 __m512i operator()(const block_q5_1& b) const {
    std::uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    const __m512i u = _mm512_cvtepu8_epi16(avx2::nibbles32(b.qs));
    return _mm512_mask_add_epi16(u, _cvtu32_mask32(qh), u, _mm512_set1_epi16(16));
  }
};

// Q4_K / Q5_K: super-block of 8 sub-blocks of 32.
template <bool Q5, class Sink>
GEMMA3_TARGET_AVX512 inline void walk_blocks(detail::K4Blocks<Q5>, const void* row, std::int64_t n, Sink& sink) {
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
GEMMA3_TARGET_AVX512 inline void walk_blocks(detail::Q6KBlocks, const void* row, std::int64_t n, Sink& sink) {
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

// Calls walk_blocks(kind, row, n, sink) for dtype t (the table of
// detail::walk_block_type); false if t has no walker.
template <class Sink>
GEMMA3_TARGET_AVX512 inline bool walk_row(DType t, const void* row, std::int64_t n, Sink& sink) {
  return detail::walk_block_type(t, [&](auto kind) GEMMA3_TARGET_AVX512 { walk_blocks(kind, row, n, sink); });
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

#if GEMMA3_HAVE_WASM_SIMD
namespace wasm {

// The unpacking's vector constants, read from memory rather than written as
// v128.const: newer V8 (node 24's 13.6, against node 20's 11.3) builds a v128.const
// again at each use (a 64-bit immediate, a move to xmm, an unpack: three instructions),
// where a load is one, and LLVM hoists the loads out of the loops (the object is not
// const, so it cannot fold them back into constants).
struct Consts {
  v128_t nibble = wasm_i8x16_splat(0x0f);
  v128_t q6_high = wasm_i8x16_splat(0x30);
  v128_t i8_32 = wasm_i8x16_splat(32);
  v128_t i8_8 = wasm_i8x16_splat(8);
  v128_t i8_1 = wasm_i8x16_splat(1);
  v128_t f16_mag = wasm_i32x4_splat(0x7fff);
  v128_t f16_sign = wasm_i32x4_splat(0x8000);
  v128_t f16_exp = wasm_i32x4_splat(0x7c00);
  v128_t f32_2p112 = wasm_f32x4_splat(5.192296858534828e33f);
  v128_t f32_special = wasm_i32x4_splat(0x70000000);
  v128_t two23 = wasm_i32x4_splat(0x4b000000);
};
inline Consts g_consts;

// f16 -> f32, exact: finite values by the magnitude trick of kernels/dot.hpp
// (magnitude << 13 times 2^112, subnormals included), inf / NaN by the scalar.
inline float f16(std::uint16_t h) {
  if ((h & 0x7c00u) == 0x7c00u) return f16_to_f32(h);
  const std::uint32_t mag = std::uint32_t(h & 0x7fffu) << 13;
  float f;
  std::memcpy(&f, &mag, 4);
  f *= 5.192296858534828e33f;  // 2^112
  return (h & 0x8000u) ? -f : f;
}

// x [n] -> q, d, s; q and d bit for bit the scalar twin's: the same max, the same
// division and reciprocal, the same float multiply per value, f32x4.nearest rounding
// to nearest even like nearest_int (|x / d| <= 16383.5 < 2^22), then the clamp.
// s is the block sum added in another order (equal to float rounding).
inline void quantize_row_q16(const float* x, std::int16_t* q, float* d, float* s, std::int64_t n) {
  const v128_t lim = wasm_i32x4_splat(kQ16Max), nlim = wasm_i32x4_splat(-kQ16Max);
  for (std::int64_t b = 0; b < n / QK; ++b, x += QK, q += QK) {
    v128_t v[8];
    for (int k = 0; k < 8; ++k) v[k] = wasm_v128_load(x + 4 * k);
    v128_t m = wasm_f32x4_abs(v[0]), sum = v[0];
    for (int k = 1; k < 8; ++k) {
      m = wasm_f32x4_pmax(m, wasm_f32x4_abs(v[k]));
      sum = wasm_f32x4_add(sum, v[k]);
    }
    const float amax = std::fmax(std::fmax(wasm_f32x4_extract_lane(m, 0), wasm_f32x4_extract_lane(m, 1)),
                                 std::fmax(wasm_f32x4_extract_lane(m, 2), wasm_f32x4_extract_lane(m, 3)));
    const float db = amax / float(kQ16Max);
    const v128_t id = wasm_f32x4_splat(db != 0.0f ? 1.0f / db : 0.0f);
    v128_t r[8];
    for (int k = 0; k < 8; ++k) {
      const v128_t i = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(wasm_f32x4_mul(v[k], id)));
      r[k] = wasm_i32x4_max(nlim, wasm_i32x4_min(lim, i));
    }
    for (int k = 0; k < 4; ++k) wasm_v128_store(q + 8 * k, wasm_i16x8_narrow_i32x4(r[2 * k], r[2 * k + 1]));
    d[b] = db;
    s[b] = kernels::wasm::hsum(sum);
  }
}

// The 32 int16 weights u of one block of 32, as four i16x8 (values 0..7, 8..15,
// 16..23, 24..31).
struct U32 {
  v128_t v[4];
};

// 32 signed bytes (two v128, outputs 0..15 and 16..31) -> U32.
inline U32 widen_s8(v128_t a, v128_t c) {
  return {{wasm_i16x8_extend_low_i8x16(a), wasm_i16x8_extend_high_i8x16(a), wasm_i16x8_extend_low_i8x16(c),
           wasm_i16x8_extend_high_i8x16(c)}};
}
// ... unsigned bytes.
inline U32 widen_u8(v128_t a, v128_t c) {
  return {{wasm_u16x8_extend_low_u8x16(a), wasm_u16x8_extend_high_u8x16(a), wasm_u16x8_extend_low_u8x16(c),
           wasm_u16x8_extend_high_u8x16(c)}};
}

// Low and high nibbles of 16 bytes (16-bit shift, then the mask: no bit crosses a byte).
inline v128_t lo_nibbles(v128_t t) { return wasm_v128_and(t, g_consts.nibble); }
inline v128_t hi_nibbles(v128_t t) { return wasm_v128_and(wasm_u16x8_shr(t, 4), g_consts.nibble); }

// The 32 bits of qh (little-endian) -> 32 bytes, `set` where the bit is set and
// `clear` where not: byte j (0..31) from bit j, by a 256-entry table of 8 bytes per
// bit pattern, four 8-byte loads into two registers (m0: bytes 0..15, m1: 16..31).
// A table replaces the splat, shuffles and compares of the bit test, about 20 x86
// instructions per block as V8 emits them (it rebuilds each shuffle's constant).
template <std::uint8_t Set, std::uint8_t Clear>
struct BitBytes {
  std::uint64_t t[256];
  constexpr BitBytes() : t() {
    for (int v = 0; v < 256; ++v) {
      std::uint64_t w = 0;
      for (int j = 0; j < 8; ++j) w |= std::uint64_t((v >> j) & 1 ? Set : Clear) << (8 * j);
      t[v] = w;
    }
  }
};
template <std::uint8_t Set, std::uint8_t Clear>
inline constexpr BitBytes<Set, Clear> kBitBytes{};
template <std::uint8_t Set, std::uint8_t Clear>
inline void bits32(const std::uint8_t* qh, v128_t& m0, v128_t& m1) {
  const std::uint64_t* t = kBitBytes<Set, Clear>.t;
  m0 = wasm_v128_load64_lane(t + qh[1], wasm_v128_load64_zero(t + qh[0]), 1);
  m1 = wasm_v128_load64_lane(t + qh[3], wasm_v128_load64_zero(t + qh[2]), 1);
}

// 4 f16 -> 4 f32, bit for bit f16() in four lanes, without a branch: finite values
// by the magnitude trick, and where the exponent is 31 (inf / NaN) the float with
// exponent 255 and the same mantissa bits (f16_to_f32's rule), chosen by bitselect.
// Always inlined (left a call per group of four blocks, it cost Q8_0 decode 10-15 %),
// and no scalar path inside the dot loops.
__attribute__((always_inline)) inline v128_t f16x4(std::uint16_t a, std::uint16_t b, std::uint16_t c, std::uint16_t d) {
  const v128_t h = wasm_i32x4_make(a, b, c, d);
  const Consts& k = g_consts;
  const v128_t mag = wasm_i32x4_shl(wasm_v128_and(h, k.f16_mag), 13);
  const v128_t sign = wasm_i32x4_shl(wasm_v128_and(h, k.f16_sign), 16);
  const v128_t finite = wasm_f32x4_mul(mag, k.f32_2p112);  // 2^112
  const v128_t special = wasm_v128_or(mag, k.f32_special);  // (31 << 23) | 0x70000000 = 255 << 23
  const v128_t exp31 = wasm_i32x4_eq(wasm_v128_and(h, k.f16_exp), k.f16_exp);
  return wasm_v128_or(wasm_v128_bitselect(special, finite, exp31), sign);
}

// ---- per type: walk a row's blocks of 32 in groups of four, handing them to a Sink:
//        sink.block<Slot>(b, u)    block b = b0 + Slot of a group (Slot 0..3): its 32 u
//        sink.scales(b0, s)        then the group's four scales (f32x4)
//        sink.mins(b0, m)          and its four minimums (types with one)
//        sink.tail(b, u, s, m)     a lone block (the last nb % 4 of a legacy row;
//                                  m = 0 for the types without a minimum)
//      The K-quants' super-blocks are two groups each. ----

// The legacy 32-wide types: Unpack<Block> gives a block's 32 u.
template <class Block>
struct Unpack;  // Unpack<Block>{}(block): the block's 32 u (below)
template <class Block, bool HasMin, class Sink>
inline void walk_blocks(detail::LegacyBlocks<Block, HasMin>, const void* row, std::int64_t n, Sink& sink) {
  const Unpack<Block> unpack{};
  const auto* w = static_cast<const Block*>(row);
  const std::int64_t nb = n / QK;
  std::int64_t b = 0;
  for (; b + 3 < nb; b += 4) {
    sink.template block<0>(b, unpack(w[b]));
    sink.template block<1>(b + 1, unpack(w[b + 1]));
    sink.template block<2>(b + 2, unpack(w[b + 2]));
    sink.template block<3>(b + 3, unpack(w[b + 3]));
    sink.scales(b, f16x4(w[b].d, w[b + 1].d, w[b + 2].d, w[b + 3].d));
    if constexpr (HasMin) sink.mins(b, f16x4(w[b].m, w[b + 1].m, w[b + 2].m, w[b + 3].m));
  }
  for (; b < nb; ++b) {
    float m = 0.0f;
    if constexpr (HasMin) m = f16(w[b].m);
    sink.tail(b, unpack(w[b]), f16(w[b].d), m);
  }
}

template <>
struct Unpack<block_q8_0> {  // q
  U32 operator()(const block_q8_0& b) const { return widen_s8(wasm_v128_load(b.qs), wasm_v128_load(b.qs + 16)); }
};
template <>
struct Unpack<block_q4_0> {  // nibble - 8 (in bytes, then widened)
  U32 operator()(const block_q4_0& b) const {
    const v128_t t = wasm_v128_load(b.qs), eight = g_consts.i8_8;
    return widen_s8(wasm_i8x16_sub(lo_nibbles(t), eight), wasm_i8x16_sub(hi_nibbles(t), eight));
  }
};
template <>
struct Unpack<block_q4_1> {  // nibble
  U32 operator()(const block_q4_1& b) const {
    const v128_t t = wasm_v128_load(b.qs);
    return widen_u8(lo_nibbles(t), hi_nibbles(t));
  }
};
template <>
struct Unpack<block_q5_0> {  // (nibble | bit << 4) - 16: nibble | 0xf0 (= nibble - 16 in a byte) where the bit is clear
  U32 operator()(const block_q5_0& b) const {
    const v128_t t = wasm_v128_load(b.qs);
    v128_t m0, m1;
    bits32<0x00, 0xf0>(b.qh, m0, m1);
    return widen_s8(wasm_v128_or(lo_nibbles(t), m0), wasm_v128_or(hi_nibbles(t), m1));
  }
};
template <>
struct Unpack<block_q5_1> {  // nibble | bit << 4
  U32 operator()(const block_q5_1& b) const {
    const v128_t t = wasm_v128_load(b.qs);
    v128_t m0, m1;
    bits32<0x10, 0x00>(b.qh, m0, m1);
    return widen_u8(wasm_v128_or(lo_nibbles(t), m0), wasm_v128_or(hi_nibbles(t), m1));
  }
};

// The 12 scale bytes of a Q4_K / Q5_K super-block -> [sc_0..7, m_0..7] as 16 bytes in
// a register: unpack_scales_k4_bytes (quant/q4_k.hpp) without the trip through memory.
inline v128_t scales_k4(const std::uint8_t* s) {
  constexpr std::uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
  std::uint32_t u[3];
  std::memcpy(u, s, 12);
  return wasm_u32x4_make(u[0] & kmask1, (u[2] & kmask2) | (((u[0] >> 6) & kmask3) << 4), u[1] & kmask1,
                         ((u[2] >> 4) & kmask2) | (((u[1] >> 6) & kmask3) << 4));
}
// The u16 lanes 0..3 / 4..7 of v -> 4 f32 (exact): the bits 2^23 + u as a float, minus
// 2^23. (Written as extend + f32x4.convert, LLVM 14 turns it into a u16 -> float
// conversion that it scalarizes: four lane extracts, conversions and inserts each.)
inline v128_t u16_to_f32(v128_t u32) {
  const v128_t two23 = g_consts.two23;
  return wasm_f32x4_sub(wasm_v128_or(u32, two23), two23);
}
inline v128_t u16_lo_f32(v128_t v) { return u16_to_f32(wasm_u32x4_extend_low_u16x8(v)); }
inline v128_t u16_hi_f32(v128_t v) { return u16_to_f32(wasm_u32x4_extend_high_u16x8(v)); }

// Q4_K / Q5_K: chunk c (0..3) of a super-block reads qs[32c .. 32c + 31]; its low
// nibbles are sub-block 2c, its high nibbles sub-block 2c + 1 (quant/q4_k.hpp); Q5_K
// adds bit j of qh[l] as bit 4 of output l of sub-block j. Scales d * sc_j and minimums
// -(dmin * m_j), four at a time (the scalar's float operations, lane by lane).
template <bool Q5, class Sink>
inline void walk_blocks(detail::K4Blocks<Q5>, const void* row, std::int64_t n, Sink& sink) {
  const std::size_t bytes = Q5 ? sizeof(block_q5_K) : sizeof(block_q4_K);
  const v128_t one = g_consts.i8_1;
  for (std::int64_t sb = 0; sb < n / QK_K; ++sb) {
    const std::uint8_t* blk = static_cast<const std::uint8_t*>(row) + std::size_t(sb) * bytes;
    const auto* w4 = reinterpret_cast<const block_q4_K*>(blk);  // d, dmin, scales shared by both layouts
    const std::uint8_t* qs = Q5 ? reinterpret_cast<const block_q5_K*>(blk)->qs : w4->qs;
    const v128_t sm = scales_k4(w4->scales);
    const v128_t sc16 = wasm_u16x8_extend_low_u8x16(sm), m16 = wasm_u16x8_extend_high_u8x16(sm);  // sc_0..7, m_0..7
    const v128_t d = wasm_f32x4_splat(f16(w4->d)), ndmin = wasm_f32x4_splat(-f16(w4->dmin));
    sink.mins(sb * 8, wasm_f32x4_mul(ndmin, u16_lo_f32(m16)));
    sink.mins(sb * 8 + 4, wasm_f32x4_mul(ndmin, u16_hi_f32(m16)));
    v128_t h0 = wasm_i8x16_splat(0), h1 = h0;
    if (Q5) {
      h0 = wasm_v128_load(reinterpret_cast<const block_q5_K*>(blk)->qh);
      h1 = wasm_v128_load(reinterpret_cast<const block_q5_K*>(blk)->qh + 16);
    }
    auto chunk = [&](int c, auto slot) {  // sub-blocks 2c (Slot S) and 2c + 1 (Slot S + 1)
      constexpr int S = decltype(slot)::value;
      const v128_t a0 = wasm_v128_load(qs + 32 * c), a1 = wasm_v128_load(qs + 32 * c + 16);
      v128_t l0 = lo_nibbles(a0), l1 = lo_nibbles(a1), u0 = hi_nibbles(a0), u1 = hi_nibbles(a1);
      if (Q5) {  // bit 2c of qh -> bit 4 of the low sub-block, bit 2c + 1 of the high one (h0, h1 move one bit each time)
        l0 = wasm_v128_or(l0, wasm_i16x8_shl(wasm_v128_and(h0, one), 4));
        l1 = wasm_v128_or(l1, wasm_i16x8_shl(wasm_v128_and(h1, one), 4));
        h0 = wasm_u16x8_shr(h0, 1);
        h1 = wasm_u16x8_shr(h1, 1);
        u0 = wasm_v128_or(u0, wasm_i16x8_shl(wasm_v128_and(h0, one), 4));
        u1 = wasm_v128_or(u1, wasm_i16x8_shl(wasm_v128_and(h1, one), 4));
        h0 = wasm_u16x8_shr(h0, 1);
        h1 = wasm_u16x8_shr(h1, 1);
      }
      sink.template block<S>(sb * 8 + 2 * c, widen_u8(l0, l1));
      sink.template block<S + 1>(sb * 8 + 2 * c + 1, widen_u8(u0, u1));
    };
    chunk(0, std::integral_constant<int, 0>{});
    chunk(1, std::integral_constant<int, 2>{});
    sink.scales(sb * 8, wasm_f32x4_mul(d, u16_lo_f32(sc16)));
    chunk(2, std::integral_constant<int, 0>{});
    chunk(3, std::integral_constant<int, 2>{});
    sink.scales(sb * 8 + 4, wasm_f32x4_mul(d, u16_hi_f32(sc16)));
  }
}

// Q6_K: half h of a super-block, outputs 128h + 32k + l (k = 0..3, l = 0..31), the
// bytes of quant/q6_k.hpp as (low 4 bits of L) | (2 bits of H) << 4, minus 32,
// widened and multiplied by the 8-bit scale of each 16 (u = sc * (q - 32), |u| <= 4096).
//   k = 0: L[l] & 15,       H bits 0..1      k = 1: L[l + 32] & 15,  H bits 2..3
//   k = 2: L[l] >> 4,       H bits 4..5      k = 3: L[l + 32] >> 4,  H bits 6..7
// (16-bit shifts move H's field to bits 4..5; the mask 0x30 drops what crossed a byte.)
inline v128_t q6_byte(v128_t L, v128_t H, int k) {
  const v128_t m4 = g_consts.nibble, m2 = g_consts.q6_high;
  const v128_t lo = k < 2 ? wasm_v128_and(L, m4) : wasm_v128_and(wasm_u16x8_shr(L, 4), m4);
  const v128_t hi = k == 0 ? wasm_i16x8_shl(H, 4) : k == 1 ? wasm_i16x8_shl(H, 2) : k == 2 ? H : wasm_u16x8_shr(H, 2);
  return wasm_i8x16_sub(wasm_v128_or(lo, wasm_v128_and(hi, m2)), g_consts.i8_32);
}
// 16 bytes q - 32 -> two i16x8 of sc * (q - 32).
inline void q6_scaled(v128_t v, std::int8_t sc, v128_t& a, v128_t& b) {
  const v128_t s = wasm_i16x8_splat(sc);
  a = wasm_i16x8_mul(wasm_i16x8_extend_low_i8x16(v), s);
  b = wasm_i16x8_mul(wasm_i16x8_extend_high_i8x16(v), s);
}
template <class Sink>
inline void walk_blocks(detail::Q6KBlocks, const void* row, std::int64_t n, Sink& sink) {
  const auto* w = static_cast<const block_q6_K*>(row);
  for (std::int64_t sb = 0; sb < n / QK_K; ++sb) {
    const v128_t d = wasm_f32x4_splat(f16(w[sb].d));
    const std::int8_t* sc = w[sb].scales;
    for (int h = 0; h < 2; ++h) {  // blocks 8 sb + 4h + k, k = 0..3: one group
      const std::uint8_t* L = w[sb].ql + 64 * h;
      const std::uint8_t* H = w[sb].qh + 32 * h;
      const v128_t La[2] = {wasm_v128_load(L), wasm_v128_load(L + 16)};       // L[l], l = 0..15, 16..31
      const v128_t Lb[2] = {wasm_v128_load(L + 32), wasm_v128_load(L + 48)};  // L[l + 32]
      const v128_t Hv[2] = {wasm_v128_load(H), wasm_v128_load(H + 16)};
      auto pair = [&](int k, auto slot) {  // sub-blocks of 32: k (Slot S) and k + 1 (Slot S + 1)
        constexpr int S = decltype(slot)::value;
        U32 u0, u1;
        const int g = 8 * h + 2 * k;  // the scale of outputs 128h + 32k + 0..15 (then g + 1)
        q6_scaled(q6_byte(La[0], Hv[0], k), sc[g], u0.v[0], u0.v[1]);
        q6_scaled(q6_byte(La[1], Hv[1], k), sc[g + 1], u0.v[2], u0.v[3]);
        q6_scaled(q6_byte(Lb[0], Hv[0], k + 1), sc[g + 2], u1.v[0], u1.v[1]);
        q6_scaled(q6_byte(Lb[1], Hv[1], k + 1), sc[g + 3], u1.v[2], u1.v[3]);
        sink.template block<S>(sb * 8 + 4 * h + k, u0);
        sink.template block<S + 1>(sb * 8 + 4 * h + k + 1, u1);
      };
      pair(0, std::integral_constant<int, 0>{});
      pair(2, std::integral_constant<int, 2>{});
      sink.scales(sb * 8 + 4 * h, d);
    }
  }
}

// Calls walk_blocks(kind, row, n, sink) for dtype t (the table of
// detail::walk_block_type); false if t has no walker.
template <class Sink>
inline bool walk_row(DType t, const void* row, std::int64_t n, Sink& sink) {
  return detail::walk_block_type(t, [&](auto kind) { walk_blocks(kind, row, n, sink); });
}

// The block's exact int32 sum  sum_i u_i q_i  in four lanes: four i32x4.dot_i16x8_s
// (each lane two products of each), added (|lane| <= 8 * 4096 * 16383 < 2^31).
inline v128_t block_isum(const U32& u, const std::int16_t* q) {
  const v128_t p0 = wasm_i32x4_dot_i16x8(u.v[0], wasm_v128_load(q));
  const v128_t p1 = wasm_i32x4_dot_i16x8(u.v[1], wasm_v128_load(q + 8));
  const v128_t p2 = wasm_i32x4_dot_i16x8(u.v[2], wasm_v128_load(q + 16));
  const v128_t p3 = wasm_i32x4_dot_i16x8(u.v[3], wasm_v128_load(q + 24));
  return wasm_i32x4_add(wasm_i32x4_add(p0, p1), wasm_i32x4_add(p2, p3));
}

// Four blocks' lane vectors -> [sum of p[0], sum of p[1], sum of p[2], sum of p[3]]:
// two rounds of interleave and add (6 shuffles, 3 adds).
inline v128_t hsum4_i32(const v128_t p[4]) {
  const v128_t s01 = wasm_i32x4_add(wasm_i32x4_shuffle(p[0], p[1], 0, 4, 1, 5), wasm_i32x4_shuffle(p[0], p[1], 2, 6, 3, 7));
  const v128_t s23 = wasm_i32x4_add(wasm_i32x4_shuffle(p[2], p[3], 0, 4, 1, 5), wasm_i32x4_shuffle(p[2], p[3], 2, 6, 3, 7));
  return wasm_i32x4_add(wasm_i32x4_shuffle(s01, s23, 0, 1, 4, 5), wasm_i32x4_shuffle(s01, s23, 2, 3, 6, 7));
}

// The dot-product sink. A group's four isum lane vectors are summed across lanes into
// one vector [isum_b0 .. isum_b0+3] (exact int32), converted once and multiplied by
// [scale_b d_b ..] (no FMA in SIMD128: multiply, then add); the minimums times the block
// sums of x four at a time; a tail block alone.
struct DotSink {
  const std::int16_t* xq;
  const float* xd;
  const float* xs;
  v128_t acc = wasm_f32x4_splat(0.0f), macc = wasm_f32x4_splat(0.0f);
  float tail_sum = 0.0f;
  v128_t p[4] = {};  // the isum lanes of the group's blocks
  template <int Slot>
  void block(std::int64_t b, const U32& u) {
    p[Slot] = block_isum(u, xq + b * QK);
  }
  void scales(std::int64_t b0, v128_t s) {
    const v128_t sd = wasm_f32x4_mul(s, wasm_v128_load(xd + b0));
    acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(hsum4_i32(p)), sd));
  }
  void mins(std::int64_t b0, v128_t m) { macc = wasm_f32x4_add(macc, wasm_f32x4_mul(m, wasm_v128_load(xs + b0))); }
  void tail(std::int64_t b, const U32& u, float s, float m) {
    const v128_t v = block_isum(u, xq + b * QK);
    const v128_t h = wasm_i32x4_add(v, wasm_i32x4_shuffle(v, v, 2, 3, 0, 1));
    tail_sum += float(wasm_i32x4_extract_lane(h, 0) + wasm_i32x4_extract_lane(h, 1)) * (s * xd[b]);
    if (m != 0.0f) tail_sum += m * xs[b];
  }
};

// row . x on int16 activations (reads x.q, x.d and x.s; never the byte split).
template <DType T>
inline float dot_q16(const void* row, const Q16Row& x, std::int64_t n) {
  DotSink sink{x.q, x.d, x.s};
  walk_row(T, row, n, sink);
  return kernels::wasm::hsum(wasm_f32x4_add(sink.acc, sink.macc)) + sink.tail_sum;
}

// `count` consecutive rows (row_bytes apart) dotted with x into y [count], the dot
// inlined (no indirect call per row).
template <DType T>
inline void dot_q16_rows(const void* rows, std::size_t row_bytes, std::int64_t count, const Q16Row& x, std::int64_t n,
                         float* y) {
  const auto* p = static_cast<const unsigned char*>(rows);
  for (std::int64_t r = 0; r < count; ++r) y[r] = dot_q16<T>(p + std::size_t(r) * row_bytes, x, n);
}

// The unpacking sink: u, scale and min to memory (the GEMM's packing step).
struct StoreSink {
  std::int16_t* u;
  float* scale;
  float* min;
  template <int Slot>
  void block(std::int64_t b, const U32& v) {
    for (int k = 0; k < 4; ++k) wasm_v128_store(u + b * QK + 8 * k, v.v[k]);
  }
  void scales(std::int64_t b0, v128_t s) { wasm_v128_store(scale + b0, s); }
  void mins(std::int64_t b0, v128_t m) { wasm_v128_store(min + b0, m); }
  void tail(std::int64_t b, const U32& v, float s, float m) {
    block<0>(b, v);
    scale[b] = s;
    min[b] = m;
  }
};

// A row of dtype t -> u, scale, min (bit for bit the scalar twin's).
inline void unpack_q16_row(DType t, const void* row, std::int64_t n, std::int16_t* u, float* scale, float* min) {
  StoreSink sink{u, scale, min};
  std::memset(min, 0, std::size_t(n / QK) * sizeof(float));  // the types with a minimum overwrite it (mins())
  if (!walk_row(t, row, n, sink)) unpack_q16_row_scalar(t, row, n, u, scale, min);
}

}  // namespace wasm
#endif  // GEMMA3_HAVE_WASM_SIMD

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
// the wasm twin under Isa::wasm_simd128, the scalar reference under any other Isa;
// nullptr for the plain dtypes.
inline Q16DotFn q16_dot(DType t, Isa isa) {
#if GEMMA3_HAVE_X86_SIMD
  if (isa == Isa::avx512)
    return detail::by_block_type<Q16DotFn>(t, [](auto T) -> Q16DotFn { return avx512::dot_q16<decltype(T)::value>; });
#endif
#if GEMMA3_HAVE_WASM_SIMD
  if (isa == Isa::wasm_simd128)
    return detail::by_block_type<Q16DotFn>(t, [](auto T) -> Q16DotFn { return wasm::dot_q16<decltype(T)::value>; });
#endif
  (void)isa;
  return detail::by_block_type<Q16DotFn>(t, [](auto T) -> Q16DotFn { return detail::dot_q16_scalar_of<decltype(T)::value>; });
}

// The many-row form of q16_dot: the avx512 / wasm twin under Isa::avx512 /
// Isa::wasm_simd128, else the scalar one.
inline Q16RowsFn q16_dot_rows(DType t, Isa isa) {
#if GEMMA3_HAVE_X86_SIMD
  if (isa == Isa::avx512)
    return detail::by_block_type<Q16RowsFn>(t, [](auto T) -> Q16RowsFn { return avx512::dot_q16_rows<decltype(T)::value>; });
#endif
#if GEMMA3_HAVE_WASM_SIMD
  if (isa == Isa::wasm_simd128)
    return detail::by_block_type<Q16RowsFn>(t, [](auto T) -> Q16RowsFn { return wasm::dot_q16_rows<decltype(T)::value>; });
#endif
  (void)isa;
  return detail::by_block_type<Q16RowsFn>(
      t, [](auto T) -> Q16RowsFn { return detail::dot_q16_rows_scalar_of<decltype(T)::value>; });
}

// x [n] -> q, d, s with `isa` (avx512, wasm or the scalar twin; identical q and d).
inline void quantize_row_q16(const float* x, std::int16_t* q, float* d, float* s, std::int64_t n, Isa isa) {
#if GEMMA3_HAVE_X86_SIMD
  if (isa == Isa::avx512) return avx512::quantize_row_q16(x, q, d, s, n);
#endif
#if GEMMA3_HAVE_WASM_SIMD
  if (isa == Isa::wasm_simd128) return wasm::quantize_row_q16(x, q, d, s, n);
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
#if GEMMA3_HAVE_WASM_SIMD
  if (isa == Isa::wasm_simd128) return wasm::unpack_q16_row(t, row, n, u, scale, min);
#endif
  (void)isa;
  unpack_q16_row_scalar(t, row, n, u, scale, min);
}

}  // namespace quant
}  // namespace gemma3
