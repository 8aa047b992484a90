// Placeholder benchmark that keeps bench/ building before the real ones land:
// an Eigen float32 dot product, reported as bytes/s (both operands read once).
#include <benchmark/benchmark.h>

#include <Eigen/Core>

static void BM_eigen_dot(benchmark::State& state) {
  const Eigen::Index n = state.range(0);
  const Eigen::VectorXf a = Eigen::VectorXf::Random(n);  // [n]
  const Eigen::VectorXf b = Eigen::VectorXf::Random(n);  // [n]
  for (auto _ : state) {
    float d = a.dot(b);
    benchmark::DoNotOptimize(d);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * 2 * n * int64_t(sizeof(float)));
}
BENCHMARK(BM_eigen_dot)->RangeMultiplier(8)->Range(1 << 10, 1 << 16);
