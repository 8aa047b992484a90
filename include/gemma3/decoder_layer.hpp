// gemma3/decoder_layer.hpp -- one Gemma 3 decoder block ("sandwich" norms).
//
//   h = h + post_attention_layernorm( attention( input_layernorm(h) ) )
//   h = h + post_feedforward_layernorm( mlp( pre_feedforward_layernorm(h) ) )
//
// The residual stream itself is never normalised; each sub-block's input and
// output are. All four norms are RMSNorm with the (1 + w) scale.
//
// Mirrors Gemma3DecoderLayer. Pinned by tests/test_model.cpp (per-layer hidden
// states against the reference).
#pragma once

#include <vector>

#include "attention.hpp"
#include "mlp.hpp"
#include "rms_norm.hpp"

namespace gemma3 {

struct Gemma3DecoderLayerWeights {
  Vector input_layernorm;             // [hidden_size]
  Gemma3AttentionWeights self_attn;
  Vector post_attention_layernorm;    // [hidden_size]
  Vector pre_feedforward_layernorm;   // [hidden_size]
  Gemma3MLPWeights mlp;
  Vector post_feedforward_layernorm;  // [hidden_size]
};

// The block around its attention: attend(a, attn) takes the normed input a [T,
// hidden_size] to the attention output attn [T, hidden_size]; h is updated in place.
template <class Attend>
inline void decoder_block(const Backend& backend, const Gemma3TextConfig& c, const Gemma3DecoderLayerWeights& w,
                          Activations& h, Attend&& attend) {
  const float eps = float(c.rms_norm_eps);

  Activations a;     // [T, hidden_size]
  backend.rms_norm(h, w.input_layernorm, eps, a);
  Activations attn;  // [T, hidden_size]
  attend(a, attn);
  backend.rms_norm(attn, w.post_attention_layernorm, eps, attn);
  backend.add(h, attn);

  Activations m;     // [T, hidden_size]
  backend.rms_norm(h, w.pre_feedforward_layernorm, eps, m);
  Activations ffn;   // [T, hidden_size]
  gemma3_mlp(backend, w.mlp, m, ffn);
  backend.rms_norm(ffn, w.post_feedforward_layernorm, eps, ffn);
  backend.add(h, ffn);
}

// h [T, hidden_size], the tokens at positions pos0 .. pos0+T-1, updated in place.
// `images`: the chunk's image groups (multimodal prefill), passed on to attention.
// Every step runs on `backend` (backend.hpp).
inline void gemma3_decoder_layer(const Backend& backend, const Gemma3TextConfig& c, bool sliding,
                                 const Gemma3DecoderLayerWeights& w, const RotaryEmbedding& rope, Activations& h,
                                 int pos0, LayerKVCache& cache, const ImageGroups* images = nullptr) {
  decoder_block(backend, c, w, h, [&](const Activations& a, Activations& attn) {
    gemma3_attention(backend, c, sliding, w.self_attn, rope, a, pos0, cache, attn, images);
  });
}

// The same for a decode batch: row b of h [B, hidden_size] is one token of sequence b,
// at positions[b], attending over caches[b] (gemma3_attention_batch).
inline void gemma3_decoder_layer_batch(const Backend& backend, const Gemma3TextConfig& c, bool sliding,
                                       const Gemma3DecoderLayerWeights& w, const RotaryEmbedding& rope,
                                       Activations& h, const std::vector<int>& positions,
                                       const std::vector<LayerKVCache*>& caches) {
  decoder_block(backend, c, w, h, [&](const Activations& a, Activations& attn) {
    gemma3_attention_batch(backend, c, sliding, w.self_attn, rope, a, positions, caches, attn);
  });
}

}  // namespace gemma3
