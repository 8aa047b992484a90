// gemma3/quant/q5_0.hpp -- GGUF Q5_0 and Q5_1: 32 values of 5 bits.
//
//   block_q5_0 (22 bytes, 5.5 bits per value)
//   byte 0      2             6                             22
//        +------+-------------+-----------------------------+
//        | d    | qh          | qs[0] ... qs[15]            |
//        | f16  | 32 bits, LE | low 4 bits, as in Q4_0      |
//        +------+-------------+-----------------------------+
//
//   h = qh as a little-endian uint32; bit j of h is the 5th bit of value j:
//   y[j]    = (((qs[j] & 0x0F) | ((h >>  j      ) & 1) << 4) - 16) * d      j = 0..15
//   y[j+16] = (((qs[j] >>   4) | ((h >> (j + 16)) & 1) << 4) - 16) * d
//
//   block_q5_1 (24 bytes, 6 bits per value)
//   byte 0      2      4             8                      24
//        +------+------+-------------+----------------------+
//        | d    | m    | qh          | qs[0] ... qs[15]     |
//        +------+------+-------------+----------------------+
//
//   y = q * d + m    with q = the same 5-bit value, no -16 offset.
//
// Gemma 3 270M Q4_K_M stores attn_q, attn_k, ffn_gate, ffn_up (and most attn_v) in
// Q5_0: their rows of 640 (1152 for 1B) are not a multiple of 256, so llama.cpp
// falls back from Q4_K to Q5_0 (src/llama-quant.cpp). It is the most used type of
// the file.
//
// Kernels: dequantize_row_q5_0 / _q5_1 (exact, equal the gguf package bit for bit),
// dot_q5_0_f32 / dot_q5_1_f32 (row . float32 x, the plain references). The AVX2 twin
// of dequantize_row_q5_0 is in kernels/dequantize_simd.hpp.
// Pinned by tests/test_quant.cpp and tests/fixtures/quant/.
#pragma once

#include <cstdint>
#include <cstring>

#include "common.hpp"

namespace gemma3 {
namespace quant {

#pragma pack(push, 1)
struct block_q5_0 {
  std::uint16_t d;          // f16 scale
  std::uint8_t qh[4];       // 5th bits, little-endian uint32
  std::uint8_t qs[QK / 2];  // low 4 bits
};
struct block_q5_1 {
  std::uint16_t d;  // f16 scale
  std::uint16_t m;  // f16 minimum
  std::uint8_t qh[4];
  std::uint8_t qs[QK / 2];
};
#pragma pack(pop)
static_assert(sizeof(block_q5_0) == 22, "block_q5_0 layout");
static_assert(sizeof(block_q5_1) == 24, "block_q5_1 layout");

inline std::uint32_t load_u32_le(const std::uint8_t* p) {
  return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 | std::uint32_t(p[3]) << 24;
}

// The 5-bit values (0..31) of one block, in output order.
inline void unpack_q5(const std::uint8_t* qh, const std::uint8_t* qs, int q[QK]) {
  const std::uint32_t h = load_u32_le(qh);
  for (int j = 0; j < QK / 2; ++j) {
    q[j] = (qs[j] & 0x0f) | int((h >> j) & 1u) << 4;
    q[j + QK / 2] = (qs[j] >> 4) | int((h >> (j + 16)) & 1u) << 4;
  }
}

inline void dequantize_row_q5_0(const void* src, float* y, std::int64_t n) {
  const auto* x = static_cast<const block_q5_0*>(src);
  int q[QK];
  for (std::int64_t b = 0; b < n / QK; ++b, y += QK) {
    const float d = f16_to_f32(x[b].d);
    unpack_q5(x[b].qh, x[b].qs, q);
    for (int j = 0; j < QK; ++j) y[j] = d * float(q[j] - 16);
  }
}

inline void dequantize_row_q5_1(const void* src, float* y, std::int64_t n) {
  const auto* x = static_cast<const block_q5_1*>(src);
  int q[QK];
  for (std::int64_t b = 0; b < n / QK; ++b, y += QK) {
    const float d = f16_to_f32(x[b].d), m = f16_to_f32(x[b].m);
    unpack_q5(x[b].qh, x[b].qs, q);
    for (int j = 0; j < QK; ++j) y[j] = d * float(q[j]) + m;
  }
}

inline float dot_q5_0_f32(const void* row, const float* x, std::int64_t n) {
  return dot_f32_by_blocks<QK, sizeof(block_q5_0)>(row, x, n, dequantize_row_q5_0);
}
inline float dot_q5_1_f32(const void* row, const float* x, std::int64_t n) {
  return dot_f32_by_blocks<QK, sizeof(block_q5_1)>(row, x, n, dequantize_row_q5_1);
}

}  // namespace quant
}  // namespace gemma3
