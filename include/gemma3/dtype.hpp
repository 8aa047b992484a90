// gemma3/dtype.hpp -- storage dtypes of weights and their conversion to float32.
//
//   bf16: the top 16 bits of an IEEE float32 (1 sign, 8 exponent, 7 mantissa bits).
//         to f32: bits << 16 (exact). from f32: round to nearest, ties to even.
//   f16:  IEEE binary16 (1, 5, 10), with subnormals, inf and NaN. to f32 is exact.
//
// Weights stay in their stored dtype and are widened to float32 where they are
// used (kernels/matmul.hpp); activations are always float32.
// Pinned by tests/test_kernels.cpp.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace gemma3 {

// Plain element types, then GGUF's block-quantized types (the GGUF spec, docs/gguf.md
// in the ggml repository; block layouts: ggml's src/ggml-common.h). A quantized row
// of `cols` values is cols / block_size blocks of block_bytes each; cols must be a
// multiple of the block size.
enum class DType { F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K };

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::Q8_0: return "Q8_0";
    case DType::Q4_0: return "Q4_0";
    case DType::Q4_1: return "Q4_1";
    case DType::Q5_0: return "Q5_0";
    case DType::Q5_1: return "Q5_1";
    case DType::Q4_K: return "Q4_K";
    case DType::Q5_K: return "Q5_K";
    case DType::Q6_K: return "Q6_K";
  }
  return "?";
}

inline bool dtype_is_quantized(DType t) { return t != DType::F32 && t != DType::F16 && t != DType::BF16; }

// Values per block (1 for plain types).
inline std::size_t dtype_block_size(DType t) {
  switch (t) {
    case DType::F32: case DType::F16: case DType::BF16: return 1;
    case DType::Q8_0: case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: return 32;
    case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: return 256;
  }
  return 1;
}

// Bytes per block (per element for plain types).
inline std::size_t dtype_block_bytes(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: case DType::BF16: return 2;
    case DType::Q8_0: return 34;   // f16 d + 32 x int8
    case DType::Q4_0: return 18;   // f16 d + 16 bytes of nibbles
    case DType::Q4_1: return 20;   // f16 d, f16 m + 16 bytes
    case DType::Q5_0: return 22;   // f16 d + 4 bytes high bits + 16 bytes
    case DType::Q5_1: return 24;   // f16 d, f16 m + 4 + 16
    case DType::Q4_K: return 144;  // f16 d, f16 dmin, 12 bytes scales, 128 bytes nibbles
    case DType::Q5_K: return 176;  // + 32 bytes high bits
    case DType::Q6_K: return 210;  // 128 low + 64 high + 16 int8 scales + f16 d
  }
  return 0;
}

// Bytes of one row of `cols` values (cols a multiple of the block size).
inline std::size_t dtype_row_bytes(DType t, std::size_t cols) { return cols / dtype_block_size(t) * dtype_block_bytes(t); }

// Element size of a plain type (F32, F16, BF16).
inline std::size_t dtype_size(DType t) { return t == DType::F32 ? 4 : 2; }

inline float bf16_to_f32(std::uint16_t h) {
  std::uint32_t bits = std::uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline std::uint16_t f32_to_bf16(float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu))  // NaN stays NaN
    return std::uint16_t((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest, ties to even
  return std::uint16_t(bits >> 16);
}

inline float f16_to_f32(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t mant = h & 0x3ffu;
  std::uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;  // +-0
    } else {        // subnormal: renormalise
      int e = -1;
      do { ++e; mant <<= 1; } while ((mant & 0x400u) == 0);
      bits = sign | (std::uint32_t(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf / NaN
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline std::uint16_t f32_to_f16(float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const std::uint16_t sign = std::uint16_t((bits >> 16) & 0x8000u);
  const std::uint32_t absbits = bits & 0x7fffffffu;
  if (absbits >= 0x7f800000u) return std::uint16_t(sign | 0x7c00u | (absbits > 0x7f800000u ? 0x200u : 0));
  if (absbits >= 0x477ff000u) return std::uint16_t(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (absbits < 0x38800000u) {  // result is subnormal or zero
    if (absbits < 0x33000000u) return sign;
    const std::uint32_t mant = (absbits & 0x7fffffu) | 0x800000u;
    const int shift = 126 - int(absbits >> 23);  // 14..24
    std::uint32_t half = mant >> shift;
    const std::uint32_t rem = mant & ((1u << shift) - 1u);
    const std::uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half & 1u))) ++half;
    return std::uint16_t(sign | half);
  }
  std::uint32_t r = absbits - (112u << 23);  // rebias exponent 127 -> 15
  r += 0xfffu + ((r >> 13) & 1u);           // round to nearest even on the 13 dropped bits
  return std::uint16_t(sign | (r >> 13));
}

// Widen n stored values of a plain dtype t (F32, BF16, F16) to float32. Block types
// go through dequantize_row (quant/quant.hpp), which takes every DType.
inline void to_f32(DType t, const void* src, float* dst, std::size_t n) {
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::BF16: {
      const auto* s = static_cast<const std::uint16_t*>(src);
      for (std::size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::F16: {
      const auto* s = static_cast<const std::uint16_t*>(src);
      for (std::size_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    default:
      throw std::logic_error(std::string("to_f32: ") + dtype_name(t) + " is a block type; use dequantize_row (quant/quant.hpp)");
  }
}

// Round a float32 to the nearest value representable in dtype t (returned as float32).
inline float round_to_dtype(float x, DType t) {
  switch (t) {
    case DType::F32: return x;
    case DType::BF16: return bf16_to_f32(f32_to_bf16(x));
    case DType::F16: return f16_to_f32(f32_to_f16(x));
    default: return x;  // block types have no single rounding of one value
  }
}

}  // namespace gemma3
