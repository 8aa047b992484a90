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
// - GELU-tanh (kernels/gelu.hpp): the SIMD128 twin against the scalar one over a sweep.
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gemma3/kernels/gelu.hpp"
#include "gemma3/kernels/kv_dot.hpp"
#include "gemma3/kernels/matmul.hpp"
#include "gemma3/kernels/row_kernels.hpp"
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
    gemma3::Matrix Ys, Yv;
    gemma3::matmul(W, X, Ys, Isa::scalar, pool);
    gemma3::matmul(W, X, Yv, Isa::wasm_simd128, pool);
    std::vector<float> y(static_cast<std::size_t>(rows));
    gemma3::matvec(W, X.row(2).data(), y.data(), Isa::wasm_simd128, pool);
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
static void kv_dot() {
  Rng rng(4242);
  const std::int64_t D = 64, n = 21, rows = 3, stride = 2 * D;
  for (DType t : {DType::F32, DType::F16}) {
    std::vector<float> kv32 = quant_test::random_floats(std::size_t(n * stride), rng);
    std::vector<std::uint16_t> kv16(kv32.size());
    gemma3::kernels::narrow_f16_scalar(kv32.data(), kv16.data(), std::int64_t(kv16.size()));
    const void* base = t == DType::F16 ? static_cast<const void*>(kv16.data() + D) : static_cast<const void*>(kv32.data() + D);
    const std::vector<float> q = quant_test::random_floats(std::size_t(rows * D), rng);
    const std::vector<float> p = quant_test::random_floats(std::size_t(rows * n), rng);
    std::vector<float> s_ref(std::size_t(rows * n)), s_got(s_ref.size()), a_ref(std::size_t(rows * D), 0.25f), a_got = a_ref;
    gemma3::kernels::kv_scores_scalar(q.data(), rows, D, t, base, stride, n, s_ref.data(), n);
    gemma3::kernels::kv_scores(Isa::wasm_simd128, q.data(), rows, D, t, base, stride, n, s_got.data(), n);
    gemma3::kernels::kv_weighted_scalar(p.data(), n, rows, D, t, base, stride, 2, n, a_ref.data());
    gemma3::kernels::kv_weighted(Isa::wasm_simd128, p.data(), n, rows, D, t, base, stride, 2, n, a_got.data());
    CHECK(s_ref == s_got, "kv_scores %s differs", gemma3::dtype_name(t));
    CHECK(a_ref == a_got, "kv_weighted %s differs", gemma3::dtype_name(t));
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
  std::printf("%d checks, %d failed\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
