// bench/wasm/bench_wasm_kernels.cpp -- decode matvec and prefill GEMM on quantized
// weights, float activations against int16 activations, on the best Isa of the build
// (wasm_simd128 under em++ -msimd128; natively the same program times the x86 paths).
// Plain C++17 with std::chrono (Google Benchmark is not built for wasm); not a test.
//
//   bench/wasm/run_wasm_bench.sh SRC BUILD [EIGEN] [THREADS] [T]   builds it with em++ and runs it under node
//   natively: g++ -std=c++17 -O2 -march=native -pthread -Iinclude -I/usr/include/eigen3
//             bench/wasm/bench_wasm_kernels.cpp -o /tmp/bench_kernels && /tmp/bench_kernels 2 64
//
// Prints, per weight shape (Gemma 3 270M's, and a 1/16 slice of its tied 262144 x 640
// Q8_0 embedding, the logits matvec): microseconds per matvec and per T-token matmul
// with float activations (int16 = false: a row dequantized and dotted; 64 rows
// dequantized and Eigen's GEMM) and int16 activations (int16 = true: kernels/dot_q16.hpp,
// kernels/gemm_q16.hpp), the speed-up, and GB/s of weights (matvec) / GMAC/s (matmul).
// Under wasm, last: the ceiling of the GEMM's inner loop on this machine (one thread).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "gemma3/kernels/matmul.hpp"
#include "gemma3/kernels/thread_pool.hpp"
#include "../../tests/test_quant_helpers.hpp"

using gemma3::DType;
using Clock = std::chrono::steady_clock;

// Seconds per call of f: the best of 5 means over at least 0.1 s each (after one
// warm-up call; the best, since other work on the machine only slows a run down).
template <class F>
static double time_it(F f) {
  f();
  double best = 1e30;
  for (int round = 0; round < 5; ++round) {
    int reps = 0;
    const auto t0 = Clock::now();
    double el = 0.0;
    do {
      f();
      ++reps;
      el = std::chrono::duration<double>(Clock::now() - t0).count();
    } while (el < 0.1);
    best = std::min(best, el / reps);
  }
  return best;
}

#if GEMMA3_HAVE_WASM_SIMD
// The most the prefill GEMM's 8-row x 4-token micro-kernel (kernels/gemm_q16.hpp) can
// reach on this machine: its inner loop alone (per int16 pair: two weight loads, four
// token splats, eight i32x4.dot_i16x8_s and eight adds = 64 multiply-adds) over 16
// blocks that stay in L1, no epilogue, no packing. GMAC/s, best of time_it.
// A function of its own, called once per timed call: V8 swaps in its optimized code
// only when a function is entered again (a loop inlined into time_it would stay on the
// baseline compiler's code).
__attribute__((noinline)) static std::int32_t simd128_dot_blocks(const std::int32_t* wa, const std::int32_t* wb,
                                                                  const std::int32_t* xq, int blocks, int reps) {
  v128_t total = wasm_i32x4_splat(0);
  for (int rep = 0; rep < reps; ++rep)
    for (int b = 0; b < blocks; ++b) {
      const std::int32_t *a = wa + b * 64, *c = wb + b * 64, *x = xq + b * 64;
      v128_t ia[4], ib[4];
      for (int t = 0; t < 4; ++t) ia[t] = ib[t] = wasm_i32x4_splat(0);
#pragma clang loop unroll_count(2)
      for (int p = 0; p < 16; ++p) {
        const v128_t va = wasm_v128_load(a + p * 4), vb = wasm_v128_load(c + p * 4);
        for (int t = 0; t < 4; ++t) {
          const v128_t xt = wasm_v128_load32_splat(x + p * 4 + t);
          ia[t] = wasm_i32x4_add(ia[t], wasm_i32x4_dot_i16x8(va, xt));
          ib[t] = wasm_i32x4_add(ib[t], wasm_i32x4_dot_i16x8(vb, xt));
        }
      }
      for (int t = 0; t < 4; ++t) total = wasm_i32x4_add(total, wasm_i32x4_add(ia[t], ib[t]));
    }
  return wasm_i32x4_extract_lane(total, 0);
}
static double simd128_dot_ceiling() {
  constexpr int kBlocks = 16, kReps = 64;
  static std::int32_t wa[kBlocks * 64], wb[kBlocks * 64], xq[kBlocks * 64];
  for (int i = 0; i < kBlocks * 64; ++i) wa[i] = i * 7, wb[i] = i * 3, xq[i] = i;
  volatile std::int32_t sink = 0;
  const double s = time_it([&] { sink = sink + simd128_dot_blocks(wa, wb, xq, kBlocks, kReps); });
  return double(kReps) * kBlocks * 16 * 64 / s * 1e-9;
}
#endif

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const std::int64_t T = argc > 2 ? std::atoll(argv[2]) : 64;
  const gemma3::Isa isa = gemma3::best_isa();
  gemma3::ThreadPool pool(threads);
  std::printf("isa %s, %d threads, T = %lld\n", gemma3::isa_name(isa), pool.size(), (long long)T);
  std::printf("%-28s %12s %12s %7s %8s | %12s %12s %7s %8s\n", "weight [rows x cols]", "matvec f32", "matvec i16",
              "x", "GB/s", "matmul f32", "matmul i16", "x", "GMAC/s");
  struct Shape {
    DType t;
    std::int64_t rows, cols;
    const char* what;
  };
  const Shape shapes[] = {{DType::Q8_0, 262144 / 16, 640, "token_embd/16"},
                          {DType::Q8_0, 1024, 640, "Q8_0 attn"},
                          {DType::Q5_0, 2048, 640, "Q5_0 gate/up"},
                          {DType::Q4_K, 640, 2048, "Q4_K down"},
                          {DType::Q6_K, 640, 2048, "Q6_K down"}};
  quant_test::Rng rng(1);
  for (const Shape& s : shapes) {
    const std::vector<unsigned char> bytes = quant_test::random_blocks(s.t, s.rows, s.cols, rng);
    const gemma3::Weight W = quant_test::weight_view(s.t, s.rows, s.cols, bytes);
    gemma3::Matrix X(T, s.cols), Y;
    for (Eigen::Index i = 0; i < X.size(); ++i) X.data()[i] = rng.uniform(-1.0f, 1.0f);
    std::vector<float> y(static_cast<std::size_t>(s.rows));
    const double mv_f = time_it([&] { gemma3::matvec(W, X.data(), y.data(), isa, pool, false); });
    const double mv_i = time_it([&] { gemma3::matvec(W, X.data(), y.data(), isa, pool, true); });
    const bool big = s.rows * s.cols > 4 << 20;  // the embedding slice: matvec only (logits are decode-only)
    const double mm_f = big ? 0.0 : time_it([&] { gemma3::matmul(W, X, Y, isa, pool, false); });
    const double mm_i = big ? 0.0 : time_it([&] { gemma3::matmul(W, X, Y, isa, pool, true); });
    char name[64];
    std::snprintf(name, sizeof(name), "%s [%lld x %lld]", s.what, (long long)s.rows, (long long)s.cols);
    std::printf("%-28s %10.1fus %10.1fus %6.2fx %8.2f", name, mv_f * 1e6, mv_i * 1e6, mv_f / mv_i,
                double(bytes.size()) / mv_i * 1e-9);
    if (big) std::printf(" |\n");
    else {
      const double macs = double(T) * double(s.rows) * double(s.cols);
      std::printf(" | %10.1fus %10.1fus %6.2fx %8.2f\n", mm_f * 1e6, mm_i * 1e6, mm_f / mm_i, macs / mm_i * 1e-9);
    }
  }
#if GEMMA3_HAVE_WASM_SIMD
  const double peak = simd128_dot_ceiling();
  std::printf("SIMD128 ceiling of the int16 GEMM's inner loop (one thread, operands in L1): %.1f GMAC/s\n", peak);
#endif
  return 0;
}
