// tests/wasm/test_wasm_kernels.cpp -- the WebAssembly SIMD128 kernels against their
// scalar twins, run under node (tests/wasm/run_wasm_test.sh builds it with em++
// -msimd128 -pthread). Plain C++17, no Catch2 (the system Catch2 is not built for
// wasm). Exit status 0 when every check passes, 1 otherwise.
//
// What it checks (the same rules as tests/test_quant.cpp on x86):
// - f32 / bf16 / f16 row dots to float rounding; bf16 / f16 widening exact (every
//   finite f16);
// - dequantize_row on the committed gguf fixtures (when the directory is given as
//   argv[1] and node can read it: run_wasm_test.sh mounts it with NODERAWFS);
// - matvec / matmul through a 2-thread pool (wasm pthreads) equal to the scalar Isa,
//   and the thread pool's basic contract;
// - int16 activations (quant/q16.hpp, kernels/dot_q16.hpp, kernels/gemm_q16.hpp), every
//   GGUF block type: quantize_row_q16 and unpack_q16_row bit for bit the scalar twins,
//   the row dots within float rounding of dot_q16_scalar (the bound of tests/test_q16.cpp),
//   matmul_q16_wasm within the per-output rounding bound of tests/test_gemm_q16.cpp
//   against matmul_q16_scalar (T = 1, 3, 17, 64; ragged row tiles; row sub-ranges;
//   bit-identical row splits), and matvec / matmul / linear_many on that path;
// - GELU-tanh (kernels/gelu.hpp): the SIMD128 twin against the scalar one over a sweep;
// - decode attention's products (kernels/kv_dot.hpp), the softmax's exponentials, and a
//   prompt's attention on the CPU backend (kv_dot.hpp's kernels) against Eigen's GEMM.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gemma3/backends/cpu.hpp"
#include "gemma3/kernels/dot_q16.hpp"
#include "gemma3/kernels/gelu.hpp"
#include "gemma3/kernels/gemm_q16.hpp"
#include "gemma3/kernels/kv_dot.hpp"
#include "gemma3/kernels/matmul.hpp"
#include "gemma3/kernels/row_kernels.hpp"
#include "gemma3/kernels/softmax.hpp"
#include "gemma3/kernels/thread_pool.hpp"
#include "gemma3/quant/quant.hpp"
#include "../test_quant_helpers.hpp"

using gemma3::DType;
using gemma3::Isa;
namespace q = gemma3::quant;
using quant_test::Rng;

static int g_failures = 0, g_checks = 0;

#define CHECK(cond, ...)                                              \
  do {                                                                \
    ++g_checks;                                                       \
    if (!(cond)) {                                                    \
      ++g_failures;                                                   \
      std::printf("FAILED %s:%d: %s  ", __FILE__, __LINE__, #cond);   \
      std::printf(__VA_ARGS__);                                       \
      std::printf("\n");                                              \
    }                                                                 \
  } while (0)

static double abs_dot(const std::vector<float>& w, const std::vector<float>& x) {
  double s = 0;
  for (std::size_t i = 0; i < w.size(); ++i) s += std::fabs(double(w[i]) * double(x[i]));
  return s;
}

static void plain_kernels() {
  Rng rng(7);
  for (DType t : {DType::F32, DType::BF16, DType::F16}) {
    const q::RowKernels& k = q::row_kernels(t);
    for (std::int64_t n : {1, 5, 16, 640, 1031}) {
      std::vector<unsigned char> w(std::size_t(n) * gemma3::dtype_size(t));
      for (std::int64_t i = 0; i < n; ++i) {
        const float v = rng.uniform(-2.0f, 2.0f);
        if (t == DType::F32) std::memcpy(&w[4 * std::size_t(i)], &v, 4);
        else {
          const std::uint16_t h = t == DType::BF16 ? gemma3::f32_to_bf16(v) : gemma3::f32_to_f16(v);
          std::memcpy(&w[2 * std::size_t(i)], &h, 2);
        }
      }
      const std::vector<float> x = quant_test::random_floats(std::size_t(n), rng);
      std::vector<float> wf(static_cast<std::size_t>(n));
      gemma3::dequantize_row(t, w.data(), wf.data(), n);
      const float s = k.dot[int(Isa::scalar)](w.data(), x.data(), n);
      const float v = k.dot[int(Isa::wasm_simd128)](w.data(), x.data(), n);
      CHECK(std::fabs(double(s) - double(v)) <= 2e-6 * abs_dot(wf, x) * std::sqrt(double(n)), "%s n %lld: %.9g vs %.9g",
            gemma3::dtype_name(t), (long long)n, s, v);
    }
  }
  // widening: exact for every finite f16 and for bf16
  std::vector<std::uint16_t> all;
  for (std::uint32_t h = 0; h < 0x10000; ++h)
    if ((h & 0x7c00) != 0x7c00) all.push_back(std::uint16_t(h));
  std::vector<float> ref(all.size()), got(all.size());
  gemma3::dequantize_row(DType::F16, all.data(), ref.data(), std::int64_t(all.size()));
  gemma3::kernels::widen_f16_wasm(all.data(), got.data(), std::int64_t(all.size()));
  CHECK(std::memcmp(ref.data(), got.data(), ref.size() * 4) == 0, "f16 widening differs");
  gemma3::dequantize_row(DType::BF16, all.data(), ref.data(), std::int64_t(all.size()));
  gemma3::kernels::widen_bf16_wasm(all.data(), got.data(), std::int64_t(all.size()));
  CHECK(std::memcmp(ref.data(), got.data(), ref.size() * 4) == 0, "bf16 widening differs");
}

static std::vector<unsigned char> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<unsigned char>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

static void fixtures(const std::string& dir) {
  for (DType t : quant_test::block_types()) {
    const std::string base = dir + "/" + gemma3::dtype_name(t);
    const std::vector<unsigned char> blocks = read_file(base + ".bin"), ref = read_file(base + ".f32");
    const std::int64_t n = std::int64_t(ref.size() / 4);
    CHECK(!blocks.empty() && blocks.size() == std::size_t(n) / gemma3::dtype_block_size(t) * gemma3::dtype_block_bytes(t),
          "%s fixture missing or of the wrong size", base.c_str());
    if (blocks.empty()) continue;
    std::vector<float> ours(static_cast<std::size_t>(n));
    gemma3::dequantize_row(t, blocks.data(), ours.data(), n);
    CHECK(std::memcmp(ours.data(), ref.data(), ref.size()) == 0, "%s: dequantize_row differs from the gguf package",
          gemma3::dtype_name(t));
  }
}

static void matvec_and_pool() {
  gemma3::ThreadPool pool(2);
  CHECK(pool.size() == 2, "pool size %d (built without -pthread?)", pool.size());
  std::atomic<std::int64_t> total{0};
  pool.parallel_for(0, 100003, [&](std::int64_t b, std::int64_t e) { total += e - b; }, 7);
  CHECK(total == 100003, "parallel_for covered %lld", (long long)total.load());

  Rng rng(9);
  // float activations: matmul (dequantize + GEMM) and matvec (dequantized row . x)
  // agree with the scalar twins and with each other to float rounding
  for (DType t : {DType::Q8_0, DType::Q5_0, DType::Q4_K, DType::Q6_K, DType::BF16, DType::F32}) {
    const std::int64_t rows = 300, cols = 512;
    std::vector<unsigned char> bytes;
    if (gemma3::dtype_is_quantized(t)) {
      bytes = quant_test::random_blocks(t, rows, cols, rng);
    } else {
      bytes.resize(std::size_t(rows * cols) * gemma3::dtype_size(t));
      for (std::size_t i = 0; i < std::size_t(rows * cols); ++i) {
        const float v = rng.uniform(-1.0f, 1.0f);
        if (t == DType::F32) std::memcpy(&bytes[4 * i], &v, 4);
        else {
          const std::uint16_t h = gemma3::f32_to_bf16(v);
          std::memcpy(&bytes[2 * i], &h, 2);
        }
      }
    }
    gemma3::Weight W;
    W.dtype = t;
    W.data = bytes.data();
    W.rows = rows;
    W.cols = cols;
    gemma3::Matrix X(3, cols);
    for (Eigen::Index i = 0; i < X.size(); ++i) X.data()[i] = rng.uniform(-1.0f, 1.0f);
    gemma3::Matrix Ys, Yv;  // float activations (int16 = false; the int16 path: q16_paths())
    gemma3::matmul(W, X, Ys, Isa::scalar, pool, false);
    gemma3::matmul(W, X, Yv, Isa::wasm_simd128, pool, false);
    std::vector<float> y(static_cast<std::size_t>(rows));
    gemma3::matvec(W, X.row(2).data(), y.data(), Isa::wasm_simd128, pool, false);
    const float tol = 1e-5f * std::max(1.0f, Ys.cwiseAbs().maxCoeff());
    CHECK((Ys - Yv).cwiseAbs().maxCoeff() <= tol, "%s matmul simd128 vs scalar: %g", gemma3::dtype_name(t),
          double((Ys - Yv).cwiseAbs().maxCoeff()));
    float worst = 0.0f;
    for (std::int64_t r = 0; r < rows; ++r) worst = std::max(worst, std::fabs(y[std::size_t(r)] - Yv(2, r)));
    CHECK(worst <= tol, "%s: matmul row vs matvec (prefill vs decode): %g", gemma3::dtype_name(t), double(worst));
  }
}

// The same bound as tests/test_kernels.cpp: 4e-7 relative plus the float rounding of
// the tanh argument, 2^-24 |u|, for negative u.
static void gelu() {
  std::vector<float> u, up;
  for (int i = -30000; i <= 30000; ++i) u.push_back(float(i) * 1e-3f);
  up.assign(u.size(), 1.0f);
  std::vector<float> ref = u, got = u;
  gemma3::kernels::gelu_tanh_mul_scalar(ref.data(), up.data(), std::int64_t(ref.size()));
  gemma3::gelu_tanh_mul(got.data(), up.data(), std::int64_t(got.size()), Isa::wasm_simd128);
  for (std::size_t i = 0; i < u.size(); ++i)
    CHECK(std::fabs(got[i] - ref[i]) <= 4e-7f * std::fabs(ref[i]) + 5.97e-8f * std::fabs(u[i]) + 1e-30f,
          "u %g: %g vs %g", double(u[i]), double(got[i]), double(ref[i]));
}

// Decode attention's products (kernels/kv_dot.hpp) with SIMD128 widening of float16
// rows against the scalar twin: the same float operations in the same order, so equal.
// kv_scores: the SIMD128 twin (D % 4 == 0) within float rounding of the scalar twin
// (its four lanes add in another order); D = 18 takes the scalar loops and is equal.
// kv_weighted: bit for bit the scalar twin's (the same operations in the same order).
// D = 20 takes kv_weighted's one-row-at-a-time loop (D % 8 != 0).
static void kv_dot() {
  Rng rng(4242);
  for (const std::int64_t D : {16, 18, 20, 64, 256}) {
    for (const std::int64_t rows : {1, 2, 3, 4, 5, 8})
    for (const std::int64_t n : {21, 75}) {  // odd (a key without a pair); past two tiles of 32 value rows
      const std::int64_t stride = 2 * D + 4;
      for (DType t : {DType::F32, DType::F16}) {
        std::vector<float> kv32 = quant_test::random_floats(std::size_t(n * stride), rng);
        std::vector<std::uint16_t> kv16(kv32.size());
        gemma3::kernels::narrow_f16_scalar(kv32.data(), kv16.data(), std::int64_t(kv16.size()));
        const void* base =
            t == DType::F16 ? static_cast<const void*>(kv16.data() + D) : static_cast<const void*>(kv32.data() + D);
        const std::vector<float> q = quant_test::random_floats(std::size_t(rows * D), rng);
        const std::vector<float> p = quant_test::random_floats(std::size_t(rows * n), rng);
        std::vector<float> s_ref(std::size_t(rows * n)), s_got(s_ref.size(), -7.0f);
        std::vector<float> a_ref(std::size_t(rows * D), 0.25f), a_got = a_ref;
        gemma3::kernels::kv_scores_scalar(q.data(), rows, D, t, base, stride, n, s_ref.data(), n);
        gemma3::kernels::kv_scores(Isa::wasm_simd128, q.data(), rows, D, t, base, stride, n, s_got.data(), n);
        gemma3::kernels::kv_weighted_scalar(p.data(), n, rows, D, t, base, stride, 2, n, a_ref.data());
        gemma3::kernels::kv_weighted(Isa::wasm_simd128, p.data(), n, rows, D, t, base, stride, 2, n, a_got.data());
        double worst = 0.0;  // |difference| / (sum of |products|) per score
        for (std::int64_t r = 0; r < rows; ++r)
          for (std::int64_t j = 0; j < n; ++j) {
            double mag = 0.0;
            std::vector<float> k(static_cast<std::size_t>(D));
            if (t == DType::F16) gemma3::kernels::widen_f16_scalar(kv16.data() + D + j * stride, k.data(), D);
            else std::copy(kv32.begin() + D + j * stride, kv32.begin() + D + j * stride + D, k.begin());
            for (std::int64_t c = 0; c < D; ++c) mag += std::fabs(double(q[std::size_t(r * D + c)]) * double(k[std::size_t(c)]));
            const std::size_t i = std::size_t(r * n + j);
            worst = std::max(worst, std::fabs(double(s_ref[i]) - double(s_got[i])) / (mag + 1e-30));
          }
        CHECK(worst <= 2.0 * double(D) * 6e-8, "kv_scores %s D %lld rows %lld: relative difference %g",
              gemma3::dtype_name(t), (long long)D, (long long)rows, worst);
        if (D % 4 != 0) CHECK(s_ref == s_got, "kv_scores %s D %lld: the scalar loops differ", gemma3::dtype_name(t), (long long)D);
        CHECK(a_ref == a_got, "kv_weighted %s D %lld rows %lld differs", gemma3::dtype_name(t), (long long)D, (long long)rows);
      }
    }
  }
}

// The softmax's exponentials (kernels/softmax.hpp): the SIMD128 twin against std::exp
// (relative 2e-7 per value, as the AVX2 twin in tests/test_kernels.cpp), and the sum.
static void softmax_exps() {
  Rng rng(99);
  for (const std::int64_t n : {1, 3, 4, 17, 300}) {
    std::vector<float> x = quant_test::random_floats(std::size_t(n), rng, 30.0f);
    x[0] = -120.0f;  // below exp's range: 0
    const float m = *std::max_element(x.begin(), x.end());
    std::vector<float> ref = x, got = x;
    const float sum_ref = gemma3::kernels::exp_shift_sum_scalar(ref.data(), n, m);
    const float sum_got = gemma3::exp_shift_sum(got.data(), n, m, Isa::wasm_simd128);
    double worst = 0.0;
    for (std::int64_t i = 0; i < n; ++i)
      worst = std::max(worst, std::fabs(double(got[std::size_t(i)]) - double(ref[std::size_t(i)])) /
                                  std::max(double(ref[std::size_t(i)]), 1e-38));
    CHECK(worst <= 2e-7 || n == 1, "exp_shift_sum n %lld: relative difference %g", (long long)n, worst);
    CHECK(std::fabs(double(sum_got) - double(sum_ref)) <= 1e-6 * double(sum_ref), "exp_shift_sum n %lld: sum %g vs %g",
          (long long)n, double(sum_got), double(sum_ref));
  }
}

// A prompt's attention on the CPU backend (backends/cpu.hpp): under Isa::wasm_simd128
// the products run on kv_dot.hpp's kernels over each row group's visible keys, under
// Isa::scalar on Eigen's GEMM over the whole block. Equal to float rounding: sliding
// and global layers, group 4 and 2, 150 queries (three blocks of 64, the last ragged)
// after 40 cached positions, and every output within 1e-5 of the largest.
static void prefill_attention() {
  Rng rng(150);
  gemma3::ThreadPool pool(2);
  for (const int group : {4, 2})
    for (const bool sliding : {true, false}) {
      const int kv_heads = 2, D = 64, T = 150, pos0 = 40;
      const gemma3::AttentionShape shape{group * kv_heads, kv_heads, D, 0.125f, std::nullopt};
      gemma3::AttentionMask mask;
      mask.sliding = sliding;
      mask.sliding_window = 48;
      mask.pos0 = pos0;
      const int ctx0 = sliding ? mask.first_key(pos0) : 0, n = pos0 + T - ctx0;
      auto random_matrix = [&](int rows, int cols) {
        const std::vector<float> v = quant_test::random_floats(std::size_t(rows) * std::size_t(cols), rng, 2.0f);
        gemma3::Matrix m(rows, cols);
        std::copy(v.begin(), v.end(), m.data());
        return m;
      };
      const gemma3::Matrix q = random_matrix(T, group * kv_heads * D), k = random_matrix(n, kv_heads * D),
                           v = random_matrix(n, kv_heads * D);
      gemma3::Matrix ref, got;
      gemma3::cpu::grouped_query_attention(shape, mask, q, k, v, ctx0, ref, Isa::scalar, pool);
      gemma3::cpu::grouped_query_attention(shape, mask, q, k, v, ctx0, got, Isa::wasm_simd128, pool);
      const double big = ref.cwiseAbs().maxCoeff(), diff = (ref - got).cwiseAbs().maxCoeff();
      CHECK(got.rows() == T && big > 0.1 && diff <= 1e-5 * big, "prefill attention group %d %s: max |difference| %g of %g",
            group, sliding ? "sliding" : "global", diff, big);
    }
}

// ---- int16 activations (quant/q16.hpp; SIMD128 twins in kernels/dot_q16.hpp and
//      kernels/gemm_q16.hpp) ----
namespace {

// Activations like a transformer's: mostly small, a few large outliers (as tests/test_q16.cpp).
std::vector<float> activations(std::int64_t n, Rng& rng) {
  std::vector<float> x = quant_test::random_floats(std::size_t(n), rng, 1.0f);
  for (std::int64_t i = 0; i < n; i += 97) x[std::size_t(i)] *= 300.0f;
  return x;
}

std::int64_t cols_for(DType t) { return gemma3::dtype_block_size(t) == 256 ? 1024 : 640; }
bool is_k_quant(DType t) { return gemma3::dtype_block_size(t) == 256; }

// T rows of int16 activations.
struct Q16Acts {
  std::vector<std::int16_t> q;
  std::vector<float> d, s;
  std::int64_t T = 0, n = 0;
  Q16Acts(const std::vector<float>& x, std::int64_t T_, std::int64_t n_, Isa isa)
      : q(std::size_t(T_ * n_)), d(std::size_t(T_ * n_ / 32)), s(d.size()), T(T_), n(n_) {
    for (std::int64_t t = 0; t < T; ++t)
      q::quantize_row_q16(x.data() + t * n, q.data() + t * n, d.data() + t * (n / 32), s.data() + t * (n / 32), n, isa);
  }
  gemma3::Q16Matrix m() const { return {q.data(), d.data(), s.data(), T, n}; }
  q::Q16Row row(std::int64_t t) const { return m().row(t); }
};

}  // namespace

static void q16_quantize() {
  Rng rng(16);
  for (std::int64_t n : {32, 640, 21 * 32, 2048}) {
    std::vector<float> x = activations(n, rng);
    if (n >= 96)
      for (int i = 64; i < 96; ++i) x[std::size_t(i)] = 0.0f;  // an all-zero block
    if (n >= 64) {  // block 1: d = 1 exactly, x / d on every half-integer (ties to even) and the extremes
      x[32] = 16383.0f;
      for (int i = 1; i < 32; ++i) x[std::size_t(32 + i)] = (i % 2 ? 1.0f : -1.0f) * (float(i) + 0.5f);
    }
    Q16Acts a(x, 1, n, Isa::scalar), v(x, 1, n, Isa::wasm_simd128);
    CHECK(v.q == a.q, "quantize_row_q16 n %lld: q differs", (long long)n);
    CHECK(v.d == a.d, "quantize_row_q16 n %lld: d differs", (long long)n);
    for (std::int64_t b = 0; b < n / 32; ++b) {
      double mag = 0.0;
      for (int i = 0; i < 32; ++i) mag += std::fabs(double(x[std::size_t(32 * b + i)]));
      CHECK(std::fabs(double(v.s[std::size_t(b)]) - double(a.s[std::size_t(b)])) <= 32.0 * std::ldexp(mag, -24),
            "quantize_row_q16 n %lld block %lld: s %.9g vs %.9g", (long long)n, (long long)b, double(v.s[std::size_t(b)]),
            double(a.s[std::size_t(b)]));
    }
    if (n >= 96) CHECK(a.d[2] == 0.0f && a.q[70] == 0, "zero block");
  }
}

// The block-scale conversions of the dots: f16x4 bit for bit f16_to_f32 on every f16
// (inf and NaN included, which take no branch), and the u16 -> float of the K-quants'
// 6-bit scales exact for every u16.
static void q16_scale_conversions() {
  int bad = 0;
  for (std::uint32_t h = 0; h < 0x10000; h += 4) {
    float got[4];
    wasm_v128_store(got, gemma3::quant::wasm::f16x4(std::uint16_t(h), std::uint16_t(h + 1), std::uint16_t(h + 2),
                                                    std::uint16_t(h + 3)));
    for (std::uint32_t k = 0; k < 4; ++k) {
      const float ref = gemma3::f16_to_f32(std::uint16_t(h + k));
      if (std::memcmp(&ref, &got[k], 4) != 0) ++bad;
    }
  }
  CHECK(bad == 0, "f16x4: %d of 65536 f16 values differ from f16_to_f32", bad);
  bad = 0;
  for (std::uint32_t u = 0; u < 0x10000; u += 8) {
    std::uint16_t in[8];
    for (std::uint32_t k = 0; k < 8; ++k) in[k] = std::uint16_t(u + k);
    const v128_t v = wasm_v128_load(in);
    float lo[4], hi[4];
    wasm_v128_store(lo, gemma3::quant::wasm::u16_lo_f32(v));
    wasm_v128_store(hi, gemma3::quant::wasm::u16_hi_f32(v));
    for (std::uint32_t k = 0; k < 4; ++k) bad += (lo[k] != float(u + k)) + (hi[k] != float(u + 4 + k));
  }
  CHECK(bad == 0, "u16_lo_f32 / u16_hi_f32: %d of 65536 values inexact", bad);
}

static void q16_unpack() {
  for (DType t : quant_test::block_types()) {
    Rng rng(1600 + std::uint64_t(t));
    for (std::int64_t n : {cols_for(t), std::int64_t(is_k_quant(t) ? 256 : 96)}) {
      const std::int64_t rows = 3;
      const std::vector<unsigned char> bytes = quant_test::random_blocks(t, rows, n, rng);
      const std::size_t row_bytes = bytes.size() / rows;
      for (std::int64_t r = 0; r < rows; ++r) {
        const void* row = bytes.data() + std::size_t(r) * row_bytes;
        std::vector<std::int16_t> u(static_cast<std::size_t>(n)), u2(u.size());
        std::vector<float> scale(std::size_t(n / 32)), min(scale.size()), scale2(scale.size()), min2(scale.size(), -7.0f);
        q::unpack_q16_row_scalar(t, row, n, u.data(), scale.data(), min.data());
        q::unpack_q16_row(t, row, n, u2.data(), scale2.data(), min2.data(), Isa::wasm_simd128);
        CHECK(u2 == u && scale2 == scale && min2 == min, "unpack_q16_row %s n %lld row %lld differs",
              gemma3::dtype_name(t), (long long)n, (long long)r);
      }
    }
  }
}

static void q16_dots() {
  for (DType t : quant_test::block_types()) {
    Rng rng(1700 + std::uint64_t(t));
    const std::int64_t rows = 16;
    const bool k = is_k_quant(t);
    for (std::int64_t n : {2 * cols_for(t), std::int64_t(k ? 768 : 21 * 32), std::int64_t(k ? 256 : 32),
                           std::int64_t(k ? 1280 : 23 * 32)}) {
      const std::vector<unsigned char> bytes = quant_test::random_blocks(t, rows, n, rng);
      const std::size_t row_bytes = bytes.size() / rows;
      const std::vector<float> x = activations(n, rng);
      const Q16Acts xq(x, 1, n, Isa::wasm_simd128);
      const q::Q16DotFn dot = q::q16_dot(t, Isa::wasm_simd128);
      std::vector<float> y(static_cast<std::size_t>(rows));
      q::q16_dot_rows(t, Isa::wasm_simd128)(bytes.data(), row_bytes, rows, xq.row(0), n, y.data());
      for (std::int64_t r = 0; r < rows; ++r) {
        const void* row = bytes.data() + std::size_t(r) * row_bytes;
        std::vector<float> w(static_cast<std::size_t>(n));
        gemma3::dequantize_row(t, row, w.data(), n);
        double mag = 0.0;
        for (std::int64_t i = 0; i < n; ++i) mag += std::fabs(double(w[std::size_t(i)]) * double(x[std::size_t(i)]));
        const float ref = q::dot_q16_scalar(t, row, xq.row(0), n), simd = dot(row, xq.row(0), n);
        CHECK(std::fabs(double(simd) - double(ref)) <= 2e-6 * mag, "q16 dot %s n %lld row %lld: %.9g vs %.9g (mag %g)",
              gemma3::dtype_name(t), (long long)n, (long long)r, double(simd), double(ref), mag);
        CHECK(y[std::size_t(r)] == simd, "q16_dot_rows %s n %lld row %lld: %.9g vs q16_dot %.9g", gemma3::dtype_name(t),
              (long long)n, (long long)r, double(y[std::size_t(r)]), double(simd));
      }
    }
  }
  // Q6_K at the extremes of u and q: int32 block sums just under 2^31
  q::block_q6_K blk{};
  for (auto& s : blk.scales) s = -128;  // ql = qh = 0: q - 32 = -32, u = 4096
  blk.d = gemma3::f32_to_f16(1.0f);
  const std::vector<float> ones(256, 1.0f);  // q = 16383 everywhere
  const Q16Acts xq(ones, 1, 256, Isa::wasm_simd128);
  const double expect = 256.0 * 4096.0;
  const float got = q::q16_dot(DType::Q6_K, Isa::wasm_simd128)(&blk, xq.row(0), 256);
  CHECK(std::fabs(got - expect) <= 1e-6 * expect, "Q6_K extreme dot: %.9g vs %.9g", double(got), expect);
}

// Both GEMM twins on rows [r0, r1) into a buffer with row stride ldy, the rest holding
// a sentinel; each output within the rounding bound of tests/test_gemm_q16.cpp:
// |simd - scalar| <= (2 n/32 + 4) 2^-24 S,  S = sum_b |scale_b d_b isum_b| + |min_b s_b|.
static void q16_gemm_compare(const gemma3::Weight& W, const Q16Acts& a, std::int64_t ldy, std::int64_t r0, std::int64_t r1) {
  const std::int64_t T = a.T, n = a.n, nb = n / 32;
  const float sentinel = 12345.0f;
  std::vector<float> ys(std::size_t(std::max<std::int64_t>(1, T) * ldy), sentinel), yv = ys;
  gemma3::matmul_q16_scalar(W, a.m(), ys.data(), ldy, r0, r1);
  gemma3::matmul_q16_wasm(W, a.m(), yv.data(), ldy, r0, r1);
  std::vector<std::int16_t> u(static_cast<std::size_t>(n));
  std::vector<float> scale(static_cast<std::size_t>(nb)), min(static_cast<std::size_t>(nb));
  int bad = 0;
  for (std::int64_t r = r0; r < r1; ++r) {
    q::unpack_q16_row_scalar(W.dtype, W.row_ptr(r), n, u.data(), scale.data(), min.data());
    for (std::int64_t t = 0; t < T; ++t) {
      const q::Q16Row x = a.row(t);
      double S = 0.0;
      for (std::int64_t b = 0; b < nb; ++b) {
        std::int64_t isum = 0;
        for (std::int64_t i = b * 32; i < (b + 1) * 32; ++i) isum += std::int64_t(u[std::size_t(i)]) * x.q[i];
        S += std::fabs(double(scale[std::size_t(b)]) * double(x.d[b]) * double(isum)) +
             std::fabs(double(min[std::size_t(b)]) * double(x.s[b]));
      }
      const double ref = ys[std::size_t(t * ldy + r)], got = yv[std::size_t(t * ldy + r)];
      if (!(std::fabs(got - ref) <= (2.0 * double(nb) + 4.0) * std::ldexp(1.0, -24) * S + 1e-30) && bad++ < 3)
        CHECK(false, "matmul_q16_wasm %s T %lld row %lld token %lld: %.9g vs scalar %.9g (S %g)", gemma3::dtype_name(W.dtype),
              (long long)T, (long long)r, (long long)t, got, ref, S);
    }
  }
  CHECK(bad == 0, "matmul_q16_wasm %s T %lld rows [%lld, %lld): %d outputs outside the bound", gemma3::dtype_name(W.dtype),
        (long long)T, (long long)r0, (long long)r1, bad);
  bool untouched = true;
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t r = 0; r < ldy; ++r)
      if ((r < r0 || r >= r1) && (ys[std::size_t(t * ldy + r)] != sentinel || yv[std::size_t(t * ldy + r)] != sentinel))
        untouched = false;
  CHECK(untouched, "matmul_q16 %s wrote outside rows [%lld, %lld)", gemma3::dtype_name(W.dtype), (long long)r0, (long long)r1);
}

static void q16_gemm() {
  for (DType t : quant_test::block_types()) {
    Rng rng(1900 + std::uint64_t(t));
    const std::int64_t n = is_k_quant(t) ? 512 : 96, rows = 37;  // 37 rows: two full tiles and a ragged one of 5
    const std::vector<unsigned char> bytes = quant_test::random_blocks(t, rows, n, rng);
    const gemma3::Weight W = quant_test::weight_view(t, rows, n, bytes);
    for (std::int64_t T : {1, 3, 17, 64}) {
      const Q16Acts a(activations(T * n, rng), T, n, Isa::wasm_simd128);
      q16_gemm_compare(W, a, rows, 0, rows);
    }
    const Q16Acts a(activations(7 * n, rng), 7, n, Isa::wasm_simd128);
    q16_gemm_compare(W, a, rows + 3, 5, 30);  // a sub-range, ldy > rows
    q16_gemm_compare(W, a, rows, 36, 37);     // one row
    // row chunks and single tokens: bit for bit the whole product
    std::vector<float> whole(static_cast<std::size_t>(7 * rows)), split(whole.size(), -1.0f), one(static_cast<std::size_t>(rows));
    gemma3::matmul_q16_wasm(W, a.m(), whole.data(), rows, 0, rows);
    for (std::int64_t r0 : {0, 3, 19}) gemma3::matmul_q16_wasm(W, a.m(), split.data(), rows, r0, r0 == 0 ? 3 : r0 == 3 ? 19 : rows);
    CHECK(split == whole, "matmul_q16_wasm %s: row chunks differ from the whole", gemma3::dtype_name(t));
    bool same = true;
    for (std::int64_t tk = 0; tk < 7; ++tk) {
      const gemma3::Q16Matrix single{a.q.data() + tk * n, a.d.data() + tk * (n / 32), a.s.data() + tk * (n / 32), 1, n};
      gemma3::matmul_q16_wasm(W, single, one.data(), rows, 0, rows);
      same = same && std::equal(one.begin(), one.end(), whole.begin() + tk * rows);
    }
    CHECK(same, "matmul_q16_wasm %s: one token at a time differs", gemma3::dtype_name(t));
  }
  // Q6_K all-extreme blocks: every int32 block sum 32 * 4096 * 16383, just under 2^31
  const std::int64_t n = 256, rows = 5, T = 3;
  std::vector<unsigned char> bytes(std::size_t(rows) * sizeof(q::block_q6_K));
  for (std::int64_t r = 0; r < rows; ++r) {
    q::block_q6_K blk{};
    for (auto& s : blk.scales) s = -128;
    blk.d = gemma3::f32_to_f16(1.0f);
    std::memcpy(bytes.data() + std::size_t(r) * sizeof(blk), &blk, sizeof(blk));
  }
  const gemma3::Weight W = quant_test::weight_view(DType::Q6_K, rows, n, bytes);
  const Q16Acts a(std::vector<float>(std::size_t(T * n), 1.0f), T, n, Isa::wasm_simd128);
  std::vector<float> y(std::size_t(T * rows));
  gemma3::matmul_q16_wasm(W, a.m(), y.data(), rows, 0, rows);
  bool ok = true;
  for (float v : y) ok = ok && std::fabs(v - 256.0 * 4096.0) <= 1e-6 * 256.0 * 4096.0;
  CHECK(ok, "matmul_q16_wasm Q6_K extremes: %.9g", double(y[0]));
}

// matvec / matmul / linear_many with int16 activations (the default) on Isa::wasm_simd128,
// through pools of 1 and 2 threads: matvec rows are the SIMD128 dot bit for bit, matmul
// the SIMD128 GEMM bit for bit, linear_many linear() bit for bit.
static void q16_paths() {
  for (DType t : quant_test::block_types()) {
    Rng rng(2000 + std::uint64_t(t));
    const std::int64_t rows = 300, n = 512, T = 17;  // 300 rows: a ragged last tile of 12
    const std::vector<unsigned char> bytes = quant_test::random_blocks(t, rows, n, rng);
    const gemma3::Weight W = quant_test::weight_view(t, rows, n, bytes);
    gemma3::Matrix X(T, n);
    const std::vector<float> xs = activations(T * n, rng);
    std::memcpy(X.data(), xs.data(), xs.size() * sizeof(float));
    const Q16Acts a(xs, T, n, Isa::wasm_simd128);
    std::vector<float> ref(std::size_t(T * rows));
    gemma3::matmul_q16_wasm(W, a.m(), ref.data(), rows, 0, rows);
    const q::Q16DotFn dot = q::q16_dot(t, Isa::wasm_simd128);
    for (int threads : {1, 2}) {
      gemma3::ThreadPool pool(threads);
      std::vector<float> y(static_cast<std::size_t>(rows));
      gemma3::matvec(W, X.row(5).data(), y.data(), Isa::wasm_simd128, pool);
      bool same = true;
      for (std::int64_t r = 0; r < rows; ++r) same = same && y[std::size_t(r)] == dot(W.row_ptr(r), a.row(5), n);
      CHECK(same, "%s %d threads: int16 matvec differs from the SIMD128 dot", gemma3::dtype_name(t), threads);
      gemma3::Matrix Y;
      gemma3::matmul(W, X, Y, Isa::wasm_simd128, pool);
      CHECK(std::memcmp(Y.data(), ref.data(), ref.size() * sizeof(float)) == 0,
            "%s %d threads: int16 matmul differs from matmul_q16_wasm", gemma3::dtype_name(t), threads);
      float worst = 0.0f, ymax = 0.0f;  // prefill vs decode: the same int16 x, float rounding apart
      for (std::int64_t r = 0; r < rows; ++r) {
        worst = std::max(worst, std::fabs(y[std::size_t(r)] - Y(5, r)));
        ymax = std::max(ymax, std::fabs(Y(5, r)));
      }
      CHECK(worst <= 1e-5f * ymax, "%s: int16 matmul row vs matvec: %g of %g", gemma3::dtype_name(t), double(worst),
            double(ymax));
      gemma3::Matrix Yf;  // and the float path, to the int16 rounding of x
      gemma3::matmul(W, X, Yf, Isa::wasm_simd128, pool, false);
      CHECK((Y - Yf).cwiseAbs().maxCoeff() <= 1e-3f * Yf.cwiseAbs().maxCoeff(), "%s: int16 vs float activations: %g",
            gemma3::dtype_name(t), double((Y - Yf).cwiseAbs().maxCoeff()));
      // linear_many: one token and many, bit for bit linear() of each weight
      for (std::int64_t tokens : {std::int64_t(1), T}) {
        const gemma3::Matrix Xt = X.topRows(tokens);
        gemma3::Matrix A, B, A1, B1;
        gemma3::linear_many(Xt, {{&W, &A}, {&W, &B}}, Isa::wasm_simd128, pool);
        gemma3::linear(W, Xt, A1, Isa::wasm_simd128, pool);
        CHECK(A == A1 && B == A1, "%s %d threads T %lld: linear_many differs from linear", gemma3::dtype_name(t), threads,
              (long long)tokens);
      }
    }
  }
}

int main(int argc, char** argv) {
  std::printf("isa %s, threads available: %s\n", gemma3::isa_name(gemma3::best_isa()),
#if defined(__EMSCRIPTEN_PTHREADS__)
              "yes"
#else
              "no"
#endif
  );
  if (!gemma3::isa_available(Isa::wasm_simd128)) {
    std::printf("FAILED: built without -msimd128\n");
    return 1;
  }
  plain_kernels();
  if (argc > 1) fixtures(argv[1]);
  matvec_and_pool();
  gelu();
  kv_dot();
  softmax_exps();
  prefill_attention();
  q16_quantize();
  q16_scale_conversions();
  q16_unpack();
  q16_dots();
  q16_gemm();
  q16_paths();
  std::printf("%d checks, %d failed\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
