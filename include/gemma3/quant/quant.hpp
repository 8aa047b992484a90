// gemma3/quant/quant.hpp -- the scalar row kernels of every DType, in one table.
//
//   dequantize_row(t, src, dst, n)     n stored values of dtype t -> float32 (exact)
//   scalar_kernels(t)                  its row dequantizer and the plain reference
//                                      row . float32 x (double accumulation)
//
//   dtype            dequantize             dot_f32 (reference)
//   F32, BF16, F16   widen_<dtype>          dot_<dtype>_ref
//   Q8_0 .. Q6_K     dequantize_row_<type>  dot_<type>_f32
// with the block types in quant/q8_0.hpp, q4_0.hpp (Q4_0, Q4_1), q5_0.hpp (Q5_0, Q5_1),
// q4_k.hpp (Q4_K, Q5_K) and q6_k.hpp.
//
// The model never comes here: it calls matvec / matmul / linear (kernels/matmul.hpp)
// and dequantize_row(W, r, out) below (the embedding lookup). The SIMD twins and the choice by Isa
// are in kernels/: row_kernels (kernels/row_kernels.hpp), dequantize_fn
// (kernels/dequantize_simd.hpp), fused_dot (kernels/fdot.hpp), q16_dot
// (kernels/dot_q16.hpp).
// Pinned by tests/test_quant.cpp.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "../dtype.hpp"
#include "../weight.hpp"
#include "common.hpp"
#include "q4_0.hpp"
#include "q4_k.hpp"
#include "q5_0.hpp"
#include "q6_k.hpp"
#include "q8_0.hpp"

namespace gemma3 {
namespace quant {

// row . x with x float32 [n]; n = values in the row.
using DotF32Fn = float (*)(const void* row, const float* x, std::int64_t n);
using DequantizeFn = void (*)(const void* src, float* dst, std::int64_t n);

struct ScalarKernels {
  DequantizeFn dequantize = nullptr;  // exact widening of one row
  DotF32Fn dot_f32 = nullptr;         // plain reference row . float32 x (double accumulation)
};

namespace detail {
inline void widen_f32(const void* src, float* dst, std::int64_t n) { std::memcpy(dst, src, std::size_t(n) * 4); }
inline void widen_bf16(const void* src, float* dst, std::int64_t n) { to_f32(DType::BF16, src, dst, std::size_t(n)); }
inline void widen_f16(const void* src, float* dst, std::int64_t n) { to_f32(DType::F16, src, dst, std::size_t(n)); }
inline float dot_plain_ref(DType t, const void* row, const float* x, std::int64_t n) {
  const auto* p = static_cast<const std::uint16_t*>(row);
  double acc = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    const float w = t == DType::F32   ? static_cast<const float*>(row)[i]
                    : t == DType::BF16 ? bf16_to_f32(p[i])
                                       : f16_to_f32(p[i]);
    acc += double(w) * double(x[i]);
  }
  return float(acc);
}
inline float dot_f32_ref(const void* r, const float* x, std::int64_t n) { return dot_plain_ref(DType::F32, r, x, n); }
inline float dot_bf16_ref(const void* r, const float* x, std::int64_t n) { return dot_plain_ref(DType::BF16, r, x, n); }
inline float dot_f16_ref(const void* r, const float* x, std::int64_t n) { return dot_plain_ref(DType::F16, r, x, n); }
}  // namespace detail

// The scalar kernels of dtype t.
inline const ScalarKernels& scalar_kernels(DType t) {
  using namespace detail;
  static const ScalarKernels table[] = {
      {widen_f32, dot_f32_ref},                   // F32
      {widen_f16, dot_f16_ref},                   // F16
      {widen_bf16, dot_bf16_ref},                 // BF16
      {dequantize_row_q8_0, dot_q8_0_f32},        // Q8_0
      {dequantize_row_q4_0, dot_q4_0_f32},        // Q4_0
      {dequantize_row_q4_1, dot_q4_1_f32},        // Q4_1
      {dequantize_row_q5_0, dot_q5_0_f32},        // Q5_0
      {dequantize_row_q5_1, dot_q5_1_f32},        // Q5_1
      {dequantize_row_q4_K, dot_q4_K_f32},        // Q4_K
      {dequantize_row_q5_K, dot_q5_K_f32},        // Q5_K
      {dequantize_row_q6_K, dot_q6_K_f32},        // Q6_K
  };
  static_assert(sizeof(table) / sizeof(table[0]) == 11, "one entry per DType, in enum order");
  const int i = int(t);
  if (i < 0 || i >= 11) throw std::invalid_argument("scalar_kernels: unknown dtype " + std::to_string(i));
  return table[i];
}

}  // namespace quant

// Widen n stored values of dtype t (any DType, n a multiple of its block size) to
// float32. Exact: equals the gguf package's dequantization bit for bit.
inline void dequantize_row(DType t, const void* src, float* dst, std::int64_t n) {
  if (n % std::int64_t(dtype_block_size(t)) != 0)
    throw std::invalid_argument(std::string("dequantize_row: ") + std::to_string(n) + " values is not a multiple of " +
                                dtype_name(t) + "'s block size " + std::to_string(dtype_block_size(t)));
  quant::scalar_kernels(t).dequantize(src, dst, n);
}

// Row r of W ([W.cols]) widened to float32, for any dtype; exact.
inline void dequantize_row(const Weight& W, std::int64_t r, float* out) {
  dequantize_row(W.dtype, W.row_ptr(r), out, W.cols);
}

}  // namespace gemma3
