// gemma3/quant/q6_k.hpp -- GGUF Q6_K: 256-value super-blocks of 16 sub-blocks of 16,
// 6-bit quants, one signed 8-bit scale per sub-block.
//
//   block_q6_K (210 bytes, 6.5625 bits per value)
//   byte 0                     128               192              208    210
//        +---------------------+-----------------+----------------+------+
//        | ql[128]: low 4 bits | qh[64]: high 2  | scales[16]     | d    |
//        |                     | bits, 4 a byte  | int8           | f16  |
//        +---------------------+-----------------+----------------+------+
//
// Two halves h = 0, 1 of 128 outputs; half h reads L = ql + 64h, H = qh + 32h.
// For l = 0..31:
//   out 128h + l       q = (L[l]      & 0xF) | ((H[l] >> 0) & 3) << 4
//   out 128h + l + 32  q = (L[l + 32] & 0xF) | ((H[l] >> 2) & 3) << 4
//   out 128h + l + 64  q = (L[l]      >> 4)  | ((H[l] >> 4) & 3) << 4
//   out 128h + l + 96  q = (L[l + 32] >> 4)  | ((H[l] >> 6) & 3) << 4
//
//   y[o] = (d * scales[o / 16]) * (q - 32)          q in 0..63
//
// Gemma 3 270M Q4_K_M stores ffn_down of the "more bits" layers in Q6_K
// (llama.cpp's src/llama-quant.cpp).
//
// Kernels: dequantize_row_q6_K (exact, equals the gguf package bit for bit) and
// dot_q6_K_f32 (row . float32 x, the plain reference). Its AVX2 twin and the
// half-super-block unpacking the SIMD kernels share are in kernels/dequantize_simd.hpp.
// Pinned by tests/test_quant.cpp and tests/fixtures/quant/.
#pragma once

#include <cstdint>

#include "common.hpp"

namespace gemma3 {
namespace quant {

#pragma pack(push, 1)
struct block_q6_K {
  std::uint8_t ql[QK_K / 2];       // low 4 bits
  std::uint8_t qh[QK_K / 4];       // high 2 bits
  std::int8_t scales[QK_K / 16];   // sub-block scales
  std::uint16_t d;                 // f16 super-block scale
};
#pragma pack(pop)
static_assert(sizeof(block_q6_K) == 210, "block_q6_K layout");

// The 256 quants (0..63) of one super-block in output order.
inline void unpack_q6_K(const block_q6_K& x, int q[QK_K]) {
  for (int h = 0; h < 2; ++h) {
    const std::uint8_t* L = x.ql + 64 * h;
    const std::uint8_t* H = x.qh + 32 * h;
    int* out = q + 128 * h;
    for (int l = 0; l < 32; ++l) {
      out[l] = (L[l] & 0x0f) | ((H[l] >> 0) & 3) << 4;
      out[l + 32] = (L[l + 32] & 0x0f) | ((H[l] >> 2) & 3) << 4;
      out[l + 64] = (L[l] >> 4) | ((H[l] >> 4) & 3) << 4;
      out[l + 96] = (L[l + 32] >> 4) | ((H[l] >> 6) & 3) << 4;
    }
  }
}

inline void dequantize_row_q6_K(const void* src, float* y, std::int64_t n) {
  const auto* x = static_cast<const block_q6_K*>(src);
  int q[QK_K];
  for (std::int64_t b = 0; b < n / QK_K; ++b, y += QK_K) {
    const float d = f16_to_f32(x[b].d);
    unpack_q6_K(x[b], q);
    for (int g = 0; g < QK_K / 16; ++g) {
      const float dg = d * float(x[b].scales[g]);
      for (int l = 0; l < 16; ++l) y[16 * g + l] = dg * float(q[16 * g + l] - 32);
    }
  }
}

inline float dot_q6_K_f32(const void* row, const float* x, std::int64_t n) {
  return dot_f32_by_blocks<QK_K, sizeof(block_q6_K)>(row, x, n, dequantize_row_q6_K);
}

}  // namespace quant
}  // namespace gemma3
