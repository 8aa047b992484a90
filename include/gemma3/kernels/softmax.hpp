// gemma3/kernels/softmax.hpp -- the exponentials of a softmax row.
//
//   exp_shift_sum(x, n, m):  x[i] = exp(x[i] - m) for i < n;  returns sum_i x[i]
//
// with m >= max_i x[i] (the row's maximum), so every argument is <= 0 and every
// result in [0, 1]. attention.hpp then divides the row by the sum.
// Twins: scalar (std::exp, the reference), AVX2 + FMA (8 lanes at a time with the
// range-reduced polynomial exp of kernels/exp.hpp, relative error <= 2e-7 against
// std::exp; the few tail values use std::exp) and WebAssembly SIMD128 (4 lanes, the
// same polynomial without FMA). They differ by float rounding only.
// Pinned by tests/test_kernels.cpp and tests/wasm/test_wasm_kernels.cpp.
#pragma once

#include <cmath>
#include <cstdint>

#include "dot.hpp"
#include "exp.hpp"
#include "isa.hpp"

namespace gemma3 {
namespace kernels {

inline float exp_shift_sum_scalar(float* x, std::int64_t n, float m) {
  float sum = 0.0f;
  for (std::int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    sum += x[i];
  }
  return sum;
}

#if GEMMA3_HAVE_X86_SIMD
GEMMA3_TARGET_AVX2 inline float exp_shift_sum_avx2(float* x, std::int64_t n, float m) {
  const __m256 mv = _mm256_set1_ps(m);
  __m256 acc = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = avx2::exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
    _mm256_storeu_ps(x + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s) + exp_shift_sum_scalar(x + i, n - i, m);
}
#endif

#if GEMMA3_HAVE_WASM_SIMD
inline float exp_shift_sum_wasm(float* x, std::int64_t n, float m) {
  const v128_t mv = wasm_f32x4_splat(m);
  v128_t acc = wasm_f32x4_splat(0.0f);
  std::int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const v128_t e = wasm::exp_nonpositive(wasm_f32x4_sub(wasm_v128_load(x + i), mv));
    wasm_v128_store(x + i, e);
    acc = wasm_f32x4_add(acc, e);
  }
  return wasm::hsum(acc) + exp_shift_sum_scalar(x + i, n - i, m);
}
#endif

}  // namespace kernels

// x[i] = exp(x[i] - m), returns the sum; m must be >= every x[i].
inline float exp_shift_sum(float* x, std::int64_t n, float m, Isa isa) {
#if GEMMA3_HAVE_X86_SIMD
  if (isa_has_avx2(isa)) return kernels::exp_shift_sum_avx2(x, n, m);
#endif
#if GEMMA3_HAVE_WASM_SIMD
  if (isa == Isa::wasm_simd128) return kernels::exp_shift_sum_wasm(x, n, m);
#endif
  (void)isa;
  return kernels::exp_shift_sum_scalar(x, n, m);
}
inline float exp_shift_sum(float* x, std::int64_t n, float m) { return exp_shift_sum(x, n, m, best_isa()); }

}  // namespace gemma3
