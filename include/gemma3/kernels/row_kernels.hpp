// gemma3/kernels/row_kernels.hpp -- the row kernels of every DType for each Isa: what
// matvec / matmul (kernels/matmul.hpp) pick from.
//
//   row_kernels(t)      the row dequantizer and reference dot of dtype t (the scalar
//                       ones, quant/quant.hpp), and for the plain dtypes the row . x
//                       with float32 x for each Isa
//
//   dtype            dot[isa]: row . float32 x
//   F32, BF16, F16   dot_<dtype>_scalar / _avx2 / _wasm (kernels/dot.hpp)
//   Q8_0 .. Q6_K     none: their dots are the fused float dots (kernels/fdot.hpp) and
//                    the int16-activation dots (kernels/dot_q16.hpp)
// This header also brings dequantize_fn (kernels/dequantize_simd.hpp) and fused_dot
// (kernels/fdot.hpp), the other per-dtype choices matmul.hpp makes.
// Pinned by tests/test_quant.cpp.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../quant/quant.hpp"
#include "dequantize_simd.hpp"
#include "dot.hpp"
#include "../dtype.hpp"
#include "fdot.hpp"
#include "isa.hpp"

namespace gemma3 {
namespace quant {

// row . x with x float32 [n]; n = values in the row.
using RowDotFn = DotF32Fn;

struct RowKernels {
  // by Isa: scalar, avx2, wasm_simd128 (null: not built); all null for the block
  // types, whose dots are kernels/fdot.hpp's and kernels/dot_q16.hpp's
  RowDotFn dot[3] = {nullptr, nullptr, nullptr};
  DequantizeFn dequantize = nullptr;  // exact widening of one row (scalar_kernels)
  DotF32Fn dot_f32 = nullptr;         // plain reference row . float32 x (scalar_kernels)

  // The row . x of the plain dtypes for Isa i (the scalar one where i has none).
  RowDotFn for_isa(Isa i) const {
    if (i == Isa::avx512) i = Isa::avx2;  // the plain row dots have no avx512 twins
    const RowDotFn f = dot[int(i)];
    return f ? f : dot[0];
  }
};

namespace detail {
#if GEMMA3_HAVE_X86_SIMD
#  define GEMMA3_AVX2_OR_NULL(f) f
#else
#  define GEMMA3_AVX2_OR_NULL(f) nullptr
#endif
#if GEMMA3_HAVE_WASM_SIMD
#  define GEMMA3_WASM_OR_NULL(f) f
#else
#  define GEMMA3_WASM_OR_NULL(f) nullptr
#endif
#define GEMMA3_PLAIN_DOTS(name)                                                                           \
  {                                                                                                       \
    kernels::dot_##name##_scalar, GEMMA3_AVX2_OR_NULL(kernels::dot_##name##_avx2),                        \
        GEMMA3_WASM_OR_NULL(kernels::dot_##name##_wasm)                                                   \
  }
inline RowKernels make_row_kernels(DType t, RowKernels k) {
  k.dequantize = scalar_kernels(t).dequantize;
  k.dot_f32 = scalar_kernels(t).dot_f32;
  return k;
}
}  // namespace detail

// The kernels for dtype t.
inline const RowKernels& row_kernels(DType t) {
  using detail::make_row_kernels;
  static const RowKernels table[] = {
      make_row_kernels(DType::F32, RowKernels{GEMMA3_PLAIN_DOTS(f32)}),
      make_row_kernels(DType::F16, RowKernels{GEMMA3_PLAIN_DOTS(f16)}),
      make_row_kernels(DType::BF16, RowKernels{GEMMA3_PLAIN_DOTS(bf16)}),
      make_row_kernels(DType::Q8_0, {}),
      make_row_kernels(DType::Q4_0, {}),
      make_row_kernels(DType::Q4_1, {}),
      make_row_kernels(DType::Q5_0, {}),
      make_row_kernels(DType::Q5_1, {}),
      make_row_kernels(DType::Q4_K, {}),
      make_row_kernels(DType::Q5_K, {}),
      make_row_kernels(DType::Q6_K, {}),
  };
  static_assert(sizeof(table) / sizeof(table[0]) == 11, "one entry per DType, in enum order");
  const int i = int(t);
  if (i < 0 || i >= 11) throw std::invalid_argument("row_kernels: unknown dtype " + std::to_string(i));
  return table[i];
}

#undef GEMMA3_PLAIN_DOTS
#undef GEMMA3_AVX2_OR_NULL
#undef GEMMA3_WASM_OR_NULL

}  // namespace quant
}  // namespace gemma3
