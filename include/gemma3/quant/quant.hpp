// gemma3/quant/quant.hpp -- one table that maps every DType to its row kernels.
//
//   dequantize_row(t, src, dst, n)     n stored values of dtype t -> float32 (exact)
//   dequantize_fn(t, isa)              the same for one Isa (AVX2 twins, bit-identical)
//   row_kernels(t)                     for matmul.hpp: the dequantizer, the plain
//                                      reference row . float32 x, and (plain dtypes)
//                                      the SIMD row . x for each Isa
//
// The model never comes here: it calls matvec / matmul / linear (kernels/matmul.hpp)
// and Weight::row_to_f32 (the embedding lookup), which use this table.
//
//   dtype            dot[isa]: row . float32 x     dequantize             dot_f32 (reference)
//   F32, BF16, F16   dot_<dtype>_* (kernels/dot.hpp)  widen_<dtype>          dot_<dtype>_ref
//   Q8_0 .. Q6_K     none (below)                     dequantize_row_<type>  dot_<type>_f32
// with the block types in quant/q8_0.hpp, q4_0.hpp (Q4_0, Q4_1), q5_0.hpp (Q5_0, Q5_1),
// q4_k.hpp (Q4_K, Q5_K) and q6_k.hpp. The block types' fast dots are the fused float
// dots (quant/fdot.hpp) and the int16-activation dots (kernels/dot_q16.hpp), which
// matmul.hpp picks.
// Pinned by tests/test_quant.cpp.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../kernels/dot.hpp"
#include "../kernels/dtype.hpp"
#include "../kernels/isa.hpp"
#include "common.hpp"
#include "fdot.hpp"
#include "q4_0.hpp"
#include "q4_k.hpp"
#include "q5_0.hpp"
#include "q6_k.hpp"
#include "q8_0.hpp"

namespace gemma3 {
namespace quant {

// row . x with x float32 [n]; n = values in the row.
using RowDotFn = float (*)(const void* row, const float* x, std::int64_t n);
using DequantizeFn = void (*)(const void* src, float* dst, std::int64_t n);
using DotF32Fn = RowDotFn;

struct RowKernels {
  // by Isa: scalar, avx2, wasm_simd128 (null: not built); all null for the block
  // types, whose dots are quant/fdot.hpp's and kernels/dot_q16.hpp's
  RowDotFn dot[3] = {nullptr, nullptr, nullptr};
  DequantizeFn dequantize = nullptr;  // exact widening of one row
  DotF32Fn dot_f32 = nullptr;         // plain reference row . float32 x (double accumulation)

  // The row . x of the plain dtypes for Isa i (the scalar one where i has none).
  RowDotFn for_isa(Isa i) const {
    if (i == Isa::avx512) i = Isa::avx2;  // the plain row dots have no avx512 twins
    const RowDotFn f = dot[int(i)];
    return f ? f : dot[0];
  }
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
#define GEMMA3_QUANT_KERNELS(name) \
  RowKernels { {nullptr, nullptr, nullptr}, dequantize_row_##name, dot_##name##_f32 }
#define GEMMA3_PLAIN_KERNELS(name)                                                                      \
  RowKernels {                                                                                          \
    {kernels::dot_##name##_scalar, GEMMA3_AVX2_OR_NULL(kernels::dot_##name##_avx2),                     \
     GEMMA3_WASM_OR_NULL(kernels::dot_##name##_wasm)},                                                  \
        widen_##name, dot_##name##_ref                                                                  \
  }
}  // namespace detail

// The kernels for dtype t.
inline const RowKernels& row_kernels(DType t) {
  using namespace detail;
  static const RowKernels table[] = {
      GEMMA3_PLAIN_KERNELS(f32),              // F32
      GEMMA3_PLAIN_KERNELS(f16),              // F16
      GEMMA3_PLAIN_KERNELS(bf16),             // BF16
      GEMMA3_QUANT_KERNELS(q8_0),   // Q8_0
      GEMMA3_QUANT_KERNELS(q4_0),   // Q4_0
      GEMMA3_QUANT_KERNELS(q4_1),   // Q4_1
      GEMMA3_QUANT_KERNELS(q5_0),   // Q5_0
      GEMMA3_QUANT_KERNELS(q5_1),   // Q5_1
      GEMMA3_QUANT_KERNELS(q4_K),    // Q4_K
      GEMMA3_QUANT_KERNELS(q5_K),    // Q5_K
      GEMMA3_QUANT_KERNELS(q6_K),    // Q6_K
  };
  static_assert(sizeof(table) / sizeof(table[0]) == 11, "one entry per DType, in enum order");
  const int i = int(t);
  if (i < 0 || i >= 11) throw std::invalid_argument("row_kernels: unknown dtype " + std::to_string(i));
  return table[i];
}

// The row dequantizer of dtype t for Isa isa: an AVX2 twin where one exists (Q8_0,
// Q5_0, Q4_K, Q6_K; bit for bit equal to the scalar one), else the scalar one.
inline DequantizeFn dequantize_fn(DType t, Isa isa) {
#if GEMMA3_HAVE_X86_SIMD
  if (isa_has_avx2(isa)) switch (t) {
      case DType::Q8_0: return dequantize_row_q8_0_avx2;
      case DType::Q5_0: return dequantize_row_q5_0_avx2;
      case DType::Q4_K: return dequantize_row_q4_K_avx2;
      case DType::Q6_K: return dequantize_row_q6_K_avx2;
      default: break;
    }
#endif
  (void)isa;
  return row_kernels(t).dequantize;
}

#undef GEMMA3_QUANT_KERNELS
#undef GEMMA3_PLAIN_KERNELS
#undef GEMMA3_AVX2_OR_NULL
#undef GEMMA3_WASM_OR_NULL

}  // namespace quant

// Widen n stored values of dtype t (any DType, n a multiple of its block size) to
// float32. Exact: equals the gguf package's dequantization bit for bit.
inline void dequantize_row(DType t, const void* src, float* dst, std::int64_t n) {
  if (n % std::int64_t(dtype_block_size(t)) != 0)
    throw std::invalid_argument(std::string("dequantize_row: ") + std::to_string(n) + " values is not a multiple of " +
                                dtype_name(t) + "'s block size " + std::to_string(dtype_block_size(t)));
  quant::row_kernels(t).dequantize(src, dst, n);
}

}  // namespace gemma3
