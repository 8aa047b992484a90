// gemma3/quant/q4_0.hpp -- GGUF Q4_0 and Q4_1: 32 values of 4 bits.
//
//   block_q4_0 (18 bytes, 4.5 bits per value)
//   byte 0      2                                   18
//        +------+-----------------------------------+
//        | d    | qs[0] ... qs[15]                  |   qs[j] = (q[j+16] << 4) | q[j]
//        | f16  | 16 bytes, two 4-bit quants each   |
//        +------+-----------------------------------+
//
//   y[j]    = ((qs[j] & 0x0F) - 8) * d                  j = 0..15
//   y[j+16] = ((qs[j] >>   4) - 8) * d
//
//   block_q4_1 (20 bytes, 5 bits per value)
//   byte 0      2      4                            20
//        +------+------+----------------------------+
//        | d    | m    | qs[0] ... qs[15]           |   same nibble order as Q4_0
//        | f16  | f16  |                            |
//        +------+------+----------------------------+
//
//   y[j]    = (qs[j] & 0x0F) * d + m
//   y[j+16] = (qs[j] >>   4) * d + m
//
// The nibbles are not interleaved: byte j holds values j (low) and j+16 (high).
// Gemma 3's Q4_K_M files use neither (llama.cpp's src/llama-quant.cpp); Q4_0
// appears in QAT / Q4_0 files, Q4_1 for robustness.
//
// Kernels: dequantize_row_q4_0 / _q4_1 (exact, equal the gguf package bit for bit),
// dot_q4_0_f32 / dot_q4_1_f32 (row . float32 x, the plain references).
// Pinned by tests/test_quant.cpp and tests/fixtures/quant/.
#pragma once

#include <cstdint>

#include "common.hpp"

namespace gemma3 {
namespace quant {

#pragma pack(push, 1)
struct block_q4_0 {
  std::uint16_t d;          // f16 scale
  std::uint8_t qs[QK / 2];  // nibbles
};
struct block_q4_1 {
  std::uint16_t d;  // f16 scale
  std::uint16_t m;  // f16 minimum (offset)
  std::uint8_t qs[QK / 2];
};
#pragma pack(pop)
static_assert(sizeof(block_q4_0) == 18, "block_q4_0 layout");
static_assert(sizeof(block_q4_1) == 20, "block_q4_1 layout");

inline void dequantize_row_q4_0(const void* src, float* y, std::int64_t n) {
  const auto* x = static_cast<const block_q4_0*>(src);
  for (std::int64_t b = 0; b < n / QK; ++b, y += QK) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < QK / 2; ++j) {
      y[j] = d * float((x[b].qs[j] & 0x0f) - 8);
      y[j + QK / 2] = d * float((x[b].qs[j] >> 4) - 8);
    }
  }
}

inline void dequantize_row_q4_1(const void* src, float* y, std::int64_t n) {
  const auto* x = static_cast<const block_q4_1*>(src);
  for (std::int64_t b = 0; b < n / QK; ++b, y += QK) {
    const float d = f16_to_f32(x[b].d), m = f16_to_f32(x[b].m);
    for (int j = 0; j < QK / 2; ++j) {
      y[j] = d * float(x[b].qs[j] & 0x0f) + m;
      y[j + QK / 2] = d * float(x[b].qs[j] >> 4) + m;
    }
  }
}

inline float dot_q4_0_f32(const void* row, const float* x, std::int64_t n) {
  return dot_f32_by_blocks<QK, sizeof(block_q4_0)>(row, x, n, dequantize_row_q4_0);
}
inline float dot_q4_1_f32(const void* row, const float* x, std::int64_t n) {
  return dot_f32_by_blocks<QK, sizeof(block_q4_1)>(row, x, n, dequantize_row_q4_1);
}

}  // namespace quant
}  // namespace gemma3
