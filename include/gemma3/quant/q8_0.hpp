// gemma3/quant/q8_0.hpp -- GGUF Q8_0: 32 values in 34 bytes (8.5 bits per value).
//
//   block_q8_0
//   byte 0      2                                        34
//        +------+----------------------------------------+
//        | d    | qs[0] qs[1] ...                 qs[31] |
//        | f16  | int8 x 32                              |
//        +------+----------------------------------------+
//
//   y[j] = qs[j] * d                                    j = 0..31
//
// Gemma 3's Q4_K_M files store token_embd (the embedding table, which is also the
// tied LM head) and some attn_v weights in Q8_0 (llama.cpp's src/llama-quant.cpp).
//
// Kernels: dequantize_row_q8_0 (exact, equals the gguf package bit for bit) and
// dot_q8_0_f32 (row . float32 x, the plain reference). Its AVX2 twin is in
// kernels/dequantize_simd.hpp.
// Pinned by tests/test_quant.cpp and tests/fixtures/quant/.
#pragma once

#include <cstdint>

#include "common.hpp"

namespace gemma3 {
namespace quant {

#pragma pack(push, 1)
struct block_q8_0 {
  std::uint16_t d;     // f16 scale
  std::int8_t qs[QK];  // quants
};
#pragma pack(pop)
static_assert(sizeof(block_q8_0) == 34, "block_q8_0 layout");

// n values (n a multiple of 32) from n / 32 blocks.
inline void dequantize_row_q8_0(const void* src, float* y, std::int64_t n) {
  const auto* x = static_cast<const block_q8_0*>(src);
  for (std::int64_t b = 0; b < n / QK; ++b) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < QK; ++j) y[b * QK + j] = float(x[b].qs[j]) * d;
  }
}

inline float dot_q8_0_f32(const void* row, const float* x, std::int64_t n) {
  return dot_f32_by_blocks<QK, sizeof(block_q8_0)>(row, x, n, dequantize_row_q8_0);
}

}  // namespace quant
}  // namespace gemma3
