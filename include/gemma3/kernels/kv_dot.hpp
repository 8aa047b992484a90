// gemma3/kernels/kv_dot.hpp -- the two inner products of decode attention, over the
// key and value rows of a KV cache (float32 or float16).
//
//   kv_scores:   s[r * ld + j]  = sum_c q[r * D + c] * K[j, c]       r < rows, j < n
//   kv_weighted: acc[r * D + c] += sum_j p[r * ld + j] * V[j, c]     j0 <= j < j1
//
// q [rows, D] are the query heads that share one kv head (attention.hpp stacks them),
// p [rows, ld] their softmax weights, acc [rows, D] a partial output. K and V are the
// cache's rows: row j at `base + j * stride` values, each float32 or float16 (IEEE
// half, widened exactly). attention.hpp spreads the keys over the thread pool and
// calls these on its share; every output is computed the same way whatever the share.
//
// Twins: scalar (plain loops, one float accumulator per output: the reference) and
// AVX2 + FMA (+ F16C for float16 rows). The AVX2 twin takes up to four query rows
// and two keys at a time, reading each key and value row once per four query rows, in
// order, and prefetches the rows 8 ahead. It needs D % 8 == 0 (every Gemma 3
// head_dim: 256, 128); other D take the scalar twin. It adds in another order, so it
// equals the scalar twin to float rounding, not bit for bit. SIMD128 (WebAssembly,
// D % 4 == 0): up to four query rows against two key rows, four lanes of partial sums
// each (float rounding of the scalar twin; the scalar's one serial sum per output, which
// the compiler may not reorder, ran a 1B-shaped decode at ~640 positions 15 % slower
// under node); kv_weighted keeps four rows x 8 columns of acc in registers while a
// tile of 32 value rows goes by, adding in the scalar twin's order: bit for bit equal
// (D % 8 == 4: one row at a time). Other D run the scalar loops with SIMD128 widening.
// The CPU backend also runs a prompt's attention on the SIMD128 twins
// (backends/cpu.hpp, many_queries_scores): against one key row at a time and the rows
// one at a time, one layer's prompt attention (1B shape, 512 tokens) took 28 ms under
// node, one thread; with this blocking, 18 ms (Eigen's scalar GEMM: 27-31 ms).
// Pinned by tests/test_attention_decode.cpp, and tests/wasm/test_wasm_kernels.cpp for
// the SIMD128 twins.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "dot.hpp"
#include "../dtype.hpp"
#include "isa.hpp"

namespace gemma3 {
namespace kernels {

// ---- scalar twins ----
// A float16 row is widened once into a float32 scratch row (by `widen`: the scalar
// twin's, or WebAssembly's SIMD one), then the loops are plain float loops.

using WidenFn = void (*)(const void* w, float* y, std::int64_t n);

inline const float* kv_row_f32(DType t, const void* base, std::int64_t stride, std::int64_t j, std::int64_t D,
                               WidenFn widen, float* buf) {
  const void* row = static_cast<const unsigned char*>(base) + std::size_t(j * stride) * dtype_size(t);
  if (t == DType::F32) return static_cast<const float*>(row);
  widen(row, buf, D);
  return buf;
}

inline void kv_scores_plain(const float* q, std::int64_t rows, std::int64_t D, DType t, const void* keys,
                            std::int64_t stride, std::int64_t n, float* s, std::int64_t ld, WidenFn widen) {
  std::vector<float> buf(std::size_t(t == DType::F32 ? 0 : D));
  for (std::int64_t j = 0; j < n; ++j) {
    const float* k = kv_row_f32(t, keys, stride, j, D, widen, buf.data());
    for (std::int64_t r = 0; r < rows; ++r) {
      float acc = 0.0f;
      for (std::int64_t c = 0; c < D; ++c) acc += q[r * D + c] * k[c];
      s[r * ld + j] = acc;
    }
  }
}

inline void kv_weighted_plain(const float* p, std::int64_t ld, std::int64_t rows, std::int64_t D, DType t,
                              const void* values, std::int64_t stride, std::int64_t j0, std::int64_t j1, float* acc,
                              WidenFn widen) {
  std::vector<float> buf(std::size_t(t == DType::F32 ? 0 : D));
  for (std::int64_t j = j0; j < j1; ++j) {
    const float* v = kv_row_f32(t, values, stride, j, D, widen, buf.data());
    for (std::int64_t r = 0; r < rows; ++r) {
      const float pj = p[r * ld + j];
      for (std::int64_t c = 0; c < D; ++c) acc[r * D + c] += pj * v[c];
    }
  }
}

inline void kv_scores_scalar(const float* q, std::int64_t rows, std::int64_t D, DType t, const void* keys,
                             std::int64_t stride, std::int64_t n, float* s, std::int64_t ld) {
  kv_scores_plain(q, rows, D, t, keys, stride, n, s, ld, widen_f16_scalar);
}
inline void kv_weighted_scalar(const float* p, std::int64_t ld, std::int64_t rows, std::int64_t D, DType t,
                               const void* values, std::int64_t stride, std::int64_t j0, std::int64_t j1, float* acc) {
  kv_weighted_plain(p, ld, rows, D, t, values, stride, j0, j1, acc, widen_f16_scalar);
}

// f(std::integral_constant<int, NR>{}, r0) over the query rows in groups of four:
// rows r0 .. r0 + NR - 1, NR = 1..4 (the SIMD twins' register blocking).
template <class F>
inline void kv_row_groups(std::int64_t rows, F&& f) {
  for (std::int64_t r0 = 0; r0 < rows; r0 += 4) {
    switch (std::min<std::int64_t>(4, rows - r0)) {
      case 1: f(std::integral_constant<int, 1>{}, r0); break;
      case 2: f(std::integral_constant<int, 2>{}, r0); break;
      case 3: f(std::integral_constant<int, 3>{}, r0); break;
      default: f(std::integral_constant<int, 4>{}, r0); break;
    }
  }
}

// Row j of a cache's float16 (F16) or float32 rows, `stride` values apart.
template <bool F16>
inline const void* kv_row_at(const void* base, std::int64_t stride, std::int64_t j) {
  return static_cast<const unsigned char*>(base) + std::size_t(j * stride) * (F16 ? 2 : 4);
}

// ---- AVX2 + FMA + F16C ----
#if GEMMA3_HAVE_X86_SIMD
namespace avx2 {

template <bool F16>
GEMMA3_TARGET_AVX2 inline __m256 kv_load8(const void* row, std::int64_t c) {
  if (F16) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const std::uint16_t*>(row) + c)));
  return _mm256_loadu_ps(static_cast<const float*>(row) + c);
}

// Rows j and j + 1 (those below end) into L2, 8 rows ahead of use. Long caches stream
// from memory, where the hardware prefetcher alone kept these loops at 12-15 GB/s
// (2 threads, 128 MB of float32 rows); with this, 30 GB/s, what a plain streaming read
// of the same buffer reaches (8 rows into L1: 17-25 GB/s; 16 rows into L2: 26-30).
constexpr std::int64_t kPrefetchRows = 8;
template <bool F16>
GEMMA3_TARGET_AVX2 inline void kv_prefetch_pair(const void* base, std::int64_t stride, std::int64_t D, std::int64_t j,
                                                std::int64_t end) {
  for (std::int64_t r = j; r < std::min(j + 2, end); ++r) {
    const char* p = static_cast<const char*>(kv_row_at<F16>(base, stride, r));
    for (std::int64_t b = 0; b < D * std::int64_t(F16 ? 2 : 4); b += 64) _mm_prefetch(p + b, _MM_HINT_T1);
  }
}

// s[i * ld] = the sum of a_i's 8 lanes, i < NR.
template <int NR>
GEMMA3_TARGET_AVX2 inline void kv_store_sums(__m256 a0, __m256 a1, __m256 a2, __m256 a3, float* s, std::int64_t ld) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  alignas(16) float sum[4];
  _mm_store_ps(sum, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
  for (int i = 0; i < NR; ++i) s[i * ld] = sum[i];
}

// a += q[0..7] * x0, b += q[0..7] * x1
GEMMA3_TARGET_AVX2 inline void kv_fma_pair(const float* q, __m256 x0, __m256 x1, __m256& a, __m256& b) {
  const __m256 qc = _mm256_loadu_ps(q);
  a = _mm256_fmadd_ps(qc, x0, a);
  b = _mm256_fmadd_ps(qc, x1, b);
}

// NR (1..4) query rows and two keys at a time: each key row is read once for the NR
// rows, each query chunk once for the two keys; the NR sums of a key are reduced
// together.
// (Written out register by register: with arrays of __m256, GCC -O2 keeps the
// accumulators on the stack.)
template <bool F16, int NR>
GEMMA3_TARGET_AVX2 inline void kv_scores_rows(const float* q, std::int64_t D, const void* keys, std::int64_t stride,
                                              std::int64_t n, float* s, std::int64_t ld) {
  const float* q0 = q;
  const float* q1 = q + (NR > 1 ? 1 : 0) * D;
  const float* q2 = q + (NR > 2 ? 2 : 0) * D;
  const float* q3 = q + (NR > 3 ? 3 : 0) * D;
  std::int64_t j = 0;
  for (; j + 1 < n; j += 2) {
    const void* k0 = kv_row_at<F16>(keys, stride, j);
    const void* k1 = kv_row_at<F16>(keys, stride, j + 1);
    kv_prefetch_pair<F16>(keys, stride, D, j + kPrefetchRows, n);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    for (std::int64_t c = 0; c < D; c += 8) {
      const __m256 x0 = kv_load8<F16>(k0, c), x1 = kv_load8<F16>(k1, c);
      kv_fma_pair(q0 + c, x0, x1, a0, b0);
      if (NR > 1) kv_fma_pair(q1 + c, x0, x1, a1, b1);
      if (NR > 2) kv_fma_pair(q2 + c, x0, x1, a2, b2);
      if (NR > 3) kv_fma_pair(q3 + c, x0, x1, a3, b3);
    }
    kv_store_sums<NR>(a0, a1, a2, a3, s + j, ld);
    kv_store_sums<NR>(b0, b1, b2, b3, s + j + 1, ld);
  }
  if (j < n) {
    const void* k0 = kv_row_at<F16>(keys, stride, j);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (std::int64_t c = 0; c < D; c += 8) {
      const __m256 x0 = kv_load8<F16>(k0, c);
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q0 + c), x0, a0);
      if (NR > 1) a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q1 + c), x0, a1);
      if (NR > 2) a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q2 + c), x0, a2);
      if (NR > 3) a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q3 + c), x0, a3);
    }
    kv_store_sums<NR>(a0, a1, a2, a3, s + j, ld);
  }
}

template <bool F16>
GEMMA3_TARGET_AVX2 inline void kv_scores(const float* q, std::int64_t rows, std::int64_t D, const void* keys,
                                         std::int64_t stride, std::int64_t n, float* s, std::int64_t ld) {
  kv_row_groups(rows, [&](auto nr, std::int64_t r0) {
    kv_scores_rows<F16, decltype(nr)::value>(q + r0 * D, D, keys, stride, n, s + r0 * ld, ld);
  });
}

// NR (1..4) query rows and two value rows at a time, walking the value rows in order
// (they stream from memory); the NR partial sums [NR, D] stay in L1.
template <bool F16, int NR>
GEMMA3_TARGET_AVX2 inline void kv_weighted_rows(const float* p, std::int64_t ld, std::int64_t D, const void* values,
                                                std::int64_t stride, std::int64_t j0, std::int64_t j1, float* acc) {
  float* o0 = acc;
  float* o1 = acc + (NR > 1 ? 1 : 0) * D;
  float* o2 = acc + (NR > 2 ? 2 : 0) * D;
  float* o3 = acc + (NR > 3 ? 3 : 0) * D;
  const float* p0 = p;
  const float* p1 = p + (NR > 1 ? 1 : 0) * ld;
  const float* p2 = p + (NR > 2 ? 2 : 0) * ld;
  const float* p3 = p + (NR > 3 ? 3 : 0) * ld;
  // o[c..c+7] += w * x0 + u * x1
  const auto step = [](float* o, __m256 w, __m256 x0, __m256 u, __m256 x1) GEMMA3_TARGET_AVX2 {
    _mm256_storeu_ps(o, _mm256_fmadd_ps(u, x1, _mm256_fmadd_ps(w, x0, _mm256_loadu_ps(o))));
  };
  std::int64_t j = j0;
  for (; j + 1 < j1; j += 2) {
    const void* v0 = kv_row_at<F16>(values, stride, j);
    const void* v1 = kv_row_at<F16>(values, stride, j + 1);
    kv_prefetch_pair<F16>(values, stride, D, j + kPrefetchRows, j1);
    const __m256 w0 = _mm256_broadcast_ss(p0 + j), u0 = _mm256_broadcast_ss(p0 + j + 1);
    const __m256 w1 = _mm256_broadcast_ss(p1 + j), u1 = _mm256_broadcast_ss(p1 + j + 1);
    const __m256 w2 = _mm256_broadcast_ss(p2 + j), u2 = _mm256_broadcast_ss(p2 + j + 1);
    const __m256 w3 = _mm256_broadcast_ss(p3 + j), u3 = _mm256_broadcast_ss(p3 + j + 1);
    for (std::int64_t c = 0; c < D; c += 8) {
      const __m256 x0 = kv_load8<F16>(v0, c), x1 = kv_load8<F16>(v1, c);
      step(o0 + c, w0, x0, u0, x1);
      if (NR > 1) step(o1 + c, w1, x0, u1, x1);
      if (NR > 2) step(o2 + c, w2, x0, u2, x1);
      if (NR > 3) step(o3 + c, w3, x0, u3, x1);
    }
  }
  if (j < j1) {  // the last value row, weight 0 for the missing second one
    const void* v0 = kv_row_at<F16>(values, stride, j);
    const __m256 w0 = _mm256_broadcast_ss(p0 + j), w1 = _mm256_broadcast_ss(p1 + j);
    const __m256 w2 = _mm256_broadcast_ss(p2 + j), w3 = _mm256_broadcast_ss(p3 + j);
    const __m256 zero = _mm256_setzero_ps();
    for (std::int64_t c = 0; c < D; c += 8) {
      const __m256 x0 = kv_load8<F16>(v0, c);
      step(o0 + c, w0, x0, zero, zero);
      if (NR > 1) step(o1 + c, w1, x0, zero, zero);
      if (NR > 2) step(o2 + c, w2, x0, zero, zero);
      if (NR > 3) step(o3 + c, w3, x0, zero, zero);
    }
  }
}

template <bool F16>
GEMMA3_TARGET_AVX2 inline void kv_weighted(const float* p, std::int64_t ld, std::int64_t rows, std::int64_t D,
                                           const void* values, std::int64_t stride, std::int64_t j0, std::int64_t j1,
                                           float* acc) {
  kv_row_groups(rows, [&](auto nr, std::int64_t r0) {
    kv_weighted_rows<F16, decltype(nr)::value>(p + r0 * ld, ld, D, values, stride, j0, j1, acc + r0 * D);
  });
}

}  // namespace avx2

GEMMA3_TARGET_AVX2 inline void kv_scores_avx2(const float* q, std::int64_t rows, std::int64_t D, DType t, const void* keys,
                                              std::int64_t stride, std::int64_t n, float* s, std::int64_t ld) {
  if (t == DType::F16) avx2::kv_scores<true>(q, rows, D, keys, stride, n, s, ld);
  else avx2::kv_scores<false>(q, rows, D, keys, stride, n, s, ld);
}
GEMMA3_TARGET_AVX2 inline void kv_weighted_avx2(const float* p, std::int64_t ld, std::int64_t rows, std::int64_t D, DType t,
                                                const void* values, std::int64_t stride, std::int64_t j0, std::int64_t j1,
                                                float* acc) {
  if (t == DType::F16) avx2::kv_weighted<true>(p, ld, rows, D, values, stride, j0, j1, acc);
  else avx2::kv_weighted<false>(p, ld, rows, D, values, stride, j0, j1, acc);
}
#endif

// ---- WebAssembly SIMD128 ----
#if GEMMA3_HAVE_WASM_SIMD
namespace wasm {

template <bool F16>
inline v128_t kv_load4(const void* row, std::int64_t c) {
  if (F16) return kernels::wasm::load_f16(static_cast<const std::uint16_t*>(row) + c);
  return wasm_v128_load(static_cast<const float*>(row) + c);
}

// NR (1..4) query rows against K (1 or 2) key rows j .. j + K - 1: four lanes of
// partial sums per query row and key, added across the lanes at the end (no FMA in
// SIMD128: multiply, then add). Each score is the same operations whatever K.
template <bool F16, int NR, int K>
inline void kv_scores_keys(const float* q, std::int64_t D, const void* keys, std::int64_t stride, std::int64_t j,
                           float* s, std::int64_t ld) {
  const void* k[K];
  for (int i = 0; i < K; ++i) k[i] = kv_row_at<F16>(keys, stride, j + i);
  v128_t a[NR][K];
  for (int r = 0; r < NR; ++r)
    for (int i = 0; i < K; ++i) a[r][i] = wasm_f32x4_splat(0.0f);
  for (std::int64_t c = 0; c < D; c += 4) {
    v128_t x[K];
    for (int i = 0; i < K; ++i) x[i] = kv_load4<F16>(k[i], c);
    for (int r = 0; r < NR; ++r) {
      const v128_t qr = wasm_v128_load(q + r * D + c);
      for (int i = 0; i < K; ++i) a[r][i] = wasm_f32x4_add(a[r][i], wasm_f32x4_mul(qr, x[i]));
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int i = 0; i < K; ++i) s[r * ld + j + i] = kernels::wasm::hsum(a[r][i]);
}
// Two key rows per pass (eight accumulators at NR = 4: V8 keeps 15 of x64's 16 xmm
// registers for wasm), one for an odd last key.
template <bool F16, int NR>
inline void kv_scores_rows(const float* q, std::int64_t D, const void* keys, std::int64_t stride, std::int64_t n,
                           float* s, std::int64_t ld) {
  std::int64_t j = 0;
  for (; j + 2 <= n; j += 2) kv_scores_keys<F16, NR, 2>(q, D, keys, stride, j, s, ld);
  if (j < n) kv_scores_keys<F16, NR, 1>(q, D, keys, stride, j, s, ld);
}
template <bool F16>
inline void kv_scores(const float* q, std::int64_t rows, std::int64_t D, const void* keys, std::int64_t stride,
                      std::int64_t n, float* s, std::int64_t ld) {
  kv_row_groups(rows, [&](auto nr, std::int64_t r0) {
    kv_scores_rows<F16, decltype(nr)::value>(q + r0 * D, D, keys, stride, n, s + r0 * ld, ld);
  });
}

// acc[r, c] += p[r, j] * V[j, c], j in order, each output with the scalar twin's
// operations in the scalar twin's order (a multiply, then an add): bit for bit equal.
// NR (1..4) rows x 8 columns stay in registers while the rows j of a tile of 32 go
// by (the tile's value rows stay in L1 across the D / 8 column blocks), and a
// float16 value is widened once for the NR rows. D % 8 == 0.
constexpr std::int64_t kWeightedTile = 32;
template <bool F16, int NR>
inline void kv_weighted_rows(const float* p, std::int64_t ld, std::int64_t D, const void* values, std::int64_t stride,
                             std::int64_t j0, std::int64_t j1, float* acc) {
  for (std::int64_t t0 = j0; t0 < j1; t0 += kWeightedTile) {
    const std::int64_t t1 = std::min(j1, t0 + kWeightedTile);
    for (std::int64_t c = 0; c < D; c += 8) {
      v128_t o[NR][2];
      for (int r = 0; r < NR; ++r) {
        o[r][0] = wasm_v128_load(acc + r * D + c);
        o[r][1] = wasm_v128_load(acc + r * D + c + 4);
      }
      for (std::int64_t j = t0; j < t1; ++j) {
        const void* v = kv_row_at<F16>(values, stride, j);
        const v128_t v0 = kv_load4<F16>(v, c), v1 = kv_load4<F16>(v, c + 4);
        for (int r = 0; r < NR; ++r) {
          const v128_t w = wasm_v128_load32_splat(p + r * ld + j);
          o[r][0] = wasm_f32x4_add(o[r][0], wasm_f32x4_mul(w, v0));
          o[r][1] = wasm_f32x4_add(o[r][1], wasm_f32x4_mul(w, v1));
        }
      }
      for (int r = 0; r < NR; ++r) {
        wasm_v128_store(acc + r * D + c, o[r][0]);
        wasm_v128_store(acc + r * D + c + 4, o[r][1]);
      }
    }
  }
}
template <bool F16>
inline void kv_weighted(const float* p, std::int64_t ld, std::int64_t rows, std::int64_t D, const void* values,
                        std::int64_t stride, std::int64_t j0, std::int64_t j1, float* acc) {
  if (D % 8 == 0)
    return kv_row_groups(rows, [&](auto nr, std::int64_t r0) {
      kv_weighted_rows<F16, decltype(nr)::value>(p + r0 * ld, ld, D, values, stride, j0, j1, acc + r0 * D);
    });
  for (std::int64_t j = j0; j < j1; ++j) {  // D % 8 == 4: the rows one at a time
    const void* v = kv_row_at<F16>(values, stride, j);
    for (std::int64_t r = 0; r < rows; ++r) {
      const v128_t w = wasm_f32x4_splat(p[r * ld + j]);
      float* o = acc + r * D;
      for (std::int64_t c = 0; c < D; c += 4)
        wasm_v128_store(o + c, wasm_f32x4_add(wasm_v128_load(o + c), wasm_f32x4_mul(w, kv_load4<F16>(v, c))));
    }
  }
}

}  // namespace wasm

inline void kv_scores_wasm(const float* q, std::int64_t rows, std::int64_t D, DType t, const void* keys,
                           std::int64_t stride, std::int64_t n, float* s, std::int64_t ld) {
  if (t == DType::F16) wasm::kv_scores<true>(q, rows, D, keys, stride, n, s, ld);
  else wasm::kv_scores<false>(q, rows, D, keys, stride, n, s, ld);
}
inline void kv_weighted_wasm(const float* p, std::int64_t ld, std::int64_t rows, std::int64_t D, DType t,
                             const void* values, std::int64_t stride, std::int64_t j0, std::int64_t j1, float* acc) {
  if (t == DType::F16) wasm::kv_weighted<true>(p, ld, rows, D, values, stride, j0, j1, acc);
  else wasm::kv_weighted<false>(p, ld, rows, D, values, stride, j0, j1, acc);
}
#endif

// The twin for an Isa (avx512 runs the avx2 one: on Zen 4 a 512-bit FMA costs two
// 256-bit ones, and these loops are FMA-bound).
inline void kv_scores(Isa isa, const float* q, std::int64_t rows, std::int64_t D, DType t, const void* keys,
                      std::int64_t stride, std::int64_t n, float* s, std::int64_t ld) {
#if GEMMA3_HAVE_X86_SIMD
  if (isa_has_avx2(isa) && D % 8 == 0) return kv_scores_avx2(q, rows, D, t, keys, stride, n, s, ld);
#endif
#if GEMMA3_HAVE_WASM_SIMD
  if (isa == Isa::wasm_simd128) {
    if (D % 4 == 0) return kv_scores_wasm(q, rows, D, t, keys, stride, n, s, ld);
    return kv_scores_plain(q, rows, D, t, keys, stride, n, s, ld, widen_f16_wasm);
  }
#endif
  (void)isa;
  kv_scores_scalar(q, rows, D, t, keys, stride, n, s, ld);
}
inline void kv_weighted(Isa isa, const float* p, std::int64_t ld, std::int64_t rows, std::int64_t D, DType t,
                        const void* values, std::int64_t stride, std::int64_t j0, std::int64_t j1, float* acc) {
#if GEMMA3_HAVE_X86_SIMD
  if (isa_has_avx2(isa) && D % 8 == 0) return kv_weighted_avx2(p, ld, rows, D, t, values, stride, j0, j1, acc);
#endif
#if GEMMA3_HAVE_WASM_SIMD
  if (isa == Isa::wasm_simd128) {
    if (D % 4 == 0) return kv_weighted_wasm(p, ld, rows, D, t, values, stride, j0, j1, acc);
    return kv_weighted_plain(p, ld, rows, D, t, values, stride, j0, j1, acc, widen_f16_wasm);
  }
#endif
  (void)isa;
  kv_weighted_scalar(p, ld, rows, D, t, values, stride, j0, j1, acc);
}

}  // namespace kernels
}  // namespace gemma3
