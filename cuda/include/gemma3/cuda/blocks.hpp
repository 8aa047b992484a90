// gemma3/cuda/blocks.hpp -- GGUF's block-quantized weights read 32 values at a time, the
// same functions on the host and the device, so tests/test_cuda_blocks.cpp checks every
// bit of them on the CPU against the library's dequantizers (include/gemma3/quant/) and
// the kernels (cuda/src/blocks.cu) call exactly what was tested.
//
// A row of `cols` values of type t is cols / block_values(t) blocks of block_bytes(t)
// bytes (dtype.hpp). Every block type holds whole "parts" of 32 values:
//
//   part p of a row      values [32 p, 32 p + 32)
//                        = part p % parts_per_block(t) of block p / parts_per_block(t)
//   parts_per_block      1 for Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (32-value blocks)
//                        8 for Q4_K, Q5_K, Q6_K (256-value super-blocks)
//
//   dequantize_part<t>(block, part, y)   y [32] = those values in float32, bit for bit
//                                        quant::dequantize_row's
//
// so a kernel gives each thread one part (a warp covers 32 parts of a row, or 4 K-quant
// super-blocks) and keeps the 32 values in registers. Where each part's bits live:
//
//   Q8_0   d f16 | 32 int8                      y_j = q_j d
//   Q4_0   d | 16 bytes: j low nibbles, j+16 high    y = d (q - 8)
//   Q4_1   d, m | 16 bytes                      y = d q + m
//   Q5_0   d | qh u32 (bit j = 5th bit of j) | 16 bytes      y = d (q - 16)
//   Q5_1   d, m | qh | 16 bytes                 y = d q + m
//   Q4_K   d, dmin | 12 bytes: 8 six-bit scales and mins | 128 bytes:
//          byte 32c + l holds value l of part 2c (low nibble) and of part 2c+1 (high)
//          y = (d sc_p) q - (dmin m_p)
//   Q5_K   as Q4_K, plus qh [32]: bit p of qh[l] is the 5th bit of value l of part p
//   Q6_K   ql [128] | qh [64] | int8 scales [16] | d: part p = 4 h + k (h: which half
//          of 128 values) takes the low (k < 2) or high nibble of ql[64 h + 32 (k & 1) + l]
//          and bits 2k, 2k+1 of qh[32 h + l]; y = (d scale[(32 p + l) / 16]) (q - 32)
//
// Rounding: every product and sum is one float32 operation, never contracted into an
// FMA (on the device the explicitly rounded intrinsics __fmul_rn, __fadd_rn), so the
// device's values are those of the formulas above.
#pragma once

#if defined(__CUDACC__)
#define GEMMA3_BLOCKS_HD __host__ __device__ __forceinline__
#else
#define GEMMA3_BLOCKS_HD inline
#endif

#include <cstdint>
#include <cstring>

#include "gemma3/dtype.hpp"

#if defined(__CUDACC__)
#define GEMMA3_BLOCKS_UNROLL _Pragma("unroll")
#else
#define GEMMA3_BLOCKS_UNROLL
#endif

namespace gemma3 {
namespace cuda {
namespace blocks {

constexpr int kPart = 32;  // values per part

// Values and bytes of one block of t, parts per block; 0 for the plain types.
constexpr int block_values(DType t) {
  return t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K ? 256
         : t == DType::Q8_0 || t == DType::Q4_0 || t == DType::Q4_1 || t == DType::Q5_0 || t == DType::Q5_1 ? 32
                                                                                                            : 0;
}
constexpr int block_bytes(DType t) {
  return t == DType::Q8_0 ? 34
         : t == DType::Q4_0 ? 18
         : t == DType::Q4_1 ? 20
         : t == DType::Q5_0 ? 22
         : t == DType::Q5_1 ? 24
         : t == DType::Q4_K ? 144
         : t == DType::Q5_K ? 176
         : t == DType::Q6_K ? 210
                            : 0;
}
constexpr int parts_per_block(DType t) { return block_values(t) / kPart; }

// ---- exact float32 steps ----

GEMMA3_BLOCKS_HD float mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
GEMMA3_BLOCKS_HD float add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
GEMMA3_BLOCKS_HD float sub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}

GEMMA3_BLOCKS_HD float float_of_bits(std::uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(b);
#else
  float f;
  std::memcpy(&f, &b, 4);
  return f;
#endif
}

// Little-endian loads from any byte address (blocks are only 2-byte aligned).
GEMMA3_BLOCKS_HD std::uint32_t load_u16(const std::uint8_t* p) { return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8; }
GEMMA3_BLOCKS_HD std::uint32_t load_u32(const std::uint8_t* p) { return load_u16(p) | load_u16(p + 2) << 16; }

// IEEE binary16 bits -> float32, exact (dtype.hpp's f16_to_f32): a subnormal is
// mant * 2^-24, exact in float32.
GEMMA3_BLOCKS_HD float half_to_float(std::uint32_t h) {
  const std::uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) {
    const float m = mul(float(mant), 5.9604644775390625e-8f);  // 2^-24; +-0 when mant is 0
    return sign ? -m : m;
  }
  if (exp == 31) return float_of_bits(sign | 0x7f800000u | (mant << 13));
  return float_of_bits(sign | ((exp + 112u) << 23) | (mant << 13));
}

// ---- one part of a block ----

namespace detail {
// The 6-bit scale and min of part j of a Q4_K / Q5_K block (quant::unpack_scales_k4).
GEMMA3_BLOCKS_HD void k4_scale_min(const std::uint8_t* s, int j, int& sc, int& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0x0f) | (s[j - 4] >> 6) << 4;
    m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
  }
}
}  // namespace detail

// y [32] = values [32 part, 32 part + 32) of the block at b (part < parts_per_block(T)).
template <DType T>
GEMMA3_BLOCKS_HD void dequantize_part(const std::uint8_t* b, int part, float* y) {
  static_assert(block_values(T) > 0, "dequantize_part: a GGUF block type");
  if constexpr (T == DType::Q8_0) {
    (void)part;
    const float d = half_to_float(load_u16(b));
GEMMA3_BLOCKS_UNROLL
    for (int j = 0; j < 32; ++j) y[j] = mul(float(static_cast<std::int8_t>(b[2 + j])), d);
  } else if constexpr (T == DType::Q4_0 || T == DType::Q4_1) {
    (void)part;
    const float d = half_to_float(load_u16(b));
    const std::uint8_t* qs = b + (T == DType::Q4_0 ? 2 : 4);
GEMMA3_BLOCKS_UNROLL
    for (int j = 0; j < 16; ++j) {
      if constexpr (T == DType::Q4_0) {
        y[j] = mul(d, float((qs[j] & 0x0f) - 8));
        y[j + 16] = mul(d, float((qs[j] >> 4) - 8));
      } else {
        const float m = half_to_float(load_u16(b + 2));
        y[j] = add(mul(d, float(qs[j] & 0x0f)), m);
        y[j + 16] = add(mul(d, float(qs[j] >> 4)), m);
      }
    }
  } else if constexpr (T == DType::Q5_0 || T == DType::Q5_1) {
    (void)part;
    const float d = half_to_float(load_u16(b));
    const std::uint8_t* qh = b + (T == DType::Q5_0 ? 2 : 4);
    const std::uint8_t* qs = qh + 4;
    const std::uint32_t h = load_u32(qh);
GEMMA3_BLOCKS_UNROLL
    for (int j = 0; j < 16; ++j) {
      const int lo = (qs[j] & 0x0f) | int((h >> j) & 1u) << 4;
      const int hi = (qs[j] >> 4) | int((h >> (j + 16)) & 1u) << 4;
      if constexpr (T == DType::Q5_0) {
        y[j] = mul(d, float(lo - 16));
        y[j + 16] = mul(d, float(hi - 16));
      } else {
        const float m = half_to_float(load_u16(b + 2));
        y[j] = add(mul(d, float(lo)), m);
        y[j + 16] = add(mul(d, float(hi)), m);
      }
    }
  } else if constexpr (T == DType::Q4_K || T == DType::Q5_K) {
    int sc, m;
    detail::k4_scale_min(b + 4, part, sc, m);
    const float d1 = mul(half_to_float(load_u16(b)), float(sc));
    const float m1 = mul(half_to_float(load_u16(b + 2)), float(m));
    const std::uint8_t* qh = b + 16;                                   // Q5_K only
    const std::uint8_t* qs = b + (T == DType::Q4_K ? 16 : 48) + 32 * (part / 2);
    const int shift = 4 * (part & 1);
GEMMA3_BLOCKS_UNROLL
    for (int l = 0; l < 32; ++l) {
      int q = (qs[l] >> shift) & 0x0f;
      if constexpr (T == DType::Q5_K) q |= ((qh[l] >> part) & 1) << 4;
      y[l] = sub(mul(d1, float(q)), m1);
    }
  } else {  // Q6_K
    const int h = part / 4, k = part % 4;
    const std::uint8_t* ql = b + 64 * h + 32 * (k & 1);
    const std::uint8_t* qh = b + 128 + 32 * h;
    const std::uint8_t* scales = b + 192;
    const float d = half_to_float(load_u16(b + 208));
    const int nibble = k < 2 ? 0 : 4;
GEMMA3_BLOCKS_UNROLL
    for (int half16 = 0; half16 < 2; ++half16) {
      const float dg = mul(d, float(static_cast<std::int8_t>(scales[8 * h + 2 * k + half16])));
GEMMA3_BLOCKS_UNROLL
      for (int i = 0; i < 16; ++i) {
        const int l = 16 * half16 + i;
        const int q = ((ql[l] >> nibble) & 0x0f) | ((qh[l] >> (2 * k)) & 3) << 4;
        y[l] = mul(dg, float(q - 32));
      }
    }
  }
}

// The same with t chosen at run time (host code and tests; kernels take the template).
inline bool dequantize_part(DType t, const std::uint8_t* b, int part, float* y) {
  switch (t) {
    case DType::Q8_0: dequantize_part<DType::Q8_0>(b, part, y); return true;
    case DType::Q4_0: dequantize_part<DType::Q4_0>(b, part, y); return true;
    case DType::Q4_1: dequantize_part<DType::Q4_1>(b, part, y); return true;
    case DType::Q5_0: dequantize_part<DType::Q5_0>(b, part, y); return true;
    case DType::Q5_1: dequantize_part<DType::Q5_1>(b, part, y); return true;
    case DType::Q4_K: dequantize_part<DType::Q4_K>(b, part, y); return true;
    case DType::Q5_K: dequantize_part<DType::Q5_K>(b, part, y); return true;
    case DType::Q6_K: dequantize_part<DType::Q6_K>(b, part, y); return true;
    default: return false;
  }
}

}  // namespace blocks
}  // namespace cuda
}  // namespace gemma3
