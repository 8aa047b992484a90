// gemma3/quant/q16.hpp -- int16 activations: the format, and the scalar references
// of the kernels that dot quantized weights with them in exact integers.
//
// Activations, per block b of 32 values (quantize_row_q16_scalar):
//   d_b   = max_i |x_i| / 16383                       float32
//   q_i   = round(x_i / d_b)  in [-16383, 16383]      int16      x_i ~= d_b * q_i
//   s_b   = sum_i x_i                                  float32 (the exact float sum)
// The rounding error is at most d_b / 2 = 3.1e-5 of the block's largest |x|, about
// 250x finer than llama.cpp's 8-bit activations.
//
// Weights, per block of 32 values of any GGUF block type (unpack_q16_block):
//   w_i = scale_b * u_i + min_b          u_i int16, scale_b and min_b float32
//     Q8_0  u = q            scale = d            min = 0
//     Q4_0  u = q - 8        scale = d            Q4_1  u = q, scale = d, min = m
//     Q5_0  u = q - 16       scale = d            Q5_1  u = q, scale = d, min = m
//     Q4_K, Q5_K (sub-block j of 32)   u = q   scale = d * sc_j   min = -dmin * m_j
//     Q6_K  (16-value sub-blocks g, two per block of 32)
//           u = scales[g] * (q - 32)  (|u| <= 4096)   scale = d         min = 0
// so w_i equals the dequantized weight to float rounding (Q6_K folds its 8-bit scale
// into u: d * (sc * (q-32)) instead of (d * sc) * (q-32)).
//
// The dot product, per block (dot_q16_scalar):
//   row . x  ~=  sum_b  (scale_b * d_b) * isum_b  +  min_b * s_b
//   isum_b   =   sum_i u_i * q_i                     exact int32: |u| * |q| * 32 <=
//                                                     4096 * 16383 * 32 < 2^31
// The only approximation is the rounding of x to q (and float32 arithmetic after).
//
// The byte split (split_q16_bytes_scalar) writes q as two signed bytes, q = 256 hi + lo,
// for kernels that multiply unsigned weight bytes by signed activation bytes.
//
// Everything here is plain scalar C++ (accumulating in double: the references). The
// AVX-512 VNNI and WebAssembly SIMD128 twins and the dispatch by Isa (quantize_row_q16,
// split_q16_bytes, q16_dot, q16_dot_rows, unpack_q16_row) are in kernels/dot_q16.hpp;
// the prefill GEMM on the same unpacking in kernels/gemm_q16.hpp.
// Pinned by tests/test_q16.cpp.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "common.hpp"
#include "q4_0.hpp"
#include "q4_k.hpp"
#include "q5_0.hpp"
#include "q6_k.hpp"
#include "q8_0.hpp"

namespace gemma3 {
namespace quant {

constexpr int kQ16Max = 16383;  // |q| bound of an int16 activation (see the header comment)

// One row x [n] of int16 activations (n a multiple of 32), as three arrays.
struct Q16Row {
  const std::int16_t* q;  // [n]
  const float* d;         // [n / 32] block scales
  const float* s;         // [n / 32] block sums of x
  // Optional (split_q16_bytes; nullptr when absent): the same q as two signed bytes,
  // for the kernels that multiply bytes (VNNI vpdpbusd), and per block d_b * sum_i q_i.
  const std::int8_t* hi = nullptr;  // [n]            q = 256 * hi + lo
  const std::int8_t* lo = nullptr;  // [n]
  const float* dX = nullptr;        // [n / 32]  d_b * X_b, see split_q16_bytes
  const float* sum16 = nullptr;     // [n / 16]  integer sums of q over 16 values, as floats
};

// x [n] -> q [n], d [n / 32], s [n / 32]. Scalar reference.
inline void quantize_row_q16_scalar(const float* x, std::int16_t* q, float* d, float* s, std::int64_t n) {
  for (std::int64_t b = 0; b < n / QK; ++b, x += QK, q += QK) {
    float amax = 0.0f, sum = 0.0f;
    for (int j = 0; j < QK; ++j) {
      amax = std::fmax(amax, std::fabs(x[j]));
      sum += x[j];
    }
    const float db = amax / float(kQ16Max);
    const float id = db != 0.0f ? 1.0f / db : 0.0f;
    for (int j = 0; j < QK; ++j) {
      const int v = nearest_int(x[j] * id);
      q[j] = std::int16_t(v > kQ16Max ? kQ16Max : v < -kQ16Max ? -kQ16Max : v);
    }
    d[b] = db;
    s[b] = sum;
  }
}

// The byte split of int16 activations, for weights whose values are small unsigned
// bytes (vpdpbusd multiplies unsigned bytes by signed bytes):
//   hi_i = floor((q_i + 128) / 256)   in [-64, 64]       int8
//   lo_i = q_i - 256 * hi_i           in [-128, 127]     int8      q_i = 256 * hi_i + lo_i
// and, with X_b = sum_i q_i the integer sum of block b:
//   dX[b]    = d_b * X_b                          float32 (one rounding)
//   sum16[g] = the integer sum of q over values 16g .. 16g + 15 (exact in float32:
//              |sum| <= 16 * 16383).
// So sum_i u_i q_i = 256 (u . hi) + u . lo exactly, and an offset o in u = q_w - o costs
// one float term per block (- o d_w d_b X_b) or per 16 values (Q6_K).
inline void split_q16_bytes_scalar(const std::int16_t* q, const float* d, std::int64_t n, std::int8_t* hi,
                                   std::int8_t* lo, float* dX, float* sum16) {
  for (std::int64_t g = 0; g < n / 16; ++g) {
    std::int32_t X = 0;
    for (int i = 0; i < 16; ++i) X += q[16 * g + i];
    sum16[g] = float(X);
  }
  for (std::int64_t i = 0; i < n; ++i) {
    const int h = (int(q[i]) + 128 + 256 * 64) / 256 - 64;  // floor division (q + 128 + 16384 > 0)
    hi[i] = std::int8_t(h);
    lo[i] = std::int8_t(int(q[i]) - 256 * h);
  }
  for (std::int64_t b = 0; b < n / QK; ++b) dX[b] = d[b] * (sum16[2 * b] + sum16[2 * b + 1]);  // exact integer sum X_b
}

// The weights of block b (32 values) of a row of dtype t as w_i = scale * u_i + min.
struct Q16Block {
  std::int16_t u[QK];
  float scale = 0.0f;
  float min = 0.0f;
};

// Scalar reference unpacking (see the table in the header comment).
inline void unpack_q16_block(DType t, const void* row, std::int64_t b, Q16Block& out) {
  const auto* p = static_cast<const std::uint8_t*>(row);
  out.min = 0.0f;
  switch (t) {
    case DType::Q8_0: {
      const auto& w = reinterpret_cast<const block_q8_0*>(p)[b];
      for (int i = 0; i < QK; ++i) out.u[i] = w.qs[i];
      out.scale = f16_to_f32(w.d);
      return;
    }
    case DType::Q4_0:
    case DType::Q4_1: {
      const bool q41 = t == DType::Q4_1;
      const std::uint8_t* qs = q41 ? reinterpret_cast<const block_q4_1*>(p)[b].qs : reinterpret_cast<const block_q4_0*>(p)[b].qs;
      const int off = q41 ? 0 : 8;
      for (int i = 0; i < QK / 2; ++i) {
        out.u[i] = std::int16_t((qs[i] & 0x0f) - off);
        out.u[i + QK / 2] = std::int16_t((qs[i] >> 4) - off);
      }
      if (q41) {
        out.scale = f16_to_f32(reinterpret_cast<const block_q4_1*>(p)[b].d);
        out.min = f16_to_f32(reinterpret_cast<const block_q4_1*>(p)[b].m);
      } else {
        out.scale = f16_to_f32(reinterpret_cast<const block_q4_0*>(p)[b].d);
      }
      return;
    }
    case DType::Q5_0:
    case DType::Q5_1: {
      const bool q51 = t == DType::Q5_1;
      const std::uint8_t* qs = q51 ? reinterpret_cast<const block_q5_1*>(p)[b].qs : reinterpret_cast<const block_q5_0*>(p)[b].qs;
      const std::uint8_t* qhp = q51 ? reinterpret_cast<const block_q5_1*>(p)[b].qh : reinterpret_cast<const block_q5_0*>(p)[b].qh;
      std::uint32_t qh;
      std::memcpy(&qh, qhp, 4);
      const int off = q51 ? 0 : 16;
      for (int i = 0; i < QK / 2; ++i) {
        out.u[i] = std::int16_t(((qs[i] & 0x0f) | ((qh >> i) & 1) << 4) - off);
        out.u[i + QK / 2] = std::int16_t(((qs[i] >> 4) | ((qh >> (i + 16)) & 1) << 4) - off);
      }
      if (q51) {
        out.scale = f16_to_f32(reinterpret_cast<const block_q5_1*>(p)[b].d);
        out.min = f16_to_f32(reinterpret_cast<const block_q5_1*>(p)[b].m);
      } else {
        out.scale = f16_to_f32(reinterpret_cast<const block_q5_0*>(p)[b].d);
      }
      return;
    }
    case DType::Q4_K:
    case DType::Q5_K: {
      const bool q5 = t == DType::Q5_K;
      const std::int64_t sb = b / 8;
      const int j = int(b % 8);
      const std::uint8_t* blk = p + std::size_t(sb) * (q5 ? sizeof(block_q5_K) : sizeof(block_q4_K));
      const auto& w4 = *reinterpret_cast<const block_q4_K*>(blk);  // d, dmin, scales shared by both layouts
      const std::uint8_t* qs = q5 ? reinterpret_cast<const block_q5_K*>(blk)->qs : w4.qs;
      const std::uint8_t* qh = q5 ? reinterpret_cast<const block_q5_K*>(blk)->qh : nullptr;
      int sc[8], m[8];
      unpack_scales_k4(w4.scales, sc, m);
      const int c = j / 2, shift = (j % 2) * 4;
      for (int l = 0; l < QK; ++l)
        out.u[l] = std::int16_t(((qs[32 * c + l] >> shift) & 0x0f) | (qh ? ((qh[l] >> j) & 1) << 4 : 0));
      out.scale = f16_to_f32(w4.d) * float(sc[j]);
      out.min = -(f16_to_f32(w4.dmin) * float(m[j]));
      return;
    }
    case DType::Q6_K: {
      const auto& w = reinterpret_cast<const block_q6_K*>(p)[b / 8];
      int q[QK_K];
      unpack_q6_K(w, q);
      const int o = int(b % 8) * QK;
      for (int l = 0; l < QK; ++l) out.u[l] = std::int16_t(int(w.scales[(o + l) / 16]) * (q[o + l] - 32));
      out.scale = f16_to_f32(w.d);
      return;
    }
    default:
      throw std::invalid_argument(std::string("unpack_q16_block: ") + dtype_name(t) + " is not a block type");
  }
}

// row . x for a row of dtype t and int16 activations x (n values). Scalar reference.
inline float dot_q16_scalar(DType t, const void* row, const Q16Row& x, std::int64_t n) {
  Q16Block blk;
  double acc = 0.0;
  for (std::int64_t b = 0; b < n / QK; ++b) {
    unpack_q16_block(t, row, b, blk);
    std::int32_t isum = 0;
    for (int i = 0; i < QK; ++i) isum += std::int32_t(blk.u[i]) * std::int32_t(x.q[b * QK + i]);
    acc += double(blk.scale) * double(x.d[b]) * double(isum) + double(blk.min) * double(x.s[b]);
  }
  return float(acc);
}

// A row of dtype t -> u [n], scale [n / 32], min [n / 32]. Scalar reference.
inline void unpack_q16_row_scalar(DType t, const void* row, std::int64_t n, std::int16_t* u, float* scale, float* min) {
  Q16Block blk;
  for (std::int64_t b = 0; b < n / QK; ++b) {
    unpack_q16_block(t, row, b, blk);
    std::memcpy(u + b * QK, blk.u, sizeof(blk.u));
    scale[b] = blk.scale;
    min[b] = blk.min;
  }
}

}  // namespace quant
}  // namespace gemma3
