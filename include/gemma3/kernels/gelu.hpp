// gemma3/kernels/gelu.hpp -- the GeGLU activation: gate[i] = gelu_tanh(gate[i]) * up[i].
//
//   gelu_tanh(u) = 0.5 u (1 + tanh(z)),   z = sqrt(2/pi) (u + 0.044715 u^3)
//
// The scalar twin (gelu_tanh_mul_scalar) is that formula with std::tanh, the
// readable reference. The SIMD twins (AVX2 + FMA, 8 lanes; WASM SIMD128, 4 lanes)
// use the identity 0.5 (1 + tanh z) = 1 / (1 + exp(-2z)), written with
// e = exp(-2|z|), which lies in [0, 1] and so never overflows:
//
//   gelu_tanh(u) = u / (1 + e)        for u >= 0   (z has the sign of u)
//   gelu_tanh(u) = u e / (1 + e)      for u <  0
//
// e = exp(x) for x = -2|z| <= 0 is exp_nonpositive of kernels/exp.hpp (the Cephes expf
// range reduction and polynomial; x below -88 gives e = 0), shared with the softmax.
//
// Edge cases (both twins): no NaN or inf for finite u; huge u gives u, huge negative
// u gives -0 (e = 0); a NaN u gives NaN (u is a factor of the result); u = +inf gives
// +inf and u = -inf gives NaN (inf * 0, as in the scalar formula).
//
// Accuracy (relative error; 2^-24 = 6.0e-8), measured over every 1e-3 in [-30, 30]
// and every 16th float in [-12, 12] (AVX2; WASM SIMD128 every 256th, same figures
// to +-20%), where |gelu| >= 1e-30:
//   SIMD vs gelu_tanh in double      u >= 0: 1.4e-7   [-1, 0): 2.7e-7   [-3, -1): 8.1e-7
//                                    [-6, -3): 3.3e-6   [-9.3, -6): 9.7e-6
//   scalar twin vs the same          u >= 0: 1.6e-7   [-1, 0): 4.5e-7   [-3, -1): 1.3e-5
//                                    below -5.16: 0 instead of gelu (100%)
//   For u < 0 the error grows like |2z| 2^-24: z itself carries float rounding and
//   e = exp(-2|z|) magnifies it (any float evaluation of z does). The scalar twin is
//   worse there: 1 + tanh(z) cancels, an absolute error of up to ~|u| 2^-25, which
//   the SIMD twins avoid. Hence the test bound against the scalar twin,
//   |simd - scalar| <= 4e-7 |scalar| + 2^-24 |u| (worst case measured: 0.83 of it),
//   and against double, 4e-7 relative plus 3 |2z| 2^-24 for u < 0.
// Speed (bench/bench_ops BM_gelu_tanh_mul, n = 512 x 6912, AMD Zen 4): scalar twin
//   64 ms (std::tanh), AVX2 2.2 ms (29x) on one thread, 1.4 ms split over two.
//
// gelu_tanh_mul(gate, up, n, isa) runs one twin on the calling thread;
// gelu_tanh_mul(gate, up, n, isa, pool) splits n over a pool (CpuBackend's);
// gelu_tanh_mul(gate, up, n) uses best_isa() and default_pool(). Every element is computed the same way wherever a split or a
// tail falls (the last < 8 elements go through the same vector code via a small
// buffer), so the result does not depend on the thread count.
// Used by CpuBackend (backends/cpu.hpp) for the GeGLU of mlp.hpp. Pinned by tests/test_kernels.cpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "exp.hpp"
#include "isa.hpp"
#include "thread_pool.hpp"

namespace gemma3 {

inline float gelu_tanh(float u) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
  return 0.5f * u * (1.0f + std::tanh(k * (u + 0.044715f * u * u * u)));
}

namespace kernels {

// Constants of the SIMD twins (see the comment at the top; exp's are in kernels/exp.hpp).
namespace gelu_constants {
constexpr float kSqrt2OverPi = 0.7978845608028654f;       // sqrt(2 / pi)
constexpr float kCubic = 0.7978845608028654f * 0.044715f;  // sqrt(2 / pi) * 0.044715
}  // namespace gelu_constants

// ---- scalar twin ----

inline void gelu_tanh_mul_scalar(float* gate, const float* up, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) gate[i] = gelu_tanh(gate[i]) * up[i];
}

// ---- AVX2 + FMA ----
#if GEMMA3_HAVE_X86_SIMD
namespace avx2 {

// gelu_tanh(u) * up for 8 lanes.
GEMMA3_TARGET_AVX2 inline __m256 gelu_tanh_mul8(__m256 u, __m256 up) {
  using namespace gelu_constants;
  const __m256 z = _mm256_mul_ps(u, _mm256_fmadd_ps(_mm256_mul_ps(u, u), _mm256_set1_ps(kCubic),
                                                    _mm256_set1_ps(kSqrt2OverPi)));
  const __m256 abs_z = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), z);
  const __m256 e = exp_nonpositive(_mm256_mul_ps(abs_z, _mm256_set1_ps(-2.0f)));
  const __m256 u_nonnegative = _mm256_cmp_ps(u, _mm256_setzero_ps(), _CMP_GE_OQ);
  const __m256 numerator = _mm256_blendv_ps(_mm256_mul_ps(u, e), u, u_nonnegative);
  const __m256 gelu = _mm256_div_ps(numerator, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
  return _mm256_mul_ps(gelu, up);
}

}  // namespace avx2

GEMMA3_TARGET_AVX2 inline void gelu_tanh_mul_avx2(float* gate, const float* up, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(gate + i, avx2::gelu_tanh_mul8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  if (i < n) {  // the tail, through the same vector code
    float g[8] = {0}, u[8] = {0};
    std::copy(gate + i, gate + n, g);
    std::copy(up + i, up + n, u);
    _mm256_storeu_ps(g, avx2::gelu_tanh_mul8(_mm256_loadu_ps(g), _mm256_loadu_ps(u)));
    std::copy(g, g + (n - i), gate + i);
  }
}
#endif

// ---- WASM SIMD128 (no FMA: multiply, then add) ----
#if GEMMA3_HAVE_WASM_SIMD
namespace wasm {

// gelu_tanh(u) * up for 4 lanes.
inline v128_t gelu_tanh_mul4(v128_t u, v128_t up) {
  using namespace gelu_constants;
  const v128_t poly = wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_mul(u, u), wasm_f32x4_splat(kCubic)),
                                     wasm_f32x4_splat(kSqrt2OverPi));
  const v128_t z = wasm_f32x4_mul(u, poly);
  const v128_t e = exp_nonpositive(wasm_f32x4_mul(wasm_f32x4_abs(z), wasm_f32x4_splat(-2.0f)));
  const v128_t u_nonnegative = wasm_f32x4_ge(u, wasm_f32x4_splat(0.0f));
  const v128_t numerator = wasm_v128_bitselect(u, wasm_f32x4_mul(u, e), u_nonnegative);
  const v128_t gelu = wasm_f32x4_div(numerator, wasm_f32x4_add(wasm_f32x4_splat(1.0f), e));
  return wasm_f32x4_mul(gelu, up);
}

}  // namespace wasm

inline void gelu_tanh_mul_wasm(float* gate, const float* up, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(gate + i, wasm::gelu_tanh_mul4(wasm_v128_load(gate + i), wasm_v128_load(up + i)));
  if (i < n) {  // the tail, through the same vector code
    float g[4] = {0}, u[4] = {0};
    std::copy(gate + i, gate + n, g);
    std::copy(up + i, up + n, u);
    wasm_v128_store(g, wasm::gelu_tanh_mul4(wasm_v128_load(g), wasm_v128_load(u)));
    std::copy(g, g + (n - i), gate + i);
  }
}
#endif

}  // namespace kernels

// gate[i] = gelu_tanh(gate[i]) * up[i] with the twin for `isa`, on the calling thread.
inline void gelu_tanh_mul(float* gate, const float* up, std::int64_t n, Isa isa) {
#if GEMMA3_HAVE_X86_SIMD
  if (isa_has_avx2(isa)) return kernels::gelu_tanh_mul_avx2(gate, up, n);
#endif
#if GEMMA3_HAVE_WASM_SIMD
  if (isa == Isa::wasm_simd128) return kernels::gelu_tanh_mul_wasm(gate, up, n);
#endif
  (void)isa;
  kernels::gelu_tanh_mul_scalar(gate, up, n);
}

// gate[i] = gelu_tanh(gate[i]) * up[i] with `isa`, split over `pool`.
inline void gelu_tanh_mul(float* gate, const float* up, std::int64_t n, Isa isa, ThreadPool& pool) {
  constexpr std::int64_t kGrain = 16384;  // elements per chunk at least: ~10 us of work
  pool.parallel_for(0, n, [&](std::int64_t b, std::int64_t e) { gelu_tanh_mul(gate + b, up + b, e - b, isa); },
                    kGrain);
}
// ... with best_isa(), split over default_pool().
inline void gelu_tanh_mul(float* gate, const float* up, std::int64_t n) {
  gelu_tanh_mul(gate, up, n, best_isa(), default_pool());
}

}  // namespace gemma3
