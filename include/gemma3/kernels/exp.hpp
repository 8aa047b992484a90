// gemma3/kernels/exp.hpp -- exp(x) for x <= 0, several lanes at a time (AVX2 + FMA, WASM SIMD128).
//
// The classic range reduction (Cephes expf):
//   x = n ln2 + r, n = round(x / ln2), |r| <= ln2 / 2, with ln2 split in two
//   (0.693359375, exact in 9 bits, + -2.12194440e-4) so that x - n ln2 stays accurate;
//   exp(r) = 1 + r + r^2 (1/2 + r/6 + ... ) by Cephes' degree-7 minimax polynomial;
//   2^n by writing n + 127 into the exponent bits.
// x is clamped to >= -88 first: there n = -127 puts 0 in the exponent bits, the bit
// pattern of +0, so the result is 0 (exp(-88) is below the smallest normal float anyway).
// Relative error <= 2e-7 against std::exp over x <= 0.
//
// Only arguments <= 0 are handled (results in [0, 1], never overflowing): both users
// need no more. kernels/gelu.hpp evaluates exp(-2|z|) for the GELU-tanh, and
// kernels/softmax.hpp exp(x - max) for a softmax row. The scalar twins of those kernels
// use std::exp / std::tanh. Pinned through them by tests/test_kernels.cpp (AVX2) and
// tests/wasm/test_wasm_kernels.cpp (SIMD128).
#pragma once

#include "isa.hpp"

namespace gemma3 {
namespace kernels {

// Constants of the range reduction and the polynomial (see the comment at the top).
namespace exp_constants {
constexpr float kExpMin = -88.0f;  // clamp: the result is 0 below it
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f;  // ln 2 = kLn2Hi + kLn2Lo
constexpr float kLn2Lo = -2.12194440e-4f;
// exp(r) ~ 1 + r + r^2 (p0 + p1 r + p2 r^2 + p3 r^3 + p4 r^4 + p5 r^5), |r| <= ln2 / 2
constexpr float kP0 = 5.0000001201e-1f, kP1 = 1.6666665459e-1f, kP2 = 4.1665795894e-2f;
constexpr float kP3 = 8.3334519073e-3f, kP4 = 1.3981999507e-3f, kP5 = 1.9875691500e-4f;
}  // namespace exp_constants

// ---- AVX2 + FMA ----
#if GEMMA3_HAVE_X86_SIMD
namespace avx2 {

// exp(x) for x <= 0 (x below -88 gives 0).
GEMMA3_TARGET_AVX2 inline __m256 exp_nonpositive(__m256 x) {
  using namespace exp_constants;
  x = _mm256_max_ps(x, _mm256_set1_ps(kExpMin));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);  // x - n ln2, in two steps
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kP5);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP0));
  const __m256 exp_r = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  const __m256i biased = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
  const __m256 two_n = _mm256_castsi256_ps(_mm256_slli_epi32(biased, 23));  // 2^n
  return _mm256_mul_ps(exp_r, two_n);
}

}  // namespace avx2
#endif

// ---- WASM SIMD128 (no FMA: multiply, then add) ----
#if GEMMA3_HAVE_WASM_SIMD
namespace wasm {

// exp(x) for x <= 0 (x below -88 gives 0).
inline v128_t exp_nonpositive(v128_t x) {
  using namespace exp_constants;
  x = wasm_f32x4_max(x, wasm_f32x4_splat(kExpMin));
  const v128_t n = wasm_f32x4_nearest(wasm_f32x4_mul(x, wasm_f32x4_splat(kLog2e)));
  v128_t r = wasm_f32x4_sub(x, wasm_f32x4_mul(n, wasm_f32x4_splat(kLn2Hi)));  // n ln2_hi is exact (<= 16 bits)
  r = wasm_f32x4_sub(r, wasm_f32x4_mul(n, wasm_f32x4_splat(kLn2Lo)));
  v128_t p = wasm_f32x4_splat(kP5);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(kP4));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(kP3));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(kP2));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(kP1));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(kP0));
  const v128_t exp_r =
      wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_mul(p, wasm_f32x4_mul(r, r)), r), wasm_f32x4_splat(1.0f));
  const v128_t biased = wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(n), wasm_i32x4_splat(127));
  return wasm_f32x4_mul(exp_r, wasm_i32x4_shl(biased, 23));  // exp(r) * 2^n
}

}  // namespace wasm
#endif

}  // namespace kernels
}  // namespace gemma3
