// gemma3/dequantize.hpp -- a float32 copy of a model's weights.
//
//   W_f32[r, c] = dequantize(W)[r, c]            for every weight matrix
//
// The library normally multiplies by weights in their stored format (bf16, f16,
// GGUF blocks) without ever widening a whole matrix (kernels/matmul.hpp). This
// copy is the "float path": the same numbers the quantized file stands for, in
// float32, so that a comparison with a float32 reference (transformers loading the
// same GGUF) measures this library's arithmetic and nothing else. It costs 4 bytes
// per parameter (1.1 GB for 270M) and is meant for tests and checks, not for use.
// Pinned by tests/test_real_model.cpp.
#pragma once

#include <memory>
#include <vector>

#include "model.hpp"
#include "quant/quant.hpp"

namespace gemma3 {

namespace detail {
inline Weight widen(const Weight& w, std::vector<std::shared_ptr<const void>>& storage) {
  auto buffer = std::make_shared<std::vector<float>>(std::size_t(w.rows) * std::size_t(w.cols));
  for (std::int64_t r = 0; r < w.rows; ++r) dequantize_row(w, r, buffer->data() + std::size_t(r) * std::size_t(w.cols));
  Weight out;
  out.dtype = DType::F32;
  out.data = buffer->data();
  out.rows = w.rows;
  out.cols = w.cols;
  storage.push_back(buffer);
  return out;
}
}  // namespace detail

// A model with every weight matrix widened to float32 (norm vectors already are).
inline Gemma3ForCausalLM dequantize_to_f32(const Gemma3ForCausalLM& m) {
  Gemma3TextWeights w = m.weights();
  std::vector<std::shared_ptr<const void>> storage;
  w.embed_tokens = detail::widen(w.embed_tokens, storage);
  for (Gemma3DecoderLayerWeights& l : w.layers) {
    for (Weight* p : {&l.self_attn.q_proj, &l.self_attn.k_proj, &l.self_attn.v_proj, &l.self_attn.o_proj,
                      &l.mlp.gate_proj, &l.mlp.up_proj, &l.mlp.down_proj})
      *p = detail::widen(*p, storage);
  }
  w.storage = storage;  // the original mapping is no longer needed
  Gemma3ForCausalLM out(m.config(), std::move(w));
  out.set_embed_scale(m.embed_scale_value());
  return out;
}

}  // namespace gemma3
