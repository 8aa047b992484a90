// gemma3/vision/projector.hpp -- 4096 patch vectors to 256 soft tokens in the text model's space.
//
//   v        = vision tower output                         [P * P, vision_hidden]   P = 64, 1152
//   grid     = v as a P x P grid of patches (patch p = row * P + col)
//   pooled   = k x k average pool, k = P / sqrt(mm_tokens_per_image) = 4
//              token t = r * (P / k) + c averages patch rows k r .. k r + k - 1,
//              columns k c .. k c + k - 1                   [256, 1152]
//   normed   = RMSNorm(pooled) with (1 + mm_soft_emb_norm), eps = vision layer_norm_eps
//   features = normed . M,  M = mm_input_projection_weight  [1152, text_hidden]  -> [256, text_hidden]
//
// M is stored [vision_hidden, text_hidden] and used as x . M -- NOT in nn.Linear's
// [out, in] orientation (the JAX einsum weight was copied over unchanged). This
// library's matmul computes x . W^T for W [out, in] (kernels/matmul.hpp), so the
// loader keeps a one-time float32 TRANSPOSED copy, mm_input_projection = M^T
// [text_hidden, vision_hidden] (11.25 MiB for 4B: 1152 x 2560 floats), and the
// projection is a plain linear(). Using M as if it were [out, in] is the common
// wrong way (shapes even match when both widths are equal, as in some tiny tests).
//
// The features replace the embeddings of the <image_soft_token> positions WITHOUT
// the sqrt(hidden_size) scale text embeddings get (model.hpp).
//
// Mirrors transformers' Gemma3MultiModalProjector. Pinned by
// tests/test_vision_model.cpp (image_features against the tiny fixture, and the
// un-transposed / unpooled / Llama-norm wrong ways failing it).
#pragma once

#include <string>

#include "../backend.hpp"
#include "../rms_norm.hpp"
#include "../tensor.hpp"
#include "config.hpp"

namespace gemma3 {

struct Gemma3MultiModalProjectorWeights {
  Vector mm_soft_emb_norm;     // [vision_hidden]
  Weight mm_input_projection;  // [text_hidden, vision_hidden]: float32 M^T, transposed once at load
};

// k x k average pooling of a P x P grid of row vectors.
//   x [P * P, n] -> [(P / k)^2, n]
inline Matrix average_pool_patches(const Matrix& x, int patches_per_side, int k) {
  const int P = patches_per_side, side = P / k;
  Matrix out = Matrix::Zero(Eigen::Index(side) * side, x.cols());  // [side * side, n]
  for (int r = 0; r < side; ++r)
    for (int c = 0; c < side; ++c) {
      auto token = out.row(Eigen::Index(r) * side + c);
      for (int dy = 0; dy < k; ++dy)
        for (int dx = 0; dx < k; ++dx) token += x.row(Eigen::Index(r * k + dy) * P + (c * k + dx));
      token /= float(k * k);
    }
  return out;
}

// vision tower output [P * P, vision_hidden] -> soft tokens [mm_tokens_per_image, text_hidden].
inline Matrix gemma3_multimodal_projector(const Backend& backend, const Gemma3VisionConfig& c,
                                          const Gemma3MultiModalProjectorWeights& w, const Matrix& vision_hidden) {
  const SiglipVisionConfig& v = c.vision_config;
  if (vision_hidden.rows() != v.num_patches() || vision_hidden.cols() != v.hidden_size)
    throw std::invalid_argument("gemma3_multimodal_projector: input [" + std::to_string(vision_hidden.rows()) + ", " +
                                std::to_string(vision_hidden.cols()) + "], expected [" +
                                std::to_string(v.num_patches()) + ", " + std::to_string(v.hidden_size) + "]");
  Matrix tokens = average_pool_patches(vision_hidden, v.patches_per_side(), c.pool_kernel());  // [256, 1152]
  rms_norm_rows(tokens, w.mm_soft_emb_norm, float(v.layer_norm_eps));
  Matrix features;  // [256, text_hidden]
  backend.linear_host(w.mm_input_projection, tokens, features);  // tokens . M  (M^T is what is stored)
  return features;
}

}  // namespace gemma3
