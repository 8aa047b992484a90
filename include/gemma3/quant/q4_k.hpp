// gemma3/quant/q4_k.hpp -- GGUF Q4_K and Q5_K: 256-value super-blocks of 8 sub-blocks
// of 32, each sub-block with its own 6-bit scale and 6-bit minimum.
//
//   block_q4_K (144 bytes, 4.5 bits per value)
//   byte 0      2      4                 16                                  144
//        +------+------+-----------------+-----------------------------------+
//        | d    | dmin | scales[12]      | qs[128]: 4-bit quants             |
//        | f16  | f16  | 8 x (sc, m), 6b |                                   |
//        +------+------+-----------------+-----------------------------------+
//
//   block_q5_K (176 bytes, 5.5 bits per value): the same plus the 5th bits
//   byte 0      2      4                 16            48                    176
//        +------+------+-----------------+-------------+---------------------+
//        | d    | dmin | scales[12]      | qh[32]      | qs[128]             |
//        +------+------+-----------------+-------------+---------------------+
//
// The 12 scale bytes s[0..11] hold 8 six-bit scales sc_j and 8 six-bit minimums m_j
// (get_scale_min_k4):
//   j < 4:  sc_j = s[j] & 63                          m_j = s[j+4] & 63
//   j >= 4: sc_j = (s[j+4] & 0xF) | (s[j-4] >> 6) << 4   m_j = (s[j+4] >> 4) | (s[j] >> 6) << 4
//
// Values: 4 chunks c = 0..3 of 64 outputs; chunk c reads bytes qs[32c .. 32c+31]:
//   output 64c + l      = low  nibble of qs[32c + l]   in sub-block j = 2c      l = 0..31
//   output 64c + 32 + l = high nibble of qs[32c + l]   in sub-block j = 2c + 1
//   (Q5_K adds 16 when bit 2c, resp. 2c+1, of qh[l] is set)
//
//   y = (d * sc_j) * q - (dmin * m_j)          q in 0..15 (Q4_K) or 0..31 (Q5_K)
//
// Gemma 3 270M Q4_K_M stores attn_output (rows of 1024) and some ffn_down (rows of
// 2048) in Q4_K (llama.cpp's src/llama-quant.cpp); Q5_K is here for other files.
//
// Kernels: dequantize_row_q4_K / _q5_K (exact, equal the gguf package bit for bit),
// dot_q4_K_f32 / dot_q5_K_f32 (row . float32 x, the plain references), and
// unpack_scales_k4_bytes, which the SIMD kernels share (kernels/dequantize_simd.hpp
// has the AVX2 twin of dequantize_row_q4_K and the chunk unpacking).
// Pinned by tests/test_quant.cpp and tests/fixtures/quant/.
#pragma once

#include <cstdint>
#include <cstring>

#include "common.hpp"

namespace gemma3 {
namespace quant {

constexpr int K_SCALE_SIZE = 12;

#pragma pack(push, 1)
struct block_q4_K {
  std::uint16_t d;                    // f16 scale of the scales
  std::uint16_t dmin;                 // f16 scale of the minimums
  std::uint8_t scales[K_SCALE_SIZE];  // 8 scales + 8 minimums, 6 bits each
  std::uint8_t qs[QK_K / 2];          // 4-bit quants
};
struct block_q5_K {
  std::uint16_t d;
  std::uint16_t dmin;
  std::uint8_t scales[K_SCALE_SIZE];
  std::uint8_t qh[QK_K / 8];  // 5th bits
  std::uint8_t qs[QK_K / 2];
};
#pragma pack(pop)
static_assert(sizeof(block_q4_K) == 144, "block_q4_K layout");
static_assert(sizeof(block_q5_K) == 176, "block_q5_K layout");

// The 8 scales and 8 minimums packed in 12 bytes.
inline void unpack_scales_k4(const std::uint8_t* s, int sc[8], int m[8]) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = s[j] & 63;
    m[j] = s[j + 4] & 63;
  }
  for (int j = 4; j < 8; ++j) {
    sc[j] = (s[j + 4] & 0x0f) | (s[j - 4] >> 6) << 4;
    m[j] = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
  }
}

// The same 16 values as bytes, sc_0..7 then m_0..7, with four 32-bit operations
// (llama.cpp's utmp trick): the SIMD kernels widen them to int16 in one instruction.
inline void unpack_scales_k4_bytes(const std::uint8_t* s, std::uint8_t out[16]) {
  constexpr std::uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
  std::uint32_t u[4];
  std::memcpy(u, s, 12);
  u[3] = ((u[2] >> 4) & kmask2) | (((u[1] >> 6) & kmask3) << 4);  // m_4..7
  const std::uint32_t m03 = u[1] & kmask1;                        // m_0..3
  u[1] = (u[2] & kmask2) | (((u[0] >> 6) & kmask3) << 4);         // sc_4..7
  u[2] = m03;
  u[0] &= kmask1;                                                 // sc_0..3
  std::memcpy(out, u, 16);
}

// The 256 quants of one super-block in output order (qh null for Q4_K).
inline void unpack_q4_K(const std::uint8_t* qs, const std::uint8_t* qh, int q[QK_K]) {
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      const int b = qs[32 * c + l];
      q[64 * c + l] = (b & 0x0f) | (qh ? ((qh[l] >> (2 * c)) & 1) << 4 : 0);
      q[64 * c + 32 + l] = (b >> 4) | (qh ? ((qh[l] >> (2 * c + 1)) & 1) << 4 : 0);
    }
}

namespace detail {
inline void dequantize_k4(float d, float dmin, const std::uint8_t* scales, const int* q, float* y) {
  int sc[8], m[8];
  unpack_scales_k4(scales, sc, m);
  for (int j = 0; j < 8; ++j) {
    const float d1 = d * float(sc[j]), m1 = dmin * float(m[j]);
    for (int l = 0; l < 32; ++l) y[32 * j + l] = d1 * float(q[32 * j + l]) - m1;
  }
}
}  // namespace detail

inline void dequantize_row_q4_K(const void* src, float* y, std::int64_t n) {
  const auto* x = static_cast<const block_q4_K*>(src);
  int q[QK_K];
  for (std::int64_t b = 0; b < n / QK_K; ++b, y += QK_K) {
    unpack_q4_K(x[b].qs, nullptr, q);
    detail::dequantize_k4(f16_to_f32(x[b].d), f16_to_f32(x[b].dmin), x[b].scales, q, y);
  }
}

inline void dequantize_row_q5_K(const void* src, float* y, std::int64_t n) {
  const auto* x = static_cast<const block_q5_K*>(src);
  int q[QK_K];
  for (std::int64_t b = 0; b < n / QK_K; ++b, y += QK_K) {
    unpack_q4_K(x[b].qs, x[b].qh, q);
    detail::dequantize_k4(f16_to_f32(x[b].d), f16_to_f32(x[b].dmin), x[b].scales, q, y);
  }
}

inline float dot_q4_K_f32(const void* row, const float* x, std::int64_t n) {
  return dot_f32_by_blocks<QK_K, sizeof(block_q4_K)>(row, x, n, dequantize_row_q4_K);
}
inline float dot_q5_K_f32(const void* row, const float* x, std::int64_t n) {
  return dot_f32_by_blocks<QK_K, sizeof(block_q5_K)>(row, x, n, dequantize_row_q5_K);
}

}  // namespace quant
}  // namespace gemma3
