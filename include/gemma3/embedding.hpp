// gemma3/embedding.hpp -- token embedding, scaled by sqrt(hidden_size).
//
//   h0[t] = E[input_ids[t]] * embed_scale          E: embed_tokens [vocab_size, hidden_size]
//   embed_scale = float32(sqrt(hidden_size)), rounded to the activation dtype
//
// HF (Gemma3TextScaledWordEmbedding) keeps sqrt(hidden_size) as a float32 buffer and
// multiplies by embed_scale.to(weight.dtype): a bf16 model uses sqrt(1152) -> 34.0,
// a float32 model 33.941124. This library computes in float32, so it uses the
// float32 value by default; embed_scale(H, DType::BF16) gives the bf16 value that
// Google's bf16 JAX model uses, for comparisons against a bf16 reference.
// The same matrix E, *unscaled*, is the tied LM head (model.hpp).
//
// Mirrors Gemma3TextScaledWordEmbedding. Pinned by tests/test_components.cpp.
#pragma once

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "dtype.hpp"
#include "quant/quant.hpp"
#include "tensor.hpp"
#include "weight.hpp"

namespace gemma3 {

inline float embed_scale(int hidden_size, DType activation_dtype = DType::F32) {
  return round_to_dtype(float(std::sqrt(double(hidden_size))), activation_dtype);
}

// out [T, hidden_size] = embed_tokens[input_ids] * scale
inline void embed(const Weight& embed_tokens, const std::vector<int>& input_ids, float scale, Matrix& out) {
  out.resize(Eigen::Index(input_ids.size()), embed_tokens.cols);
  for (std::size_t t = 0; t < input_ids.size(); ++t) {
    const int id = input_ids[t];
    if (id < 0 || id >= embed_tokens.rows)
      throw std::out_of_range("token id " + std::to_string(id) + " at position " + std::to_string(t) +
                              " is outside the vocabulary [0, " + std::to_string(embed_tokens.rows) + ")");
    dequantize_row(embed_tokens, id, out.row(Eigen::Index(t)).data());
  }
  out *= scale;
}

}  // namespace gemma3
