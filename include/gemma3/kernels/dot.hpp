// gemma3/kernels/dot.hpp -- dot products of one stored row with float32 x, and row
// widening, for the plain dtypes (f32, bf16, f16).
//
//   dot_<dtype>(w, x, n) = sum_i float(w[i]) * x[i]
//   widen_<dtype>(w, y, n): y[i] = float(w[i])              (exact)
//   narrow_f16(x, w, n):    w[i] = f16(x[i])   round to nearest, ties to even (the KV
//                           cache's float16 rows, kv_cache.hpp)
//
// Each in three twins: scalar (one float accumulator, the readable reference),
// AVX2 + FMA (4 x 8 lanes; bf16 widened by a 16-bit left shift, f16 by F16C's
// _mm256_cvtph_ps), WASM SIMD128 (4 x 4 lanes; bf16 by shift; f16 by moving the
// magnitude bits into place and multiplying by 2^112, exact for finite values).
// The SIMD twins add in another order, so they equal the scalar one to float
// rounding, not bit for bit.
// The quantized types live in quant/; matmul.hpp picks a kernel per dtype and Isa.
// Pinned by tests/test_quant.cpp (twins) and tests/test_kernels.cpp (matvec).
#pragma once

#include <cstdint>
#include <cstring>

#include "../dtype.hpp"
#include "isa.hpp"

namespace gemma3 {
namespace kernels {

// ---- scalar twins ----

inline float dot_f32_scalar(const void* w, const float* x, std::int64_t n) {
  const float* p = static_cast<const float*>(w);
  float s = 0.0f;
  for (std::int64_t i = 0; i < n; ++i) s += p[i] * x[i];
  return s;
}
inline float dot_bf16_scalar(const void* w, const float* x, std::int64_t n) {
  const auto* p = static_cast<const std::uint16_t*>(w);
  float s = 0.0f;
  for (std::int64_t i = 0; i < n; ++i) s += bf16_to_f32(p[i]) * x[i];
  return s;
}
inline float dot_f16_scalar(const void* w, const float* x, std::int64_t n) {
  const auto* p = static_cast<const std::uint16_t*>(w);
  float s = 0.0f;
  for (std::int64_t i = 0; i < n; ++i) s += f16_to_f32(p[i]) * x[i];
  return s;
}
inline void widen_bf16_scalar(const void* w, float* y, std::int64_t n) {
  const auto* p = static_cast<const std::uint16_t*>(w);
  for (std::int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(p[i]);
}
inline void widen_f16_scalar(const void* w, float* y, std::int64_t n) {
  const auto* p = static_cast<const std::uint16_t*>(w);
  for (std::int64_t i = 0; i < n; ++i) y[i] = f16_to_f32(p[i]);
}
inline void narrow_f16_scalar(const float* x, void* w, std::int64_t n) {
  auto* p = static_cast<std::uint16_t*>(w);
  for (std::int64_t i = 0; i < n; ++i) p[i] = f32_to_f16(x[i]);
}

// ---- AVX2 + FMA (+ F16C) ----
#if GEMMA3_HAVE_X86_SIMD
namespace avx2 {

GEMMA3_TARGET_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
// 8 bf16 -> 8 f32: zero-extend to 32 bits, shift into the top half.
GEMMA3_TARGET_AVX2 inline __m256 load_bf16(const std::uint16_t* p) {
  return _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
}
GEMMA3_TARGET_AVX2 inline __m256 load_f16(const std::uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
GEMMA3_TARGET_AVX2 inline __m256 load_f32(const float* p) { return _mm256_loadu_ps(p); }

// One body for the three dtypes: Load widens 8 stored values to 8 floats.
template <class T, __m256 (*Load)(const T*), float (*Widen)(T)>
GEMMA3_TARGET_AVX2 inline float dot(const T* w, const float* x, std::int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_fmadd_ps(Load(w + i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(Load(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
    a2 = _mm256_fmadd_ps(Load(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
    a3 = _mm256_fmadd_ps(Load(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
  }
  for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(Load(w + i), _mm256_loadu_ps(x + i), a0);
  float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; i < n; ++i) s += Widen(w[i]) * x[i];
  return s;
}
inline float id_f32(float v) { return v; }

}  // namespace avx2

GEMMA3_TARGET_AVX2 inline float dot_f32_avx2(const void* w, const float* x, std::int64_t n) {
  return avx2::dot<float, avx2::load_f32, avx2::id_f32>(static_cast<const float*>(w), x, n);
}
GEMMA3_TARGET_AVX2 inline float dot_bf16_avx2(const void* w, const float* x, std::int64_t n) {
  return avx2::dot<std::uint16_t, avx2::load_bf16, bf16_to_f32>(static_cast<const std::uint16_t*>(w), x, n);
}
GEMMA3_TARGET_AVX2 inline float dot_f16_avx2(const void* w, const float* x, std::int64_t n) {
  return avx2::dot<std::uint16_t, avx2::load_f16, f16_to_f32>(static_cast<const std::uint16_t*>(w), x, n);
}
GEMMA3_TARGET_AVX2 inline void widen_bf16_avx2(const void* w, float* y, std::int64_t n) {
  const auto* p = static_cast<const std::uint16_t*>(w);
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, avx2::load_bf16(p + i));
  for (; i < n; ++i) y[i] = bf16_to_f32(p[i]);
}
GEMMA3_TARGET_AVX2 inline void widen_f16_avx2(const void* w, float* y, std::int64_t n) {
  const auto* p = static_cast<const std::uint16_t*>(w);
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, avx2::load_f16(p + i));
  for (; i < n; ++i) y[i] = f16_to_f32(p[i]);
}
// F16C's vcvtps2ph with round-to-nearest-even: bit for bit the scalar twin's for every
// value but NaN (both give a NaN; the payload bits may differ).
GEMMA3_TARGET_AVX2 inline void narrow_f16_avx2(const float* x, void* w, std::int64_t n) {
  auto* p = static_cast<std::uint16_t*>(w);
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; ++i) p[i] = f32_to_f16(x[i]);
}
#endif

// ---- WASM SIMD128 ----
#if GEMMA3_HAVE_WASM_SIMD
namespace wasm {

inline float hsum(v128_t v) {
  return wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1) + wasm_f32x4_extract_lane(v, 2) +
         wasm_f32x4_extract_lane(v, 3);
}
// 4 bf16 (8 bytes) -> 4 f32
inline v128_t load_bf16(const std::uint16_t* p) { return wasm_i32x4_shl(wasm_u32x4_load16x4(p), 16); }
// 4 f16 -> 4 f32, exact for finite values: magnitude << 13 is the f32 with the
// exponent 112 too small, fixed by a multiplication by 2^112 (subnormals included).
inline v128_t load_f16(const std::uint16_t* p) {
  const v128_t h = wasm_u32x4_load16x4(p);
  const v128_t mag = wasm_i32x4_shl(wasm_v128_and(h, wasm_i32x4_splat(0x7fff)), 13);
  const v128_t sign = wasm_i32x4_shl(wasm_v128_and(h, wasm_i32x4_splat(0x8000)), 16);
  return wasm_v128_or(wasm_f32x4_mul(mag, wasm_f32x4_splat(5.192296858534828e33f)), sign);
}
inline v128_t load_f32(const float* p) { return wasm_v128_load(p); }
inline float id_f32(float v) { return v; }

template <class T, v128_t (*Load)(const T*), float (*Widen)(T)>
inline float dot(const T* w, const float* x, std::int64_t n) {
  v128_t a0 = wasm_f32x4_splat(0.0f), a1 = a0, a2 = a0, a3 = a0;
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(Load(w + i), wasm_v128_load(x + i)));
    a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(Load(w + i + 4), wasm_v128_load(x + i + 4)));
    a2 = wasm_f32x4_add(a2, wasm_f32x4_mul(Load(w + i + 8), wasm_v128_load(x + i + 8)));
    a3 = wasm_f32x4_add(a3, wasm_f32x4_mul(Load(w + i + 12), wasm_v128_load(x + i + 12)));
  }
  for (; i + 4 <= n; i += 4) a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(Load(w + i), wasm_v128_load(x + i)));
  float s = hsum(wasm_f32x4_add(wasm_f32x4_add(a0, a1), wasm_f32x4_add(a2, a3)));
  for (; i < n; ++i) s += Widen(w[i]) * x[i];
  return s;
}

}  // namespace wasm

inline float dot_f32_wasm(const void* w, const float* x, std::int64_t n) {
  return wasm::dot<float, wasm::load_f32, wasm::id_f32>(static_cast<const float*>(w), x, n);
}
inline float dot_bf16_wasm(const void* w, const float* x, std::int64_t n) {
  return wasm::dot<std::uint16_t, wasm::load_bf16, bf16_to_f32>(static_cast<const std::uint16_t*>(w), x, n);
}
inline float dot_f16_wasm(const void* w, const float* x, std::int64_t n) {
  return wasm::dot<std::uint16_t, wasm::load_f16, f16_to_f32>(static_cast<const std::uint16_t*>(w), x, n);
}
inline void widen_bf16_wasm(const void* w, float* y, std::int64_t n) {
  const auto* p = static_cast<const std::uint16_t*>(w);
  std::int64_t i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(y + i, wasm::load_bf16(p + i));
  for (; i < n; ++i) y[i] = bf16_to_f32(p[i]);
}
inline void widen_f16_wasm(const void* w, float* y, std::int64_t n) {
  const auto* p = static_cast<const std::uint16_t*>(w);
  std::int64_t i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(y + i, wasm::load_f16(p + i));
  for (; i < n; ++i) y[i] = f16_to_f32(p[i]);
}
#endif

// The twin for the active Isa (kernels/isa.hpp). WebAssembly narrows with the scalar
// twin: SIMD128 has no float16 conversion, and the cache writes one row per token.
inline void widen_f16(Isa isa, const void* w, float* y, std::int64_t n) {
#if GEMMA3_HAVE_X86_SIMD
  if (isa_has_avx2(isa)) return widen_f16_avx2(w, y, n);
#endif
#if GEMMA3_HAVE_WASM_SIMD
  if (isa == Isa::wasm_simd128) return widen_f16_wasm(w, y, n);
#endif
  (void)isa;
  widen_f16_scalar(w, y, n);
}
inline void narrow_f16(Isa isa, const float* x, void* w, std::int64_t n) {
#if GEMMA3_HAVE_X86_SIMD
  if (isa_has_avx2(isa)) return narrow_f16_avx2(x, w, n);
#endif
  (void)isa;
  narrow_f16_scalar(x, w, n);
}
// ... with best_isa().
inline void widen_f16(const void* w, float* y, std::int64_t n) { widen_f16(best_isa(), w, y, n); }
inline void narrow_f16(const float* x, void* w, std::int64_t n) { narrow_f16(best_isa(), x, w, n); }

}  // namespace kernels
}  // namespace gemma3
