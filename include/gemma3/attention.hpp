// gemma3/attention.hpp -- Gemma 3 self-attention: GQA, QK-norm, RoPE, sliding window.
//
//   q = x Wq^T  [T, num_attention_heads * head_dim]
//   k = x Wk^T  [T, num_key_value_heads * head_dim],   v = x Wv^T (same shape)
//   q, k = RMSNorm per head (q_norm, k_norm; (1+w))      <- before RoPE
//   q, k = RoPE(q, k)   (base and scaling by layer type, rope.hpp)
//   for query head h, using kv head h / (num_attention_heads / num_key_value_heads):
//     s[j]  = (q_h . k_j) * query_pre_attn_scalar^-0.5     (168^-0.5 on 27B, not head_dim^-0.5)
//     s[j]  = softcap * tanh(s[j] / softcap)               (only if attn_logit_softcapping is set:
//             never in a released Gemma 3 config; applied as JAX and Gemma 2 do, while
//             transformers 5.24's Gemma3Attention ignores the field -- tests/test_model.cpp)
//     p     = softmax over the keys j the mask allows (attention_mask.hpp), float32
//     o_h   = sum_j p[j] v_j
//   out = concat_h(o_h) Wo^T   [T, hidden_size]
//
// Every step runs on the backend (backend.hpp), on its Activations:
// backends/reference.hpp spells the score / mask / softmax / GQA loop plainly, and
// backends/cpu.hpp runs the same over a float32 or float16 cache with SIMD and threads.
// The backend also stores this call's k and v in the layer's KV cache (kv_cache.hpp),
// so the next call, at a later position, sees them. The same function runs a whole
// prompt (prefill, T > 1) or one token (decode, T = 1); gemma3_attention_batch runs
// one token of each of B sequences (a decode batch).
// Multimodal prompts pass the image groups of the chunk: an image soft token then
// also sees the later soft tokens of its own image (attention_mask.hpp).
//
// Mirrors Gemma3Attention with eager_attention_forward (transformers'
// models/gemma3/modeling_gemma3.py). Pinned by the model fixtures in
// tests/test_model.cpp (GQA groups 1, 2 and 4; scalar != head_dim; windows 1, 2 and
// 4), the prefill/decode equality tests there, and tests/test_backends.cpp.
#pragma once

#include <vector>

#include "attention_mask.hpp"
#include "backend.hpp"
#include "config.hpp"
#include "kv_cache.hpp"
#include "rms_norm.hpp"
#include "rope.hpp"
#include "tensor.hpp"

namespace gemma3 {

struct Gemma3AttentionWeights {
  Weight q_proj;  // [num_attention_heads * head_dim, hidden_size]
  Weight k_proj;  // [num_key_value_heads * head_dim, hidden_size]
  Weight v_proj;  // [num_key_value_heads * head_dim, hidden_size]
  Weight o_proj;  // [hidden_size, num_attention_heads * head_dim]
  Vector q_norm;  // [head_dim]
  Vector k_norm;  // [head_dim]
};

// q, k, v of x [T, hidden_size], each head RMS-normed (QK-norm), not yet rotated.
inline void project_qkv(const Backend& backend, const Gemma3TextConfig& c, const Gemma3AttentionWeights& w,
                        const Activations& x, Activations& q, Activations& k, Activations& v) {
  const float eps = float(c.rms_norm_eps);
  backend.linear_many(x, {{&w.q_proj, &q}, {&w.k_proj, &k}, {&w.v_proj, &v}});
  backend.rms_norm_heads(q, c.head_dim, w.q_norm, eps);  // QK-norm comes before RoPE
  backend.rms_norm_heads(k, c.head_dim, w.k_norm, eps);
}

inline AttentionShape attention_shape(const Gemma3TextConfig& c) {
  return AttentionShape{c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.attention_scale(),
                        c.attn_logit_softcapping};
}

// out [T, hidden_size] = attention over x [T, hidden_size] at positions pos0 .. pos0+T-1.
inline void gemma3_attention(const Backend& backend, const Gemma3TextConfig& c, bool sliding,
                             const Gemma3AttentionWeights& w, const RotaryEmbedding& rope, const Activations& x,
                             int pos0, LayerKVCache& cache, Activations& out, const ImageGroups* images = nullptr) {
  Activations q, k, v;  // [T, NH * D], [T, KV * D], [T, KV * D]
  project_qkv(backend, c, w, x, q, k, v);
  backend.rope(q, rope, pos0);
  backend.rope(k, rope, pos0);

  const AttentionMask mask{sliding, c.sliding_window, pos0, images};
  Activations context;  // [T, NH * D]
  backend.attention(attention_shape(c), mask, q, k, v, cache, context);
  backend.linear(w.o_proj, context, out);
}

// The same for a decode batch (Gemma3ForCausalLM::decode_batch): row b of x [B,
// hidden_size] is one token of sequence b, at positions[b], with that sequence's cache
// caches[b]. The projections read the B rows together (each weight once for all B);
// RoPE and attention keep the sequences apart.
inline void gemma3_attention_batch(const Backend& backend, const Gemma3TextConfig& c, bool sliding,
                                   const Gemma3AttentionWeights& w, const RotaryEmbedding& rope, const Activations& x,
                                   const std::vector<int>& positions, const std::vector<LayerKVCache*>& caches,
                                   Activations& out) {
  Activations q, k, v;  // [B, NH * D], [B, KV * D], [B, KV * D]
  project_qkv(backend, c, w, x, q, k, v);
  backend.rope_at(q, rope, positions);
  backend.rope_at(k, rope, positions);

  Activations context;  // [B, NH * D]
  backend.attention_batch(attention_shape(c), sliding, c.sliding_window, positions, q, k, v, caches, context);
  backend.linear(w.o_proj, context, out);
}

}  // namespace gemma3
