// gemma3/vision/siglip.hpp -- the SigLIP vision tower: pixels to one vector per 14 x 14 patch.
//
//   pixel values [3, S * S]                                      S = image_size (896)
//   patches  = cut into P x P patches (P = S / patch_size = 64), each flattened (c, ky, kx)
//                                                                [P * P, 3 * 14 * 14] = [4096, 588]
//   x = patches . W_patch^T + b_patch + position_embedding       [4096, hidden]   (hidden = 1152)
//       (the stride-14 14 x 14 convolution IS this matmul; patch p = row * P + col)
//   for each of num_hidden_layers (27) pre-LayerNorm encoder layers:
//     x = x + out_proj( MHA( layer_norm1(x) ) )                 16 heads x 72, scale 72^-0.5, no mask
//     x = x + fc2( gelu_tanh( fc1( layer_norm2(x) ) ) )          1152 -> 4304 -> 1152
//   x = post_layernorm(x)                                        [4096, 1152] = last_hidden_state
//
// LayerNorm here is the ordinary one (mean and biased variance over the row, eps from
// vision_config.layer_norm_eps, weight AND bias), not Gemma's RMSNorm; every linear
// has a bias; attention is fully bidirectional. There is no class token and, at
// 896 x 896, no position-embedding interpolation. The attention-pooling head
// (vision_use_head) exists in SigLIP but Gemma 3 never uses it.
// The linear layers run on the language model's backend (backend.hpp); the rest is
// plain Eigen here.
//
// Mirrors transformers' SiglipVisionModel (SiglipVisionEmbeddings, SiglipEncoderLayer
// with eager attention, post_layernorm). Pinned by tests/test_vision_model.cpp:
// every encoder layer and last_hidden_state against the tiny fixture.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../backend.hpp"
#include "../kernels/gelu.hpp"  // gelu_tanh
#include "../quant/quant.hpp"
#include "../tensor.hpp"
#include "config.hpp"

namespace gemma3 {

struct LayerNormWeights {
  Vector weight;  // [n]
  Vector bias;    // [n]
};

struct SiglipEncoderLayerWeights {
  LayerNormWeights layer_norm1;
  Weight q_proj, k_proj, v_proj, out_proj;  // [hidden, hidden]
  Vector q_bias, k_bias, v_bias, out_bias;  // [hidden]
  LayerNormWeights layer_norm2;
  Weight fc1;  // [intermediate, hidden]
  Vector fc1_bias;  // [intermediate]
  Weight fc2;  // [hidden, intermediate]
  Vector fc2_bias;  // [hidden]
};

struct SiglipVisionWeights {
  Weight patch_embedding;      // [hidden, 3 * patch * patch]: Conv2d weight [hidden, 3, patch, patch] (OIHW) flattened
  Vector patch_bias;           // [hidden]
  Weight position_embedding;   // [num_patches, hidden]
  std::vector<SiglipEncoderLayerWeights> layers;  // [num_hidden_layers]
  LayerNormWeights post_layernorm;
};

// Every row of x [T, n]: (x - mean) / sqrt(var + eps) * weight + bias (biased variance).
inline void layer_norm_rows(Matrix& x, const LayerNormWeights& w, float eps) {
  const Eigen::Index n = x.cols();
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    auto row = x.row(t);
    const float mean = row.sum() / float(n);
    row.array() -= mean;
    const float var = row.squaredNorm() / float(n);
    row *= 1.0f / std::sqrt(var + eps);
    row = row.cwiseProduct(w.weight.transpose()) + w.bias.transpose();
  }
}

// y [T, out] = x [T, in] . W^T + b
inline void linear_bias(const Backend& backend, const Weight& W, const Vector& b, const Matrix& x, Matrix& y) {
  backend.linear_host(W, x, y);
  y.rowwise() += b.transpose();
}

// Pixel values [3, S * S] -> flattened patches [P * P, 3 * patch * patch], each in the
// order of the convolution kernel's (c, ky, kx) so that patches . W^T is the conv.
inline Matrix patchify(const Matrix& pixel_values, const SiglipVisionConfig& c) {
  const int S = c.image_size, p = c.patch_size, P = c.patches_per_side();
  Matrix patches(Eigen::Index(P) * P, c.patch_dim());  // [P * P, 3 * p * p]
  for (int py = 0; py < P; ++py)
    for (int px = 0; px < P; ++px) {
      float* out = patches.row(Eigen::Index(py) * P + px).data();
      for (int ch = 0; ch < c.num_channels; ++ch)
        for (int ky = 0; ky < p; ++ky)
          for (int kx = 0; kx < p; ++kx)
            *out++ = pixel_values(ch, Eigen::Index(py * p + ky) * S + (px * p + kx));
    }
  return patches;
}

// Multi-head self-attention over all T tokens (no mask); x [T, hidden] -> out [T, hidden].
inline void siglip_attention(const Backend& backend, const SiglipVisionConfig& c, const SiglipEncoderLayerWeights& w,
                             const Matrix& x, Matrix& out) {
  const int T = int(x.rows()), H = c.num_attention_heads, D = c.head_dim();
  const float scale = 1.0f / std::sqrt(float(D));
  Matrix q, k, v;  // [T, hidden] each; head h is columns h * D .. h * D + D - 1
  linear_bias(backend, w.q_proj, w.q_bias, x, q);
  linear_bias(backend, w.k_proj, w.k_bias, x, k);
  linear_bias(backend, w.v_proj, w.v_bias, x, v);
  Matrix context(T, Eigen::Index(H) * D);  // [T, hidden]
  constexpr int kQueryBlock = 256;         // bounds the score matrix at [256, T] (T = 4096 at 896 x 896)
  Matrix scores;                           // [queries in block, T]
  for (int h = 0; h < H; ++h)
    for (int t0 = 0; t0 < T; t0 += kQueryBlock) {
      const int tb = std::min(kQueryBlock, T - t0);
      scores.noalias() = q.block(t0, h * D, tb, D) * k.middleCols(h * D, D).transpose();
      scores *= scale;
      for (int r = 0; r < tb; ++r) {  // softmax over every key, float32
        Eigen::Ref<RowVector> row = scores.row(r);
        row = (row.array() - row.maxCoeff()).exp();
        row /= row.sum();
      }
      context.block(t0, h * D, tb, D).noalias() = scores * v.middleCols(h * D, D);
    }
  linear_bias(backend, w.out_proj, w.out_bias, context, out);
}

// One pre-LayerNorm encoder layer, x [T, hidden] updated in place.
inline void siglip_encoder_layer(const Backend& backend, const SiglipVisionConfig& c, const SiglipEncoderLayerWeights& w,
                                 Matrix& x) {
  const float eps = float(c.layer_norm_eps);
  Matrix a = x;  // [T, hidden]
  layer_norm_rows(a, w.layer_norm1, eps);
  Matrix attn;   // [T, hidden]
  siglip_attention(backend, c, w, a, attn);
  x += attn;

  Matrix m = x;  // [T, hidden]
  layer_norm_rows(m, w.layer_norm2, eps);
  Matrix hidden;  // [T, intermediate]
  linear_bias(backend, w.fc1, w.fc1_bias, m, hidden);
  hidden = hidden.unaryExpr([](float u) { return gelu_tanh(u); });
  Matrix mlp;     // [T, hidden]
  linear_bias(backend, w.fc2, w.fc2_bias, hidden, mlp);
  x += mlp;
}

// Optional taps for tests.
struct SiglipTrace {
  Matrix embeddings;                  // [num_patches, hidden] patch + position embeddings
  std::vector<Matrix> layer_outputs;  // [num_hidden_layers] x [num_patches, hidden]
};

// pixel values [3, S * S] -> last_hidden_state [num_patches, hidden].
inline Matrix siglip_vision_tower(const Backend& backend, const SiglipVisionConfig& c, const SiglipVisionWeights& w,
                                  const Matrix& pixel_values, SiglipTrace* trace = nullptr) {
  if (pixel_values.rows() != c.num_channels || pixel_values.cols() != Eigen::Index(c.image_size) * c.image_size)
    throw std::invalid_argument("siglip_vision_tower: pixel values [" + std::to_string(pixel_values.rows()) + ", " +
                                std::to_string(pixel_values.cols()) + "], expected [3, " +
                                std::to_string(c.image_size) + " * " + std::to_string(c.image_size) + "]");
  Matrix x;  // [num_patches, hidden]
  linear_bias(backend, w.patch_embedding, w.patch_bias, patchify(pixel_values, c), x);
  Vector pos(c.hidden_size);  // one row of position_embedding
  for (Eigen::Index p = 0; p < x.rows(); ++p) {
    dequantize_row(w.position_embedding, p, pos.data());
    x.row(p) += pos.transpose();
  }
  if (trace) { trace->embeddings = x; trace->layer_outputs.clear(); }

  for (const SiglipEncoderLayerWeights& layer : w.layers) {
    siglip_encoder_layer(backend, c, layer, x);
    if (trace) trace->layer_outputs.push_back(x);
  }
  layer_norm_rows(x, w.post_layernorm, float(c.layer_norm_eps));
  return x;
}

}  // namespace gemma3
