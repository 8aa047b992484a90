// cuda/src/heads.cuh -- the per-head arithmetic of QK-norm and RoPE, shared by ops.cu's
// rms_norm_heads and rope kernels and by the fused qk_norm_rope kernel. Every operation
// is an explicitly rounded intrinsic (__fmul_rn, __fadd_rn, ...), which the compiler
// never contracts into an FMA, so each kernel rounds exactly as the others and the
// fused kernel reproduces the two separate ones bit for bit. Also the two helpers every
// kernel file shares: warp_sum and bf16_bits.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace gemma3 {
namespace cuda {

constexpr double kInvPi = 0.31830988618379067154;  // 1 / pi

// The sum of v over the warp, the same in every lane (a butterfly).
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// gemma3::f32_to_bf16 (dtype.hpp), bit for bit: nearest even, a NaN stays a (quiet) NaN.
__device__ __forceinline__ std::uint32_t bf16_bits(float f) {
  std::uint32_t b = __float_as_uint(f);
  if ((b & 0x7f800000u) == 0x7f800000u && (b & 0x007fffffu)) return (b >> 16) | 0x40u;
  b += 0x7fffu + ((b >> 16) & 1u);
  return b >> 16;
}

// x^2 + y^2 + z^2 + w^2, in that order.
__device__ __forceinline__ float sum_squares4(float4 v) {
  return __fadd_rn(__fadd_rn(__fadd_rn(__fmul_rn(v.x, v.x), __fmul_rn(v.y, v.y)), __fmul_rn(v.z, v.z)),
                   __fmul_rn(v.w, v.w));
}

// 1 / sqrt(mean(x^2) + eps) of a head slice whose squares this lane summed to `ss`.
__device__ __forceinline__ float head_inv_rms(float ss, int head_dim, float eps) {
  return 1.0f / sqrtf(warp_sum(ss) / float(head_dim) + eps);
}

// x / rms * (1 + w), four values.
__device__ __forceinline__ float4 norm_scale4(float4 v, float inv_rms, float4 w) {
  return make_float4(__fmul_rn(__fmul_rn(v.x, inv_rms), __fadd_rn(1.0f, w.x)),
                     __fmul_rn(__fmul_rn(v.y, inv_rms), __fadd_rn(1.0f, w.y)),
                     __fmul_rn(__fmul_rn(v.z, inv_rms), __fadd_rn(1.0f, w.z)),
                     __fmul_rn(__fmul_rn(v.w, inv_rms), __fadd_rn(1.0f, w.w)));
}

// cos and sin of the float32 angle position * inv_freq (rope.hpp's product). The angles
// reach ~1.3e5 rad at 131K context, where __sinf/__cosf lose every digit; float64
// sincospi(angle / pi) is off by ~1e-11 rad at most (sincospi reduces its argument
// exactly), so both are within 1 ulp of std::cos/std::sin of the same float32 angle.
// (sincosf is as accurate, but its large-argument path keeps a table in local memory,
// which this build forbids.)
__device__ __forceinline__ void rope_cos_sin(int position, float inv_freq, float* c, float* s) {
  const float angle = __fmul_rn(float(position), inv_freq);
  double sd, cd;
  sincospi(double(angle) * kInvPi, &sd, &cd);
  *c = float(cd);
  *s = float(sd);
}

// The pair (a, b) = (x[i], x[i + D/2]) rotated by the angle: a cos - b sin goes to i,
// b cos + a sin to i + D/2.
__device__ __forceinline__ float rope_first(float a, float b, float c, float s) {
  return __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
}
__device__ __forceinline__ float rope_second(float a, float b, float c, float s) {
  return __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
}

}  // namespace cuda
}  // namespace gemma3
