// cuda/lab/lab_timing.hpp -- how the kernel lab times its kernels (decode_lab, gemv_lab):
// CUDA events around work on a stream, CUDA graphs of many calls for short kernels, the
// median of repeats, and the device's copy bandwidth as the yardstick.
//
// Every lab program also takes --smoke: its checks as they are, then the timing code on
// shapes a few hundred times smaller with one repeat. Its numbers mean nothing; it runs
// the program end to end where a full run cannot, on the CUDA emulator (cuda/emu), so
// `make test` finds a lab that would stop half-way on a GPU.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include <cuda_runtime_api.h>

#include "cuda_test_util.hpp"

namespace lab {

inline double median(std::vector<double> x) {
  std::sort(x.begin(), x.end());
  return x[x.size() / 2];
}

// Milliseconds of `work` between two events on `stream`.
template <class F>
double time_ms(cudaStream_t stream, F&& work) {
  cudaEvent_t e0, e1;
  CUDA_TEST_CHECK(cudaEventCreate(&e0));
  CUDA_TEST_CHECK(cudaEventCreate(&e1));
  CUDA_TEST_CHECK(cudaEventRecord(e0, stream));
  work();
  CUDA_TEST_CHECK(cudaEventRecord(e1, stream));
  CUDA_TEST_CHECK(cudaEventSynchronize(e1));
  float ms = 0;
  CUDA_TEST_CHECK(cudaEventElapsedTime(&ms, e0, e1));
  CUDA_TEST_CHECK(cudaEventDestroy(e0));
  CUDA_TEST_CHECK(cudaEventDestroy(e1));
  return ms;
}

// `calls(i)` for i < iters captured once in a CUDA graph; the median over `repeats`
// replays of the time per call, in microseconds.
template <class F>
double graph_time_us(cudaStream_t stream, int iters, int repeats, F&& calls) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CUDA_TEST_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < iters; ++i) calls(i);
  CUDA_TEST_CHECK(cudaStreamEndCapture(stream, &graph));
  CUDA_TEST_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  CUDA_TEST_CHECK(cudaGraphLaunch(exec, stream));  // warm-up (and upload)
  CUDA_TEST_CHECK(cudaStreamSynchronize(stream));
  std::vector<double> us;
  for (int r = 0; r < repeats; ++r)
    us.push_back(1000.0 * time_ms(stream, [&] { CUDA_TEST_CHECK(cudaGraphLaunch(exec, stream)); }) / iters);
  CUDA_TEST_CHECK(cudaGraphExecDestroy(exec));
  CUDA_TEST_CHECK(cudaGraphDestroy(graph));
  return median(us);
}

// The device-to-device copy bandwidth in GB/s, read + write bytes: `copies` copies of
// `bytes` (1 GiB; less when memory is short) per timing, the median of `repeats` timings.
inline double copy_bandwidth_gbps(cudaStream_t stream, int copies, int repeats, std::size_t bytes = 1ull << 30) {
  std::size_t free_b = 0, total_b = 0;
  CUDA_TEST_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const std::size_t n = std::min<std::size_t>(bytes, free_b / 3);
  cuda_test::DeviceBuffer<unsigned char> src(n), dst(n);
  CUDA_TEST_CHECK(cudaDeviceSynchronize());
  CUDA_TEST_CHECK(cudaMemcpyAsync(dst.get(), src.get(), n, cudaMemcpyDeviceToDevice, stream));
  CUDA_TEST_CHECK(cudaStreamSynchronize(stream));
  std::vector<double> gbps;
  for (int r = 0; r < repeats; ++r) {
    const double ms = time_ms(stream, [&] {
      for (int i = 0; i < copies; ++i)
        CUDA_TEST_CHECK(cudaMemcpyAsync(dst.get(), src.get(), n, cudaMemcpyDeviceToDevice, stream));
    });
    gbps.push_back(2.0 * double(n) * copies / (ms * 1e-3) / 1e9);
  }
  return median(gbps);
}

}  // namespace lab
