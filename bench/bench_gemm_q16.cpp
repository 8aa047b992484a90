// bench/bench_gemm_q16.cpp -- the prefill GEMM on int16 activations (kernels/gemm_q16.hpp)
// against the path it replaces (64 rows dequantized to float32, then Eigen's GEMM),
// one thread, T = 512 tokens (and two at T = 64), Gemma 3 shapes.
//
//   BM_gemm_q16/dtype/out/in/T     matmul_q16_avx512 on all rows (X already int16)
//   BM_gemm_eigen/dtype/out/in/T   quant::dequantize_fn(t, avx2) of 64 rows at a time +
//                                  Y.middleCols(..) = X * block^T (Eigen, -march=native)
//   BM_quantize_q16/in/T           quantize_row_q16 of the T rows (paid once per X,
//                                  shared by every weight that reads it)
// GMAC/s = out * in * T / time. dtype is the DType enum value (the label spells it).
// Shapes: 270M Q5_0 [2048 x 640] (gate/up), Q8_0 [1024 x 640], Q4_K / Q6_K [640 x 2048]
// (down); 1B Q5_0 [6912 x 1152] (gate/up), Q4_K [1152 x 6912] (down).
//
// Times are CPU time (the machine these numbers come from is shared; wall time there
// swings by 1.5x with other jobs, CPU time by a few %).
//
// AMD EPYC Zen 4, one thread, GCC 12, -O3 -march=native, median of 3
// (build/bench/bench_gemm_q16 --benchmark_repetitions=3), GMAC/s:
//                                     BM_gemm_q16   BM_gemm_eigen   ratio
//   270M Q5_0 [2048 x 640]  T = 512        89             42          2.1x
//   270M Q8_0 [1024 x 640]  T = 512        90             42          2.2x
//   270M Q4_K [640 x 2048]  T = 512        89             41          2.2x
//   270M Q6_K [640 x 2048]  T = 512        93             41          2.3x
//   1B   Q5_0 [6912 x 1152] T = 512        91             40          2.3x
//   1B   Q4_K [1152 x 6912] T = 512        89             34          2.6x
//   270M Q5_0 [2048 x 640]  T = 64         84             39          2.2x
//   270M Q4_K [640 x 2048]  T = 64         81             37          2.2x
//   BM_quantize_q16: 70 us for 512 x 640, 221 us for 512 x 2048.
// Run to run the GMAC/s move by about 5%.
//
// Run: build/bench/bench_gemm_q16 [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <gemma3/kernels/dequantize_simd.hpp>
#include <gemma3/kernels/gemm_q16.hpp>
#include <gemma3/kernels/isa.hpp>
#include <gemma3/tensor.hpp>

#include "../tests/test_quant_helpers.hpp"

using gemma3::DType;
using gemma3::Isa;
using gemma3::Weight;

namespace {

struct Problem {
  std::vector<unsigned char> bytes;  // the weight
  Weight w;
  gemma3::Matrix X;                  // [T, in] float activations
  std::vector<std::int16_t> q;       // X as int16 activations
  std::vector<float> d, s;
  gemma3::Q16Matrix xq{};
  std::vector<float> Y;              // [T, out]
};

Problem make_problem(DType t, std::int64_t rows, std::int64_t cols, std::int64_t T) {
  quant_test::Rng rng(0x5eed + std::uint64_t(t));
  Problem p;
  p.bytes = quant_test::random_blocks(t, rows, cols, rng);
  p.w.dtype = t;
  p.w.data = p.bytes.data();
  p.w.rows = rows;
  p.w.cols = cols;
  p.X.resize(T, cols);
  for (Eigen::Index i = 0; i < p.X.size(); ++i) p.X.data()[i] = rng.uniform(-1.0f, 1.0f);
  const std::int64_t nb = cols / gemma3::quant::QK;
  p.q.resize(std::size_t(T * cols));
  p.d.resize(std::size_t(T * nb));
  p.s.resize(std::size_t(T * nb));
  const Isa isa = gemma3::isa_available(Isa::avx512) ? Isa::avx512 : Isa::scalar;
  for (std::int64_t i = 0; i < T; ++i)
    gemma3::quant::quantize_row_q16(p.X.row(i).data(), p.q.data() + i * cols, p.d.data() + i * nb,
                                    p.s.data() + i * nb, cols, isa);
  p.xq = {p.q.data(), p.d.data(), p.s.data(), T, cols};
  p.Y.assign(std::size_t(T * rows), 0.0f);
  return p;
}

void report(benchmark::State& state, const Problem& p, const char* what) {
  state.counters["GMAC/s"] = benchmark::Counter(double(p.w.rows) * double(p.w.cols) * double(p.xq.T) * 1e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(gemma3::dtype_name(p.w.dtype)) + " " + what);
}

}  // namespace

static void BM_gemm_q16(benchmark::State& state) {
  if (!gemma3::isa_available(Isa::avx512)) {
    state.SkipWithError("no AVX-512 VNNI on this machine");
    return;
  }
  Problem p = make_problem(DType(state.range(0)), state.range(1), state.range(2), state.range(3));
  for (auto _ : state) {
    gemma3::matmul_q16_avx512(p.w, p.xq, p.Y.data(), p.w.rows, 0, p.w.rows);
    benchmark::DoNotOptimize(p.Y.data());
    benchmark::ClobberMemory();
  }
  report(state, p, "int16 VNNI");
}

static void BM_gemm_eigen(benchmark::State& state) {
  Problem p = make_problem(DType(state.range(0)), state.range(1), state.range(2), state.range(3));
  constexpr std::int64_t kRowBlock = 64;  // as kernels/matmul.hpp
  const gemma3::quant::DequantizeFn dequantize = gemma3::quant::dequantize_fn(p.w.dtype, Isa::avx2);
  gemma3::Matrix Y(p.X.rows(), p.w.rows), block;
  for (auto _ : state) {
    for (std::int64_t b0 = 0; b0 < p.w.rows; b0 += kRowBlock) {
      const std::int64_t n = std::min(kRowBlock, p.w.rows - b0);
      block.resize(n, p.w.cols);
      dequantize(p.w.row_ptr(b0), block.data(), n * p.w.cols);
      Y.middleCols(b0, n).noalias() = p.X * block.transpose();
    }
    benchmark::DoNotOptimize(Y.data());
    benchmark::ClobberMemory();
  }
  report(state, p, "dequantize + Eigen");
}

static void BM_quantize_q16(benchmark::State& state) {
  const std::int64_t cols = state.range(0), T = state.range(1), nb = cols / gemma3::quant::QK;
  Problem p = make_problem(DType::Q8_0, 32, cols, T);
  const Isa isa = gemma3::isa_available(Isa::avx512) ? Isa::avx512 : Isa::scalar;
  for (auto _ : state) {
    for (std::int64_t i = 0; i < T; ++i)
      gemma3::quant::quantize_row_q16(p.X.row(i).data(), p.q.data() + i * cols, p.d.data() + i * nb,
                                      p.s.data() + i * nb, cols, isa);
    benchmark::DoNotOptimize(p.q.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(std::int64_t(state.iterations()) * T * cols);
}

static void GemmArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"dtype", "out", "in", "T"});
  b->Args({int(DType::Q5_0), 2048, 640, 512});   // 270M gate / up
  b->Args({int(DType::Q8_0), 1024, 640, 512});   // 270M q / k / v-like
  b->Args({int(DType::Q4_K), 640, 2048, 512});   // 270M down
  b->Args({int(DType::Q6_K), 640, 2048, 512});   // 270M down (Q4_K_M's Q6_K layers)
  b->Args({int(DType::Q5_0), 6912, 1152, 512});  // 1B gate / up
  b->Args({int(DType::Q4_K), 1152, 6912, 512});  // 1B down
  b->Args({int(DType::Q5_0), 2048, 640, 64});    // a short prompt: tile packing weighs more
  b->Args({int(DType::Q4_K), 640, 2048, 64});
}
BENCHMARK(BM_gemm_q16)->Apply(GemmArgs)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_gemm_eigen)->Apply(GemmArgs)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_quantize_q16)->ArgNames({"in", "T"})->Args({640, 512})->Args({2048, 512})->Unit(benchmark::kMicrosecond);
