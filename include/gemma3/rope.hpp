// gemma3/rope.hpp -- rotary position embedding, half-split ("rotate_half") layout.
//
//   inv_freq[i] = 1 / rope_theta^(2i / head_dim) / factor         i in [0, head_dim/2)
//   angle       = position * inv_freq[i]
//   out[i]          = x[i] cos(angle) - x[i + head_dim/2] sin(angle)
//   out[i + D/2]    = x[i + D/2] cos(angle) + x[i] sin(angle)
//
// The pairs are (i, i + D/2), not adjacent elements (that would be the
// interleaved GPT-J layout). Gemma 3 uses two settings (config.hpp rope_for):
//   sliding layers: rope_theta = rope_local_base_freq = 10 000, factor 1 (never scaled)
//   global layers:  rope_theta = 1 000 000, factor = rope_scaling.factor (8 on 4B+)
// Everything is float32 as in HF (inv_freq and position * inv_freq in float32).
//
// Mirrors Gemma3RotaryEmbedding + apply_rotary_pos_emb. Pinned by
// tests/test_components.cpp (HF output, and the wrong base/scaling failing it).
#pragma once

#include <cmath>
#include <vector>

#include "config.hpp"
#include "tensor.hpp"

namespace gemma3 {

class RotaryEmbedding {
 public:
  RotaryEmbedding(int head_dim, const RopeParameters& p) : head_dim_(head_dim), inv_freq_(static_cast<std::size_t>(head_dim / 2)) {
    for (int i = 0; i < head_dim / 2; ++i) {
      // float32 throughout, like HF: at position 131 000 a one-ulp difference in
      // inv_freq already moves the angle by ~1e-3 rad.
      const float exponent = float(2 * i) / float(head_dim);
      const float f = 1.0f / std::pow(float(p.rope_theta), exponent);
      inv_freq_[std::size_t(i)] = f / float(p.factor);
    }
  }

  int head_dim() const { return head_dim_; }
  const std::vector<float>& inv_freq() const { return inv_freq_; }

  // Rotate every head of x [T, n_heads * head_dim]; row t sits at position pos0 + t.
  void apply(Matrix& x, int pos0) const {
    const int n_heads = int(x.cols()) / head_dim_;
    for (Eigen::Index t = 0; t < x.rows(); ++t) rotate(x.row(t).data(), n_heads, pos0 + int(t));
  }

  // Rotate n_heads consecutive head vectors ([n_heads * head_dim] floats) of one token.
  void rotate(float* token, int n_heads, int position) const {
    const int half = head_dim_ / 2;
    std::vector<float> cos_a(static_cast<std::size_t>(half)), sin_a(static_cast<std::size_t>(half));
    for (int i = 0; i < half; ++i) {
      const float angle = float(position) * inv_freq_[std::size_t(i)];  // float32 product, as HF
      cos_a[std::size_t(i)] = std::cos(angle);
      sin_a[std::size_t(i)] = std::sin(angle);
    }
    for (int h = 0; h < n_heads; ++h) {
      float* v = token + h * head_dim_;
      for (int i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * cos_a[std::size_t(i)] - b * sin_a[std::size_t(i)];
        v[i + half] = b * cos_a[std::size_t(i)] + a * sin_a[std::size_t(i)];
      }
    }
  }

 private:
  int head_dim_;
  std::vector<float> inv_freq_;  // [head_dim / 2]
};

}  // namespace gemma3
