// Storage dtypes and the matmul entry point: every path against the scalar twin.
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "catch.hpp"

#include "gemma3/kernels/matmul.hpp"

using gemma3::DType;
using gemma3::Matrix;

TEST_CASE("bf16 and f16 conversions: exact widening, round-to-nearest-even narrowing", "[kernels]") {
  CHECK(gemma3::bf16_to_f32(0x3f80) == 1.0f);
  CHECK(gemma3::bf16_to_f32(0xc000) == -2.0f);
  CHECK(gemma3::f32_to_bf16(1.0f) == 0x3f80);
  // 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: ties to even (1.0).
  CHECK(gemma3::f32_to_bf16(1.0f + 1.0f / 256) == 0x3f80);
  // 1 + 3 * 2^-8 is halfway between 1.0078125 (odd) and 1.015625 (even): rounds up.
  CHECK(gemma3::f32_to_bf16(1.0f + 3.0f / 256) == 0x3f82);
  CHECK(gemma3::round_to_dtype(std::sqrt(1152.0f), DType::BF16) == 34.0f);
  CHECK(std::isnan(gemma3::bf16_to_f32(gemma3::f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));

  CHECK(gemma3::f16_to_f32(0x3c00) == 1.0f);
  CHECK(gemma3::f16_to_f32(0x7bff) == 65504.0f);             // largest finite
  CHECK(gemma3::f16_to_f32(0x0001) == std::ldexp(1.0f, -24)); // smallest subnormal
  CHECK(gemma3::f16_to_f32(0x03ff) == std::ldexp(1023.0f, -24));
  CHECK(std::isinf(gemma3::f16_to_f32(0x7c00)));
  CHECK(std::isnan(gemma3::f16_to_f32(0x7e00)));
  CHECK(gemma3::f32_to_f16(65504.0f) == 0x7bff);
  CHECK(gemma3::f32_to_f16(65520.0f) == 0x7c00);             // rounds to inf
  CHECK(gemma3::f32_to_f16(std::ldexp(1.0f, -24)) == 0x0001);
  CHECK(gemma3::f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000); // halfway to the smallest subnormal: ties to even
  CHECK(gemma3::f32_to_f16(-0.0f) == 0x8000);
  // Every f16 value survives f16 -> f32 -> f16.
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;  // NaNs
    const std::uint16_t back = gemma3::f32_to_f16(gemma3::f16_to_f32(std::uint16_t(h)));
    if (back != h) FAIL("f16 round trip failed for 0x" << std::hex << h);
  }
  // Every bf16 value survives bf16 -> f32 -> bf16.
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) continue;
    if (gemma3::f32_to_bf16(gemma3::bf16_to_f32(std::uint16_t(h))) != h) FAIL("bf16 round trip failed for 0x" << std::hex << h);
  }
}

namespace {
// A random weight of the given dtype, owned by `bytes`.
gemma3::Weight random_weight(DType t, int rows, int cols, std::vector<unsigned char>& bytes, std::mt19937& rng) {
  std::normal_distribution<float> n(0.0f, 1.0f);
  bytes.resize(std::size_t(rows) * std::size_t(cols) * gemma3::dtype_size(t));
  for (std::size_t i = 0; i < std::size_t(rows) * std::size_t(cols); ++i) {
    const float v = n(rng);
    if (t == DType::F32) std::memcpy(&bytes[4 * i], &v, 4);
    else {
      const std::uint16_t h = t == DType::BF16 ? gemma3::f32_to_bf16(v) : gemma3::f32_to_f16(v);
      std::memcpy(&bytes[2 * i], &h, 2);
    }
  }
  gemma3::Weight w;
  w.dtype = t;
  w.data = bytes.data();
  w.rows = rows;
  w.cols = cols;
  return w;
}
}  // namespace

TEST_CASE("matvec, matmul and linear equal the scalar matvec for every dtype", "[kernels]") {
  std::mt19937 rng(7);
  const DType dtype = GENERATE(DType::F32, DType::BF16, DType::F16);
  const int rows = GENERATE(1, 63, 64, 65, 200);  // around the 64-row conversion block
  const int cols = 37;
  std::vector<unsigned char> bytes;
  const gemma3::Weight W = random_weight(dtype, rows, cols, bytes, rng);
  Matrix X = Matrix::Random(5, cols);  // [T, in]

  Matrix ref(5, rows);
  for (int t = 0; t < 5; ++t) gemma3::matvec_scalar(W, X.row(t).data(), ref.row(t).data());

  Matrix Y;
  gemma3::matmul(W, X, Y);
  INFO(gemma3::dtype_name(dtype) << " rows " << rows);
  CHECK((Y - ref).cwiseAbs().maxCoeff() <= 1e-5f * std::max(1.0f, ref.cwiseAbs().maxCoeff()));

  for (int t = 0; t < 5; ++t) {
    std::vector<float> y(static_cast<std::size_t>(rows));
    gemma3::matvec(W, X.row(t).data(), y.data());
    for (int r = 0; r < rows; ++r) CHECK(y[std::size_t(r)] == Approx(ref(t, r)).margin(1e-5));
  }
  Matrix one;
  gemma3::linear(W, X.topRows(1), one);
  CHECK(one.rows() == 1);
  CHECK((one - ref.topRows(1)).cwiseAbs().maxCoeff() <= 1e-5f * std::max(1.0f, ref.cwiseAbs().maxCoeff()));
}
