// cuda/lab/gemv_lab.cpp -- the dequantizing GEMV of GGUF block weights (src/quantized.cu,
// Options::keep_quantized) checked against the CPU, then timed on the 1B's Q4_K_M shapes
// beside cuBLAS on the same matrix widened to bf16 (what the backend multiplies
// otherwise), both measured in the same run against the device's copy bandwidth.
//
//   id  tensor of the 1B Q4_K_M file   type   rows x cols
//   G1  q_proj                         Q5_0     1024 x 1152
//   G2  gate_proj, up_proj             Q5_0     6912 x 1152
//   G3  down_proj                      Q6_K     1152 x 6912
//   G4  o_proj                         Q4_K     1152 x 1024
//   G5  v_proj                         Q8_0      256 x 1152
//   G6  the LM head (tied embedding)   Q8_0   262144 x 1152
// each at T = 1, 4 and 8 tokens (a decode step, small decode batches).
//
//   GB/s     the weight bytes one call reads (stored blocks for the GEMV, bf16 for
//            cuBLAS) / time
//   % copy   GB/s over the copy bandwidth (a 1 GiB device-to-device copy, read + write)
//   bf16 / GEMV   cuBLAS's time over the GEMV's: what keeping the blocks gains per call
//
// Timing: a CUDA graph of `iters` calls (100, or one per copy if more), call i on copy
// i mod n of the weight (copies together over 5x the L2, so each call reads from
// memory), replayed between two events; the median of the repeats, divided by iters.
//
//   gemv_lab [--quick | --smoke] [--csv FILE]      exit status 1 when a check fails
//
// --smoke: the same tensors with at most 64 rows, checked and timed once on at most 2
// copies (lab_timing.hpp)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "cuda_test_util.hpp"
#include "lab_timing.hpp"
#include "quantized.hpp"
#include "random_model.hpp"


using cuda_test::DeviceBuffer;
using gemma3::DType;

namespace {

struct Options {
  bool quick = false;
  bool smoke = false;  // lab_timing.hpp
  std::string csv;
};

struct Shape {
  const char* id;
  const char* tensor;
  DType type;
  int rows, cols;
};
const Shape kShapes[] = {
    {"G1", "q_proj", DType::Q5_0, 1024, 1152},    {"G2", "gate/up_proj", DType::Q5_0, 6912, 1152},
    {"G3", "down_proj", DType::Q6_K, 1152, 6912}, {"G4", "o_proj", DType::Q4_K, 1152, 1024},
    {"G5", "v_proj", DType::Q8_0, 256, 1152},     {"G6", "LM head", DType::Q8_0, 262144, 1152},
};
const int kTokens[] = {1, 4, 8};

void check_cublas(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw std::runtime_error(std::string(what) + ": " + cublasGetStatusString(s));
}

using lab::graph_time_us;

struct Row {
  std::string id, tensor, type;
  int rows, cols, tokens, copies_gemv, copies_bf16;
  double gemv_us, gemv_gbps, bf16_us, bf16_gbps;
};

int run(const Options& opt) {
  int dev = 0, l2 = 0;
  cudaDeviceProp p{};
  CUDA_TEST_CHECK(cudaGetDevice(&dev));
  CUDA_TEST_CHECK(cudaGetDeviceProperties(&p, dev));
  CUDA_TEST_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
  std::printf("gemv_lab on %s: L2 %.0f MiB%s\n", p.name, double(l2) / (1 << 20),
              opt.smoke ? " (--smoke: the times mean nothing)" : opt.quick ? " (--quick)" : "");
  cudaStream_t stream;
  CUDA_TEST_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cublasHandle_t blas;
  check_cublas(cublasCreate(&blas), "cublasCreate");
  check_cublas(cublasSetStream(blas, stream), "cublasSetStream");
  const double copy_gbps = opt.smoke ? lab::copy_bandwidth_gbps(stream, 1, 1, std::size_t(16) << 20)
                                     : lab::copy_bandwidth_gbps(stream, 3, 5);
  std::printf("copy bandwidth %.0f GB/s (1 GiB device-to-device, read + write)\n", copy_gbps);

  bool ok = true;
  std::vector<Row> rows;
  quant_test::Rng rng(2026);
  for (Shape s : kShapes) {
    if (opt.smoke) s.rows = std::min(s.rows, 64);
    const gemma3::Weight host_w{s.type, nullptr, s.rows, s.cols};
    const std::size_t stored = host_w.row_bytes() * std::size_t(s.rows);
    const std::size_t wide = std::size_t(s.rows) * std::size_t(s.cols) * 2;
    const std::size_t cold = 5 * std::size_t(l2);
    const int copies_gemv = std::min(int((cold + stored - 1) / stored), opt.smoke ? 2 : 1 << 30),
              copies_bf16 = std::min(int((cold + wide - 1) / wide), opt.smoke ? 2 : 1 << 30);
    std::vector<unsigned char> bytes = cuda_test::random_block_bytes(s.type, s.rows, s.cols, rng);
    gemma3::Weight w = host_w;
    w.data = bytes.data();
    DeviceBuffer<unsigned char> blocks(stored * std::size_t(copies_gemv));
    for (int c = 0; c < copies_gemv; ++c)
      CUDA_TEST_CHECK(cudaMemcpy(blocks.get() + stored * std::size_t(c), bytes.data(), stored, cudaMemcpyHostToDevice));
    DeviceBuffer<std::uint16_t> w16(std::size_t(s.rows) * std::size_t(s.cols) * std::size_t(copies_bf16));
    for (int c = 0; c < copies_bf16; ++c)
      gemma3::cuda::dequantize_bf16(s.type, blocks.get(), 0, s.rows, s.cols,
                                    w16.get() + std::size_t(s.rows) * std::size_t(s.cols) * std::size_t(c), stream);
    for (int T : kTokens) {
      std::vector<float> x(std::size_t(T) * std::size_t(s.cols));
      for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(int((i * 2654435761u) % 2001) - 1000) / 1000.f;
      std::vector<std::uint16_t> x16(x.size());
      for (std::size_t i = 0; i < x.size(); ++i) x16[i] = gemma3::f32_to_bf16(x[i]);
      const DeviceBuffer<float> xd(x);
      const DeviceBuffer<std::uint16_t> x16d(x16);
      DeviceBuffer<float> y(std::size_t(T) * std::size_t(s.rows));

      // check: every 16th row of every token against the CPU's float64 dot
      gemma3::cuda::gemv_blocks(s.type, blocks.get(), s.rows, s.cols, xd.get(), T, y.get(), stream);
      CUDA_TEST_CHECK(cudaStreamSynchronize(stream));
      const int bad = cuda_test::gemv_misses(w, x.data(), T, y.download(), 16);
      std::printf("check %s %-13s %s T=%d: %s\n", s.id, s.tensor, gemma3::dtype_name(s.type), T,
                  bad ? "FAILED" : "ok");
      if (bad) {
        ok = false;
        continue;
      }

      // at least one call per copy, so every replay reads them all
      const int repeats = opt.smoke ? 1 : opt.quick ? 3 : 7, base = opt.smoke ? 2 : opt.quick ? 20 : 100;
      int iters = std::max(base, copies_gemv);
      const double gemv_us = graph_time_us(stream, iters, repeats, [&](int i) {
        gemma3::cuda::gemv_blocks(s.type, blocks.get() + stored * std::size_t(i % copies_gemv), s.rows, s.cols,
                                  xd.get(), T, y.get(), stream);
      });
      const float one = 1.f, zero = 0.f;
      iters = std::max(base, copies_bf16);
      const double bf16_us = graph_time_us(stream, iters, repeats, [&](int i) {
        const std::uint16_t* wi = w16.get() + std::size_t(s.rows) * std::size_t(s.cols) * std::size_t(i % copies_bf16);
        check_cublas(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, s.rows, T, s.cols, &one, wi, CUDA_R_16BF, s.cols,
                                  x16d.get(), CUDA_R_16BF, s.cols, &zero, y.get(), CUDA_R_32F, s.rows,
                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                     "cublasGemmEx");
      });
      rows.push_back({s.id, s.tensor, gemma3::dtype_name(s.type), s.rows, s.cols, T, copies_gemv, copies_bf16, gemv_us,
                      double(stored) / (gemv_us * 1e-6) / 1e9, bf16_us, double(wide) / (bf16_us * 1e-6) / 1e9});
    }
  }
  check_cublas(cublasDestroy(blas), "cublasDestroy");
  CUDA_TEST_CHECK(cudaStreamDestroy(stream));
  if (!ok) {
    std::printf("a check failed\n");
    return 1;
  }

  std::printf("\n%-3s %-13s %-5s %14s %2s %10s %8s %7s %10s %8s %7s %11s\n", "id", "tensor", "type", "rows x cols", "T",
              "GEMV us", "GB/s", "% copy", "bf16 us", "GB/s", "% copy", "bf16 / GEMV");
  for (const Row& r : rows)
    std::printf("%-3s %-13s %-5s %6d x %-6d %2d %10.2f %8.0f %6.1f%% %10.2f %8.0f %6.1f%% %11.2f\n", r.id.c_str(),
                r.tensor.c_str(), r.type.c_str(), r.rows, r.cols, r.tokens, r.gemv_us, r.gemv_gbps,
                100 * r.gemv_gbps / copy_gbps, r.bf16_us, r.bf16_gbps, 100 * r.bf16_gbps / copy_gbps,
                r.bf16_us / r.gemv_us);
  if (!opt.csv.empty()) {
    FILE* f = std::fopen(opt.csv.c_str(), "w");
    if (!f) throw std::runtime_error("cannot write " + opt.csv);
    std::fprintf(f, "id,tensor,type,rows,cols,tokens,gemv_us,gemv_gbps,bf16_us,bf16_gbps,copy_gbps,copies_gemv,"
                    "copies_bf16\n");
    for (const Row& r : rows)
      std::fprintf(f, "%s,%s,%s,%d,%d,%d,%.3f,%.1f,%.3f,%.1f,%.1f,%d,%d\n", r.id.c_str(), r.tensor.c_str(),
                   r.type.c_str(), r.rows, r.cols, r.tokens, r.gemv_us, r.gemv_gbps, r.bf16_us, r.bf16_gbps, copy_gbps,
                   r.copies_gemv, r.copies_bf16);
    std::fclose(f);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--quick") opt.quick = true;
      else if (a == "--smoke") opt.smoke = true;
      else if (a == "--csv" && i + 1 < argc) opt.csv = argv[++i];
      else if (a == "-h" || a == "--help") {
        std::printf("usage: gemv_lab [--quick | --smoke] [--csv FILE]\n");
        return 0;
      } else throw std::invalid_argument("unknown argument " + a);
    }
    if (!cuda_test::have_device()) {
      std::printf("gemv_lab: no CUDA device: skipped\n");
      return 77;
    }
    return run(opt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gemv_lab: %s\n", e.what());
    return 1;
  }
}
