// gemma3/model.hpp -- Gemma3ForCausalLM: tokens in, next-token logits out.
//
//   h      = embed_tokens[input_ids] * sqrt(hidden_size)             [T, hidden_size]
//   for each layer i (sliding or global, config.layer_types[i]):
//     h    = decoder_layer_i(h)                                       [T, hidden_size]
//   h      = norm(h)                                                  (RMSNorm, 1 + w)
//   logits = h . embed_tokens^T                                       [T, vocab_size]   (tied, unscaled)
//   logits = final_logit_softcapping * tanh(logits / final_logit_softcapping)   (only if set)
//
// forward() continues the sequence held in a KVCache: the T tokens sit at
// positions cache.length() .. + T - 1. A whole prompt (prefill) and one token at a
// time (decode) are the same code with T > 1 or T == 1, and any split of a
// prompt into chunks gives the same logits (tests/test_model.cpp). decode_batch()
// runs one token of each of B sequences (each with its own cache) as one [B, hidden]
// pass, so a step reads the weights once for all B.
//
// Images (vision/multimodal.hpp) enter through the optional ImageTokens argument:
// the rows of h at image soft tokens are replaced by projected image features
// (NOT scaled by sqrt(hidden_size)), and attention lets each image's soft tokens
// see each other (attention_mask.hpp). Without it, nothing changes.
//
// The model is given a backend (backend.hpp) when it is made: every step on the
// activations and the KV cache runs there, and the model only orders the steps. Without one it makes a CpuBackend
// (backends/cpu.hpp) from the environment's options (all cores, the best instruction
// set); ReferenceBackend (backends/reference.hpp) is the plain one to read.
//
// Mirrors Gemma3ForCausalLM (Gemma3TextModel + tied lm_head) and, with images, the
// language-model half of Gemma3ForConditionalGeneration. Pinned by
// tests/test_model.cpp and tests/test_vision_model.cpp against transformers on
// tiny random models.
#pragma once

#include <cmath>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend.hpp"
#include "attention_weights.hpp"
#include "backends/cpu.hpp"
#include "config.hpp"
#include "decoder_layer.hpp"
#include "embedding.hpp"
#include "kv_cache.hpp"
#include "rms_norm.hpp"
#include "rope.hpp"

namespace gemma3 {

struct Gemma3TextWeights {
  Weight embed_tokens;                             // [vocab_size, hidden_size], also the LM head
  std::vector<Gemma3DecoderLayerWeights> layers;   // [num_hidden_layers]
  Vector norm;                                     // [hidden_size]
  std::vector<std::shared_ptr<const void>> storage;  // keeps the mapped files / buffers alive
};

// Which rows of logits forward() computes: every position (tests, scoring) or only
// the last one (generation; saves a [T, vocab_size] product).
enum class Logits { all, last };

// The image part of a multimodal prompt chunk (built by vision/multimodal.hpp).
struct ImageTokens {
  std::vector<int> group_ids;  // [T]: -1 for text, g >= 0 for a soft token of image group g (image_group_ids())
  Matrix features;             // [soft tokens, hidden_size]: their embeddings, in order of position
};

// Optional taps for tests and for learners stepping through a forward pass.
struct ForwardTrace {
  bool hidden_states = true;          // fill embeddings, layer_outputs, final_hidden
  bool attention = false;             // fill last_token_attention
  Matrix embeddings;                  // [T, hidden_size] after the sqrt(hidden_size) scale (and image features)
  std::vector<Matrix> layer_outputs;  // [num_hidden_layers] x [T, hidden_size]
  Matrix final_hidden;                // [T, hidden_size] after the final norm
  // [num_hidden_layers] x [num_attention_heads, p + 1]: what the call's last token (at
  // position p) attended to in each layer, 0 outside its mask (attention_weights.hpp).
  std::vector<Matrix> last_token_attention;
};

class Gemma3ForCausalLM {
 public:
  // backend: null makes CpuBackend(CpuBackend::Options::from_environment()).
  Gemma3ForCausalLM(Gemma3TextConfig config, Gemma3TextWeights weights, std::shared_ptr<const Backend> backend = nullptr)
      : config_(std::move(config)),
        weights_(std::move(weights)),
        backend_(backend ? std::move(backend) : default_backend()),
        rope_local_(config_.head_dim, config_.rope_for(LayerType::sliding_attention)),
        rope_global_(config_.head_dim, config_.rope_for(LayerType::full_attention)),
        embed_scale_(embed_scale(config_.hidden_size)) {}

  const Gemma3TextConfig& config() const { return config_; }
  const Gemma3TextWeights& weights() const { return weights_; }
  const Backend& backend() const { return *backend_; }
  std::shared_ptr<const Backend> backend_ptr() const { return backend_; }

  // The same model (its weights shared, not copied) on another backend.
  Gemma3ForCausalLM with_backend(std::shared_ptr<const Backend> backend) const {
    Gemma3ForCausalLM m = *this;
    m.backend_ = backend ? std::move(backend) : default_backend();
    return m;
  }

  // The factor the embedding is multiplied by. Defaults to float32 sqrt(hidden_size),
  // as HF does for a float32 model; set embed_scale(H, DType::BF16) to mirror a bf16 one.
  float embed_scale_value() const { return embed_scale_; }
  void set_embed_scale(float s) { embed_scale_ = s; }

  // A cache for sequences of up to max_cache_len tokens (default: the model's context),
  // made by the backend, in kv_dtype or the backend's own choice.
  KVCache new_cache(int max_cache_len = 0, std::optional<DType> kv_dtype = std::nullopt) const {
    return backend_->new_cache(config_, max_cache_len > 0 ? max_cache_len : config_.max_position_embeddings, kv_dtype);
  }

  // Run input_ids at positions cache.length() ..; returns logits [T, vocab_size]
  // (Logits::all) or [1, vocab_size] (Logits::last). `images`: see ImageTokens.
  Matrix forward(const std::vector<int>& input_ids, KVCache& cache, Logits which = Logits::all,
                 ForwardTrace* trace = nullptr, const ImageTokens* images = nullptr) const {
    const Activations h = final_hidden(input_ids, cache, trace, images);  // [T, hidden_size]
    Matrix logits;  // [T or 1, vocab_size]
    if (which == Logits::last) {
      logits.resize(1, weights_.embed_tokens.rows);
      backend_->lm_head_last(weights_.embed_tokens, h, logits.data());
    } else {
      Activations all;
      backend_->linear(weights_.embed_tokens, h, all);
      logits = backend_->download_moved(std::move(all));  // T x 262144 floats: not copied
    }
    softcap_logits(logits.data(), logits.size());
    return logits;
  }

  // The prompt at once; logits of its last token [vocab_size].
  Vector prefill(const std::vector<int>& input_ids, KVCache& cache) const { return last_logits(input_ids, cache); }

  // One token; its logits [vocab_size].
  Vector decode(int token_id, KVCache& cache) const { return last_logits({token_id}, cache); }

  // The same two steps for greedy decoding: only the chosen id comes back, computed by
  // the backend where the activations are (a GPU backend sends back 4 bytes, not the
  // logits). final_logit_softcapping is monotone, so it does not change the pick.
  int prefill_greedy(const std::vector<int>& input_ids, KVCache& cache, const ImageTokens* images = nullptr) const {
    const Activations h = final_hidden(input_ids, cache, nullptr, images);
    return backend_->lm_head_argmax(weights_.embed_tokens, h);
  }
  int decode_greedy(int token_id, KVCache& cache) const { return prefill_greedy({token_id}, cache); }

  // One decode step for B sequences at once (a decode batch): token_ids[b] continues the
  // sequence held in *caches[b], at its own position caches[b]->length(). The B tokens
  // go through every linear layer as one [B, hidden_size] matrix, so a step reads each
  // weight once for all of them; RoPE and attention keep the sequences apart. The same
  // as B decode() calls (tests/test_model.cpp). Logits [B, vocab_size].
  Matrix decode_batch(const std::vector<int>& token_ids, const std::vector<KVCache*>& caches) const {
    const Activations h = final_hidden_batch(token_ids, caches);  // [B, hidden_size]
    Activations all;
    backend_->linear(weights_.embed_tokens, h, all);
    Matrix logits = backend_->download_moved(std::move(all));  // [B, vocab_size]
    softcap_logits(logits.data(), logits.size());
    return logits;
  }

  // The same, greedy: the id each sequence picks (B ids, computed by the backend).
  std::vector<int> decode_greedy_batch(const std::vector<int>& token_ids, const std::vector<KVCache*>& caches) const {
    const Activations h = final_hidden_batch(token_ids, caches);
    return backend_->lm_head_argmax_rows(weights_.embed_tokens, h);
  }

 private:
  // The backend of a model made without one.
  static std::shared_ptr<const Backend> default_backend() {
    return std::make_shared<const CpuBackend>(CpuBackend::Options::from_environment());
  }

  // The logits of the last token, made in place (no [1, vocab] matrix to copy: 1 MB
  // per decoded token at Gemma 3's vocabulary).
  Vector last_logits(const std::vector<int>& input_ids, KVCache& cache) const {
    const Activations h = final_hidden(input_ids, cache, nullptr, nullptr);
    Vector logits(weights_.embed_tokens.rows);
    backend_->lm_head_last(weights_.embed_tokens, h, logits.data());
    softcap_logits(logits.data(), logits.size());
    return logits;
  }

  // final_logit_softcapping, when the config sets it: x -> c tanh(x / c).
  void softcap_logits(float* x, Eigen::Index n) const {
    if (!config_.final_logit_softcapping) return;
    const float c = float(*config_.final_logit_softcapping);
    for (Eigen::Index i = 0; i < n; ++i) x[i] = c * std::tanh(x[i] / c);
  }

  // Embedding, every decoder layer (the cache advances by T) and the final norm:
  // the hidden states [T, hidden_size] the tied LM head reads.
  Activations final_hidden(const std::vector<int>& input_ids, KVCache& cache, ForwardTrace* trace,
                           const ImageTokens* images) const {
    const int T = int(input_ids.size());
    const int pos0 = cache.length();
    if (T == 0) throw std::invalid_argument("forward: input_ids is empty");
    if (cache.num_layers() != config_.num_hidden_layers)
      throw std::invalid_argument("forward: the KV cache was made for another model");
    if (pos0 + T > cache.max_cache_len())
      throw std::length_error("forward: " + std::to_string(T) + (T == 1 ? " token" : " tokens") + " at position " +
                              std::to_string(pos0) + " would run past the KV cache's " +
                              std::to_string(cache.max_cache_len()) + " positions");

    Activations h;  // [T, hidden_size]
    backend_->embed(weights_.embed_tokens, input_ids, embed_scale_, h);
    std::optional<ImageGroups> groups;  // multimodal only: which tokens are which image's soft tokens
    if (images) {
      backend_->set_rows(h, image_rows(*images, T, h.cols()), images->features);  // soft tokens := features, unscaled
      groups.emplace(images->group_ids, pos0);
    }
    const bool keep_hidden = trace && trace->hidden_states, keep_attention = trace && trace->attention;
    if (trace) { trace->layer_outputs.clear(); trace->last_token_attention.clear(); }
    if (keep_hidden) trace->embeddings = backend_->download(h);

    for (int i = 0; i < config_.num_hidden_layers; ++i) {
      const bool sliding = config_.is_sliding(i);
      const RotaryEmbedding& rope = sliding ? rope_local_ : rope_global_;
      Matrix last_in;  // [1, hidden_size]: the last token's input to this layer
      if (keep_attention) last_in = backend_->download(h).bottomRows(1);
      gemma3_decoder_layer(*backend_, config_, sliding, weights_.layers[std::size_t(i)], rope, h, pos0, cache.layer(i),
                           groups ? &*groups : nullptr);
      if (keep_hidden) trace->layer_outputs.push_back(backend_->download(h));
      if (keep_attention)
        trace->last_token_attention.push_back(last_token_attention_weights(
            *backend_, config_, sliding, weights_.layers[std::size_t(i)], rope, last_in, pos0 + T - 1, cache.layer(i)));
    }
    cache.advance(T);

    backend_->rms_norm(h, weights_.norm, float(config_.rms_norm_eps), h);
    if (keep_hidden) trace->final_hidden = backend_->download(h);
    return h;
  }

  // final_hidden for a decode batch: row b of the result is sequence b's token. Every
  // check comes before the first step, so a refused batch leaves every cache as it was.
  Activations final_hidden_batch(const std::vector<int>& token_ids, const std::vector<KVCache*>& caches) const {
    const std::size_t B = token_ids.size();
    if (B == 0) throw std::invalid_argument("decode_batch: no tokens");
    if (caches.size() != B)
      throw std::invalid_argument("decode_batch: " + std::to_string(B) + " tokens for " +
                                  std::to_string(caches.size()) + " KV caches");
    std::vector<int> positions(B);  // [B]: where each sequence's token sits
    for (std::size_t b = 0; b < B; ++b) {
      const std::string which = "decode_batch: sequence " + std::to_string(b);
      const KVCache* cache = caches[b];
      if (!cache) throw std::invalid_argument(which + " has no KV cache");
      for (std::size_t e = 0; e < b; ++e)
        if (caches[e] == cache)
          throw std::invalid_argument(which + " has the same KV cache as sequence " + std::to_string(e));
      if (cache->num_layers() != config_.num_hidden_layers)
        throw std::invalid_argument(which + ": the KV cache was made for another model");
      if (cache->length() >= cache->max_cache_len())
        throw std::length_error(which + ": its KV cache is full (" + std::to_string(cache->max_cache_len()) +
                                " positions)");
      positions[b] = cache->length();
    }

    Activations h;  // [B, hidden_size]
    backend_->embed(weights_.embed_tokens, token_ids, embed_scale_, h);
    std::vector<LayerKVCache*> layer_caches(B);  // [B]: each sequence's cache of layer i
    for (int i = 0; i < config_.num_hidden_layers; ++i) {
      const bool sliding = config_.is_sliding(i);
      for (std::size_t b = 0; b < B; ++b) layer_caches[b] = &caches[b]->layer(i);
      gemma3_decoder_layer_batch(*backend_, config_, sliding, weights_.layers[std::size_t(i)],
                                 sliding ? rope_local_ : rope_global_, h, positions, layer_caches);
    }
    for (KVCache* cache : caches) cache->advance(1);

    backend_->rms_norm(h, weights_.norm, float(config_.rms_norm_eps), h);
    return h;
  }

  // The rows of h at image soft tokens (group id >= 0), in order: where the image
  // features go.
  static std::vector<int> image_rows(const ImageTokens& images, int T, Eigen::Index hidden_size) {
    if (int(images.group_ids.size()) != T)
      throw std::invalid_argument("forward: " + std::to_string(images.group_ids.size()) +
                                  " image group ids for " + std::to_string(T) + " tokens");
    if (images.features.cols() != hidden_size)
      throw std::invalid_argument("forward: image features of width " + std::to_string(images.features.cols()) +
                                  ", expected hidden_size " + std::to_string(hidden_size));
    std::vector<int> rows;
    for (int t = 0; t < T; ++t)
      if (images.group_ids[std::size_t(t)] >= 0) rows.push_back(t);
    if (Eigen::Index(rows.size()) != images.features.rows())
      throw std::invalid_argument("forward: " + std::to_string(rows.size()) + " image soft tokens but " +
                                  std::to_string(images.features.rows()) + " rows of image features");
    return rows;
  }

  Gemma3TextConfig config_;
  Gemma3TextWeights weights_;
  std::shared_ptr<const Backend> backend_;
  RotaryEmbedding rope_local_;   // sliding layers: rope_local_base_freq, unscaled
  RotaryEmbedding rope_global_;  // global layers: rope_theta, / rope_scaling.factor
  float embed_scale_;
};

}  // namespace gemma3
