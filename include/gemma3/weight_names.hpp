// gemma3/weight_names.hpp -- the text decoder's tensors in one table: the name each has in a
// Hugging Face checkpoint and in a llama.cpp GGUF file, its shape in config fields, and
// the field of Gemma3TextWeights it fills.
//
//   { HF name, GGUF name, rows, cols, field, meaning }, e.g.
//   { "layers.{i}.self_attn.q_proj.weight", "blk.{i}.attn_q.weight",
//     num_attention_heads * head_dim, hidden_size, layers[i].self_attn.q_proj, "query projection" }
// The table is kTextWeightNames below; docs/weights.md prints it.
//
// {i} is the layer index, 0 .. num_hidden_layers - 1. HF names are those under the text
// decoder's prefix: "model." in a Gemma3ForCausalLM checkpoint (checkpoint.hpp also
// accepts the multimodal checkpoints' prefixes). Shapes are HF's: a matrix is
// [out_features, in_features] like nn.Linear's weight, a norm weight is one vector. A
// GGUF lists the same dims the other way round (ne0 = in_features first) over the same
// row-major bytes. There is no lm_head / output.weight: Gemma 3 ties the LM head to
// embed_tokens.
//
// The two loaders walk this table through read_text_weights(): checkpoint.hpp with the
// HF names, gguf_model.hpp with the GGUF names; each checks presence, dtype and shape its
// own way. HF module names: transformers' src/transformers/models/gemma3/modeling_gemma3.py
// (Gemma3TextModel, Gemma3DecoderLayer, Gemma3Attention, Gemma3MLP). GGUF names and the
// HF -> GGUF mapping: llama.cpp's gguf-py/gguf/constants.py (TENSOR_NAMES,
// MODEL_TENSORS[MODEL_ARCH.GEMMA3]) and gguf-py/gguf/tensor_mapping.py.
// Pinned by tests/test_weight_names.cpp (the table names exactly the tensors of the real
// 270M GGUF and of the tiny HF fixtures, with their shapes), and through the loaders by
// tests/test_model.cpp, tests/test_gguf.cpp and tests/test_real_model.cpp.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "config.hpp"
#include "model.hpp"

namespace gemma3 {

// A size, named by the config fields it comes from.
enum class WeightDim {
  none,          // (no second dimension: a vector)
  hidden,        // hidden_size
  vocab,         // vocab_size
  intermediate,  // intermediate_size
  head_dim,      // head_dim
  q_width,       // num_attention_heads * head_dim
  kv_width,      // num_key_value_heads * head_dim
};

// The field of Gemma3TextWeights an entry fills (of layers[i] for the per-layer entries).
enum class TextWeightField {
  embed_tokens,                // embed_tokens
  norm,                        // norm
  input_layernorm,             // layers[i].input_layernorm
  q_proj,                      // layers[i].self_attn.q_proj
  k_proj,                      // layers[i].self_attn.k_proj
  v_proj,                      // layers[i].self_attn.v_proj
  o_proj,                      // layers[i].self_attn.o_proj
  q_norm,                      // layers[i].self_attn.q_norm
  k_norm,                      // layers[i].self_attn.k_norm
  post_attention_layernorm,    // layers[i].post_attention_layernorm
  pre_feedforward_layernorm,   // layers[i].pre_feedforward_layernorm
  gate_proj,                   // layers[i].mlp.gate_proj
  up_proj,                     // layers[i].mlp.up_proj
  down_proj,                   // layers[i].mlp.down_proj
  post_feedforward_layernorm,  // layers[i].post_feedforward_layernorm
};

struct TextWeightName {
  const char* hf;    // under the decoder prefix; "{i}" = layer index
  const char* gguf;  // "{i}" = layer index
  WeightDim rows;    // [rows] for a vector
  WeightDim cols;    // WeightDim::none for a vector
  TextWeightField field;
  const char* meaning;

  bool per_layer() const { return std::strstr(hf, "{i}") != nullptr; }
  bool is_vector() const { return cols == WeightDim::none; }  // the norm weights
};

// Every tensor of the text decoder, in the order the loaders read them: the global ones,
// then, for each layer, the per-layer ones.
inline constexpr TextWeightName kTextWeightNames[] = {
    // HF name                                       GGUF name                        rows                     cols
    {"embed_tokens.weight",                          "token_embd.weight",             WeightDim::vocab,        WeightDim::hidden,
     TextWeightField::embed_tokens, "token embeddings (scaled by sqrt(hidden_size)); also the LM head (tied)"},
    {"norm.weight",                                  "output_norm.weight",            WeightDim::hidden,       WeightDim::none,
     TextWeightField::norm, "final RMSNorm, before the LM head"},
    {"layers.{i}.input_layernorm.weight",            "blk.{i}.attn_norm.weight",      WeightDim::hidden,       WeightDim::none,
     TextWeightField::input_layernorm, "RMSNorm before attention"},
    {"layers.{i}.self_attn.q_proj.weight",           "blk.{i}.attn_q.weight",         WeightDim::q_width,      WeightDim::hidden,
     TextWeightField::q_proj, "query projection"},
    {"layers.{i}.self_attn.k_proj.weight",           "blk.{i}.attn_k.weight",         WeightDim::kv_width,     WeightDim::hidden,
     TextWeightField::k_proj, "key projection"},
    {"layers.{i}.self_attn.v_proj.weight",           "blk.{i}.attn_v.weight",         WeightDim::kv_width,     WeightDim::hidden,
     TextWeightField::v_proj, "value projection"},
    {"layers.{i}.self_attn.o_proj.weight",           "blk.{i}.attn_output.weight",    WeightDim::hidden,       WeightDim::q_width,
     TextWeightField::o_proj, "attention output projection"},
    {"layers.{i}.self_attn.q_norm.weight",           "blk.{i}.attn_q_norm.weight",    WeightDim::head_dim,     WeightDim::none,
     TextWeightField::q_norm, "RMSNorm of each query head (QK-norm)"},
    {"layers.{i}.self_attn.k_norm.weight",           "blk.{i}.attn_k_norm.weight",    WeightDim::head_dim,     WeightDim::none,
     TextWeightField::k_norm, "RMSNorm of each key head (QK-norm)"},
    {"layers.{i}.post_attention_layernorm.weight",   "blk.{i}.post_attention_norm.weight", WeightDim::hidden,  WeightDim::none,
     TextWeightField::post_attention_layernorm, "RMSNorm of the attention output, before the residual add"},
    {"layers.{i}.pre_feedforward_layernorm.weight",  "blk.{i}.ffn_norm.weight",       WeightDim::hidden,       WeightDim::none,
     TextWeightField::pre_feedforward_layernorm, "RMSNorm before the MLP"},
    {"layers.{i}.mlp.gate_proj.weight",              "blk.{i}.ffn_gate.weight",       WeightDim::intermediate, WeightDim::hidden,
     TextWeightField::gate_proj, "GeGLU gate projection (through gelu_tanh)"},
    {"layers.{i}.mlp.up_proj.weight",                "blk.{i}.ffn_up.weight",         WeightDim::intermediate, WeightDim::hidden,
     TextWeightField::up_proj, "GeGLU up projection"},
    {"layers.{i}.mlp.down_proj.weight",              "blk.{i}.ffn_down.weight",       WeightDim::hidden,       WeightDim::intermediate,
     TextWeightField::down_proj, "MLP down projection"},
    {"layers.{i}.post_feedforward_layernorm.weight", "blk.{i}.post_ffw_norm.weight",  WeightDim::hidden,       WeightDim::none,
     TextWeightField::post_feedforward_layernorm, "RMSNorm of the MLP output, before the residual add"},
};

// The size `d` stands for under config `c` (0 for WeightDim::none).
inline std::int64_t weight_dim(WeightDim d, const Gemma3TextConfig& c) {
  switch (d) {
    case WeightDim::none: return 0;
    case WeightDim::hidden: return c.hidden_size;
    case WeightDim::vocab: return c.vocab_size;
    case WeightDim::intermediate: return c.intermediate_size;
    case WeightDim::head_dim: return c.head_dim;
    case WeightDim::q_width: return std::int64_t(c.num_attention_heads) * c.head_dim;
    case WeightDim::kv_width: return std::int64_t(c.num_key_value_heads) * c.head_dim;
  }
  return 0;
}

// The name of `d` in the config's terms ("num_attention_heads * head_dim").
inline const char* weight_dim_name(WeightDim d) {
  switch (d) {
    case WeightDim::none: return "";
    case WeightDim::hidden: return "hidden_size";
    case WeightDim::vocab: return "vocab_size";
    case WeightDim::intermediate: return "intermediate_size";
    case WeightDim::head_dim: return "head_dim";
    case WeightDim::q_width: return "num_attention_heads * head_dim";
    case WeightDim::kv_width: return "num_key_value_heads * head_dim";
  }
  return "";
}

// `pattern` with "{i}" replaced by `layer` ("blk.{i}.attn_q.weight", 3 -> "blk.3.attn_q.weight").
inline std::string weight_name(const char* pattern, int layer) {
  std::string s(pattern);
  const std::size_t at = s.find("{i}");
  if (at != std::string::npos) s.replace(at, 3, std::to_string(layer));
  return s;
}

// Every name of one column (&TextWeightName::hf or ::gguf) for `num_layers` layers, in
// the order read_text_weights reads them.
inline std::vector<std::string> text_weight_names(const char* TextWeightName::*column, int num_layers) {
  std::vector<std::string> names;
  for (const TextWeightName& e : kTextWeightNames)
    if (!e.per_layer()) names.push_back(e.*column);
  for (int i = 0; i < num_layers; ++i)
    for (const TextWeightName& e : kTextWeightNames)
      if (e.per_layer()) names.push_back(weight_name(e.*column, i));
  return names;
}

// Where an entry goes in `w`: exactly one of the two pointers is set.
struct TextWeightSlot {
  Weight* matrix = nullptr;
  Vector* vector = nullptr;
};

inline TextWeightSlot text_weight_slot(Gemma3TextWeights& w, TextWeightField f, int layer) {
  switch (f) {
    case TextWeightField::embed_tokens: return {&w.embed_tokens, nullptr};
    case TextWeightField::norm: return {nullptr, &w.norm};
    default: break;
  }
  Gemma3DecoderLayerWeights& l = w.layers[std::size_t(layer)];
  switch (f) {
    case TextWeightField::input_layernorm: return {nullptr, &l.input_layernorm};
    case TextWeightField::q_proj: return {&l.self_attn.q_proj, nullptr};
    case TextWeightField::k_proj: return {&l.self_attn.k_proj, nullptr};
    case TextWeightField::v_proj: return {&l.self_attn.v_proj, nullptr};
    case TextWeightField::o_proj: return {&l.self_attn.o_proj, nullptr};
    case TextWeightField::q_norm: return {nullptr, &l.self_attn.q_norm};
    case TextWeightField::k_norm: return {nullptr, &l.self_attn.k_norm};
    case TextWeightField::post_attention_layernorm: return {nullptr, &l.post_attention_layernorm};
    case TextWeightField::pre_feedforward_layernorm: return {nullptr, &l.pre_feedforward_layernorm};
    case TextWeightField::gate_proj: return {&l.mlp.gate_proj, nullptr};
    case TextWeightField::up_proj: return {&l.mlp.up_proj, nullptr};
    case TextWeightField::down_proj: return {&l.mlp.down_proj, nullptr};
    case TextWeightField::post_feedforward_layernorm: return {nullptr, &l.post_feedforward_layernorm};
    default: return {};
  }
}

// Every weight of the text decoder under config `c`, read through the loader's own
// readers in table order (the global entries, then layer by layer):
//   matrix(name, rows, cols) -> Weight    for the matrices
//   vector(name, n)          -> Vector    for the norm weights
// with `name` from `column` (&TextWeightName::hf or &TextWeightName::gguf). The readers
// check presence, dtype and shape and throw the loader's errors. `storage` is left empty.
template <class ReadMatrix, class ReadVector>
Gemma3TextWeights read_text_weights(const Gemma3TextConfig& c, const char* TextWeightName::*column,
                                    ReadMatrix&& matrix, ReadVector&& vector) {
  Gemma3TextWeights w;
  w.layers.resize(std::size_t(c.num_hidden_layers));
  const auto read = [&](const TextWeightName& e, int layer) {
    const std::string name = weight_name(e.*column, layer);
    const TextWeightSlot slot = text_weight_slot(w, e.field, layer);
    if (e.is_vector())
      *slot.vector = vector(name, weight_dim(e.rows, c));
    else
      *slot.matrix = matrix(name, weight_dim(e.rows, c), weight_dim(e.cols, c));
  };
  for (const TextWeightName& e : kTextWeightNames)
    if (!e.per_layer()) read(e, 0);
  for (int i = 0; i < c.num_hidden_layers; ++i)
    for (const TextWeightName& e : kTextWeightNames)
      if (e.per_layer()) read(e, i);
  return w;
}

}  // namespace gemma3
