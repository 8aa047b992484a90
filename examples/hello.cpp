// Placeholder example: proves that a program linking only gemma3::gemma3 builds
// and runs. Applies Gemma's RMSNorm, y = x / rms(x) * (1 + w), to a tiny vector.
#include <gemma3/rms_norm.hpp>

#include <cstdio>

int main() {
  const float x[4] = {1.0f, 2.0f, 3.0f, 4.0f};  // [hidden_size = 4]
  const float w[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // [hidden_size]; 0 means scale 1
  float y[4];                                   // [hidden_size]
  gemma3::rms_norm(x, w, y, 4, 1e-6f);
  std::printf("hello from gemma3: rms_norm([1 2 3 4]) = [%.4f %.4f %.4f %.4f]\n",
              y[0], y[1], y[2], y[3]);
  return 0;
}
