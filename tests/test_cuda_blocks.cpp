// The CUDA backend's reading of GGUF blocks (cuda/include/gemma3/cuda/blocks.hpp),
// checked on the CPU, so it needs no GPU and runs in every build:
//   - the block geometry agrees with dtype.hpp for every type;
//   - half_to_float gives dtype.hpp's f16_to_f32 bits for all 65536 patterns;
//   - dequantize_part, part by part, gives quant::dequantize_row's bits for every block
//     type, on random blocks (every quant bit pattern, real and integer scales).
// The device runs these same functions (cuda/src/blocks.cu); cuda/tests/test_blocks.cpp
// then holds the kernels built on them to the CPU on a GPU.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "catch.hpp"

#include "../cuda/include/gemma3/cuda/blocks.hpp"
#include "gemma3/quant/quant.hpp"
#include "test_quant_helpers.hpp"

namespace blocks = gemma3::cuda::blocks;
using gemma3::DType;

namespace {
std::uint32_t bits_of(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}
}  // namespace

TEST_CASE("cuda blocks: the geometry of every block type is dtype.hpp's", "[cuda][blocks]") {
  for (DType t : quant_test::block_types()) {
    INFO(gemma3::dtype_name(t));
    CHECK(std::size_t(blocks::block_values(t)) == gemma3::dtype_block_size(t));
    CHECK(std::size_t(blocks::block_bytes(t)) == gemma3::dtype_block_bytes(t));
    CHECK(blocks::parts_per_block(t) * blocks::kPart == blocks::block_values(t));
    CHECK(blocks::block_bytes(t) % 2 == 0);  // every block starts 2-byte aligned in a row
  }
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    CHECK(blocks::block_values(t) == 0);
    CHECK(blocks::block_bytes(t) == 0);
    float y[32];
    const std::uint8_t b[64] = {};
    CHECK_FALSE(blocks::dequantize_part(t, b, 0, y));
  }
}

TEST_CASE("cuda blocks: half_to_float is f16_to_f32 for every bit pattern", "[cuda][blocks]") {
  int mismatches = 0;
  for (std::uint32_t h = 0; h < 65536; ++h)
    if (bits_of(blocks::half_to_float(h)) != bits_of(gemma3::f16_to_f32(std::uint16_t(h)))) ++mismatches;
  CHECK(mismatches == 0);
}

TEST_CASE("cuda blocks: every part of every block type is dequantize_row's, bit for bit", "[cuda][blocks]") {
  quant_test::Rng rng(20261207);
  for (DType t : quant_test::block_types()) {
    for (quant_test::Scales mode : {quant_test::Scales::real, quant_test::Scales::integer}) {
      INFO(gemma3::dtype_name(t) << (mode == quant_test::Scales::real ? " real scales" : " integer scales"));
      const std::int64_t rows = 5, cols = 3 * blocks::block_values(t) * (t == DType::Q8_0 ? 4 : 1);
      const std::vector<unsigned char> bytes = quant_test::random_blocks(t, rows, cols, rng, mode);
      const gemma3::Weight w = quant_test::weight_view(t, rows, cols, bytes);
      std::vector<float> expected(static_cast<std::size_t>(cols));
      int checked = 0, mismatches = 0;
      for (std::int64_t r = 0; r < rows; ++r) {
        gemma3::dequantize_row(w, r, expected.data());
        const auto* row = static_cast<const std::uint8_t*>(w.row_ptr(r));
        for (int p = 0; p < int(cols / blocks::kPart); ++p) {
          float y[blocks::kPart];
          const std::uint8_t* block = row + std::size_t(p / blocks::parts_per_block(t)) * std::size_t(blocks::block_bytes(t));
          REQUIRE(blocks::dequantize_part(t, block, p % blocks::parts_per_block(t), y));
          for (int j = 0; j < blocks::kPart; ++j, ++checked)
            if (bits_of(y[j]) != bits_of(expected[std::size_t(p * blocks::kPart + j)])) ++mismatches;
        }
      }
      CHECK(checked == rows * cols);
      CHECK(mismatches == 0);
      // The same blocks 2 bytes past a 4-byte boundary (the span loads' other path; in a
      // row of 2-byte aligned blocks every other block starts so).
      std::vector<std::uint32_t> shifted_words(bytes.size() / 4 + 2);
      auto* shifted = reinterpret_cast<std::uint8_t*>(shifted_words.data()) + 2;
      std::memcpy(shifted, bytes.data(), bytes.size());
      int shifted_mismatches = 0;
      const std::size_t row_bytes = std::size_t(cols / blocks::block_values(t)) * std::size_t(blocks::block_bytes(t));
      for (std::int64_t r = 0; r < rows; ++r) {
        gemma3::dequantize_row(w, r, expected.data());
        for (int p = 0; p < int(cols / blocks::kPart); ++p) {
          float y[blocks::kPart];
          const std::uint8_t* block = shifted + std::size_t(r) * row_bytes +
                                      std::size_t(p / blocks::parts_per_block(t)) * std::size_t(blocks::block_bytes(t));
          REQUIRE(blocks::dequantize_part(t, block, p % blocks::parts_per_block(t), y));
          for (int j = 0; j < blocks::kPart; ++j)
            if (bits_of(y[j]) != bits_of(expected[std::size_t(p * blocks::kPart + j)])) ++shifted_mismatches;
        }
      }
      CHECK(shifted_mismatches == 0);
    }
  }
}
