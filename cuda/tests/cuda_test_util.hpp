// cuda/tests/cuda_test_util.hpp -- what the CUDA tests share: checked CUDA calls, device
// buffers, random inputs, the cache types' rounding on the host, and the brute-force
// attention every kernel is held to (float64, the library's own mask rule).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>

#include "attention.hpp"
#include "gemma3/attention_mask.hpp"
#include "gemma3/dtype.hpp"
#include "gemma3/quant/quant.hpp"
#include "gemma3/tensor.hpp"
#include "gemma3/weight.hpp"

namespace cuda_test {

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}
#define CUDA_TEST_CHECK(x) ::cuda_test::check((x), #x)

// A device buffer of n values of T; filled with NaN bytes (0xFF) when made, so a value
// the kernel never wrote shows up as NaN.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t n) : n_(n) {
    if (n) {
      CUDA_TEST_CHECK(cudaMalloc(&p_, n * sizeof(T)));
      CUDA_TEST_CHECK(cudaMemset(p_, 0xFF, n * sizeof(T)));
    }
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; o.n_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept { std::swap(p_, o.p_); std::swap(n_, o.n_); return *this; }
  ~DeviceBuffer() { if (p_) cudaFree(p_); }

  T* get() const { return static_cast<T*>(p_); }
  std::size_t size() const { return n_; }
  void upload(const std::vector<T>& host) {
    if (host.size() != n_) throw std::invalid_argument("DeviceBuffer::upload: size mismatch");
    CUDA_TEST_CHECK(cudaMemcpy(p_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    CUDA_TEST_CHECK(cudaMemcpy(host.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  void* p_ = nullptr;
  std::size_t n_ = 0;
};

inline bool have_device() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

inline int num_sms() {
  int dev = 0, sms = 0;
  CUDA_TEST_CHECK(cudaGetDevice(&dev));
  CUDA_TEST_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  return sms;
}

// Fails the test (throws) when the last launch or the stream failed.
inline void sync() {
  CUDA_TEST_CHECK(cudaGetLastError());
  CUDA_TEST_CHECK(cudaDeviceSynchronize());
}

// n values drawn from N(0, 1), with a few outliers N(0, 10) (the FA3 paper's test
// inputs), fresh for every call.
inline std::vector<float> randn(std::size_t n, std::mt19937& rng, double outliers = 0.001) {
  std::normal_distribution<float> g(0.f, 1.f);
  std::bernoulli_distribution spike(outliers);
  std::vector<float> x(n);
  for (float& v : x) v = spike(rng) ? 10.f * g(rng) : g(rng);
  return x;
}

// The cache type's 16-bit encoding of x, and x rounded through it.
inline std::uint16_t encode(gemma3::cuda::KvType t, float x) {
  return t == gemma3::cuda::KvType::bf16 ? gemma3::f32_to_bf16(x) : gemma3::f32_to_f16(x);
}
inline float round_to(gemma3::cuda::KvType t, float x) {
  return t == gemma3::cuda::KvType::bf16 ? gemma3::bf16_to_f32(gemma3::f32_to_bf16(x))
                                         : gemma3::f16_to_f32(gemma3::f32_to_f16(x));
}
inline void round_all(gemma3::cuda::KvType t, std::vector<float>& x) {
  for (float& v : x) v = round_to(t, v);
}

// Brute-force attention in float64 for T queries at positions pos0 .. pos0 + T - 1 over
// keys/values at positions 0 .. P - 1 (rows of `keys` / `values`, [P, KV * D]), with
// attention_mask.hpp's rule (AttentionMask, image groups included) deciding each pair.
//   q [T, NH * D] -> out [T, NH * D]; a query with no visible key gives 0.
inline std::vector<float> reference_attention(int NH, int KV, int D, float scale, float softcap, bool sliding,
                                              int window, int pos0, int T, const std::vector<float>& q,
                                              const std::vector<float>& keys, const std::vector<float>& values,
                                              int P, const gemma3::ImageGroups* images = nullptr) {
  const gemma3::AttentionMask mask{sliding, window, pos0, images};
  const int G = NH / KV;
  std::vector<float> out(std::size_t(T) * NH * D, 0.f);
  std::vector<double> s(static_cast<std::size_t>(P));
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < NH; ++h) {
      const int kv = h / G;
      const float* qv = &q[(std::size_t(t) * NH + h) * D];
      double m = -INFINITY;
      for (int p = 0; p < P; ++p) {
        if (!mask.allows(pos0 + t, p)) { s[p] = -INFINITY; continue; }
        const float* kr = &keys[(std::size_t(p) * KV + kv) * D];
        double dot = 0;
        for (int d = 0; d < D; ++d) dot += double(qv[d]) * double(kr[d]);
        double x = dot * scale;
        if (softcap > 0) x = softcap * std::tanh(x / softcap);
        s[p] = x;
        m = std::max(m, x);
      }
      if (m == -INFINITY) continue;  // no visible key: 0
      double l = 0;
      std::vector<double> o(std::size_t(D), 0.0);
      for (int p = 0; p < P; ++p) {
        if (s[p] == -INFINITY) continue;
        const double w = std::exp(s[p] - m);
        l += w;
        const float* vr = &values[(std::size_t(p) * KV + kv) * D];
        for (int d = 0; d < D; ++d) o[d] += w * double(vr[d]);
      }
      for (int d = 0; d < D; ++d) out[(std::size_t(t) * NH + h) * D + d] = float(o[d] / l);
    }
  return out;
}

struct Error {
  double relative = 0;  // max|got - want| / max|want|
  double max_abs = 0;
  std::size_t non_finite = 0;  // NaN or Inf in got (never allowed)
};
inline Error compare(const std::vector<float>& got, const std::vector<float>& want) {
  Error e;
  double ref = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) { ++e.non_finite; continue; }
    e.max_abs = std::max(e.max_abs, double(std::fabs(got[i] - want[i])));
    ref = std::max(ref, double(std::fabs(want[i])));
  }
  e.relative = ref > 0 ? e.max_abs / ref : e.max_abs;
  return e;
}

// The check of the dequantizing GEMV (test_blocks.cpp, gemv_lab): y [T, w.rows] against
// the CPU's float64 dot of every `row_step`-th row of w (dequantize_row) with each row of
// x [T, w.cols]. A value misses when |y - dot| > 1e-5 sum |w x| (about four times the
// worst rounding of the GEMV's float32 steps). Returns the misses; *worst, when given,
// the largest |y - dot| / sum |w x|.
inline int gemv_misses(const gemma3::Weight& w, const float* x, int T, const std::vector<float>& y, int row_step,
                       double* worst = nullptr) {
  const std::size_t rows = std::size_t(w.rows), cols = std::size_t(w.cols);
  std::vector<float> row(cols);
  int misses = 0;
  for (std::size_t r = 0; r < rows; r += std::size_t(row_step)) {
    gemma3::dequantize_row(w, std::int64_t(r), row.data());
    for (int t = 0; t < T; ++t) {
      const float* xt = x + std::size_t(t) * cols;
      double dot = 0, mag = 0;
      for (std::size_t c = 0; c < cols; ++c) {
        dot += double(row[c]) * double(xt[c]);
        mag += std::fabs(double(row[c]) * double(xt[c]));
      }
      const double err = std::fabs(double(y[std::size_t(t) * rows + r]) - dot);
      if (!(err <= 1e-5 * mag + 1e-30)) ++misses;
      if (worst) *worst = std::max(*worst, mag > 0 ? err / mag : err);
    }
  }
  return misses;
}

}  // namespace cuda_test
