// gemma3/attention_weights.hpp -- what one token looked at: its attention
// probabilities over the keys in a layer's KV cache.
//
// For the token at position p, whose input to decoder layer i was the row x [hidden_size]:
//   a      = input_layernorm(x)                                   (RMSNorm, 1 + w)
//   q      = RoPE(q_norm(a Wq^T), p)                              [num_attention_heads, head_dim]
//   for query head h (GQA: it reads kv head h / (NH / KV)):
//     s[j] = (q_h . k_j) * query_pre_attn_scalar^-0.5             k_j: the cached key of position j
//     s[j] = softcap * tanh(s[j] / softcap)                       (only if attn_logit_softcapping)
//     P[h, j] = softmax(s) over the keys the mask allows          (attention_mask.hpp)
// and P [num_attention_heads, p + 1] is 0 where the mask forbids: before p - W + 1 on
// a sliding layer, so a local layer's 512- or 1024-token window is visible as such.
//
// This is the same arithmetic attention.hpp runs (the model's backend computes the
// probabilities inside its fused attention and does not keep them); here it is
// spelled out once more for one query row, reading the keys the forward pass stored.
// Call it after that pass: the keys up to p must be in the cache, and on a sliding
// layer the ring still holds the window of p only while p is the newest position.
// Model::forward fills ForwardTrace::last_token_attention with it (model.hpp).
//
// The keys are read from the host rows (float32 or float16, as stored); a cache made
// by a device backend has none and is refused with a message. Pinned by
// tests/test_attention_weights.cpp: P V Wo^T equals the attention output of the
// reference backend, each row sums to 1, zero outside the window.
#pragma once

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "attention_mask.hpp"
#include "backend.hpp"
#include "config.hpp"
#include "decoder_layer.hpp"
#include "kv_cache.hpp"
#include "rms_norm.hpp"
#include "rope.hpp"
#include "tensor.hpp"

namespace gemma3 {

// P [num_attention_heads, position + 1] for the token at `position` whose input to
// the layer was x [1, hidden_size] (the residual stream before input_layernorm).
inline Matrix last_token_attention_weights(const Backend& backend, const Gemma3TextConfig& c, bool sliding,
                                           const Gemma3DecoderLayerWeights& w, const RotaryEmbedding& rope,
                                           const Matrix& x, int position, const LayerKVCache& cache) {
  cache.require_host_rows("last_token_attention_weights");
  if (x.rows() != 1 || x.cols() != c.hidden_size)
    throw std::invalid_argument("last_token_attention_weights: x must be [1, hidden_size = " +
                                std::to_string(c.hidden_size) + "]");
  const int NH = c.num_attention_heads, KV = c.num_key_value_heads, D = c.head_dim;
  const float eps = float(c.rms_norm_eps);

  Matrix a = x;  // [1, hidden_size]
  rms_norm_rows(a, w.input_layernorm, eps);
  Matrix q;      // [1, NH * D]
  backend.linear_host(w.self_attn.q_proj, a, q);
  rms_norm_heads(q, D, w.self_attn.q_norm, eps);
  rope.apply(q, position);

  const int first = first_visible_key(sliding, c.sliding_window, position);
  const float scale = c.attention_scale();
  Matrix P = Matrix::Zero(NH, position + 1);  // [NH, position + 1]
  std::vector<float> key(std::size_t(KV) * std::size_t(D));
  for (int j = first; j <= position; ++j) {
    cache.k.load(cache.slot(j), key.data());  // kv heads of position j, after QK-norm and RoPE
    for (int h = 0; h < NH; ++h) {
      const float* k = key.data() + std::size_t(h / (NH / KV)) * std::size_t(D);
      float s = 0.0f;
      for (int d = 0; d < D; ++d) s += q(0, h * D + d) * k[d];
      s *= scale;
      if (c.attn_logit_softcapping) {
        const float cap = float(*c.attn_logit_softcapping);
        s = cap * std::tanh(s / cap);
      }
      P(h, j) = s;
    }
  }
  for (int h = 0; h < NH; ++h) {  // softmax over the visible keys first .. position
    auto row = P.row(h).segment(first, position + 1 - first);
    row = (row.array() - row.maxCoeff()).exp().matrix();
    row /= row.sum();
  }
  return P;
}

}  // namespace gemma3
