// cuda/tests/random_model.hpp -- a model of any Gemma 3 shape with random bf16 weights,
// made in memory: for the lab's timings at the released models' shapes (1B, 4B) and for
// tests that need the tuned kernels' head_dim (128 / 256), which the tiny fixtures lack.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "gemma3/dtype.hpp"
#include "gemma3/model.hpp"

namespace cuda_test {

// Weights of `c`'s shapes: uniform in +-0.04 (about the spread of trained Gemma weights),
// rounded to bf16, from a fixed generator seeded by `seed`; the norm weights zero (a
// scale of 1 + 0).
inline gemma3::Gemma3TextWeights random_weights(const gemma3::Gemma3TextConfig& c,
                                                std::uint64_t seed = 0x9E3779B97F4A7C15ull) {
  gemma3::Gemma3TextWeights w;
  std::uint64_t state = seed;
  auto make = [&](std::int64_t rows, std::int64_t cols) {
    auto buf = std::make_shared<std::vector<std::uint16_t>>(std::size_t(rows * cols));
    for (std::uint16_t& x : *buf) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      const float u = float(state >> 40) / float(1ull << 24);  // [0, 1)
      x = gemma3::f32_to_bf16(0.08f * (u - 0.5f));
    }
    w.storage.push_back(buf);
    return gemma3::Weight{gemma3::DType::BF16, buf->data(), rows, cols};
  };
  const std::int64_t H = c.hidden_size, I = c.intermediate_size, D = c.head_dim;
  const std::int64_t NH = c.num_attention_heads, KV = c.num_key_value_heads;
  w.embed_tokens = make(c.vocab_size, H);
  w.norm = gemma3::Vector::Zero(H);
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    gemma3::Gemma3DecoderLayerWeights l;
    l.input_layernorm = l.post_attention_layernorm = l.pre_feedforward_layernorm = l.post_feedforward_layernorm =
        gemma3::Vector::Zero(H);
    l.self_attn.q_proj = make(NH * D, H);
    l.self_attn.k_proj = make(KV * D, H);
    l.self_attn.v_proj = make(KV * D, H);
    l.self_attn.o_proj = make(H, NH * D);
    l.self_attn.q_norm = l.self_attn.k_norm = gemma3::Vector::Zero(D);
    l.mlp.gate_proj = make(I, H);
    l.mlp.up_proj = make(I, H);
    l.mlp.down_proj = make(H, I);
    w.layers.push_back(std::move(l));
  }
  return w;
}

}  // namespace cuda_test
