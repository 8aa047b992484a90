// cuda/tests/random_model.hpp -- a model of any Gemma 3 shape with random weights, made
// in memory: for the lab's timings at the released models' shapes (1B, 4B) and for
// tests that need the tuned kernels' head_dim (128 / 256), which the tiny fixtures lack.
//
//   random_weights          bf16, uniform in +-0.04
//   random_q4_k_m_weights   GGUF blocks of the types the released Q4_K_M files use per
//                           tensor (q, k, gate, up Q5_0; v and the embedding Q8_0; o
//                           Q4_K; down Q6_K), random quants and small f16 scales: the
//                           bytes a decode step reads from such a file, without the file
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gemma3/dtype.hpp"
#include "gemma3/model.hpp"
#include "test_quant_helpers.hpp"  // tests/: random GGUF blocks

namespace cuda_test {

// A model of `c`'s shapes whose every matrix is make(name, rows, cols, storage): name
// as in the HF checkpoint ("embed_tokens", "q_proj", ..., "down_proj"), storage the
// weights' owner list to keep its bytes in. The norm weights are zero (a scale of 1 + 0).
template <class Make>
gemma3::Gemma3TextWeights weights_of(const gemma3::Gemma3TextConfig& c, Make&& make) {
  gemma3::Gemma3TextWeights w;
  const std::int64_t H = c.hidden_size, I = c.intermediate_size, D = c.head_dim;
  const std::int64_t NH = c.num_attention_heads, KV = c.num_key_value_heads;
  w.embed_tokens = make("embed_tokens", c.vocab_size, H, w.storage);
  w.norm = gemma3::Vector::Zero(H);
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    gemma3::Gemma3DecoderLayerWeights l;
    l.input_layernorm = l.post_attention_layernorm = l.pre_feedforward_layernorm = l.post_feedforward_layernorm =
        gemma3::Vector::Zero(H);
    l.self_attn.q_proj = make("q_proj", NH * D, H, w.storage);
    l.self_attn.k_proj = make("k_proj", KV * D, H, w.storage);
    l.self_attn.v_proj = make("v_proj", KV * D, H, w.storage);
    l.self_attn.o_proj = make("o_proj", H, NH * D, w.storage);
    l.self_attn.q_norm = l.self_attn.k_norm = gemma3::Vector::Zero(D);
    l.mlp.gate_proj = make("gate_proj", I, H, w.storage);
    l.mlp.up_proj = make("up_proj", I, H, w.storage);
    l.mlp.down_proj = make("down_proj", H, I, w.storage);
    w.layers.push_back(std::move(l));
  }
  return w;
}

// Storage, as weights_of's `make` keeps it.
using Storage = std::vector<std::shared_ptr<const void>>;

// Weights of `c`'s shapes: uniform in +-0.04 (about the spread of trained Gemma weights),
// rounded to bf16, from a fixed generator seeded by `seed`.
inline gemma3::Gemma3TextWeights random_weights(const gemma3::Gemma3TextConfig& c,
                                                std::uint64_t seed = 0x9E3779B97F4A7C15ull) {
  std::uint64_t state = seed;
  return weights_of(c, [&](const char*, std::int64_t rows, std::int64_t cols, Storage& storage) {
    auto buf = std::make_shared<std::vector<std::uint16_t>>(std::size_t(rows * cols));
    for (std::uint16_t& x : *buf) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      const float u = float(state >> 40) / float(1ull << 24);  // [0, 1)
      x = gemma3::f32_to_bf16(0.08f * (u - 0.5f));
    }
    storage.push_back(buf);
    return gemma3::Weight{gemma3::DType::BF16, buf->data(), rows, cols};
  });
}

// Gemma 3's attention shape at the tuned kernels' head_dim 256, small: 6 layers (5
// sliding, 1 global), hidden 256, 4 q heads sharing 1 kv head, vocab 512, W = 64 (so
// rings wrap and both layer kinds take several key tiles).
inline gemma3::Gemma3TextConfig small_config_head_dim_256() {
  gemma3::Gemma3TextConfig c = gemma3::gemma3_preset("270m");
  c.num_hidden_layers = 6;
  c.hidden_size = 256;
  c.intermediate_size = 512;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 1;
  c.head_dim = 256;
  c.vocab_size = 512;
  c.sliding_window = 64;
  c.derive_layer_types();
  return c;
}

// rows x cols values of GGUF block type t (cols a multiple of its block size):
// quant_test::random_blocks' random quant bytes (the K-quants' sub-block scales too),
// then each block's f16 scale set so that values stay within about +-0.12: d = 2^-10
// (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1), 2^-14 and dmin 2^-16 (Q4_K, Q5_K), 2^-16 (Q6_K); the
// legacy types' m = 0.
inline std::vector<unsigned char> random_block_bytes(gemma3::DType t, std::int64_t rows, std::int64_t cols,
                                                     quant_test::Rng& rng) {
  using gemma3::DType;
  std::vector<unsigned char> buf = quant_test::random_blocks(t, rows, cols, rng);
  const bool k4 = t == DType::Q4_K || t == DType::Q5_K;
  const float d = k4 ? 1.0f / 16384 : t == DType::Q6_K ? 1.0f / 65536 : 1.0f / 1024, m = k4 ? 1.0f / 65536 : 0.0f;
  int d_off, m_off;
  quant_test::f16_fields(t, d_off, m_off);
  for (std::size_t at = 0; at < buf.size(); at += gemma3::dtype_block_bytes(t)) {
    quant_test::put_f16(&buf[at + std::size_t(d_off)], d);
    if (m_off >= 0) quant_test::put_f16(&buf[at + std::size_t(m_off)], m);
  }
  return buf;
}

// The Q4_K_M file's tensor types for `c`'s shapes (random_block_bytes).
inline gemma3::Gemma3TextWeights random_q4_k_m_weights(const gemma3::Gemma3TextConfig& c,
                                                       std::uint64_t seed = 0x9E3779B97F4A7C15ull) {
  using gemma3::DType;
  quant_test::Rng rng(seed);
  return weights_of(c, [&](const char* name, std::int64_t rows, std::int64_t cols, Storage& storage) {
    const std::string n = name;
    const DType t = n == "embed_tokens" || n == "v_proj" ? DType::Q8_0
                    : n == "o_proj"                      ? DType::Q4_K
                    : n == "down_proj"                   ? DType::Q6_K
                                                         : DType::Q5_0;  // q, k, gate, up
    auto buf = std::make_shared<std::vector<unsigned char>>(random_block_bytes(t, rows, cols, rng));
    storage.push_back(buf);
    return gemma3::Weight{t, buf->data(), rows, cols};
  });
}

}  // namespace cuda_test
