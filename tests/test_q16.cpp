// int16 activations (quant/q16.hpp, kernels/dot_q16.hpp): the quantizer, the unpacking of every block type,
// the dot products (avx512 twin against the scalar reference, and both against the
// float product with a rigorous error bound), and matvec on that path.
#include <cmath>
#include <cstring>
#include <vector>

#include "catch.hpp"

#include "gemma3/kernels/matmul.hpp"
#include "gemma3/kernels/thread_pool.hpp"
#include "gemma3/kernels/dot_q16.hpp"
#include "gemma3/quant/q16.hpp"
#include "gemma3/quant/quant.hpp"
#include "test_quant_helpers.hpp"

using gemma3::DType;
using gemma3::Isa;
namespace q = gemma3::quant;
using quant_test::Rng;

namespace {

struct Q16Buf {
  std::vector<std::int16_t> q;
  std::vector<float> d, s;
  std::vector<std::int8_t> hi, lo;  // the byte split, after split()
  std::vector<float> dX, sum16;
  explicit Q16Buf(std::int64_t n) : q(std::size_t(n)), d(std::size_t(n / 32)), s(std::size_t(n / 32)) {}
  void split(Isa isa) {
    const std::int64_t n = std::int64_t(q.size());
    hi.resize(q.size());
    lo.resize(q.size());
    dX.assign(std::size_t(n / 32), -1.0f);
    sum16.assign(std::size_t(n / 16), -1.0f);
    q::split_q16_bytes(q.data(), d.data(), n, hi.data(), lo.data(), dX.data(), sum16.data(), isa);
  }
  // with the byte split when split() ran (the byte kernels, e.g. Q5_0's), else without
  q::Q16Row row() const {
    q::Q16Row r{q.data(), d.data(), s.data()};
    if (!hi.empty()) {
      r.hi = hi.data();
      r.lo = lo.data();
      r.dX = dX.data();
      r.sum16 = sum16.data();
    }
    return r;
  }
  q::Q16Row row16() const { return {q.data(), d.data(), s.data()}; }  // never the byte split
};

// Activations like a transformer's: mostly small, a few large outliers.
std::vector<float> activations(std::int64_t n, Rng& rng) {
  std::vector<float> x = quant_test::random_floats(std::size_t(n), rng, 1.0f);
  for (std::int64_t i = 0; i < n; i += 97) x[std::size_t(i)] *= 300.0f;
  return x;
}

std::int64_t cols_for(DType t) { return gemma3::dtype_block_size(t) == 256 ? 1024 : 640; }

}  // namespace

TEST_CASE("q16 quantizer: within half a step, |q| <= 16383, avx512 equals scalar", "[quant][q16]") {
  Rng rng(16);
  const std::int64_t n = 640;
  std::vector<float> x = activations(n, rng);
  for (int i = 64; i < 96; ++i) x[std::size_t(i)] = 0.0f;  // an all-zero block
  Q16Buf a(n);
  q::quantize_row_q16_scalar(x.data(), a.q.data(), a.d.data(), a.s.data(), n);
  for (std::int64_t b = 0; b < n / 32; ++b) {
    float amax = 0.0f, sum = 0.0f;
    for (int i = 0; i < 32; ++i) {
      amax = std::max(amax, std::fabs(x[std::size_t(32 * b + i)]));
      sum += x[std::size_t(32 * b + i)];
    }
    CHECK(a.d[std::size_t(b)] == amax / 16383.0f);
    CHECK(a.s[std::size_t(b)] == sum);
    for (int i = 0; i < 32; ++i) {
      const std::size_t k = std::size_t(32 * b + i);
      CHECK(std::abs(int(a.q[k])) <= q::kQ16Max);
      CHECK(std::fabs(x[k] - a.d[std::size_t(b)] * float(a.q[k])) <= 0.5001f * a.d[std::size_t(b)] + 1e-30f);
    }
  }
  CHECK(a.d[2] == 0.0f);
  CHECK(a.q[70] == 0);
  if (gemma3::isa_available(Isa::avx512)) {
    Q16Buf v(n);
    q::quantize_row_q16(x.data(), v.q.data(), v.d.data(), v.s.data(), n, Isa::avx512);
    CHECK(v.q == a.q);
    CHECK(v.d == a.d);
    for (std::size_t b = 0; b < a.s.size(); ++b) CHECK(std::fabs(v.s[b] - a.s[b]) <= 1e-5f * (1.0f + std::fabs(a.s[b])) * 300.0f);
  }
}

TEST_CASE("q16 byte split: q = 256 hi + lo, per-block d * sum q, avx512 equals scalar", "[quant][q16]") {
  Rng rng(17);
  const std::int64_t n = 21 * 32;  // an odd number of blocks
  std::vector<float> x = activations(n, rng);
  x[5] = 1000.0f;    // q = 16383 in block 0
  x[40] = -1000.0f;  // q = -16383 in block 1
  Q16Buf a(n);
  q::quantize_row_q16_scalar(x.data(), a.q.data(), a.d.data(), a.s.data(), n);
  REQUIRE(a.q[5] == 16383);
  REQUIRE(a.q[40] == -16383);
  a.split(Isa::scalar);
  for (std::int64_t i = 0; i < n; ++i) {
    const int h = a.hi[std::size_t(i)], l = a.lo[std::size_t(i)];
    CHECK(256 * h + l == int(a.q[std::size_t(i)]));
    CHECK(h >= -64);
    CHECK(h <= 64);
  }
  REQUIRE(a.dX.size() == 21);
  for (std::int64_t b = 0; b < n / 32; ++b) {
    int X = 0;
    for (int i = 0; i < 32; ++i) X += a.q[std::size_t(32 * b + i)];
    CHECK(a.dX[std::size_t(b)] == a.d[std::size_t(b)] * float(X));
  }
  for (std::int64_t g = 0; g < n / 16; ++g) {
    int X = 0;
    for (int i = 0; i < 16; ++i) X += a.q[std::size_t(16 * g + i)];
    CHECK(a.sum16[std::size_t(g)] == float(X));
  }
  if (gemma3::isa_available(Isa::avx512)) {
    Q16Buf v = a;
    v.split(Isa::avx512);
    CHECK(v.hi == a.hi);
    CHECK(v.lo == a.lo);
    CHECK(v.dX == a.dX);
    CHECK(v.sum16 == a.sum16);
  }
}

TEST_CASE("q16 unpacking: scale * u + min is the dequantized weight, avx512 equals scalar", "[quant][q16]") {
  for (DType t : quant_test::block_types()) {
    INFO(gemma3::dtype_name(t));
    Rng rng(1600 + std::uint64_t(t));
    const std::int64_t rows = 3, n = cols_for(t);
    const std::vector<unsigned char> bytes = quant_test::random_blocks(t, rows, n, rng);
    const std::size_t row_bytes = bytes.size() / rows;
    for (std::int64_t r = 0; r < rows; ++r) {
      const void* row = bytes.data() + std::size_t(r) * row_bytes;
      std::vector<float> deq(static_cast<std::size_t>(n));
      gemma3::dequantize_row(t, row, deq.data(), n);
      std::vector<std::int16_t> u(static_cast<std::size_t>(n));
      std::vector<float> scale(static_cast<std::size_t>(n / 32)), min(static_cast<std::size_t>(n / 32));
      q::unpack_q16_row_scalar(t, row, n, u.data(), scale.data(), min.data());
      for (std::int64_t i = 0; i < n; ++i) {
        const float w = scale[std::size_t(i / 32)] * float(u[std::size_t(i)]) + min[std::size_t(i / 32)];
        const float ref = deq[std::size_t(i)];
        CHECK(std::abs(int(u[std::size_t(i)])) <= 4096);
        CHECK(std::fabs(w - ref) <= 4e-7f * (std::fabs(ref) + std::fabs(min[std::size_t(i / 32)])) + 1e-30f);
      }
      if (gemma3::isa_available(Isa::avx512)) {
        std::vector<std::int16_t> u2(static_cast<std::size_t>(n));
        std::vector<float> scale2(static_cast<std::size_t>(n / 32)), min2(static_cast<std::size_t>(n / 32));
        q::unpack_q16_row(t, row, n, u2.data(), scale2.data(), min2.data(), Isa::avx512);
        CHECK(u2 == u);
        CHECK(scale2 == scale);
        CHECK(min2 == min);
      }
    }
  }
}

TEST_CASE("q16 dots: within the rounding bound of the float product, avx512 equals scalar", "[quant][q16]") {
  for (DType t : quant_test::block_types()) {
    INFO(gemma3::dtype_name(t));
    Rng rng(1700 + std::uint64_t(t));
    const std::int64_t rows = 16;
    // 32-block counts of every remainder mod 4 too (Q5_0's byte kernel goes four blocks
    // at a time, then pair by pair, then a half pair)
    const bool k = gemma3::dtype_block_size(t) == 256;
    for (std::int64_t n : {2 * cols_for(t), std::int64_t(k ? 768 : 21 * 32), std::int64_t(k ? 256 : 22 * 32),
                           std::int64_t(k ? 1280 : 23 * 32)}) {
    INFO("n " << n);
    const std::vector<unsigned char> bytes = quant_test::random_blocks(t, rows, n, rng);
    const std::size_t row_bytes = bytes.size() / rows;
    const std::vector<float> x = activations(n, rng);
    Q16Buf xq(n);
    q::quantize_row_q16_scalar(x.data(), xq.q.data(), xq.d.data(), xq.s.data(), n);
    xq.split(Isa::scalar);
    for (std::int64_t r = 0; r < rows; ++r) {
      const void* row = bytes.data() + std::size_t(r) * row_bytes;
      std::vector<float> w(static_cast<std::size_t>(n));
      gemma3::dequantize_row(t, row, w.data(), n);
      // exact float product and the bound from rounding x: sum |w_i| d_b / 2
      double exact = 0.0, bound = 0.0, mag = 0.0;
      for (std::int64_t i = 0; i < n; ++i) {
        exact += double(w[std::size_t(i)]) * double(x[std::size_t(i)]);
        bound += std::fabs(double(w[std::size_t(i)])) * double(xq.d[std::size_t(i / 32)]) * 0.5;
        mag += std::fabs(double(w[std::size_t(i)]) * double(x[std::size_t(i)]));
      }
      const float ref = q::dot_q16_scalar(t, row, xq.row(), n);
      CHECK(std::fabs(double(ref) - exact) <= bound * 1.001 + 1e-6 * mag);
      // (8-bit activations, d_b = max / 127, would be allowed 129x this bound)
      CHECK(q::dot_q16_scalar(t, row, xq.row16(), n) == ref);
      if (gemma3::isa_available(Isa::avx512)) {
        const float simd = q::q16_dot(t, Isa::avx512)(row, xq.row(), n);  // byte kernels where a type has one
        CHECK(std::fabs(simd - ref) <= 2e-6 * mag);
        const float simd16 = q::q16_dot(t, Isa::avx512)(row, xq.row16(), n);  // the int16 walk
        CHECK(std::fabs(simd16 - ref) <= 2e-6 * mag);
      }
    }
    }
  }
}

TEST_CASE("q16 dots: Q6_K at the extremes of u and q does not overflow int32", "[quant][q16]") {
  // ql = qh = 0 -> q = 0 -> q - 32 = -32; scales -128 -> u = 4096; d = 1.
  const std::int64_t n = 256;
  q::block_q6_K blk{};
  for (auto& s : blk.scales) s = -128;
  blk.d = gemma3::f32_to_f16(1.0f);
  std::vector<float> x(static_cast<std::size_t>(n), 1.0f);  // q = 16383 everywhere
  Q16Buf xq(n);
  q::quantize_row_q16_scalar(x.data(), xq.q.data(), xq.d.data(), xq.s.data(), n);
  REQUIRE(xq.q[0] == 16383);
  const double expect = 256.0 * 4096.0;  // w_i = 1 * (-128) * (-32), x_i = 1
  CHECK(std::fabs(q::dot_q16_scalar(DType::Q6_K, &blk, xq.row(), n) - expect) <= 1e-6 * expect);
  if (gemma3::isa_available(Isa::avx512)) {
    CHECK(std::fabs(q::q16_dot(DType::Q6_K, Isa::avx512)(&blk, xq.row(), n) - expect) <= 1e-6 * expect);
    xq.split(Isa::avx512);  // the byte kernel: q = 0 against hi = 64, lo = -1
    CHECK(std::fabs(q::q16_dot(DType::Q6_K, Isa::avx512)(&blk, xq.row(), n) - expect) <= 1e-6 * expect);
    for (auto& b : blk.ql) b = 0xff;  // q = 63 (qh = 3): the largest byte product
    for (auto& b : blk.qh) b = 0xff;
    const double expect63 = 256.0 * -128.0 * 31.0;
    CHECK(std::fabs(q::dot_q16_scalar(DType::Q6_K, &blk, xq.row(), n) - expect63) <= 1e-6 * -expect63);
    CHECK(std::fabs(q::q16_dot(DType::Q6_K, Isa::avx512)(&blk, xq.row(), n) - expect63) <= 1e-6 * -expect63);
  }
}

TEST_CASE("q16 matvec: each row is the q16 dot, whatever the thread count", "[quant][q16][kernels]") {
  if (!gemma3::isa_available(Isa::avx512)) return;  // the path runs under Isa::avx512 only
  for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q5_K,
                  DType::Q6_K}) {
    INFO(gemma3::dtype_name(t));
    Rng rng(1800 + std::uint64_t(t));
    const std::int64_t rows = 300, n = 512;
    const std::vector<unsigned char> bytes = quant_test::random_blocks(t, rows, n, rng);
    const gemma3::Weight W = quant_test::weight_view(t, rows, n, bytes);
    const std::vector<float> x = activations(n, rng);
    Q16Buf xq(n);
    q::quantize_row_q16(x.data(), xq.q.data(), xq.d.data(), xq.s.data(), n, Isa::avx512);
    xq.split(Isa::avx512);  // matvec splits x for the byte kernels too
    const q::Q16DotFn dot = q::q16_dot(t, Isa::avx512);
    for (int threads : {1, 3}) {
      gemma3::ThreadPool pool(threads);
      std::vector<float> y(static_cast<std::size_t>(rows));
      gemma3::matvec(W, x.data(), y.data(), Isa::avx512, pool);
      for (std::int64_t r = 0; r < rows; ++r) CHECK(y[std::size_t(r)] == dot(W.row_ptr(r), xq.row(), n));
    }
    // the many-row entry points (what matvec calls), both twins, on a run of rows from row 7
    for (Isa isa : {Isa::avx512, Isa::scalar}) {
      std::vector<float> y(static_cast<std::size_t>(rows - 7));
      q::q16_dot_rows(t, isa)(W.row_ptr(7), W.row_bytes(), rows - 7, xq.row(), n, y.data());
      const q::Q16DotFn one = q::q16_dot(t, isa);
      for (std::int64_t r = 7; r < rows; ++r) CHECK(y[std::size_t(r - 7)] == one(W.row_ptr(r), xq.row(), n));
    }
  }
}

TEST_CASE("linear_many: bit for bit linear() of each weight, one token or many, any thread count", "[quant][q16][kernels]") {
  Rng rng(1900);
  const std::int64_t n = 512;
  // q/k/v-like: three quantized weights of different types and heights, and an f32 one
  const DType types[] = {DType::Q5_0, DType::Q8_0, DType::Q4_K, DType::F32};
  const std::int64_t heights[] = {300, 77, 256, 40};
  std::vector<std::vector<unsigned char>> bytes;
  std::vector<gemma3::Weight> W;
  for (int i = 0; i < 4; ++i) {
    if (types[i] == DType::F32) {
      const std::vector<float> f = quant_test::random_floats(std::size_t(heights[i] * n), rng, 0.1f);
      bytes.emplace_back(reinterpret_cast<const unsigned char*>(f.data()),
                         reinterpret_cast<const unsigned char*>(f.data() + f.size()));
    } else {
      bytes.push_back(quant_test::random_blocks(types[i], heights[i], n, rng));
    }
  }
  for (int i = 0; i < 4; ++i) W.push_back(quant_test::weight_view(types[i], heights[i], n, bytes[std::size_t(i)]));
  for (Isa isa : {Isa::avx512, Isa::avx2}) {
    if (!gemma3::isa_available(isa)) continue;
    for (int T : {1, 3, 6})  // 3: the small-batch dots on avx512, 6: the int16 GEMM
      for (int threads : {1, 3}) {
        INFO("isa " << gemma3::isa_name(isa) << " T " << T << " threads " << threads);
        gemma3::ThreadPool pool(threads);
        gemma3::Matrix X(T, n);
        const std::vector<float> x = activations(T * n, rng);
        std::copy(x.begin(), x.end(), X.data());
        gemma3::Matrix a, b, c, d, ra, rb, rc, rd;
        gemma3::linear_many(X, {{&W[0], &a}, {&W[1], &b}, {&W[2], &c}}, isa, pool);  // fused for T = 1 on avx512
        gemma3::linear_many(X, {{&W[0], &d}, {&W[3], &rd}}, isa, pool);              // an f32 weight: one by one
        gemma3::linear(W[0], X, ra, isa, pool);
        gemma3::linear(W[1], X, rb, isa, pool);
        gemma3::linear(W[2], X, rc, isa, pool);
        CHECK(a == ra);
        CHECK(b == rb);
        CHECK(c == rc);
        CHECK(d == ra);
        gemma3::Matrix r3;
        gemma3::linear(W[3], X, r3, isa, pool);
        CHECK(rd == r3);
      }
  }
}
