// gemma3/rms_norm.hpp -- Gemma's RMSNorm.
//
//   y = x / sqrt(mean(x^2) + eps) * (1 + w)          over the last axis, float32
//
// The stored weight w is an offset around zero (HF initialises it to 0), so the
// scale is (1 + w), formed in float32. Llama-style RMSNorm multiplies by w alone:
// that is the common wrong way and tests/test_components.cpp and
// tests/test_gemma_rules.cpp show it disagreeing
// with the reference. Used for the four norms of every decoder layer, q_norm and
// k_norm (per head, over head_dim), the final norm and the vision projector's
// mm_soft_emb_norm.
//
// Mirrors transformers' Gemma3RMSNorm. Pinned by tests/test_components.cpp
// (against HF output) and every model fixture.
#pragma once

#include <cmath>

#include "tensor.hpp"

namespace gemma3 {

// out[0..n) = RMSNorm(x[0..n)) with weight w[0..n). out may alias x.
inline void rms_norm(const float* x, const float* w, float* out, int n, float eps) {
  float sum_sq = 0.0f;
  for (int i = 0; i < n; ++i) sum_sq += x[i] * x[i];
  const float inv_rms = 1.0f / std::sqrt(sum_sq / float(n) + eps);
  for (int i = 0; i < n; ++i) out[i] = (x[i] * inv_rms) * (1.0f + w[i]);
}

// Every row of x [T, n] normalised in place with weight [n].
inline void rms_norm_rows(Matrix& x, const Vector& weight, float eps) {
  for (Eigen::Index t = 0; t < x.rows(); ++t)
    rms_norm(x.row(t).data(), weight.data(), x.row(t).data(), int(x.cols()), eps);
}

// Per-head norm: x is [T, n_heads * head_dim]; each head_dim slice is normalised
// with the same weight [head_dim] (q_norm / k_norm).
inline void rms_norm_heads(Matrix& x, int head_dim, const Vector& weight, float eps) {
  const int n_heads = int(x.cols()) / head_dim;
  for (Eigen::Index t = 0; t < x.rows(); ++t)
    for (int h = 0; h < n_heads; ++h) {
      float* p = x.row(t).data() + h * head_dim;
      rms_norm(p, weight.data(), p, head_dim, eps);
    }
}

}  // namespace gemma3
