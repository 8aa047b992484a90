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
// Integer dot with block_q8_K activations (common.hpp), per super-block:
//   sumi = sum_j sc_j * sum_{i in j} q_i * qx_i          (exact int32)
//   summ = sum_j m_j * (bsums[2j] + bsums[2j+1])          (sum of qx over sub-block j)
//   sum += (d_w * d_x) * sumi - (dmin_w * d_x) * summ
// The SIMD twins compute the same two integers (horizontal sum once per super-block)
// and then the same float expression, so they equal the scalar twin exactly.
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
// summ of one super-block: the minimums times the activation sums of their sub-blocks.
inline int mins_dot_bsums(const int m[8], const block_q8_K& a) {
  int summ = 0;
  for (int j = 0; j < 8; ++j) summ += m[j] * (a.bsums[2 * j] + a.bsums[2 * j + 1]);
  return summ;
}
// sumi and summ of one super-block (see the header comment).
inline void int_dot_k4(const std::uint8_t* scales, const int* q, const block_q8_K& a, int& sumi, int& summ) {
  int sc[8], m[8];
  unpack_scales_k4(scales, sc, m);
  sumi = 0;
  for (int j = 0; j < 8; ++j) {
    int s = 0;
    for (int l = 0; l < 32; ++l) s += q[32 * j + l] * a.qs[32 * j + l];
    sumi += sc[j] * s;
  }
  summ = mins_dot_bsums(m, a);
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

#if GEMMA3_HAVE_X86_SIMD
namespace avx2 {
// Chunk c (0..3) of a Q4_K / Q5_K super-block -> its sub-blocks 2c (lo) and 2c + 1
// (hi) as 32 bytes each, values 0..15 (Q4_K) or 0..31 (Q5_K). For Q5_K, hb starts as
// the 32 qh bytes and moves one bit per sub-block: bit 2c, then 2c + 1, of every qh
// byte goes to bit 4 (16-bit shifts cannot leak: only bit 0 of each byte is used).
template <bool Q5>
GEMMA3_TARGET_AVX2 inline void unpack_k4_chunk(const std::uint8_t* qs, int c, __m256i& hb, __m256i& lo, __m256i& hi) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
  const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * c));
  lo = _mm256_and_si256(bits, m4);
  hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
  if (Q5) {
    lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(hb, one), 4));
    hb = _mm256_srli_epi16(hb, 1);
    hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(hb, one), 4));
    hb = _mm256_srli_epi16(hb, 1);
  }
}
}  // namespace avx2

// dequantize_row_q4_K with AVX2, bit for bit: per sub-block the scalar d1 and m1, then
// (d1 * float(q)) - m1 as a separate multiply and subtract (no FMA, like the scalar).
GEMMA3_TARGET_AVX2 inline void dequantize_row_q4_K_avx2(const void* src, float* y, std::int64_t n) {
  const auto* x = static_cast<const block_q4_K*>(src);
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  for (std::int64_t b = 0; b < n / QK_K; ++b, y += QK_K) {
    const float d = avx2::f16(x[b].d), dmin = avx2::f16(x[b].dmin);
    int sc[8], m[8];
    unpack_scales_k4(x[b].scales, sc, m);
    for (int c = 0; c < 4; ++c) {
      const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs + 32 * c));
      const __m256i nib[2] = {_mm256_and_si256(bytes, m4), _mm256_and_si256(_mm256_srli_epi16(bytes, 4), m4)};
      for (int h = 0; h < 2; ++h) {
        const int j = 2 * c + h;
        const __m256 d1 = _mm256_set1_ps(d * float(sc[j])), m1 = _mm256_set1_ps(dmin * float(m[j]));
        const __m128i lo = _mm256_castsi256_si128(nib[h]), hi = _mm256_extracti128_si256(nib[h], 1);
        const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
        float* out = y + 32 * j;
        for (int k = 0; k < 4; ++k)
          _mm256_storeu_ps(out + 8 * k, _mm256_sub_ps(_mm256_mul_ps(d1, avx2::i8x8_to_ps(parts[k])), m1));
      }
    }
  }
}
#endif

inline float dot_q4_K_f32(const void* row, const float* x, std::int64_t n) {
  return dot_f32_by_blocks<QK_K, sizeof(block_q4_K)>(row, x, n, dequantize_row_q4_K);
}
inline float dot_q5_K_f32(const void* row, const float* x, std::int64_t n) {
  return dot_f32_by_blocks<QK_K, sizeof(block_q5_K)>(row, x, n, dequantize_row_q5_K);
}

// ---- integer dot with block_q8_K activations: scalar twins ----

inline float vec_dot_q4_K_scalar(const void* w_row, const void* act, std::int64_t n) {
  const auto* w = static_cast<const block_q4_K*>(w_row);
  const auto* a = static_cast<const block_q8_K*>(act);
  float sum = 0.0f;
  int q[QK_K];
  for (std::int64_t b = 0; b < n / QK_K; ++b) {
    unpack_q4_K(w[b].qs, nullptr, q);
    int sumi, summ;
    detail::int_dot_k4(w[b].scales, q, a[b], sumi, summ);
    const float d = f16_to_f32(w[b].d) * a[b].d, dmin = f16_to_f32(w[b].dmin) * a[b].d;
    sum += d * float(sumi) - dmin * float(summ);
  }
  return sum;
}

inline float vec_dot_q5_K_scalar(const void* w_row, const void* act, std::int64_t n) {
  const auto* w = static_cast<const block_q5_K*>(w_row);
  const auto* a = static_cast<const block_q8_K*>(act);
  float sum = 0.0f;
  int q[QK_K];
  for (std::int64_t b = 0; b < n / QK_K; ++b) {
    unpack_q4_K(w[b].qs, w[b].qh, q);
    int sumi, summ;
    detail::int_dot_k4(w[b].scales, q, a[b], sumi, summ);
    const float d = f16_to_f32(w[b].d) * a[b].d, dmin = f16_to_f32(w[b].dmin) * a[b].d;
    sum += d * float(sumi) - dmin * float(summ);
  }
  return sum;
}


// ---- AVX2 ----
#if GEMMA3_HAVE_X86_SIMD
// Q4_K and Q5_K in one body (Q5: OR in the 5th bits from qh). The scales and
// minimums are widened to int16 once per super-block; summ is one _mm_madd_epi16 of
// the minimums with the activation sums of the 8 sub-blocks (pairs of bsums).
template <bool Q5>
GEMMA3_TARGET_AVX2 inline float vec_dot_k4_avx2(const std::uint8_t* base, std::size_t block_bytes, const void* act,
                                                std::int64_t n) {
  const auto* a = static_cast<const block_q8_K*>(act);
  float sum = 0.0f;
  for (std::int64_t b = 0; b < n / QK_K; ++b) {
    const std::uint8_t* blk = base + std::size_t(b) * block_bytes;
    const block_q4_K& w4 = *reinterpret_cast<const block_q4_K*>(blk);  // d, dmin, scales are in the same place
    const std::uint8_t* qs = Q5 ? reinterpret_cast<const block_q5_K*>(blk)->qs : w4.qs;
    std::uint8_t sm[16];
    unpack_scales_k4_bytes(w4.scales, sm);
    const __m256i sm16 = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sm)));
    const __m256i scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm16));  // sc_0..7, in both lanes
    const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].bsums));
    const __m128i sub_sums = _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256(bsums, 1));
    __m128i mins = _mm_madd_epi16(_mm256_extracti128_si256(sm16, 1), sub_sums);  // 4 lanes of m_j * sum_j
    mins = _mm_add_epi32(mins, _mm_shuffle_epi32(mins, 0x4e));
    mins = _mm_add_epi32(mins, _mm_shuffle_epi32(mins, 0xb1));

    __m256i hb = Q5 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(reinterpret_cast<const block_q5_K*>(blk)->qh))
                    : _mm256_setzero_si256();
    __m256i acc = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      // sc_2c and sc_2c+1 broadcast to 16 int16 lanes (byte pairs 4c, 4c+1 and 4c+2, 4c+3)
      const __m256i sc_lo = _mm256_shuffle_epi8(scales, _mm256_set1_epi16(short(0x0100 + 0x0404 * c)));
      const __m256i sc_hi = _mm256_shuffle_epi8(scales, _mm256_set1_epi16(short(0x0302 + 0x0404 * c)));
      __m256i lo, hi;
      avx2::unpack_k4_chunk<Q5>(qs, c, hb, lo, hi);
      const __m256i ylo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].qs + 64 * c));
      const __m256i yhi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].qs + 64 * c + 32));
      // maddubs: pairs of q * qx in int16 (|.| <= 2 * 31 * 127); madd by the sub-block scale: int32
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(lo, ylo), sc_lo));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(hi, yhi), sc_hi));
    }
    const int sumi = avx2::hsum_i32(acc), summ = _mm_cvtsi128_si32(mins);
    const float d = avx2::f16(w4.d) * a[b].d, dmin = avx2::f16(w4.dmin) * a[b].d;
    sum += d * float(sumi) - dmin * float(summ);
  }
  return sum;
}

GEMMA3_TARGET_AVX2 inline float vec_dot_q4_K_avx2(const void* w_row, const void* act, std::int64_t n) {
  return vec_dot_k4_avx2<false>(static_cast<const std::uint8_t*>(w_row), sizeof(block_q4_K), act, n);
}
GEMMA3_TARGET_AVX2 inline float vec_dot_q5_K_avx2(const void* w_row, const void* act, std::int64_t n) {
  return vec_dot_k4_avx2<true>(static_cast<const std::uint8_t*>(w_row), sizeof(block_q5_K), act, n);
}
#endif

// ---- WASM SIMD128 ----
#if GEMMA3_HAVE_WASM_SIMD
template <bool Q5>
inline float vec_dot_k4_wasm(const std::uint8_t* base, std::size_t block_bytes, const void* act, std::int64_t n) {
  const auto* a = static_cast<const block_q8_K*>(act);
  const v128_t m4 = wasm_i8x16_splat(0x0f), b4 = wasm_i8x16_splat(0x10);
  float sum = 0.0f;
  for (std::int64_t b = 0; b < n / QK_K; ++b) {
    const std::uint8_t* blk = base + std::size_t(b) * block_bytes;
    const block_q4_K& w4 = *reinterpret_cast<const block_q4_K*>(blk);
    const std::uint8_t* qs = Q5 ? reinterpret_cast<const block_q5_K*>(blk)->qs : w4.qs;
    const std::uint8_t* qh = Q5 ? reinterpret_cast<const block_q5_K*>(blk)->qh : nullptr;
    int sc[8], m[8];
    unpack_scales_k4(w4.scales, sc, m);
    v128_t acc = wasm_i32x4_splat(0);
    for (int c = 0; c < 4; ++c) {
      for (int half = 0; half < 2; ++half) {  // 16 of the 32 bytes at a time
        const v128_t bits = wasm_v128_load(qs + 32 * c + 16 * half);
        v128_t lo = wasm_v128_and(bits, m4), hi = wasm_u8x16_shr(bits, 4);
        if (Q5) {  // bit 2c (2c+1) of each qh byte -> 0x10, by compare (no variable byte shifts)
          const v128_t h = wasm_v128_load(qh + 16 * half);
          const v128_t blo = wasm_i8x16_splat(char(1 << (2 * c))), bhi = wasm_i8x16_splat(char(1 << (2 * c + 1)));
          lo = wasm_v128_or(lo, wasm_v128_and(wasm_i8x16_eq(wasm_v128_and(h, blo), blo), b4));
          hi = wasm_v128_or(hi, wasm_v128_and(wasm_i8x16_eq(wasm_v128_and(h, bhi), bhi), b4));
        }
        const v128_t plo = wasm::dot_i8(lo, wasm_v128_load(a[b].qs + 64 * c + 16 * half));
        const v128_t phi = wasm::dot_i8(hi, wasm_v128_load(a[b].qs + 64 * c + 32 + 16 * half));
        acc = wasm_i32x4_add(acc, wasm_i32x4_mul(plo, wasm_i32x4_splat(sc[2 * c])));
        acc = wasm_i32x4_add(acc, wasm_i32x4_mul(phi, wasm_i32x4_splat(sc[2 * c + 1])));
      }
    }
    const int sumi = wasm::hsum_i32(acc), summ = detail::mins_dot_bsums(m, a[b]);
    const float d = wasm::f16(w4.d) * a[b].d, dmin = wasm::f16(w4.dmin) * a[b].d;
    sum += d * float(sumi) - dmin * float(summ);
  }
  return sum;
}

inline float vec_dot_q4_K_wasm(const void* w_row, const void* act, std::int64_t n) {
  return vec_dot_k4_wasm<false>(static_cast<const std::uint8_t*>(w_row), sizeof(block_q4_K), act, n);
}
inline float vec_dot_q5_K_wasm(const void* w_row, const void* act, std::int64_t n) {
  return vec_dot_k4_wasm<true>(static_cast<const std::uint8_t*>(w_row), sizeof(block_q5_K), act, n);
}
#endif

}  // namespace quant
}  // namespace gemma3
