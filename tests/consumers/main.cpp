// A tiny program outside the gemma3 tree, built by each consumer project in
// tests/consumers/ (find_package, add_subdirectory, FetchContent). It proves that
// linking gemma3::gemma3 alone gives the headers, C++17 and Eigen.
// Expects Gemma's RMSNorm: out = x / sqrt(mean(x^2) + eps) * (1 + weight).
#include <gemma3/rms_norm.hpp>

#include <Eigen/Core>  // comes transitively through gemma3::gemma3

#include <cmath>
#include <cstdio>

static_assert(__cplusplus >= 201703L, "gemma3::gemma3 must bring C++17");

int main() {
  const float x[4] = {1.0f, -2.0f, 3.0f, -4.0f};
  const float w[4] = {0.0f, 1.0f, -0.5f, 0.25f};
  float out[4] = {};
  const float eps = 1e-6f;
  gemma3::rms_norm(x, w, out, 4, eps);

  // Same formula with Eigen: mean(x^2) = 7.5.
  Eigen::Map<const Eigen::Vector4f> xv(x), wv(w);
  const float inv_rms = 1.0f / std::sqrt(xv.squaredNorm() / 4.0f + eps);
  const Eigen::Vector4f expected =
      (xv * inv_rms).cwiseProduct(Eigen::Vector4f::Ones() + wv);

  bool ok = true;
  for (int i = 0; i < 4; ++i) {
    std::printf("out[%d] = %.5f (expected %.5f)\n", i, out[i], expected[i]);
    ok = ok && std::fabs(out[i] - expected[i]) <= 1e-5f;
  }
  std::printf("Eigen %d.%d.%d, C++ %ld\n", EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION,
              EIGEN_MINOR_VERSION, static_cast<long>(__cplusplus));
  std::printf(ok ? "gemma3 consumer OK\n" : "gemma3 consumer FAILED\n");
  return ok ? 0 : 1;
}
