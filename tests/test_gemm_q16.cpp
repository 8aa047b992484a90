// The prefill GEMM on int16 activations (kernels/gemm_q16.hpp): matmul_q16_avx512
// against matmul_q16_scalar (itself quant::dot_q16_scalar per output) on every block
// type, ragged row tiles and token groups, row sub-ranges and a padded ldy; and an
// all-extreme Q6_K case whose block sums sit just under 2^31.
//
// Tolerance. Both twins compute isum_b exactly (int32) and differ only in float
// rounding. The scalar twin adds the block terms (scale_b * d_b) * isum_b + min_b * s_b
// in double and rounds once. The avx512 twin rounds each term (cvt of isum, * d_b,
// * scale_b inside an fma: <= 3 roundings of 2^-24 relative) and adds 2 n/32 terms into a
// float32 running sum (each addition <= 2^-24 of a partial sum, itself <= S). With
//   S = sum_b |scale_b * d_b * isum_b| + |min_b * s_b|          (per output)
// that gives |avx512 - scalar| <= (2 n/32 + 4) * 2^-24 * S, checked for every output
// (S computed here in double from the scalar unpacking). That bound is linear in the
// block count; the errors are random in sign, so what is observed is far smaller: the
// test also checks the error relative to max |Y| of the whole product (<= 1e-5;
// observed: median 1.2e-7, at most 1.5e-6, on a one-row product). Not per row: with
// T = 1 a row's only output can cancel to nearly 0 and the ratio means nothing.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "catch.hpp"

#include "gemma3/kernels/gemm_q16.hpp"
#include "gemma3/kernels/isa.hpp"
#include "gemma3/kernels/dot_q16.hpp"
#include "gemma3/quant/q16.hpp"
#include "test_quant_helpers.hpp"

using gemma3::DType;
using gemma3::Isa;
using gemma3::Weight;
namespace q = gemma3::quant;
using quant_test::Rng;

namespace {

// T tokens of n int16 activations, quantized from float rows.
struct Acts {
  std::vector<std::int16_t> q;
  std::vector<float> d, s;
  gemma3::Q16Matrix m{};
};

Acts quantize(const std::vector<float>& x, std::int64_t T, std::int64_t n) {
  Acts a;
  const std::int64_t nb = n / q::QK;
  a.q.resize(std::size_t(T * n));
  a.d.resize(std::size_t(T * nb));
  a.s.resize(std::size_t(T * nb));
  for (std::int64_t t = 0; t < T; ++t)
    q::quantize_row_q16(x.data() + t * n, a.q.data() + t * n, a.d.data() + t * nb, a.s.data() + t * nb, n, Isa::scalar);
  a.m = {a.q.data(), a.d.data(), a.s.data(), T, n};
  return a;
}

// Random activations in [-1, 1] with a few large outliers (x 100).
std::vector<float> random_acts(std::int64_t T, std::int64_t n, Rng& rng) {
  std::vector<float> x = quant_test::random_floats(std::size_t(T * n), rng);
  for (std::int64_t i = 0; i < T * n / 97; ++i) x[std::size_t(rng.next() % std::uint64_t(T * n))] *= 100.0f;
  return x;
}

// Y[t * ldy + r] for r in [r0, r1) by both twins, every other entry left untouched
// (filled with a sentinel). Checks each output against the rounding bound above and
// returns the worst |avx512 - scalar| / max |Y|.
double compare(const Weight& W, const Acts& a, std::int64_t ldy, std::int64_t r0, std::int64_t r1) {
  const std::int64_t T = a.m.T, n = a.m.n, nb = n / q::QK;
  const float sentinel = 12345.0f;
  std::vector<float> ys(std::size_t(std::max<std::int64_t>(1, T) * ldy), sentinel), yv = ys;
  gemma3::matmul_q16_scalar(W, a.m, ys.data(), ldy, r0, r1);
  gemma3::matmul_q16_avx512(W, a.m, yv.data(), ldy, r0, r1);
  std::vector<std::int16_t> u(static_cast<std::size_t>(n));
  std::vector<float> scale(static_cast<std::size_t>(nb)), min(static_cast<std::size_t>(nb));
  double ymax = 0.0, worst = 0.0;
  for (std::int64_t r = r0; r < r1; ++r) {
    q::unpack_q16_row_scalar(W.dtype, W.row_ptr(r), n, u.data(), scale.data(), min.data());
    for (std::int64_t t = 0; t < T; ++t) {
      const q::Q16Row x = a.m.row(t);
      double S = 0.0;  // sum of |block terms|
      for (std::int64_t b = 0; b < nb; ++b) {
        std::int64_t isum = 0;
        for (std::int64_t i = b * q::QK; i < (b + 1) * q::QK; ++i) isum += std::int64_t(u[std::size_t(i)]) * x.q[i];
        S += std::fabs(double(scale[std::size_t(b)]) * double(x.d[b]) * double(isum)) +
             std::fabs(double(min[std::size_t(b)]) * double(x.s[b]));
      }
      const double ref = ys[std::size_t(t * ldy + r)], got = yv[std::size_t(t * ldy + r)];
      INFO("row " << r << " token " << t << " scalar " << ref << " avx512 " << got << " S " << S);
      REQUIRE(std::fabs(got - ref) <= (2.0 * double(nb) + 4.0) * std::ldexp(1.0, -24) * S + 1e-30);
      ymax = std::max(ymax, std::fabs(ref));
      worst = std::max(worst, std::fabs(got - ref));
    }
  }
  for (std::int64_t t = 0; t < T; ++t)  // outside [r0, r1): untouched by either
    for (std::int64_t r = 0; r < ldy; ++r)
      if (r < r0 || r >= r1) {
        REQUIRE(ys[std::size_t(t * ldy + r)] == sentinel);
        REQUIRE(yv[std::size_t(t * ldy + r)] == sentinel);
      }
  return ymax > 0.0 ? worst / ymax : worst;
}

bool is_k_quant(DType t) { return t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K; }

}  // namespace

TEST_CASE("matmul_q16_scalar is dot_q16_scalar per output", "[quant][gemm]") {
  Rng rng(7);
  const std::int64_t rows = 5, cols = 256, T = 3;
  for (DType t : quant_test::block_types()) {
    const std::vector<unsigned char> bytes = quant_test::random_blocks(t, rows, cols, rng);
    const Weight W = quant_test::weight_view(t, rows, cols, bytes);
    const Acts a = quantize(random_acts(T, cols, rng), T, cols);
    std::vector<float> y(std::size_t(T * rows));
    gemma3::matmul_q16_scalar(W, a.m, y.data(), rows, 0, rows);
    for (std::int64_t i = 0; i < T; ++i)
      for (std::int64_t r = 0; r < rows; ++r)
        REQUIRE(y[std::size_t(i * rows + r)] == q::dot_q16_scalar(t, W.row_ptr(r), a.m.row(i), cols));
  }
}

TEST_CASE("matmul_q16_avx512 == matmul_q16_scalar to float rounding, every block type and shape", "[quant][gemm]") {
  if (!gemma3::isa_available(Isa::avx512)) {
    WARN("no AVX-512 VNNI here: matmul_q16_avx512 is the scalar twin, nothing to compare");
    return;
  }
  Rng rng(42);
  double worst = 0.0;
  for (DType t : quant_test::block_types()) {
    const std::vector<std::int64_t> col_sizes =
        is_k_quant(t) ? std::vector<std::int64_t>{256, 512, 1024, 2048} : std::vector<std::int64_t>{256, 640, 2048};
    for (std::int64_t cols : col_sizes)
      for (std::int64_t rows : {1, 16, 17, 40, 640}) {
        if (rows == 640 && cols == 2048 && t != DType::Q4_K && t != DType::Q5_0) continue;  // keep the test quick
        const std::vector<unsigned char> bytes = quant_test::random_blocks(t, rows, cols, rng);
        const Weight W = quant_test::weight_view(t, rows, cols, bytes);
        for (std::int64_t T : {1, 3, 8, 9, 64, 100}) {
          if (rows == 640 && T > 9) continue;  // the big tiles with few tokens; many tokens below
          const Acts a = quantize(random_acts(T, cols, rng), T, cols);
          INFO(gemma3::dtype_name(t) << " rows " << rows << " cols " << cols << " T " << T);
          const double e = compare(W, a, rows, 0, rows);
          worst = std::max(worst, e);
          REQUIRE(e <= 1e-5);
        }
      }
  }
  INFO("worst relative error " << worst);
  CHECK(worst <= 1e-5);
}

TEST_CASE("matmul_q16_avx512: row sub-ranges, ldy > rows, many tokens", "[quant][gemm]") {
  if (!gemma3::isa_available(Isa::avx512)) return;
  Rng rng(3);
  struct Range { std::int64_t r0, r1; };
  for (DType t : quant_test::block_types()) {
    const std::int64_t rows = 64, cols = is_k_quant(t) ? 512 : 640, ldy = 75;
    const std::vector<unsigned char> bytes = quant_test::random_blocks(t, rows, cols, rng);
    const Weight W = quant_test::weight_view(t, rows, cols, bytes);
    for (std::int64_t T : {1, 13, 100}) {
      const Acts a = quantize(random_acts(T, cols, rng), T, cols);
      for (Range rg : {Range{5, 37}, Range{0, 16}, Range{16, 48}, Range{63, 64}, Range{7, 8}, Range{20, 20}, Range{0, 64}}) {
        INFO(gemma3::dtype_name(t) << " rows [" << rg.r0 << ", " << rg.r1 << ") T " << T);
        REQUIRE(compare(W, a, ldy, rg.r0, rg.r1) <= 1e-5);
      }
    }
  }
}

// Each output is the same sequence of operations wherever its row falls in a tile and
// its token in a group: row chunks (threads) and token subsets give the same bits.
TEST_CASE("matmul_q16_avx512: row chunks and token subsets give bit-identical outputs", "[quant][gemm]") {
  if (!gemma3::isa_available(Isa::avx512)) return;
  Rng rng(9);
  for (DType t : {DType::Q5_0, DType::Q4_K}) {
    const std::int64_t rows = 53, cols = 512, T = 21, nb = cols / q::QK;
    const std::vector<unsigned char> bytes = quant_test::random_blocks(t, rows, cols, rng);
    const Weight W = quant_test::weight_view(t, rows, cols, bytes);
    const Acts a = quantize(random_acts(T, cols, rng), T, cols);
    std::vector<float> whole(std::size_t(T * rows)), split(std::size_t(T * rows)), one(static_cast<std::size_t>(rows));
    gemma3::matmul_q16_avx512(W, a.m, whole.data(), rows, 0, rows);
    for (std::int64_t r0 : {0, 3, 19, 35, 48})  // chunks [0,3) [3,19) [19,35) [35,48) [48,53)
      gemma3::matmul_q16_avx512(W, a.m, split.data(), rows, r0, r0 == 48 ? rows : r0 == 0 ? 3 : r0 + 16);
    CHECK(split == whole);
    for (std::int64_t i = 0; i < T; ++i) {  // token i alone (a 1-wide group)
      const gemma3::Q16Matrix single{a.q.data() + i * cols, a.d.data() + i * nb, a.s.data() + i * nb, 1, cols};
      gemma3::matmul_q16_avx512(W, single, one.data(), rows, 0, rows);
      REQUIRE(std::equal(one.begin(), one.end(), whole.begin() + i * rows));
    }
  }
}

TEST_CASE("matmul_q16_avx512: T = 0 writes nothing, bad arguments throw", "[quant][gemm]") {
  Rng rng(5);
  const std::vector<unsigned char> bytes = quant_test::random_blocks(DType::Q8_0, 16, 64, rng);
  const Weight W = quant_test::weight_view(DType::Q8_0, 16, 64, bytes);
  const Acts a = quantize(random_acts(1, 64, rng), 1, 64);
  gemma3::Q16Matrix none = a.m;
  none.T = 0;
  std::vector<float> y(16, 7.0f);
  gemma3::matmul_q16_avx512(W, none, y.data(), 16, 0, 16);
  CHECK(y == std::vector<float>(16, 7.0f));
  CHECK_THROWS(gemma3::matmul_q16_avx512(W, a.m, y.data(), 16, 0, 17));
  gemma3::Q16Matrix wrong = a.m;
  wrong.n = 32;
  CHECK_THROWS(gemma3::matmul_q16_avx512(W, wrong, y.data(), 16, 0, 16));
  CHECK_THROWS(gemma3::matmul_q16_scalar(W, wrong, y.data(), 16, 0, 16));
}

// Q6_K at its extremes: u = scales * (q - 32) = (-128) * (-32) = 4096 (and -128 * 31 =
// -3968), activations q = +-16383, so a block's isum reaches 32 * 4096 * 16383 =
// 2147352576, 131071 below 2^31 - 1: any carry of one block's int32 sum into the next
// block, or a saturating/mis-paired product, shows. Every value here is exact in float
// (d = 1, x = +-1 so d_b = 1/16383), and Y is known in closed form.
TEST_CASE("matmul_q16_avx512: Q6_K all-extreme blocks, int32 sums just under 2^31", "[quant][gemm]") {
  const std::int64_t rows = 20, cols = 512, nb = cols / q::QK;
  std::vector<unsigned char> bytes(std::size_t(rows) * gemma3::dtype_row_bytes(DType::Q6_K, cols));
  auto* blocks = reinterpret_cast<q::block_q6_K*>(bytes.data());
  // rows r: all quants 0 (q - 32 = -32, u = 4096) when r is even, 63 (q - 32 = 31, u = -3968) when odd
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t sb = 0; sb < cols / q::QK_K; ++sb) {
      q::block_q6_K& b = blocks[r * (cols / q::QK_K) + sb];
      std::memset(b.ql, r % 2 ? 0xff : 0x00, sizeof(b.ql));
      std::memset(b.qh, r % 2 ? 0xff : 0x00, sizeof(b.qh));
      for (auto& sc : b.scales) sc = -128;
      b.d = gemma3::f32_to_f16(1.0f);
    }
  const Weight W = quant_test::weight_view(DType::Q6_K, rows, cols, bytes);
  // tokens: all +1, all -1, and alternating signs per block of 32
  const std::int64_t T = 3;
  std::vector<float> x(std::size_t(T * cols));
  for (std::int64_t i = 0; i < cols; ++i) {
    x[std::size_t(i)] = 1.0f;
    x[std::size_t(cols + i)] = -1.0f;
    x[std::size_t(2 * cols + i)] = (i / q::QK) % 2 ? -1.0f : 1.0f;
  }
  const Acts a = quantize(x, T, cols);
  REQUIRE(a.q[0] == q::kQ16Max);
  std::vector<float> ys(std::size_t(T * rows)), yv(std::size_t(T * rows));
  gemma3::matmul_q16_scalar(W, a.m, ys.data(), rows, 0, rows);
  if (gemma3::isa_available(Isa::avx512)) gemma3::matmul_q16_avx512(W, a.m, yv.data(), rows, 0, rows);
  else yv = ys;
  for (std::int64_t r = 0; r < rows; ++r) {
    const double u = r % 2 ? -3968.0 : 4096.0;
    // per block: scale * d_b * isum = 1 * (1/16383) * (32 * u * 16383 * sign) = 32 * u * sign (to float rounding of d_b)
    const double expect[T] = {double(nb) * 32.0 * u, -double(nb) * 32.0 * u, 0.0};
    for (std::int64_t t = 0; t < T; ++t) {
      INFO("row " << r << " token " << t);
      CHECK(std::fabs(ys[std::size_t(t * rows + r)] - expect[t]) <= 1e-5 * std::fabs(double(nb) * 32.0 * u));
      CHECK(std::fabs(yv[std::size_t(t * rows + r)] - expect[t]) <= 1e-5 * std::fabs(double(nb) * 32.0 * u));
    }
  }
}

// Pairing: weight (u0, u1) must meet activation (q0, q1), not (q1, q0) or a neighbour's
// pair. Integer-valued weights (d = 1) against one-hot activations pick single weights.
TEST_CASE("matmul_q16_avx512: one-hot activations read back each weight", "[quant][gemm]") {
  if (!gemma3::isa_available(Isa::avx512)) return;
  Rng rng(11);
  for (DType t : quant_test::block_types()) {
    const std::int64_t rows = 17, cols = 256, T = cols;
    const std::vector<unsigned char> bytes = quant_test::random_blocks(t, rows, cols, rng, quant_test::Scales::integer);
    const Weight W = quant_test::weight_view(t, rows, cols, bytes);
    std::vector<float> x(std::size_t(T * cols), 0.0f);
    for (std::int64_t i = 0; i < T; ++i) x[std::size_t(i * cols + i)] = 1.0f;  // token i = e_i
    const Acts a = quantize(x, T, cols);
    std::vector<float> y(std::size_t(T * rows));
    gemma3::matmul_q16_avx512(W, a.m, y.data(), rows, 0, rows);
    std::vector<float> w(static_cast<std::size_t>(cols));
    for (std::int64_t r = 0; r < rows; ++r) {
      dequantize_row(W, r, w.data());
      for (std::int64_t i = 0; i < cols; ++i) {
        INFO(gemma3::dtype_name(t) << " row " << r << " col " << i);
        // e_i: d_b = 1/16383, q_i = 16383, s_b = 1: Y = w_i to float rounding (a few
        // ulps of |scale * u| + |min| <= 4096); a wrong pair reads another integer
        REQUIRE(std::fabs(y[std::size_t(i * rows + r)] - w[std::size_t(i)]) <= 0.01);
      }
    }
  }
}
