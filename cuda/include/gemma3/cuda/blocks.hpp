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
//
// Loads: every block size is even and rows start where their allocation does, so a
// block starts 2-byte aligned (4-byte aligned for Q4_1, Q5_1 and the K-quants). The
// bytes a part needs are read as spans (load_span): 4-byte loads at 4-byte aligned
// addresses, and at an address 2 mod 4 a 2-byte load, then 4-byte loads whose halves
// are shifted into place; no byte outside the span is read. A byte-at-a-time load
// would take four times the load instructions, and the GEMV reads every byte of W.
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

// Little-endian loads at addresses aligned to their size (GGUF, x86 and the GPU are
// little-endian).
GEMMA3_BLOCKS_HD std::uint32_t load_u16(const std::uint8_t* p) {
  std::uint16_t v;
  std::memcpy(&v, __builtin_assume_aligned(p, 2), 2);
  return v;
}
GEMMA3_BLOCKS_HD std::uint32_t load_u32(const std::uint8_t* p) {
  std::uint32_t v;
  std::memcpy(&v, __builtin_assume_aligned(p, 4), 4);
  return v;
}

// N bytes (N even) that start 2-byte aligned, held as little-endian words: byte i is
// bits 8 (i % 4) .. of w[i / 4].
template <int N>
struct Span {
  static_assert(N % 2 == 0, "a span of whole 2-byte units");
  std::uint32_t w[(N + 3) / 4];
  GEMMA3_BLOCKS_HD std::uint32_t byte(int i) const { return (w[i / 4] >> (8 * (i % 4))) & 0xffu; }
  GEMMA3_BLOCKS_HD std::uint32_t u16(int i) const { return byte(i) | byte(i + 1) << 8; }  // i even
  GEMMA3_BLOCKS_HD std::uint32_t u32(int i) const { return u16(i) | u16(i + 2) << 16; }   // i even
};

// The N bytes at p (2-byte aligned), with the widest aligned loads, reading only them.
template <int N>
GEMMA3_BLOCKS_HD Span<N> load_span(const std::uint8_t* p) {
  constexpr int W = (N + 3) / 4;
  Span<N> s;
  if ((reinterpret_cast<std::uintptr_t>(p) & 2u) == 0) {
GEMMA3_BLOCKS_UNROLL
    for (int i = 0; i < N / 4; ++i) s.w[i] = load_u32(p + 4 * i);
    if constexpr (N % 4 != 0) s.w[W - 1] = load_u16(p + N - 2);
  } else {
    // p = 2 mod 4: bytes 0, 1 by a 2-byte load; then the aligned words at p + 2, p + 6,
    // ..., each giving its low half to this word and its high half to the next.
    std::uint32_t low = load_u16(p);
GEMMA3_BLOCKS_UNROLL
    for (int i = 0; i < W; ++i) {
      const int next = 4 * i + 2;  // where the aligned word with bytes 4 i + 2, 4 i + 3 starts
      const std::uint32_t high = next + 4 <= N ? load_u32(p + next) : next + 2 <= N ? load_u16(p + next) : 0u;
      s.w[i] = low | high << 16;
      low = high >> 16;
    }
  }
  return s;
}

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

// y [32] = values [32 part, 32 part + 32) of the block at b (part < parts_per_block(T);
// b 2-byte aligned, as every block is).
template <DType T>
GEMMA3_BLOCKS_HD void dequantize_part(const std::uint8_t* b, int part, float* y) {
  static_assert(block_values(T) > 0, "dequantize_part: a GGUF block type");
  if constexpr (T == DType::Q8_0) {
    (void)part;
    const Span<34> s = load_span<34>(b);  // d | 32 int8
    const float d = half_to_float(s.u16(0));
GEMMA3_BLOCKS_UNROLL
    for (int j = 0; j < 32; ++j) y[j] = mul(float(static_cast<std::int8_t>(s.byte(2 + j))), d);
  } else if constexpr (T == DType::Q4_0 || T == DType::Q4_1) {
    (void)part;
    constexpr int qs = T == DType::Q4_0 ? 2 : 4;
    const Span<qs + 16> s = load_span<qs + 16>(b);  // d [, m] | 16 bytes
    const float d = half_to_float(s.u16(0));
GEMMA3_BLOCKS_UNROLL
    for (int j = 0; j < 16; ++j) {
      const int q = int(s.byte(qs + j));
      if constexpr (T == DType::Q4_0) {
        y[j] = mul(d, float((q & 0x0f) - 8));
        y[j + 16] = mul(d, float((q >> 4) - 8));
      } else {
        const float m = half_to_float(s.u16(2));
        y[j] = add(mul(d, float(q & 0x0f)), m);
        y[j + 16] = add(mul(d, float(q >> 4)), m);
      }
    }
  } else if constexpr (T == DType::Q5_0 || T == DType::Q5_1) {
    (void)part;
    constexpr int qh = T == DType::Q5_0 ? 2 : 4, qs = qh + 4;
    const Span<qs + 16> s = load_span<qs + 16>(b);  // d [, m] | qh u32 | 16 bytes
    const float d = half_to_float(s.u16(0));
    const std::uint32_t h = s.u32(qh);
GEMMA3_BLOCKS_UNROLL
    for (int j = 0; j < 16; ++j) {
      const int q = int(s.byte(qs + j));
      const int lo = (q & 0x0f) | int((h >> j) & 1u) << 4;
      const int hi = (q >> 4) | int((h >> (j + 16)) & 1u) << 4;
      if constexpr (T == DType::Q5_0) {
        y[j] = mul(d, float(lo - 16));
        y[j + 16] = mul(d, float(hi - 16));
      } else {
        const float m = half_to_float(s.u16(2));
        y[j] = add(mul(d, float(lo)), m);
        y[j + 16] = add(mul(d, float(hi)), m);
      }
    }
  } else if constexpr (T == DType::Q4_K || T == DType::Q5_K) {
    const std::uint32_t dm = load_u32(b);  // d, dmin (a K-quant block is 4-byte aligned)
    int sc, m;
    detail::k4_scale_min(b + 4, part, sc, m);  // the part's bytes, picked at run time
    const float d1 = mul(half_to_float(dm & 0xffffu), float(sc));
    const float m1 = mul(half_to_float(dm >> 16), float(m));
    const Span<32> qs = load_span<32>(b + (T == DType::Q4_K ? 16 : 48) + 32 * (part / 2));
    Span<32> qh{};  // Q5_K only
    if constexpr (T == DType::Q5_K) qh = load_span<32>(b + 16);
    const int shift = 4 * (part & 1);
GEMMA3_BLOCKS_UNROLL
    for (int l = 0; l < 32; ++l) {
      int q = int(qs.byte(l) >> shift) & 0x0f;
      if constexpr (T == DType::Q5_K) q |= int((qh.byte(l) >> part) & 1u) << 4;
      y[l] = sub(mul(d1, float(q)), m1);
    }
  } else {  // Q6_K
    const int h = part / 4, k = part % 4;
    const Span<32> ql = load_span<32>(b + 64 * h + 32 * (k & 1));
    const Span<32> qh = load_span<32>(b + 128 + 32 * h);
    const std::uint32_t scales = load_u16(b + 192 + 8 * h + 2 * k);  // this part's two int8 scales
    const float d = half_to_float(load_u16(b + 208));
    const int nibble = k < 2 ? 0 : 4;
GEMMA3_BLOCKS_UNROLL
    for (int half16 = 0; half16 < 2; ++half16) {
      const float dg = mul(d, float(static_cast<std::int8_t>((scales >> (8 * half16)) & 0xffu)));
GEMMA3_BLOCKS_UNROLL
      for (int i = 0; i < 16; ++i) {
        const int l = 16 * half16 + i;
        const int q = int((ql.byte(l) >> nibble) & 0x0fu) | int((qh.byte(l) >> (2 * k)) & 3u) << 4;
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
