// bench/bench_ops.cpp -- the building blocks of one forward pass, one at a time.
//
//   BM_rms_norm_rows/T/H         RMSNorm over [T, H] rows            bytes/s (x read + written)
//   BM_rope_apply/T/heads        RoPE on [T, heads * 256]            items/s = head vectors rotated
//   BM_mlp/<dtype>/T             GeGLU MLP, H=640, I=2048 (270M)     bytes/s = weight bytes read
//   BM_gelu_tanh_mul/isa/threads gate = gelu_tanh(gate) * up, n = 512 x 6912 (1B, 512 tokens)
//                                                                    items/s = elements
//   BM_matvec/<dtype>/out/in     y = W x                             bytes/s = weight bytes read
//   BM_matvec_scalar/<dtype>/..  the plain-loop reference of matvec  bytes/s = weight bytes read
//   BM_matmul/<dtype>/T/out/in   Y = X W^T, X [T, in]                bytes/s = weight bytes read
//
// Everything is single-threaded (Eigen without OpenMP), except BM_gelu_tanh_mul with
// threads = 2. Weights are random, fixed seed (bench_util.hpp).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <gemma3/config.hpp>
#include <gemma3/backends/cpu.hpp>
#include <gemma3/kernels/gelu.hpp>
#include <gemma3/kernels/matmul.hpp>
#include <gemma3/mlp.hpp>
#include <gemma3/rms_norm.hpp>
#include <gemma3/rope.hpp>

#include "bench_util.hpp"

using gemma3::DType;
using gemma3::Matrix;
using gemma3::Vector;
using gemma3::Weight;
using namespace gemma3_bench;

namespace {

DType dtype_arg(std::int64_t a) { return a == 0 ? DType::F32 : DType::BF16; }

// Weight-read counters shared by the matrix kernels: bytes/s is weight bytes per
// second, FLOP/s counts 2 * T * out * in per call.
void set_weight_counters(benchmark::State& state, const Weight& W, std::int64_t T) {
  state.SetBytesProcessed(std::int64_t(state.iterations()) * weight_bytes(W));
  state.counters["weight_MB"] = double(weight_bytes(W)) / 1e6;
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * double(T) * double(W.rows) * double(W.cols),
                                                benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

// RMSNorm (1 + w) over every row of x [T, H], in place; bytes = x read + written.
static void BM_rms_norm_rows(benchmark::State& state) {
  const int T = int(state.range(0)), H = int(state.range(1));
  Rng rng;
  Matrix x = random_matrix(rng, T, H);
  const Vector w = random_vector(rng, H);
  for (auto _ : state) {
    gemma3::rms_norm_rows(x, w, 1e-6f);  // normalising a normalised row is still a full pass
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(std::int64_t(state.iterations()) * 2 * T * H * std::int64_t(sizeof(float)));
  state.SetItemsProcessed(std::int64_t(state.iterations()) * T);  // rows
}
BENCHMARK(BM_rms_norm_rows)
    ->ArgNames({"T", "H"})
    ->ArgsProduct({{1, 64}, {640, 1152, 2560}})
    ->Unit(benchmark::kMicrosecond);

// RotaryEmbedding::apply on x [T, heads * 256] at position 1000 (a local-layer
// RoPE, theta 10 000); items = head vectors rotated (T * heads).
static void BM_rope_apply(benchmark::State& state) {
  const int T = int(state.range(0)), heads = int(state.range(1));
  constexpr int kHeadDim = 256;
  const gemma3::RotaryEmbedding rope(kHeadDim, gemma3::RopeParameters{});
  Rng rng;
  Matrix x = random_matrix(rng, T, Eigen::Index(heads) * kHeadDim);
  for (auto _ : state) {
    rope.apply(x, 1000);  // a rotation keeps norms, so repeating it is harmless
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(std::int64_t(state.iterations()) * T * heads);
  state.SetBytesProcessed(std::int64_t(state.iterations()) * 2 * x.size() * std::int64_t(sizeof(float)));
}
BENCHMARK(BM_rope_apply)
    ->ArgNames({"T", "heads"})
    ->ArgsProduct({{1, 64}, {1, 4, 8}})
    ->Unit(benchmark::kMicrosecond);

// GeGLU gemma3_mlp at 270M sizes (H = 640, I = 2048) on x [T, 640];
// bytes = the three projection weights read once per call.
static void BM_mlp(benchmark::State& state) {
  const DType dt = dtype_arg(state.range(0));
  const int T = int(state.range(1));
  constexpr int H = 640, I = 2048;
  Rng rng;
  std::vector<std::shared_ptr<const void>> storage;
  gemma3::Gemma3MLPWeights w;
  w.gate_proj = random_weight(rng, dt, I, H, storage);
  w.up_proj = random_weight(rng, dt, I, H, storage);
  w.down_proj = random_weight(rng, dt, H, I, storage);
  const gemma3::Activations x(random_matrix(rng, T, H));
  const gemma3::CpuBackend cpu(gemma3::CpuBackend::Options::from_environment());
  gemma3::Activations out;
  for (auto _ : state) {
    gemma3::gemma3_mlp(cpu, w, x, out);
    benchmark::DoNotOptimize(out.host().data());
  }
  const std::int64_t bytes = weight_bytes(w.gate_proj) + weight_bytes(w.up_proj) + weight_bytes(w.down_proj);
  state.SetBytesProcessed(std::int64_t(state.iterations()) * bytes);
  state.SetItemsProcessed(std::int64_t(state.iterations()) * T);  // tokens
  state.counters["weight_MB"] = double(bytes) / 1e6;
  state.SetLabel(std::string(gemma3::dtype_name(dt)) + ", " + cpu.name());
}
BENCHMARK(BM_mlp)
    ->ArgNames({"bf16", "T"})
    ->ArgsProduct({{0, 1}, {1, 64}})
    ->Unit(benchmark::kMicrosecond);

// gelu_tanh_mul (kernels/gelu.hpp) on the 1B model's gate and up for a 512-token
// prefill (n = 512 x 6912 floats each, 14 MB). isa 0 = the scalar twin (std::tanh),
// 1 = AVX2; threads = 1 calls the twin directly, 2 goes through gelu_tanh_mul(gate,
// up, n) on a 2-thread global pool. items = elements.
static void BM_gelu_tanh_mul(benchmark::State& state) {
  const gemma3::Isa isa = state.range(0) == 0 ? gemma3::Isa::scalar : gemma3::Isa::avx2;
  const int threads = int(state.range(1));
  if (!gemma3::isa_available(isa)) {
    state.SkipWithError("isa not available on this machine");
    return;
  }
  constexpr std::int64_t n = std::int64_t(512) * 6912;
  Rng rng;
  const std::size_t size = std::size_t(n);
  std::vector<float> gate0(size), gate(size), up(size);
  for (float& v : gate0) v = rng.uniform(4.0f);
  for (float& v : up) v = rng.uniform(1.0f);
  gemma3::ThreadPool pool(threads);
  for (auto _ : state) {
    state.PauseTiming();
    gate = gate0;  // in place: start from the same inputs every time
    state.ResumeTiming();
    if (threads == 1) gemma3::gelu_tanh_mul(gate.data(), up.data(), n, isa);
    else gemma3::gelu_tanh_mul(gate.data(), up.data(), n, isa, pool);
    benchmark::DoNotOptimize(gate.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(std::int64_t(state.iterations()) * n);
  state.SetBytesProcessed(std::int64_t(state.iterations()) * 3 * n * std::int64_t(sizeof(float)));  // gate r/w, up
  state.SetLabel(gemma3::isa_name(isa));
}
BENCHMARK(BM_gelu_tanh_mul)
    ->ArgNames({"isa", "threads"})
    ->Args({0, 1})
    ->Args({1, 1})
    ->Args({1, 2})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Shapes for the matrix kernels: 270M q_proj-ish [1024, 640], 270M MLP
// gate [2048, 640], 1B MLP gate [6912, 1152].
static void MatrixShapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"bf16", "out", "in"});
  for (int bf16 : {0, 1})
    for (auto [out, in] : {std::pair{1024, 640}, std::pair{2048, 640}, std::pair{6912, 1152}}) b->Args({bf16, out, in});
}

// matvec: y [out] = W [out, in] x [in], the decode path (F32 via Eigen::Map,
// BF16 widened 64 rows at a time); bytes = weight bytes.
static void BM_matvec(benchmark::State& state) {
  const DType dt = dtype_arg(state.range(0));
  Rng rng;
  std::vector<std::shared_ptr<const void>> storage;
  const Weight W = random_weight(rng, dt, state.range(1), state.range(2), storage);
  const Vector x = random_vector(rng, W.cols, 1.0f);
  Vector y(W.rows);
  for (auto _ : state) {
    gemma3::matvec(W, x.data(), y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_weight_counters(state, W, 1);
  state.SetLabel(gemma3::dtype_name(dt));
}
BENCHMARK(BM_matvec)->Apply(MatrixShapes)->Unit(benchmark::kMicrosecond);

// matvec_scalar: the double-accumulating plain loop every kernel is tested
// against; bytes = weight bytes. The baseline the fast paths should beat.
static void BM_matvec_scalar(benchmark::State& state) {
  const DType dt = dtype_arg(state.range(0));
  Rng rng;
  std::vector<std::shared_ptr<const void>> storage;
  const Weight W = random_weight(rng, dt, state.range(1), state.range(2), storage);
  const Vector x = random_vector(rng, W.cols, 1.0f);
  Vector y(W.rows);
  for (auto _ : state) {
    gemma3::matvec_scalar(W, x.data(), y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_weight_counters(state, W, 1);
  state.SetLabel(gemma3::dtype_name(dt));
}
BENCHMARK(BM_matvec_scalar)->Apply(MatrixShapes)->Unit(benchmark::kMicrosecond);

// matmul: Y [T, out] = X [T, in] W^T with T = 64 prompt tokens, the prefill
// path; bytes = weight bytes (read once per call), FLOP/s = 2 T out in.
static void BM_matmul(benchmark::State& state) {
  const DType dt = dtype_arg(state.range(0));
  constexpr int T = 64;
  Rng rng;
  std::vector<std::shared_ptr<const void>> storage;
  const Weight W = random_weight(rng, dt, state.range(1), state.range(2), storage);
  const Matrix X = random_matrix(rng, T, W.cols);
  Matrix Y;
  for (auto _ : state) {
    gemma3::matmul(W, X, Y);
    benchmark::DoNotOptimize(Y.data());
    benchmark::ClobberMemory();
  }
  set_weight_counters(state, W, T);
  state.SetItemsProcessed(std::int64_t(state.iterations()) * T);  // tokens
  state.SetLabel(gemma3::dtype_name(dt));
}
BENCHMARK(BM_matmul)->Apply(MatrixShapes)->Unit(benchmark::kMicrosecond);
