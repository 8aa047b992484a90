// gemma3/kernels/gemm_q16.hpp -- the prefill GEMM on int16 activations: Y = X . W^T
// for a quantized weight W and T tokens, in exact int32 per block of 32 with
// AVX-512 VNNI (vpdpwssd) or WebAssembly SIMD128 (i32x4.dot_i16x8_s).
//
// Formula (quant/q16.hpp has the two unpackings it rests on, kernels/dot_q16.hpp
// their AVX-512 twins). Per block b of 32:
//   weight row r:  w_i = scale_b[r] * u_i[r] + min_b[r]       u int16, |u| <= 4096
//   token t:       x_i ~= d_b[t] * q_i[t],  s_b[t] = sum_i x_i  q int16, |q| <= 16383
//   Y[t, r] = sum_b  scale_b[r] * d_b[t] * isum_b[r, t]  +  min_b[r] * s_b[t]
//   isum_b[r, t] = sum_{i < 32} u_i[r] * q_i[t]    exact int32 (32 * 4096 * 16383 < 2^31)
//
// Interface (namespace gemma3, next to matmul):
//   Q16Matrix X          T tokens of n int16 activations: token t is
//                        q + t * n [n], d + t * (n / 32), s + t * (n / 32)
//   matmul_q16_scalar    Y[t * ldy + r] = row r of W . token t, t in [0, T), r in [r0, r1),
//                        by quant::dot_q16_scalar (the reference, double accumulation)
//   matmul_q16_avx512    the same with the packed tiles and the VNNI micro-kernel below
//                        (falls back to the scalar twin where AVX-512 VNNI is missing)
//   matmul_q16_wasm      the same with SIMD128: 4-row micro-tiles, the tokens interleaved
//                        by fours, a 4 x 4 micro-kernel (its scheme at q16gemm::wasm; the
//                        scalar twin without -msimd128)
// r0 and r1 are arbitrary (ragged row tiles are masked); T is arbitrary (ragged token
// groups take a narrower micro-kernel); n must be a multiple of 32 (256 for K-quants);
// ldy >= r1. Only Y[t * ldy + r] for r in [r0, r1) is written.
// Internals live in gemma3::q16gemm.
//
// Step 1, pack a tile of 16 weight rows (once per tile, reused by all T tokens).
// The rows are unpacked 256 columns at a time (quant::unpack_q16_row) into u, and
// each block of 32 columns is transposed (16 x 16 int32, in registers) so that one
// 64-byte vector holds the same int16 pair of all 16 rows:
//
//   u (16 unpacked rows, block b)                packed tile, block b
//   row 0:  (u0,u1) (u2,u3) ... (u30,u31)         pairs[b][0]  = [ (u0,u1)   of rows 0 .. 15 ]
//   row 1:  (u0,u1) (u2,u3) ... (u30,u31)   -->   pairs[b][1]  = [ (u2,u3)   of rows 0 .. 15 ]
//   ...                                           ...
//   row 15: (u0,u1) (u2,u3) ... (u30,u31)         pairs[b][15] = [ (u30,u31) of rows 0 .. 15 ]
//                                                 scale[b]     = [ scale_b of rows 0 .. 15 ]  16 floats
//                                                 min[b]       = [ min_b   of rows 0 .. 15 ]  16 floats
//   pairs: [n/32][16][16] int32 (each int32 = two int16): 1 KB per block of 32 columns,
//   20 KB for n = 640, 64 KB for n = 2048. Rows past r1 (a ragged tile) are zeros.
//
// Step 2, the micro-kernel: 16 rows (the zmm lanes) x N = 8 tokens, all in registers.
//   for each block b:
//     isum[t] = 0                                            N zmm of 16 x int32
//     for p in 0..15:                                        (fully unrolled)
//       w = pairs[b][p]                                      one 64-byte load
//       for t: isum[t] = vpdpwssd(isum[t], w, broadcast(int32 pair p of token t's block b))
//              (lane r += u[r][2p] * q[t][2p] + u[r][2p+1] * q[t][2p+1])
//     for t: acc[t] += (float(isum[t]) * d_b[t]) * scale[b]  (cvt, mul, fma)
//            acc[t] += min[b] * s_b[t]                        (fma; types with a minimum only)
//   store acc[t] (16 floats) to Y[t * ldy + r .. r + 15]     (masked at a ragged row end)
//   The loop over tiles is outside, the loop over token groups of N inside: each tile is
//   packed once and read T / N times (from L1 at n = 640, L2 at n = 2048); the T tokens'
//   activations (T x n int16: 640 KB at T = 512, n = 640) are read once per tile, from L2.
//   Why N = 8 and not 12 (there would be registers: 2 N + 3 of 32): at n = 2048 a token
//   row is 4 KB, so the N activation streams all sit in one set of the 8-way L1: Q4_K
//   [640 x 2048] ran at 68 GMAC/s with 12 tokens, 87 with 8 (Q5_0 [2048 x 640]: 95 both).
//   N = 8 also leaves enough general registers for the N activation pointers.
//   Where the time goes (Zen 4 runs one 512-bit vpdpwssd per cycle, 32 MACs; the FP
//   multiply and FMA share its two pipes, the cvt does not): per 16 vpdpwssd, 2 multiply-
//   pipe ops of epilogue (3 with a minimum) cap the kernel at 16/18 = 89% (84%) of the
//   VNNI peak; it reaches 75-80% (the table below), packing included.
//
// Error: isum is exact, so the avx512 twin differs from the scalar twin (double
// accumulation) only by float32 rounding: <= 3 roundings per block term and one per
// addition of the n/32 terms into the running float sum (tests/test_gemm_q16.cpp
// checks each output against that bound; observed: median 1.2e-7 of max |Y|). Each output is the
// same sequence of operations whatever r0, r1, T and the token's place in its group,
// so splitting rows over threads or tokens over calls gives bit-identical results.
//
// Speed, one thread, T = 512, AMD EPYC (Zen 4, AVX-512 VNNI), CPU time
// (bench/bench_gemm_q16.cpp; "Eigen" = 64 rows dequantized to float + Eigen GEMM with
// -march=native, the path this replaces), GMAC/s:
//                                     int16 VNNI    Eigen    ratio
//   270M Q5_0 [2048 x 640]  gate/up         89         42      2.1x
//   270M Q8_0 [1024 x 640]                  90         42      2.2x
//   270M Q4_K [640 x 2048]  down            89         41      2.2x
//   270M Q6_K [640 x 2048]  down            93         41      2.3x
//   1B   Q5_0 [6912 x 1152] gate/up         91         40      2.3x
//   1B   Q4_K [1152 x 6912] down            89         34      2.6x
//   (T = 64: Q5_0 [2048 x 640] 84 vs 39, Q4_K [640 x 2048] 81 vs 37: packing weighs more.)
//   The VNNI peak of this core is 117 GMAC/s (3.66 G vpdpwssd/s measured), Eigen's
//   float FMA peak half that. Quantizing X (quant::quantize_row_q16) adds 70 us for
//   512 x 640, about 1% of one GEMM, and is shared by the weights that read X.
// The wasm twin has no FMA ((float(isum) * d_b) * scale, then the add, each rounded)
// and stays within the same bound. Its speed under node 20.20.2 (2-vCPU Intel Xeon with
// AVX-512 VNNI, 2026-12-06; docs/performance.md): 19-26 GMAC/s one thread on the 1B
// shapes at T = 128; 0.6-0.9x the native int16 GEMM at T = 64, 2 threads; 1B-shaped
// prefill end to end 61-64 tok/s against native 186-230 (0.26-0.34x).
// Pinned by tests/test_gemm_q16.cpp and, for matmul_q16_wasm, tests/wasm/test_wasm_kernels.cpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "dot_q16.hpp"
#include "isa.hpp"
#include "../weight.hpp"

namespace gemma3 {

// T tokens of n int16 activations (quant::quantize_row_q16 of each token's row):
// token t is q + t * n [n], d + t * (n / 32) and s + t * (n / 32).
struct Q16Matrix {
  const std::int16_t* q;
  const float* d;
  const float* s;
  std::int64_t T;
  std::int64_t n;

  quant::Q16Row row(std::int64_t t) const { return {q + t * n, d + t * (n / quant::QK), s + t * (n / quant::QK)}; }
};

namespace q16gemm {
inline void check(const Weight& W, const Q16Matrix& X, std::int64_t r0, std::int64_t r1, const char* who) {
  if (!quant::has_q16_kernels(W.dtype))
    throw std::invalid_argument(std::string(who) + ": " + dtype_name(W.dtype) + " is not a block type");
  if (X.n != W.cols || W.cols % std::int64_t(dtype_block_size(W.dtype)) != 0)
    throw std::invalid_argument(std::string(who) + ": X has " + std::to_string(X.n) + " columns, W is " +
                                dtype_name(W.dtype) + " with " + std::to_string(W.cols));
  if (r0 < 0 || r1 > W.rows || r0 > r1)
    throw std::invalid_argument(std::string(who) + ": rows [" + std::to_string(r0) + ", " + std::to_string(r1) +
                                ") outside [0, " + std::to_string(W.rows) + ")");
}

// Types whose unpacking has a non-zero minimum (w = scale * u + min).
inline bool has_min(DType t) {
  return t == DType::Q4_1 || t == DType::Q5_1 || t == DType::Q4_K || t == DType::Q5_K;
}

// The activations of tokens t0 .. t0 + N - 1 of X, as the micro-kernels read them:
// q[t] [n], d[t] and s[t] [n / 32].
template <int N>
struct TokenRows {
  const std::int16_t* q[N];
  const float* d[N];
  const float* s[N];
  TokenRows(const Q16Matrix& X, std::int64_t t0) {
    const std::int64_t nb = X.n / quant::QK;
    for (int t = 0; t < N; ++t) {
      q[t] = X.q + (t0 + t) * X.n;
      d[t] = X.d + (t0 + t) * nb;
      s[t] = X.s + (t0 + t) * nb;
    }
  }
};
}  // namespace q16gemm

// Y[t * ldy + r] = row r of W . token t, for t in [0, T), r in [r0, r1). Reference.
inline void matmul_q16_scalar(const Weight& W, const Q16Matrix& X, float* Y, std::int64_t ldy, std::int64_t r0,
                              std::int64_t r1) {
  q16gemm::check(W, X, r0, r1, "matmul_q16_scalar");
  for (std::int64_t t = 0; t < X.T; ++t)
    for (std::int64_t r = r0; r < r1; ++r) Y[t * ldy + r] = quant::dot_q16_scalar(W.dtype, W.row_ptr(r), X.row(t), X.n);
}

#if GEMMA3_HAVE_X86_SIMD
namespace q16gemm {

constexpr int kRows = 16;    // weight rows per tile: the 16 int32 lanes of a zmm
constexpr int kPairs = 16;   // int16 pairs per block of 32
constexpr int kTokens = 8;   // tokens per micro-kernel call (N; see the header comment)
constexpr std::int64_t kPackCols = 256;  // columns unpacked at a time while packing (one K-quant super-block)

// A vector<T> with room for `count` elements starting on a 64-byte boundary (so the
// micro-kernel's 64-byte loads never straddle two cache lines); grows, never shrinks.
template <class T>
T* aligned64(std::vector<T>& v, std::size_t count) {
  const std::size_t extra = 64 / sizeof(T);
  if (v.size() < count + extra) v.resize(count + extra);
  const std::uintptr_t p = reinterpret_cast<std::uintptr_t>(v.data());
  return reinterpret_cast<T*>((p + 63) & ~std::uintptr_t(63));
}

// One packed tile (see the header comment): pairs [nb][16][16], scale and min [nb][16].
struct Tile {
  const std::int32_t* pairs;
  const float* scale;
  const float* min;
};

// Per-thread buffers, reused across calls (no allocation after the first call at a
// given n).
struct Scratch {
  std::vector<std::int16_t> u;       // [16][kPackCols]       unpacked rows, kPackCols columns of them
  std::vector<float> row_scale;      // [16][kPackCols / 32]
  std::vector<float> row_min;        // [16][kPackCols / 32]
  std::vector<std::int32_t> pairs;   // [nb][16][16]
  std::vector<float> scale, min;     // [nb][16]
};
inline Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// In-register transpose of a 16 x 16 matrix of int32: r[i] lane j <-> r[j] lane i.
// Four rounds of shuffles (64 instructions in all), the classic pattern:
//   1. unpack 32-bit lanes of rows (0,1), (2,3), ...  2. unpack 64-bit lanes of
//   those pairs: each 128-bit lane of u[4g + j] now holds column 4k + j of rows
//   4g .. 4g + 3 (k = the 128-bit lane);  3./4. move the 128-bit lanes into place.
GEMMA3_TARGET_AVX512 inline void transpose_16x16_epi32(__m512i r[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int g = 0; g < 16; g += 4) {
    u[g] = _mm512_unpacklo_epi64(t[g], t[g + 2]);
    u[g + 1] = _mm512_unpackhi_epi64(t[g], t[g + 2]);
    u[g + 2] = _mm512_unpacklo_epi64(t[g + 1], t[g + 3]);
    u[g + 3] = _mm512_unpackhi_epi64(t[g + 1], t[g + 3]);
  }
  for (int j = 0; j < 4; ++j) {
    // 0x88 picks 128-bit lanes (a0, a2, b0, b2), 0xdd picks (a1, a3, b1, b3)
    const __m512i v0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88), v1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xdd);
    const __m512i w0 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88), w1 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xdd);
    r[j] = _mm512_shuffle_i32x4(v0, w0, 0x88);
    r[8 + j] = _mm512_shuffle_i32x4(v0, w0, 0xdd);
    r[4 + j] = _mm512_shuffle_i32x4(v1, w1, 0x88);
    r[12 + j] = _mm512_shuffle_i32x4(v1, w1, 0xdd);
  }
}

// Rows [r0, r0 + rows) of W (rows <= 16) -> a packed tile in s. The rows are unpacked
// kPackCols columns at a time into u [16][kPackCols] (8 KB: stays in L1), and each block
// of 32 columns is transposed into the tile.
GEMMA3_TARGET_AVX512 inline Tile pack_tile(const Weight& W, std::int64_t r0, int rows, Scratch& s) {
  const std::int64_t n = W.cols, nb = n / quant::QK;
  constexpr std::int64_t kChunkBlocks = kPackCols / quant::QK;
  std::int16_t* u = aligned64(s.u, std::size_t(kRows * kPackCols));
  float* row_scale = aligned64(s.row_scale, std::size_t(kRows * kChunkBlocks));
  float* row_min = aligned64(s.row_min, std::size_t(kRows * kChunkBlocks));
  if (rows < kRows) {  // past the end of the range: zero rows (their lanes are computed, never stored)
    std::memset(u + rows * kPackCols, 0, std::size_t((kRows - rows) * kPackCols) * sizeof(std::int16_t));
    std::memset(row_scale + rows * kChunkBlocks, 0, std::size_t((kRows - rows) * kChunkBlocks) * sizeof(float));
    std::memset(row_min + rows * kChunkBlocks, 0, std::size_t((kRows - rows) * kChunkBlocks) * sizeof(float));
  }
  std::int32_t* pairs = aligned64(s.pairs, std::size_t(nb * kPairs * kRows));
  float* scale = aligned64(s.scale, std::size_t(nb * kRows));
  float* min = aligned64(s.min, std::size_t(nb * kRows));
  for (std::int64_t k0 = 0; k0 < n; k0 += kPackCols) {
    const std::int64_t kc = std::min(kPackCols, n - k0);  // a multiple of the block size
    const std::size_t offset = dtype_row_bytes(W.dtype, std::size_t(k0));
    for (int i = 0; i < rows; ++i)
      quant::unpack_q16_row(W.dtype, static_cast<const unsigned char*>(W.row_ptr(r0 + i)) + offset, kc,
                            u + i * kPackCols, row_scale + i * kChunkBlocks, row_min + i * kChunkBlocks, Isa::avx512);
    for (std::int64_t j = 0; j < kc / quant::QK; ++j) {
      const std::int64_t b = k0 / quant::QK + j;
      // v[i] = block b of row i as 16 int32 pairs; transposed, v[p] = pair p of rows 0..15
      __m512i v[kRows];
      for (int i = 0; i < kRows; ++i) v[i] = _mm512_load_si512(u + i * kPackCols + j * quant::QK);
      transpose_16x16_epi32(v);
      for (int p = 0; p < kPairs; ++p) _mm512_store_si512(pairs + (b * kPairs + p) * kRows, v[p]);
      for (int i = 0; i < kRows; ++i) {
        scale[b * kRows + i] = row_scale[i * kChunkBlocks + j];
        min[b * kRows + i] = row_min[i * kChunkBlocks + j];
      }
    }
  }
  return Tile{pairs, scale, min};
}

// The int32 pair at p (two int16), read without aliasing trouble (set1 of it is one
// vpbroadcastd from memory: a load, no vector ALU work).
inline std::int32_t load_pair(const std::int16_t* p) {
  std::int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// 16 rows x N tokens (t0 .. t0 + N - 1) over all n columns; stores the lanes in `rows`.
template <int N, bool HasMin>
struct MicroKernel {
  GEMMA3_TARGET_AVX512 void operator()(const Tile& tile, const Q16Matrix& X, std::int64_t t0, float* Y,
                                       std::int64_t ldy, __mmask16 rows) const {
    const std::int64_t nb = X.n / quant::QK;
    const TokenRows<N> x(X, t0);
    const auto& q = x.q;
    const auto& d = x.d;
    const auto& s = x.s;
    __m512 acc[N];
    for (int t = 0; t < N; ++t) acc[t] = _mm512_setzero_ps();

    for (std::int64_t b = 0; b < nb; ++b) {
      const std::int32_t* pairs = tile.pairs + b * kPairs * kRows;
      const std::int64_t k = b * quant::QK;  // first column of block b
      __m512i isum[N];
      for (int t = 0; t < N; ++t) isum[t] = _mm512_setzero_si512();
#pragma GCC unroll 16
      for (int p = 0; p < kPairs; ++p) {
        const __m512i w = _mm512_load_si512(pairs + p * kRows);
        for (int t = 0; t < N; ++t)
          isum[t] = _mm512_dpwssd_epi32(isum[t], w, _mm512_set1_epi32(load_pair(q[t] + k + 2 * p)));
      }
      const __m512 scale = _mm512_load_ps(tile.scale + b * kRows);
      for (int t = 0; t < N; ++t)
        acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_set1_ps(d[t][b])), scale, acc[t]);
      if constexpr (HasMin) {
        const __m512 min = _mm512_load_ps(tile.min + b * kRows);
        for (int t = 0; t < N; ++t) acc[t] = _mm512_fmadd_ps(min, _mm512_set1_ps(s[t][b]), acc[t]);
      }
    }
    for (int t = 0; t < N; ++t) _mm512_mask_storeu_ps(Y + (t0 + t) * ldy, rows, acc[t]);
  }
};

// One tile times all T tokens: groups of kTokens, then one narrower group for the rest.
template <bool HasMin>
GEMMA3_TARGET_AVX512 inline void tile_times_tokens(const Tile& tile, const Q16Matrix& X, float* Y, std::int64_t ldy,
                                                   __mmask16 rows) {
  static_assert(kTokens == 8, "the switch below handles the last 1 .. 7 tokens");
  std::int64_t t0 = 0;
  for (; t0 + kTokens <= X.T; t0 += kTokens) MicroKernel<kTokens, HasMin>{}(tile, X, t0, Y, ldy, rows);
  switch (X.T - t0) {
    case 0: break;
    case 1: MicroKernel<1, HasMin>{}(tile, X, t0, Y, ldy, rows); break;
    case 2: MicroKernel<2, HasMin>{}(tile, X, t0, Y, ldy, rows); break;
    case 3: MicroKernel<3, HasMin>{}(tile, X, t0, Y, ldy, rows); break;
    case 4: MicroKernel<4, HasMin>{}(tile, X, t0, Y, ldy, rows); break;
    case 5: MicroKernel<5, HasMin>{}(tile, X, t0, Y, ldy, rows); break;
    case 6: MicroKernel<6, HasMin>{}(tile, X, t0, Y, ldy, rows); break;
    case 7: MicroKernel<7, HasMin>{}(tile, X, t0, Y, ldy, rows); break;
  }
}

GEMMA3_TARGET_AVX512 inline void matmul(const Weight& W, const Q16Matrix& X, float* Y, std::int64_t ldy,
                                        std::int64_t r0, std::int64_t r1) {
  Scratch& s = scratch();
  const bool with_min = has_min(W.dtype);
  for (std::int64_t r = r0; r < r1; r += kRows) {
    const int rows = int(std::min<std::int64_t>(kRows, r1 - r));
    const Tile tile = pack_tile(W, r, rows, s);
    const __mmask16 mask = __mmask16((1u << rows) - 1u);
    if (with_min) tile_times_tokens<true>(tile, X, Y + r, ldy, mask);
    else tile_times_tokens<false>(tile, X, Y + r, ldy, mask);
  }
}

}  // namespace q16gemm
#endif  // GEMMA3_HAVE_X86_SIMD

// Y[t * ldy + r] = row r of W . token t, for t in [0, T), r in [r0, r1), with AVX-512
// VNNI (the scalar twin where this build or CPU lacks it).
inline void matmul_q16_avx512(const Weight& W, const Q16Matrix& X, float* Y, std::int64_t ldy, std::int64_t r0,
                              std::int64_t r1) {
  q16gemm::check(W, X, r0, r1, "matmul_q16_avx512");
  if (X.T <= 0 || r0 >= r1) return;
#if GEMMA3_HAVE_X86_SIMD
  if (isa_available(Isa::avx512)) return q16gemm::matmul(W, X, Y, ldy, r0, r1);
#endif
  matmul_q16_scalar(W, X, Y, ldy, r0, r1);
}

#if GEMMA3_HAVE_WASM_SIMD
// ---- WebAssembly SIMD128: the same scheme on 128-bit registers, with
//      i32x4.dot_i16x8_s (two int16 products per int32 lane, not accumulated) and no FMA.
// Step 1, pack a tile of 16 weight rows as four micro-tiles of 4 rows (the 4 int32
// lanes): per micro-tile g and block b, 16 v128 of pairs, pairs[g][b][p] = the int16
// pair p (u_2p, u_2p+1) of rows 4g .. 4g + 3, by 4 x 4 int32 transposes of the unpacked
// rows (quant::wasm::unpack_q16_row); scale[g][b], min[g][b] = 4 floats.
// Step 2, interleave the tokens once per matmul (pack_tokens; kernels/matmul.hpp does it
// before the rows are split over threads): in each group of N tokens, the int16 pair i
// of its N tokens sit side by side (xq[i][t]), and so do d_b and s_b, so the micro-kernel
// reads a group through one pointer at constant offsets.
// Step 3, the micro-kernel: 4 rows x N = 4 tokens, in registers (4 isum + 4 acc + w +
// the splats; V8 has 16 xmm for wasm on x86-64), and its 8-row form (micro_kernel8: two
// micro-tiles side by side, each token's splat feeding two dots: 64 multiply-adds per 22
// instructions of the inner loop against 32 per 13, counted from the loop; where a tile
// has 8 rows left):
//   for each block b:
//     for p in 0..15:  w = pairs[g][b][p]
//                      for t: isum[t] += dot_i16x8(w, load32_splat(xq[16 b + p][t]))
//     for t: acc[t] += (float(isum[t]) * d_b[t]) * scale[g][b]    (+ min[g][b] * s_b[t])
// What V8 makes of it (node --print-wasm-code) set the shape:
//   - the loop over p is unrolled by 2, not fully: fully unrolled, clang hoists the 16
//     pair loads of a block and emits one token's 16 dots after the other, and V8 spills
//     the pairs and the partial sums to the stack (a store or reload per dot);
//   - with a pointer per token (the layout of X as it comes), V8 reloads each pointer
//     from the stack and rebuilds each address (3-4 integer instructions per splat);
//     interleaved, the inner loop is the loads, vpmaddwd and vpaddd alone.
//   Together: 1B shapes (T = 128, one thread) 16-19 -> 19-26 GMAC/s; 4 tokens measured
//   like 5 and 6, unroll 4 and 8 no faster, 8 tokens slower (spills). 8 rows x 4 tokens:
//   the 270M shapes of bench/wasm (T = 128, one thread, node 20) 20.7-24.8 -> 22.5-28.5
//   GMAC/s, a 1B-shaped 480-token prefill under node 47-50 -> 52-54 tok/s (2 threads).
// Loops: tiles of 16 rows outside (each packed once, reused by all T tokens), then
// groups of N tokens, then the four micro-tiles (the N tokens' pairs stay in L1 across
// them). Ragged tiles are zero rows, never stored; a ragged token group takes a
// narrower micro-kernel. Each output is the same sequence of operations whatever r0,
// r1, T and its place in a group, so row splits over threads are bit-identical.
namespace q16gemm {
namespace wasm {

constexpr int kLanes = 4;                  // weight rows per micro-tile: the int32 lanes of a v128
constexpr int kGroups = 4;                 // micro-tiles per packed tile
constexpr int kRows = kLanes * kGroups;    // weight rows per packed tile
constexpr int kPairs = 16;                 // int16 pairs per block of 32
constexpr int kTokens = 4;                 // tokens per micro-kernel call (N; see above)
constexpr std::int64_t kPackCols = 256;    // columns unpacked at a time while packing

struct Scratch {
  std::vector<std::int16_t> u;           // [16][kPackCols]
  std::vector<float> row_scale, row_min;  // [16][kPackCols / 32]
  std::vector<std::int32_t> pairs;       // [4][nb][16][4]
  std::vector<float> scale, min;         // [4][nb][4]
};
inline Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// One packed micro-tile: pairs [nb][16][4] int32, scale and min [nb][4].
struct MicroTile {
  const std::int32_t* pairs;
  const float* scale;
  const float* min;
};

// 4 x 4 int32 transpose: r[i] lane j <-> r[j] lane i.
inline void transpose_4x4(v128_t r[4]) {
  const v128_t t0 = wasm_i32x4_shuffle(r[0], r[1], 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(r[0], r[1], 2, 6, 3, 7);
  const v128_t t2 = wasm_i32x4_shuffle(r[2], r[3], 0, 4, 1, 5), t3 = wasm_i32x4_shuffle(r[2], r[3], 2, 6, 3, 7);
  r[0] = wasm_i32x4_shuffle(t0, t2, 0, 1, 4, 5);
  r[1] = wasm_i32x4_shuffle(t0, t2, 2, 3, 6, 7);
  r[2] = wasm_i32x4_shuffle(t1, t3, 0, 1, 4, 5);
  r[3] = wasm_i32x4_shuffle(t1, t3, 2, 3, 6, 7);
}

// Rows [r0, r0 + rows) of W (rows <= 16) -> the packed micro-tiles in s (zero rows
// past `rows`); returns the number of micro-tiles, (rows + 3) / 4.
inline int pack_tile(const Weight& W, std::int64_t r0, int rows, Scratch& s) {
  const std::int64_t n = W.cols, nb = n / quant::QK;
  constexpr std::int64_t kChunkBlocks = kPackCols / quant::QK;
  const int groups = (rows + kLanes - 1) / kLanes;
  s.u.resize(std::size_t(kRows * kPackCols));
  s.row_scale.resize(std::size_t(kRows * kChunkBlocks));
  s.row_min.resize(std::size_t(kRows * kChunkBlocks));
  s.pairs.resize(std::size_t(kGroups * nb * kPairs * kLanes));
  s.scale.resize(std::size_t(kGroups * nb * kLanes));
  s.min.resize(std::size_t(kGroups * nb * kLanes));
  std::int16_t* u = s.u.data();
  float* row_scale = s.row_scale.data();
  float* row_min = s.row_min.data();
  if (rows < groups * kLanes) {  // the rest of the last micro-tile: zero rows
    const int z = groups * kLanes - rows;
    std::memset(u + rows * kPackCols, 0, std::size_t(z * kPackCols) * sizeof(std::int16_t));
    std::memset(row_scale + rows * kChunkBlocks, 0, std::size_t(z * kChunkBlocks) * sizeof(float));
    std::memset(row_min + rows * kChunkBlocks, 0, std::size_t(z * kChunkBlocks) * sizeof(float));
  }
  for (std::int64_t k0 = 0; k0 < n; k0 += kPackCols) {
    const std::int64_t kc = std::min(kPackCols, n - k0);  // a multiple of the block size
    const std::size_t offset = dtype_row_bytes(W.dtype, std::size_t(k0));
    for (int i = 0; i < rows; ++i)
      quant::wasm::unpack_q16_row(W.dtype, static_cast<const unsigned char*>(W.row_ptr(r0 + i)) + offset, kc,
                                  u + i * kPackCols, row_scale + i * kChunkBlocks, row_min + i * kChunkBlocks);
    for (std::int64_t j = 0; j < kc / quant::QK; ++j) {
      const std::int64_t b = k0 / quant::QK + j;
      for (int g = 0; g < groups; ++g) {
        std::int32_t* out = s.pairs.data() + ((g * nb + b) * kPairs) * kLanes;
        for (int h = 0; h < kPairs / 4; ++h) {  // pairs 4h .. 4h + 3 of the four rows
          v128_t v[4];
          for (int i = 0; i < kLanes; ++i) v[i] = wasm_v128_load(u + (kLanes * g + i) * kPackCols + j * quant::QK + 8 * h);
          transpose_4x4(v);
          for (int k = 0; k < 4; ++k) wasm_v128_store(out + (4 * h + k) * kLanes, v[k]);
        }
        for (int i = 0; i < kLanes; ++i) {
          s.scale[std::size_t((g * nb + b) * kLanes + i)] = row_scale[(kLanes * g + i) * kChunkBlocks + j];
          s.min[std::size_t((g * nb + b) * kLanes + i)] = row_min[(kLanes * g + i) * kChunkBlocks + j];
        }
      }
    }
  }
  return groups;
}

inline MicroTile micro_tile(const Scratch& s, std::int64_t nb, int g) {
  return {s.pairs.data() + g * nb * kPairs * kLanes, s.scale.data() + g * nb * kLanes, s.min.data() + g * nb * kLanes};
}

// X with each group of N tokens (t0 = 0, kTokens, ...; N = kTokens but for the last,
// ragged group) interleaved, so that the micro-kernel reads a group through one pointer:
//   q[t0 n / 2 + i N + t]  = int16 pair i of token t0 + t   (i < n / 2)
//   d[t0 nb + b N + t], s[t0 nb + b N + t] = d_b, s_b of token t0 + t
// Made once per matmul (kernels/matmul.hpp packs before splitting the rows over threads;
// matmul_q16_wasm per call): 2 T n bytes copied, 4 x 4 transposes for full groups.
struct Tokens {
  const std::int32_t* q;
  const float* d;
  const float* s;
};
struct TokenBuffers {
  std::vector<std::int32_t> q;
  std::vector<float> d, s;
};
inline Tokens pack_tokens(const Q16Matrix& X, TokenBuffers& sc) {
  const std::int64_t T = X.T, n = X.n, nb = n / quant::QK, half = n / 2;
  sc.q.resize(std::size_t(T * half));
  sc.d.resize(std::size_t(T * nb));
  sc.s.resize(std::size_t(T * nb));
  for (std::int64_t t0 = 0; t0 < T; t0 += kTokens) {
    const int N = int(std::min<std::int64_t>(kTokens, T - t0));
    std::int32_t* q = sc.q.data() + t0 * half;
    if (N == kTokens) {
      for (std::int64_t i = 0; i < half; i += 4) {  // pairs i .. i + 3 of the four tokens
        v128_t v[4];
        for (int t = 0; t < 4; ++t) v[t] = wasm_v128_load(X.q + (t0 + t) * n + 2 * i);
        transpose_4x4(v);
        for (int k = 0; k < 4; ++k) wasm_v128_store(q + (i + k) * N, v[k]);
      }
    } else {
      for (int t = 0; t < N; ++t)
        for (std::int64_t i = 0; i < half; ++i) std::memcpy(q + i * N + t, X.q + (t0 + t) * n + 2 * i, 4);
    }
    for (int t = 0; t < N; ++t)
      for (std::int64_t b = 0; b < nb; ++b) {
        sc.d[std::size_t(t0 * nb + b * N + t)] = X.d[(t0 + t) * nb + b];
        sc.s[std::size_t(t0 * nb + b * N + t)] = X.s[(t0 + t) * nb + b];
      }
  }
  return {sc.q.data(), sc.d.data(), sc.s.data()};
}

// 4 rows x N tokens (t0 .. t0 + N - 1) over all n columns; stores the first `lanes` rows.
// (Out of line: clang compiles each <N, HasMin> variant alone, not inside the loops
// around it, where the non-minimum variant ran 2.5x slower.)
template <int N, bool HasMin>
__attribute__((noinline)) void micro_kernel(const MicroTile& tile, const Tokens& X, std::int64_t n, std::int64_t t0,
                                            float* Y, std::int64_t ldy, int lanes) {
  const std::int64_t nb = n / quant::QK;
  const std::int32_t* q = X.q + t0 * (n / 2);  // the group's pairs, interleaved (pack_tokens)
  const float* d = X.d + t0 * nb;
  const float* s = X.s + t0 * nb;
  v128_t acc[N];
  for (int t = 0; t < N; ++t) acc[t] = wasm_f32x4_splat(0.0f);
  for (std::int64_t b = 0; b < nb; ++b) {
    const std::int32_t* pairs = tile.pairs + b * kPairs * kLanes;
    const std::int32_t* xb = q + b * kPairs * N;
    v128_t isum[N];
    for (int t = 0; t < N; ++t) isum[t] = wasm_i32x4_splat(0);
#pragma clang loop unroll_count(2)  // not full: see the comment above
    for (int p = 0; p < kPairs; ++p) {
      const v128_t w = wasm_v128_load(pairs + p * kLanes);
      for (int t = 0; t < N; ++t)
        isum[t] = wasm_i32x4_add(isum[t], wasm_i32x4_dot_i16x8(w, wasm_v128_load32_splat(xb + p * N + t)));
    }
    const v128_t scale = wasm_v128_load(tile.scale + b * kLanes);
    for (int t = 0; t < N; ++t)
      acc[t] = wasm_f32x4_add(acc[t], wasm_f32x4_mul(wasm_f32x4_mul(wasm_f32x4_convert_i32x4(isum[t]), wasm_f32x4_splat(d[b * N + t])), scale));
    if constexpr (HasMin) {
      const v128_t min = wasm_v128_load(tile.min + b * kLanes);
      for (int t = 0; t < N; ++t) acc[t] = wasm_f32x4_add(acc[t], wasm_f32x4_mul(min, wasm_f32x4_splat(s[b * N + t])));
    }
  }
  for (int t = 0; t < N; ++t) {
    float* y = Y + (t0 + t) * ldy;
    if (lanes == kLanes) {
      wasm_v128_store(y, acc[t]);
    } else {
      float tmp[kLanes];
      wasm_v128_store(tmp, acc[t]);
      for (int i = 0; i < lanes; ++i) y[i] = tmp[i];
    }
  }
}

// 8 rows (micro-tiles a and b) x N tokens: two weight loads feed 2N dots per pair.
template <int N, bool HasMin>
__attribute__((noinline)) void micro_kernel8(const MicroTile& ta, const MicroTile& tb, const Tokens& X, std::int64_t n,
                                             std::int64_t t0, float* Y, std::int64_t ldy) {
  const std::int64_t nb = n / quant::QK;
  const std::int32_t* q = X.q + t0 * (n / 2);
  const float* d = X.d + t0 * nb;
  const float* s = X.s + t0 * nb;
  v128_t acc_a[N], acc_b[N];
  for (int t = 0; t < N; ++t) acc_a[t] = acc_b[t] = wasm_f32x4_splat(0.0f);
  for (std::int64_t b = 0; b < nb; ++b) {
    const std::int32_t* pa = ta.pairs + b * kPairs * kLanes;
    const std::int32_t* pb = tb.pairs + b * kPairs * kLanes;
    const std::int32_t* xb = q + b * kPairs * N;
    v128_t ia[N], ib[N];
    for (int t = 0; t < N; ++t) ia[t] = ib[t] = wasm_i32x4_splat(0);
#pragma clang loop unroll_count(2)
    for (int p = 0; p < kPairs; ++p) {
      const v128_t wa = wasm_v128_load(pa + p * kLanes), wb = wasm_v128_load(pb + p * kLanes);
      for (int t = 0; t < N; ++t) {
        const v128_t x = wasm_v128_load32_splat(xb + p * N + t);
        ia[t] = wasm_i32x4_add(ia[t], wasm_i32x4_dot_i16x8(wa, x));
        ib[t] = wasm_i32x4_add(ib[t], wasm_i32x4_dot_i16x8(wb, x));
      }
    }
    const v128_t sa = wasm_v128_load(ta.scale + b * kLanes), sb = wasm_v128_load(tb.scale + b * kLanes);
    for (int t = 0; t < N; ++t) {
      const v128_t dt = wasm_f32x4_splat(d[b * N + t]);
      acc_a[t] = wasm_f32x4_add(acc_a[t], wasm_f32x4_mul(wasm_f32x4_mul(wasm_f32x4_convert_i32x4(ia[t]), dt), sa));
      acc_b[t] = wasm_f32x4_add(acc_b[t], wasm_f32x4_mul(wasm_f32x4_mul(wasm_f32x4_convert_i32x4(ib[t]), dt), sb));
    }
    if constexpr (HasMin) {
      const v128_t ma = wasm_v128_load(ta.min + b * kLanes), mb = wasm_v128_load(tb.min + b * kLanes);
      for (int t = 0; t < N; ++t) {
        const v128_t st = wasm_f32x4_splat(s[b * N + t]);
        acc_a[t] = wasm_f32x4_add(acc_a[t], wasm_f32x4_mul(ma, st));
        acc_b[t] = wasm_f32x4_add(acc_b[t], wasm_f32x4_mul(mb, st));
      }
    }
  }
  for (int t = 0; t < N; ++t) {
    wasm_v128_store(Y + (t0 + t) * ldy, acc_a[t]);
    wasm_v128_store(Y + (t0 + t) * ldy + kLanes, acc_b[t]);
  }
}

// Tokens t0 .. t0 + N - 1 times a packed tile: its micro-tiles one after the other
// (the N tokens' rows stay in L1 across them).
template <int N, bool HasMin>
inline void token_group(const Scratch& s, std::int64_t nb, int rows, int groups, const Tokens& X, std::int64_t t0,
                        float* Y, std::int64_t ldy) {
  int g = 0;
  for (; g + 1 < groups && kLanes * (g + 2) <= rows; g += 2)
    micro_kernel8<N, HasMin>(micro_tile(s, nb, g), micro_tile(s, nb, g + 1), X, nb * quant::QK, t0, Y + kLanes * g, ldy);
  for (; g < groups; ++g)
    micro_kernel<N, HasMin>(micro_tile(s, nb, g), X, nb * quant::QK, t0, Y + kLanes * g, ldy,
                            std::min(kLanes, rows - kLanes * g));
}
// The last `left` (< N) tokens: the micro-kernel of width `left`.
template <int N, bool HasMin>
inline void token_rest(int left, const Scratch& s, std::int64_t nb, int rows, int groups, const Tokens& X,
                       std::int64_t t0, float* Y, std::int64_t ldy) {
  if constexpr (N > 1) {
    if (left == N - 1) return token_group<N - 1, HasMin>(s, nb, rows, groups, X, t0, Y, ldy);
    token_rest<N - 1, HasMin>(left, s, nb, rows, groups, X, t0, Y, ldy);
  }
}

// One packed tile times all T tokens: groups of kTokens, then one narrower group.
template <bool HasMin>
inline void tile_times_tokens(const Scratch& s, std::int64_t nb, int rows, int groups, const Tokens& X, std::int64_t T,
                              float* Y, std::int64_t ldy) {
  std::int64_t t0 = 0;
  for (; t0 + kTokens <= T; t0 += kTokens) token_group<kTokens, HasMin>(s, nb, rows, groups, X, t0, Y, ldy);
  token_rest<kTokens, HasMin>(int(T - t0), s, nb, rows, groups, X, t0, Y, ldy);
}

// Rows [r0, r1) of W times the T tokens x of pack_tokens (n columns).
inline void matmul_tokens(const Weight& W, const Tokens& x, std::int64_t T, float* Y, std::int64_t ldy, std::int64_t r0,
                          std::int64_t r1) {
  Scratch& s = scratch();
  const std::int64_t nb = W.cols / quant::QK;
  const bool with_min = has_min(W.dtype);
  for (std::int64_t r = r0; r < r1; r += kRows) {
    const int rows = int(std::min<std::int64_t>(kRows, r1 - r));
    const int groups = pack_tile(W, r, rows, s);
    if (with_min) tile_times_tokens<true>(s, nb, rows, groups, x, T, Y + r, ldy);
    else tile_times_tokens<false>(s, nb, rows, groups, x, T, Y + r, ldy);
  }
}

inline void matmul(const Weight& W, const Q16Matrix& X, float* Y, std::int64_t ldy, std::int64_t r0, std::int64_t r1) {
  thread_local TokenBuffers buffers;
  matmul_tokens(W, pack_tokens(X, buffers), X.T, Y, ldy, r0, r1);
}

}  // namespace wasm
}  // namespace q16gemm
#endif  // GEMMA3_HAVE_WASM_SIMD

// Y[t * ldy + r] = row r of W . token t, for t in [0, T), r in [r0, r1), with
// WebAssembly SIMD128 (the scalar twin where this build lacks -msimd128).
inline void matmul_q16_wasm(const Weight& W, const Q16Matrix& X, float* Y, std::int64_t ldy, std::int64_t r0,
                            std::int64_t r1) {
  q16gemm::check(W, X, r0, r1, "matmul_q16_wasm");
  if (X.T <= 0 || r0 >= r1) return;
#if GEMMA3_HAVE_WASM_SIMD
  return q16gemm::wasm::matmul(W, X, Y, ldy, r0, r1);
#endif
  matmul_q16_scalar(W, X, Y, ldy, r0, r1);
}

}  // namespace gemma3
