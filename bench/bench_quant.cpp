// bench/bench_quant.cpp -- matvec on every weight dtype, scalar vs SIMD, 1 and 2 threads,
// at Gemma 3 270M shapes, plus the memory bandwidth that bounds it.
//
//   BM_matvec_dtype/dtype/out/in/simd/threads/int16   y = W x     bytes/s = weight bytes read
//   BM_matvec_cold/dtype/out/in/threads         y = W x, W from DRAM bytes/s = weight bytes read
//   BM_matmul_quant/dtype/out/in/int16/threads  Y = X W^T, T = 64    bytes/s = weight bytes (once per call)
//   BM_memory_read/MB/threads                   sum of a buffer      bytes/s = bytes read
//   BM_memory_copy/MB/threads                   memcpy               bytes/s = bytes read + written
//
// dtype is the DType enum value (the label spells it); simd 0 = scalar twins, 1 = the
// best SIMD this machine runs; int16 1 = int16 activations and VNNI kernels for
// quantized weights on avx512 (quant/q16.hpp, kernels/gemm_q16.hpp; the default there),
// 0 = float activations: matvec with the fused dequantize-and-FMA dots
// (kernels/fdot.hpp), matmul with dequantize + Eigen GEMM (kernels/matmul.hpp).
// Shapes (270M): [2048, 640] q/k/v/gate/up-like, [640, 2048] ffn_down, [640, 1024]
// attn_output (K-quants need in % 256 == 0, so they use the last two), and the tied
// LM head [262144, 640] in Q8_0 (178 MB: the one weight far bigger than the caches,
// so the one whose GB/s is comparable with BM_memory_read). The small ones (0.4 to
// 5 MB) sit in L2/L3 between iterations: their GB/s measure the kernels, not DRAM.
//
// Run: build/bench/bench_quant [--benchmark_filter=...]  (docs/benchmarks.md quotes it)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <sys/mman.h>

#include <gemma3/kernels/isa.hpp>
#include <gemma3/kernels/matmul.hpp>
#include <gemma3/kernels/thread_pool.hpp>

#include "../tests/test_quant_helpers.hpp"

using gemma3::DType;
using gemma3::Weight;

namespace {

struct OwnedWeight {
  std::vector<unsigned char> bytes;
  Weight w;
};

OwnedWeight make_weight(DType t, std::int64_t rows, std::int64_t cols) {
  quant_test::Rng rng(0x5eed + std::uint64_t(t));
  OwnedWeight o;
  if (gemma3::dtype_is_quantized(t)) {
    o.bytes = quant_test::random_blocks(t, rows, cols, rng);
  } else {
    const std::size_t n = std::size_t(rows * cols);
    o.bytes.resize(n * gemma3::dtype_size(t));
    const float a = 1.0f / 32.0f;
    for (std::size_t i = 0; i < n; ++i) {
      const float v = rng.uniform(-a, a);
      if (t == DType::F32) std::memcpy(&o.bytes[4 * i], &v, 4);
      else {
        const std::uint16_t h = t == DType::BF16 ? gemma3::f32_to_bf16(v) : gemma3::f32_to_f16(v);
        std::memcpy(&o.bytes[2 * i], &h, 2);
      }
    }
  }
  o.w.dtype = t;
  o.w.data = o.bytes.data();
  o.w.rows = rows;
  o.w.cols = cols;
  return o;
}

std::int64_t weight_bytes(const Weight& w) { return std::int64_t(w.row_bytes()) * w.rows; }

// The kernel choices of one benchmark: instruction set, pool, activation rounding
// (int16: int16 activations for quantized weights on avx512, as CpuBackend's default).
struct Settings {
  Settings(bool simd, int threads, bool int16 = true)
      : isa(simd ? gemma3::best_isa() : gemma3::Isa::scalar), pool(threads), int16(int16) {}
  gemma3::Isa isa;
  gemma3::ThreadPool pool;
  bool int16;
  // how quantized weights meet the activations here
  std::string activations(DType t) const {
    if (!gemma3::dtype_is_quantized(t)) return "";
    return isa == gemma3::Isa::avx512 && int16 ? " int16-act" : " f32-act";
  }
};

}  // namespace

static void BM_matvec_dtype(benchmark::State& state) {
  const DType t = DType(state.range(0));
  const bool simd = state.range(3) != 0;
  Settings settings(simd, int(state.range(4)), state.range(5) != 0);
  const OwnedWeight o = make_weight(t, state.range(1), state.range(2));
  quant_test::Rng rng(1);
  const std::vector<float> x = quant_test::random_floats(std::size_t(o.w.cols), rng);
  std::vector<float> y(std::size_t(o.w.rows));
  for (auto _ : state) {
    gemma3::matvec(o.w, x.data(), y.data(), settings.isa, settings.pool, settings.int16);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(std::int64_t(state.iterations()) * weight_bytes(o.w));
  state.counters["weight_MB"] = double(weight_bytes(o.w)) / 1e6;
  state.SetLabel(std::string(gemma3::dtype_name(t)) + " " + gemma3::isa_name(settings.isa) + settings.activations(t));
}

static void MatvecArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"dtype", "out", "in", "simd", "threads", "int16"});
  const DType legacy[] = {DType::F32, DType::BF16, DType::F16, DType::Q8_0, DType::Q4_0,
                          DType::Q4_1, DType::Q5_0, DType::Q5_1};
  const DType kquants[] = {DType::Q4_K, DType::Q5_K, DType::Q6_K};
  for (int threads : {1, 2})
    for (int simd : {0, 1}) {
      for (int int16 : {1, 0}) {
        if (!int16 && !(simd && gemma3::best_isa() == gemma3::Isa::avx512)) continue;  // the same run
        for (DType t : legacy) {
          if (!int16 && !gemma3::dtype_is_quantized(t)) continue;
          for (auto [out, in] : {std::pair{2048, 640}, std::pair{640, 2048}}) b->Args({int(t), out, in, simd, threads, int16});
        }
        for (DType t : kquants)
          for (auto [out, in] : {std::pair{640, 2048}, std::pair{640, 1024}}) b->Args({int(t), out, in, simd, threads, int16});
        b->Args({int(DType::Q8_0), 262144, 640, simd, threads, int16});  // the LM head
      }
    }
}
BENCHMARK(BM_matvec_dtype)->Apply(MatvecArgs)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Decode-like: the weight comes from DRAM, not the caches. Copies of it fill a 256 MB
// buffer (8x this machine's L3) on 2 MiB pages (as the model file is mapped:
// mapped_file.hpp) and each matvec takes the next copy, so every weight byte is read
// from memory once per call, with the small per-layer shapes' start-up costs (thread
// wake-up, prefetchers ramping up on a new stream) that the hot loop above hides.
static void BM_matvec_cold(benchmark::State& state) {
  const DType t = DType(state.range(0));
  Settings settings(true, int(state.range(3)));
  const OwnedWeight o = make_weight(t, state.range(1), state.range(2));
  const std::size_t wb = std::size_t(weight_bytes(o.w)), stride = (wb + 4095) / 4096 * 4096;
  const std::size_t copies = std::max<std::size_t>(2, (std::size_t(256) << 20) / stride);
  const std::size_t huge = std::size_t(2) << 20, total = (copies * stride + huge - 1) / huge * huge;
  auto* buf = static_cast<unsigned char*>(std::aligned_alloc(huge, total));
#if defined(MADV_HUGEPAGE)
  madvise(buf, total, MADV_HUGEPAGE);
#endif
  for (std::size_t c = 0; c < copies; ++c) std::memcpy(buf + c * stride, o.bytes.data(), wb);
  Weight w = o.w;
  quant_test::Rng rng(1);
  const std::vector<float> x = quant_test::random_floats(std::size_t(o.w.cols), rng);
  std::vector<float> y(std::size_t(o.w.rows));
  std::size_t c = 0;
  for (auto _ : state) {
    w.data = buf + c * stride;
    c = c + 1 == copies ? 0 : c + 1;
    gemma3::matvec(w, x.data(), y.data(), settings.isa, settings.pool, settings.int16);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  std::free(buf);
  state.SetBytesProcessed(std::int64_t(state.iterations()) * weight_bytes(o.w));
  state.counters["weight_MB"] = double(wb) / 1e6;
  state.SetLabel(std::string(gemma3::dtype_name(t)) + " " + gemma3::isa_name(settings.isa) + settings.activations(t) +
                 " cold");
}
static void MatvecColdArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"dtype", "out", "in", "threads"});
  for (int threads : {1, 2}) {
    b->Args({int(DType::Q5_0), 2048, 640, threads});   // 270M ffn_gate / ffn_up
    b->Args({int(DType::Q5_0), 1024, 640, threads});   // 270M attn_q
    b->Args({int(DType::Q4_K), 640, 2048, threads});   // 270M ffn_down
    b->Args({int(DType::Q6_K), 640, 2048, threads});   // 270M ffn_down
    b->Args({int(DType::Q5_0), 6912, 1152, threads});  // 1B ffn_gate / ffn_up
    b->Args({int(DType::Q6_K), 1152, 6912, threads});  // 1B ffn_down
    b->Args({int(DType::Q8_0), 262144, 640, threads});  // 270M LM head
  }
}
BENCHMARK(BM_matvec_cold)->Apply(MatvecColdArgs)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Prefill on quantized weights: the int16 GEMM (avx512) vs dequantize + Eigen GEMM.
static void BM_matmul_quant(benchmark::State& state) {
  const DType t = DType(state.range(0));
  Settings settings(true, int(state.range(4)), state.range(3) != 0);
  const OwnedWeight o = make_weight(t, state.range(1), state.range(2));
  constexpr int T = 64;
  quant_test::Rng rng(2);
  gemma3::Matrix X(T, o.w.cols);
  for (Eigen::Index i = 0; i < X.size(); ++i) X.data()[i] = rng.uniform(-1.0f, 1.0f);
  gemma3::Matrix Y;
  for (auto _ : state) {
    gemma3::matmul(o.w, X, Y, settings.isa, settings.pool, settings.int16);
    benchmark::DoNotOptimize(Y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(std::int64_t(state.iterations()) * weight_bytes(o.w));
  state.SetItemsProcessed(std::int64_t(state.iterations()) * T);  // tokens
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * T * double(o.w.rows) * double(o.w.cols) / 1e9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(gemma3::dtype_name(t)) + settings.activations(t));
}
BENCHMARK(BM_matmul_quant)
    ->ArgNames({"dtype", "out", "in", "int16", "threads"})
    ->Args({int(DType::Q5_0), 2048, 640, 1, 1})
    ->Args({int(DType::Q5_0), 2048, 640, 0, 1})
    ->Args({int(DType::Q8_0), 2048, 640, 1, 1})
    ->Args({int(DType::Q8_0), 2048, 640, 0, 1})
    ->Args({int(DType::Q4_K), 640, 2048, 1, 1})
    ->Args({int(DType::Q4_K), 640, 2048, 0, 1})
    ->Args({int(DType::Q6_K), 640, 2048, 1, 1})
    ->Args({int(DType::Q6_K), 640, 2048, 0, 1})
    ->Args({int(DType::Q5_0), 2048, 640, 1, 2})
    ->Args({int(DType::Q5_0), 2048, 640, 0, 2})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// ---- memory bandwidth: the floor a memory-bound matvec can reach ----

namespace {
#if GEMMA3_HAVE_X86_SIMD
GEMMA3_TARGET_AVX2 inline float sum_avx2(const float* p, std::int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (std::int64_t i = 0; i + 32 <= n; i += 32) {
    a0 = _mm256_add_ps(a0, _mm256_loadu_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_loadu_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_loadu_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_loadu_ps(p + i + 24));
  }
  return gemma3::kernels::avx2::hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}
#endif
float sum_any(const float* p, std::int64_t n) {
#if GEMMA3_HAVE_X86_SIMD
  if (gemma3::cpu_has_avx2()) return sum_avx2(p, n);
#endif
  float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (std::int64_t i = 0; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) a[j] += p[i + j];
  return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}
}  // namespace

// Read a buffer of MB megabytes (far larger than L3) with SIMD loads, split over threads.
static void BM_memory_read(benchmark::State& state) {
  const std::int64_t bytes = state.range(0) << 20;
  Settings settings(true, int(state.range(1)));
  std::vector<float> buf(std::size_t(bytes / 4), 1.0f);
  const std::int64_t n = std::int64_t(buf.size());
  for (auto _ : state) {
    settings.pool.parallel_for(0, n / 8192, [&](std::int64_t b, std::int64_t e) {
      float s = sum_any(buf.data() + b * 8192, (e - b) * 8192);
      benchmark::DoNotOptimize(s);
    }, 64);
  }
  state.SetBytesProcessed(std::int64_t(state.iterations()) * bytes);
}
BENCHMARK(BM_memory_read)->ArgNames({"MB", "threads"})->Args({512, 1})->Args({512, 2})->Unit(benchmark::kMillisecond)->UseRealTime();

// memcpy of MB megabytes; bytes/s counts bytes read + written.
static void BM_memory_copy(benchmark::State& state) {
  const std::int64_t bytes = state.range(0) << 20;
  Settings settings(true, int(state.range(1)));
  std::vector<unsigned char> src(std::size_t(bytes), 1), dst(std::size_t(bytes), 0);
  for (auto _ : state) {
    settings.pool.parallel_for(0, bytes >> 16, [&](std::int64_t b, std::int64_t e) {
      std::memcpy(dst.data() + (b << 16), src.data() + (b << 16), std::size_t((e - b) << 16));
    }, 16);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(std::int64_t(state.iterations()) * 2 * bytes);
}
BENCHMARK(BM_memory_copy)->ArgNames({"MB", "threads"})->Args({256, 1})->Args({256, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
