// Storage dtypes, the matmul entry point and the GELU kernel: every path against the scalar twin.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "catch.hpp"

#include "gemma3/backends/cpu.hpp"
#include "gemma3/kernels/argmax.hpp"
#include "gemma3/kernels/gelu.hpp"
#include "gemma3/kernels/matmul.hpp"
#include "gemma3/kernels/softmax.hpp"
#include "test_quant_helpers.hpp"
#include "gemma3/mlp.hpp"

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
  return quant_test::weight_view(t, rows, cols, bytes);
}
}  // namespace

TEST_CASE("matvec, matmul and linear equal the scalar matvec for every dtype", "[kernels]") {
  std::mt19937 rng(7);
  const DType dtype = GENERATE(DType::F32, DType::BF16, DType::F16);
  const int rows = GENERATE(1, 63, 64, 65, 200);  // around the 64-row conversion block
  const int cols = 37;
  std::vector<unsigned char> bytes;
  const gemma3::Weight W = random_weight(dtype, rows, cols, bytes, rng);
  const int T = 12;  // more than kernels/matmul.hpp's kFewTokens: the GEMM path
  Matrix X = Matrix::Random(T, cols);  // [T, in]

  Matrix ref(T, rows);
  for (int t = 0; t < T; ++t) gemma3::matvec_scalar(W, X.row(t).data(), ref.row(t).data());

  Matrix Y;
  gemma3::matmul(W, X, Y);
  INFO(gemma3::dtype_name(dtype) << " rows " << rows);
  CHECK((Y - ref).cwiseAbs().maxCoeff() <= 1e-5f * std::max(1.0f, ref.cwiseAbs().maxCoeff()));

  for (int t = 0; t < T; ++t) {
    std::vector<float> y(static_cast<std::size_t>(rows));
    gemma3::matvec(W, X.row(t).data(), y.data());
    for (int r = 0; r < rows; ++r) CHECK(y[std::size_t(r)] == Approx(ref(t, r)).margin(1e-5));
  }
  Matrix one;
  gemma3::linear(W, X.topRows(1), one);
  CHECK(one.rows() == 1);
  CHECK((one - ref.topRows(1)).cwiseAbs().maxCoeff() <= 1e-5f * std::max(1.0f, ref.cwiseAbs().maxCoeff()));
}

// ---- gelu_tanh_mul (kernels/gelu.hpp) ----

namespace {
using gemma3::Isa;

std::vector<Isa> gelu_simd_isas() {
  std::vector<Isa> v;
  for (Isa i : {Isa::avx2, Isa::wasm_simd128})
    if (gemma3::isa_available(i)) v.push_back(i);
  return v;
}

// gelu_tanh in double, as u / (1 + exp(-2z)): no cancellation for negative u.
double gelu_tanh_double(float uf) {
  const double u = uf, z = 0.7978845608028654 * (u + 0.044715 * u * u * u);
  return u / (1.0 + std::exp(-2.0 * z));
}

// How far a SIMD result may be from the scalar twin's: 4e-7 relative, plus the
// scalar twin's own cancellation in 1 + tanh(z) for negative u (up to |u| 2^-25,
// doubled). A tanh with a 3-term polynomial, or 1/x from _mm256_rcp_ps, misses it
// by orders of magnitude.
double gelu_vs_scalar_tol(float u, float scalar) {
  return 4e-7 * std::fabs(double(scalar)) + std::ldexp(std::fabs(double(u)), -24);
}

// How far a SIMD result may be from gelu_tanh in double where that is a normal
// float: 4e-7 relative, plus 3 |2z| 2^-24 for u < 0, where exp(-2|z|) magnifies
// the float rounding of z (measured: 2.7e-7 for u in [-1, 0), 9.3e-6 near u = -9).
double gelu_vs_double_tol(float u, double ref) {
  const double z = 0.7978845608028654 * (double(u) + 0.044715 * double(u) * u * u);
  const double rel = 4e-7 + (u < 0 ? 3.0 * std::fabs(2.0 * z) * std::ldexp(1.0, -24) : 0.0);
  return rel * std::fabs(ref);
}
}  // namespace

TEST_CASE("gelu_tanh_mul: SIMD twins equal the scalar twin over [-30, 30] and at special values", "[kernels]") {
  std::vector<float> u;
  for (int i = -30000; i <= 30000; ++i) u.push_back(float(i) * 1e-3f);
  const float inf = std::numeric_limits<float>::infinity();
  const float specials[] = {0.0f,    -0.0f,   std::numeric_limits<float>::denorm_min(), -std::numeric_limits<float>::denorm_min(),
                            1e-40f,  -1e-40f, std::numeric_limits<float>::min(),        -std::numeric_limits<float>::min(),
                            1e-30f,  -1e-30f, 1e-8f,  -1e-8f,  50.0f,  -50.0f,  1e6f,  -1e6f,  1e13f,  -1e13f,  1e20f,  -1e20f,
                            std::numeric_limits<float>::max(), -std::numeric_limits<float>::max()};
  const std::size_t n_sweep = u.size();
  u.insert(u.end(), std::begin(specials), std::end(specials));
  const std::vector<float> ones(u.size(), 1.0f);

  std::vector<float> scalar = u;
  gemma3::kernels::gelu_tanh_mul_scalar(scalar.data(), ones.data(), std::int64_t(u.size()));
  CHECK(scalar[30000 + 1000] == gemma3::gelu_tanh(1.0f));  // the scalar twin is gelu_tanh

  for (Isa isa : gelu_simd_isas()) {
    INFO(gemma3::isa_name(isa));
    std::vector<float> simd = u;
    gemma3::gelu_tanh_mul(simd.data(), ones.data(), std::int64_t(u.size()), isa);

    double worst_vs_scalar = 0, worst_vs_double = 0;  // in units of the tolerance
    float worst_u_scalar = 0, worst_u_double = 0;
    int non_finite = 0;
    for (std::size_t i = 0; i < u.size(); ++i) {
      if (!std::isfinite(simd[i])) ++non_finite;
      const double d = std::fabs(double(simd[i]) - double(scalar[i])) / std::max(gelu_vs_scalar_tol(u[i], scalar[i]), 1e-45);
      if (d > worst_vs_scalar) worst_vs_scalar = d, worst_u_scalar = u[i];
      const double ref = gelu_tanh_double(u[i]);
      if (i < n_sweep && std::fabs(ref) >= 1e-30) {
        const double dd = std::fabs(double(simd[i]) - ref) / gelu_vs_double_tol(u[i], ref);
        if (dd > worst_vs_double) worst_vs_double = dd, worst_u_double = u[i];
      }
    }
    INFO("worst vs scalar at u = " << worst_u_scalar << ", vs double at u = " << worst_u_double);
    CHECK(non_finite == 0);
    CHECK(worst_vs_scalar <= 1.0);
    CHECK(worst_vs_double <= 1.0);

    // the sign of zero, and large |u|: u and -0
    for (std::size_t i = n_sweep; i < u.size(); ++i) {
      INFO("u = " << u[i] << ": simd " << simd[i] << ", scalar " << scalar[i]);
      if (u[i] == 0.0f) CHECK((simd[i] == 0.0f && std::signbit(simd[i]) == std::signbit(u[i])));
      if (u[i] >= 50.0f) CHECK(simd[i] == u[i]);
      if (u[i] <= -50.0f) CHECK((simd[i] == 0.0f && std::signbit(simd[i])));
    }

    // NaN stays NaN; +inf gives +inf; -inf gives NaN (inf * 0), as the scalar twin does
    float g[3] = {std::numeric_limits<float>::quiet_NaN(), inf, -inf};
    const float one[3] = {1.0f, 1.0f, 1.0f};
    gemma3::gelu_tanh_mul(g, one, 3, isa);
    CHECK(std::isnan(g[0]));
    CHECK(g[1] == inf);
    CHECK(std::isnan(g[2]));
    CHECK(std::isnan(gemma3::gelu_tanh(-inf)));
  }
}

TEST_CASE("gelu_tanh_mul: tails, the product with up, and threads", "[kernels]") {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> gate(100003), up(gate.size());
  for (float& v : gate) v = normal(rng);
  for (float& v : up) v = normal(rng);

  for (Isa isa : gelu_simd_isas()) {
    INFO(gemma3::isa_name(isa));
    // Every tail length: the same values as in a full-length call, nothing past n touched.
    std::vector<float> full(gate.begin(), gate.begin() + 17);
    gemma3::gelu_tanh_mul(full.data(), up.data(), 17, isa);
    for (std::int64_t n = 1; n <= 17; ++n) {
      INFO("n = " << n);
      std::vector<float> g(gate.begin(), gate.begin() + 20), s(g);
      gemma3::gelu_tanh_mul(g.data(), up.data(), n, isa);
      gemma3::kernels::gelu_tanh_mul_scalar(s.data(), up.data(), n);
      bool same_as_full = true, within_tol = true;
      for (std::int64_t i = 0; i < n; ++i) {
        same_as_full = same_as_full && g[std::size_t(i)] == full[std::size_t(i)];
        const double d = std::fabs(double(g[std::size_t(i)]) - s[std::size_t(i)]);
        // the product with up scales both the value and the tolerance
        within_tol = within_tol && d <= gelu_vs_scalar_tol(gate[std::size_t(i)], s[std::size_t(i)] / up[std::size_t(i)]) *
                                            std::fabs(up[std::size_t(i)]) * (1 + 1e-6);
      }
      CHECK(same_as_full);
      CHECK(within_tol);
      for (std::size_t i = std::size_t(n); i < g.size(); ++i) CHECK(g[i] == gate[i]);
    }
  }

  // Split over a pool: any thread count, the same result as one call on one thread.
  std::vector<float> one_thread = gate, two_threads = gate;
  gemma3::gelu_tanh_mul(one_thread.data(), up.data(), std::int64_t(gate.size()), gemma3::best_isa());
  gemma3::ThreadPool pool(2);
  gemma3::gelu_tanh_mul(two_threads.data(), up.data(), std::int64_t(gate.size()), gemma3::best_isa(), pool);
  CHECK(one_thread == two_threads);
}

TEST_CASE("gemma3_mlp on the CPU backend (gelu_tanh_mul kernel) equals the MLP with the scalar gelu_tanh", "[kernels]") {
  std::mt19937 rng(5);
  const int T = 7, hidden = 64, intermediate = 200;  // gate values ~N(0, 4.6^2): both tails of GELU
  std::vector<unsigned char> gb, ub, db;
  gemma3::Gemma3MLPWeights w;
  w.gate_proj = random_weight(DType::F32, intermediate, hidden, gb, rng);
  w.up_proj = random_weight(DType::F32, intermediate, hidden, ub, rng);
  w.down_proj = random_weight(DType::F32, hidden, intermediate, db, rng);
  const Matrix x = Matrix::Random(T, hidden);

  Matrix gate, up, ref;
  gemma3::linear(w.gate_proj, x, gate);
  gemma3::linear(w.up_proj, x, up);
  const Matrix h = gate.unaryExpr([](float u) { return gemma3::gelu_tanh(u); }).cwiseProduct(up);
  gemma3::linear(w.down_proj, h, ref);

  const gemma3::CpuBackend cpu;
  gemma3::Activations out_a;
  gemma3::gemma3_mlp(cpu, w, gemma3::Activations(x), out_a);
  const Matrix& out = out_a.host();
  REQUIRE(out.rows() == T);
  REQUIRE(out.cols() == hidden);
  const float rel = (out - ref).cwiseAbs().maxCoeff() / ref.cwiseAbs().maxCoeff();
  INFO("max |diff| / max |ref| = " << rel << " (" << cpu.name() << ")");
  CHECK(rel <= 1e-6f);
}

TEST_CASE("softmax exponentials: AVX2 twin within 3e-7 of std::exp, tails, the sum", "[kernels]") {
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> dist(-30.0f, 5.0f);
  for (int n : {1, 7, 8, 9, 31, 512, 1000}) {
    std::vector<float> x(static_cast<std::size_t>(n));
    for (float& v : x) v = dist(gen);
    const float m = *std::max_element(x.begin(), x.end());
    std::vector<float> ref = x, got = x;
    const float ref_sum = gemma3::kernels::exp_shift_sum_scalar(ref.data(), n, m);
    double exact_sum = 0.0;
    for (int i = 0; i < n; ++i) {
      const double e = std::exp(double(x[std::size_t(i)] - m));  // the float difference, as both twins use
      CHECK(std::fabs(ref[std::size_t(i)] - e) <= 2e-7 * e + 1e-45);
      exact_sum += e;
    }
    CHECK(std::fabs(ref_sum - exact_sum) <= 1e-6 * exact_sum);
    CHECK(ref[std::size_t(std::max_element(x.begin(), x.end()) - x.begin())] == 1.0f);
    if (!gemma3::isa_available(gemma3::Isa::avx2)) continue;
    const float got_sum = gemma3::exp_shift_sum(got.data(), n, m, gemma3::Isa::avx2);
    INFO("n " << n);
    for (int i = 0; i < n; ++i) CHECK(std::fabs(got[std::size_t(i)] - ref[std::size_t(i)]) <= 3e-7f * ref[std::size_t(i)] + 1e-38f);
    CHECK(std::fabs(got_sum - exact_sum) <= 1e-6 * exact_sum);
  }
}

TEST_CASE("argmax: the AVX2 twin equals the scalar one: ties, NaN, -inf, tails", "[kernels]") {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<std::vector<float>> cases = {
      {1, 3, 3, 2}, {nan, -1, nan}, {nan, nan}, {-inf, -inf, -inf}, {-inf, nan, -inf}, {5}, {nan, 2, 9, nan, 9, 1, 0, 9, 9}};
  for (std::size_t n : {7u, 8u, 9u, 63u, 64u, 1000u, 262144u}) {
    std::vector<float> x(n);
    for (float& v : x) v = nd(rng);
    cases.push_back(x);
    x[n / 3] = 50.0f;  // a tie: the first one wins
    x[n - 1] = 50.0f;
    cases.push_back(x);
    for (std::size_t i = 0; i < n; i += 3) x[i] = nan;
    cases.push_back(x);
    x.back() = inf;  // +inf in the tail
    cases.push_back(x);
  }
  for (const std::vector<float>& x : cases) {
    INFO("n " << x.size());
    const std::size_t ref = gemma3::kernels::argmax_scalar(x.data(), x.size());
    const bool all_nan = std::all_of(x.begin(), x.end(), [](float v) { return std::isnan(v); });
    CHECK(std::isnan(x[ref]) == all_nan);
    CHECK(std::none_of(x.begin(), x.end(), [&](float v) { return v > x[ref]; }));
    CHECK(std::none_of(x.begin(), x.begin() + std::ptrdiff_t(ref), [&](float v) { return v == x[ref]; }));
    if (gemma3::isa_available(gemma3::Isa::avx2)) CHECK(gemma3::argmax(x.data(), x.size(), gemma3::Isa::avx2) == ref);
    CHECK(gemma3::argmax(x.data(), x.size(), gemma3::Isa::scalar) == ref);
  }
  CHECK(gemma3::kernels::argmax_scalar(cases[2].data(), 2) == 0);  // all NaN: 0
}
