// gemma3/gguf_model.hpp -- a llama.cpp GGUF file (architecture "gemma3") as a
// Gemma3ForCausalLM and its config; load_gguf_model also hands back the tokenizer
// vocabulary (read by gguf_vocabulary.hpp, which needs no model).
//
// Config (key names: llama.cpp's gguf-py/gguf/constants.py; how llama.cpp reads them:
// src/llama-model.cpp load_hparams, case LLM_ARCH_GEMMA3):
//   gemma3.context_length                     -> max_position_embeddings
//   gemma3.embedding_length                   -> hidden_size
//   gemma3.block_count                        -> num_hidden_layers (1..512, LLAMA_MAX_LAYERS)
//   gemma3.feed_forward_length                -> intermediate_size   (scalar, or per-layer array of equal values)
//   gemma3.attention.head_count / _kv         -> num_attention_heads / num_key_value_heads (same)
//   gemma3.attention.key_length               -> head_dim (value_length must equal it; llama.cpp's default
//                                                hidden / heads when absent, which is wrong for Gemma)
//   gemma3.attention.layer_norm_rms_epsilon   -> rms_norm_eps
//   gemma3.rope.freq_base                     -> rope_theta (global layers; default 10000 as in llama.cpp)
//   gemma3.rope.freq_base_swa                 -> rope_local_base_freq (newer llama.cpp; default 10000)
//   gemma3.rope.scaling.type / .factor        -> rope_scaling, global layers only ("none" or "linear";
//                                                the legacy gemma3.rope.scale_linear is read as a factor)
//   gemma3.attention.sliding_window           -> sliding_window (absent or 0: every layer global)
//   gemma3.attention.sliding_window_pattern   -> layer_types: an integer period n (0: all sliding,
//                                                else layer i is global iff (i + 1) % n == 0), or a
//                                                per-layer bool array (true = sliding); absent: 6, the 5:1 rule
//   gemma3.attention.query_pre_attn_scalar    -> query_pre_attn_scalar, if present (no llama.cpp converter
//                                                writes it). Else head_dim, except the 27B (hidden 5376,
//                                                62 layers): hidden / heads = 168, the rule llama.cpp applies
//                                                (llama.cpp's src/llama-model.cpp: f_attention_scale =
//                                                1/sqrt(n_embd/n_head) for LLM_TYPE_27B, 1/sqrt(key_length)
//                                                otherwise).
//   gemma3.final_logit_softcapping, gemma3.attn_logit_softcapping -> the soft-caps, if present
//   token_embd.weight rows (ne1)              -> vocab_size
//   tokenizer.ggml.bos/eos/padding_token_id   -> bos / eos / pad ids; eos_token_id also gets
//                                                <end_of_turn> when the vocabulary has it (llama.cpp
//                                                adds it to the end-of-generation set, HF lists [1, 106])
//
// Tensors: the GGUF column of weight_names.hpp's table (kTextWeightNames; printed in
// docs/weights.md), read in its order by read_text_weights. GGUF dims are
// [ne0 = in_features, ne1 = out_features], i.e. the bytes are row-major [out, in] exactly
// like HF's nn.Linear, so a matrix maps onto Weight{dtype, data, rows = ne1, cols = ne0}
// with no copy. The norm vectors are f32 in the file and hold 1 + w: llama.cpp's
// converter (its Gemma3Model class, convert_hf_to_gguf.py) adds 1 to every HF norm
// weight, and llama.cpp multiplies by the stored value at run time. This library's
// RMSNorm computes (1 + w) itself (rms_norm.hpp), so the loader SUBTRACTS 1 from every
// norm vector it reads (the table's vector entries: output_norm, attn_norm,
// post_attention_norm, ffn_norm, post_ffw_norm, attn_q_norm, attn_k_norm).
//
// Every one of these must be present with that shape, matrices in a type the kernels
// multiply (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K), norms in
// F32 / F16 / BF16; any other tensor (output.weight included: Gemma 3 ties its LM head)
// is an error. Errors are GgufError naming the file, the key or tensor, the expected and
// the found value. Pinned by tests/test_gguf.cpp (the real 270M file, and the tiny
// transformers fixtures converted to GGUF) and tests/test_gguf_errors.cpp.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "config.hpp"
#include "gguf.hpp"
#include "gguf_vocabulary.hpp"
#include "model.hpp"
#include "vocabulary.hpp"
#include "weight_names.hpp"

namespace gemma3 {

namespace detail {

inline constexpr int kGgufMaxLayers = 512;  // LLAMA_MAX_LAYERS (llama.cpp's src/llama-hparams.h)

inline std::string gguf_num(double v) {
  std::ostringstream os;
  os.precision(9);
  os << v;
  return os.str();
}

// A per-layer hyper-parameter: a scalar, or an array of n_layers equal integers
// (llama.cpp allows per-layer values; this library has one size for every layer).
inline int gguf_layer_int_key(const GgufFile& f, const std::string& key, int n_layers, long long lo, long long hi,
                              std::optional<long long> fallback = std::nullopt) {
  const GgufValue* v = f.find(key);
  if (!v || !v->is_array()) return gguf_int_key(f, key, lo, hi, fallback);
  const std::vector<std::int32_t> a = f.get_int_array(key);
  if (a.size() != std::size_t(n_layers))
    throw GgufError(f.path() + ": metadata '" + key + "': expected " + std::to_string(n_layers) +
                    " per-layer values (gemma3.block_count), found " + std::to_string(a.size()));
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] < lo || a[i] > hi)
      throw GgufError(f.path() + ": metadata '" + key + "[" + std::to_string(i) + "]': expected an integer in [" +
                      std::to_string(lo) + ", " + std::to_string(hi) + "], found " + std::to_string(a[i]));
    if (a[i] != a[0])
      throw GgufError(f.path() + ": metadata '" + key + "[" + std::to_string(i) + "]': expected " +
                      std::to_string(a[0]) + " like layer 0 (this library has one size for every layer), found " +
                      std::to_string(a[i]));
  }
  return a[0];
}

inline double gguf_positive_float(const GgufFile& f, const std::string& key) {
  const double v = f.get_float(key);
  if (!(v > 0) || !std::isfinite(v))
    throw GgufError(f.path() + ": metadata '" + key + "': expected a positive number, found " + gguf_num(v));
  return v;
}

}  // namespace detail

// Gemma3TextConfig from the gemma3.* keys (see the top of this file). Validated.
inline Gemma3TextConfig config_from_gguf(const GgufFile& f) {
  const std::string arch = f.get_string("general.architecture");
  if (arch != "gemma3")
    throw GgufError(f.path() + ": metadata 'general.architecture': expected \"gemma3\", found \"" + arch + "\"");
  const std::string A = "gemma3.";
  Gemma3TextConfig c;

  c.max_position_embeddings = detail::gguf_int_key(f, A + "context_length", 1, 1 << 24);
  c.hidden_size = detail::gguf_int_key(f, A + "embedding_length", 1, 1 << 16);
  c.num_hidden_layers = detail::gguf_int_key(f, A + "block_count", 1, detail::kGgufMaxLayers);
  const int L = c.num_hidden_layers;
  c.intermediate_size = detail::gguf_layer_int_key(f, A + "feed_forward_length", L, 1, 1 << 20);
  c.num_attention_heads = detail::gguf_layer_int_key(f, A + "attention.head_count", L, 1, 4096);
  c.num_key_value_heads =
      detail::gguf_layer_int_key(f, A + "attention.head_count_kv", L, 1, 4096, c.num_attention_heads);
  c.head_dim = detail::gguf_int_key(f, A + "attention.key_length", 1, 1 << 14, c.hidden_size / c.num_attention_heads);
  if (f.find(A + "attention.value_length")) {
    const int v = detail::gguf_int_key(f, A + "attention.value_length", 1, 1 << 14);
    if (v != c.head_dim)
      throw GgufError(f.path() + ": metadata '" + A + "attention.value_length': expected " +
                      std::to_string(c.head_dim) + " (= attention.key_length; Gemma 3 uses one head_dim), found " +
                      std::to_string(v));
  }
  if (f.find(A + "rope.dimension_count")) {
    const int v = detail::gguf_int_key(f, A + "rope.dimension_count", 1, 1 << 14);
    if (v != c.head_dim)
      throw GgufError(f.path() + ": metadata '" + A + "rope.dimension_count': expected " +
                      std::to_string(c.head_dim) + " (= head_dim; Gemma 3 rotates the whole head), found " +
                      std::to_string(v));
  }
  c.rms_norm_eps = detail::gguf_positive_float(f, A + "attention.layer_norm_rms_epsilon");

  // RoPE: global layers from rope.freq_base (+ scaling), sliding layers from freq_base_swa.
  c.rope_theta = f.find(A + "rope.freq_base") ? detail::gguf_positive_float(f, A + "rope.freq_base") : 10000.0;
  c.rope_local_base_freq =
      f.find(A + "rope.freq_base_swa") ? detail::gguf_positive_float(f, A + "rope.freq_base_swa") : 10000.0;
  {
    std::string type = f.find(A + "rope.scaling.type") ? f.get_string(A + "rope.scaling.type") : "";
    double factor = 1.0;
    if (f.find(A + "rope.scaling.factor")) {
      factor = f.get_float(A + "rope.scaling.factor");
      if (factor == 0.0) factor = 1.0;  // llama.cpp: a factor of 0 means no scaling
    } else if (f.find(A + "rope.scale_linear")) {
      factor = f.get_float(A + "rope.scale_linear");
    }
    if (!(factor > 0) || !std::isfinite(factor))
      throw GgufError(f.path() + ": metadata '" + A + "rope.scaling.factor': expected a positive number, found " +
                      detail::gguf_num(factor));
    if (type != "" && type != "none" && type != "linear")
      throw GgufError(f.path() + ": metadata '" + A + "rope.scaling.type': expected \"none\" or \"linear\" (the " +
                      "scalings Gemma 3 uses), found \"" + type + "\"");
    if (type != "none" && factor != 1.0) c.rope_scaling = RopeParameters{"linear", c.rope_theta, factor};
  }

  // Sliding window and which layers use it.
  const int window = detail::gguf_int_key(f, A + "attention.sliding_window", 0, 1 << 24, 0);
  const GgufValue* pattern = f.find(A + "attention.sliding_window_pattern");
  if (window == 0) {  // llama.cpp: no sliding window -> every layer attends globally
    c.sliding_window = c.max_position_embeddings;
    c.layer_types.assign(std::size_t(L), LayerType::full_attention);
  } else if (pattern && pattern->is_array()) {
    c.sliding_window = window;
    if (pattern->element_type != GgufType::BOOL)
      throw GgufError(f.path() + ": metadata '" + A + "attention.sliding_window_pattern': expected an integer or " +
                      "an ARRAY[BOOL] (true = sliding layer), found " + pattern->type_string());
    if (pattern->count != std::uint64_t(L))
      throw GgufError(f.path() + ": metadata '" + A + "attention.sliding_window_pattern': expected " +
                      std::to_string(L) + " per-layer flags (gemma3.block_count), found " +
                      std::to_string(pattern->count));
    c.layer_types.clear();
    for (int i = 0; i < L; ++i)
      c.layer_types.push_back(pattern->raw[i] ? LayerType::sliding_attention : LayerType::full_attention);
  } else {
    c.sliding_window = window;
    const int n = pattern ? detail::gguf_int_key(f, A + "attention.sliding_window_pattern", 0, 1 << 20) : 6;
    if (n == 0) {  // llama.cpp's set_swa_pattern(0): every layer sliding
      c.layer_types.assign(std::size_t(L), LayerType::sliding_attention);
    } else {
      c.sliding_window_pattern = n;
      c.derive_layer_types();
    }
  }

  // Attention scale.
  if (f.find(A + "attention.query_pre_attn_scalar")) {
    c.query_pre_attn_scalar = detail::gguf_positive_float(f, A + "attention.query_pre_attn_scalar");
  } else if (c.hidden_size == 5376 || c.num_hidden_layers == 62) {  // 27B: llama.cpp's LLM_TYPE_27B rule
    c.query_pre_attn_scalar = double(c.hidden_size / c.num_attention_heads);
  } else {
    c.query_pre_attn_scalar = double(c.head_dim);
  }
  if (f.find(A + "final_logit_softcapping"))
    c.final_logit_softcapping = detail::gguf_positive_float(f, A + "final_logit_softcapping");
  if (f.find(A + "attn_logit_softcapping"))
    c.attn_logit_softcapping = detail::gguf_positive_float(f, A + "attn_logit_softcapping");

  // Vocabulary size from the embedding; special ids from the tokenizer keys.
  const GgufTensorInfo* embd = f.find_tensor("token_embd.weight");
  if (!embd)
    throw GgufError(f.path() + ": tensor 'token_embd.weight': expected present (it gives vocab_size), found missing");
  if (embd->dims.size() != 2 || embd->dims[1] > std::uint64_t(1 << 24))
    throw GgufError(f.path() + ": tensor 'token_embd.weight': expected dims [hidden_size, vocab_size <= 16777216], found " +
                    gguf_dims_string(embd->dims));
  c.vocab_size = int(embd->dims[1]);
  c.pad_token_id = detail::gguf_int_key(f, "tokenizer.ggml.padding_token_id", 0, c.vocab_size - 1, c.pad_token_id);
  c.bos_token_id = detail::gguf_int_key(f, "tokenizer.ggml.bos_token_id", 0, c.vocab_size - 1, c.bos_token_id);
  const int eos = detail::gguf_int_key(f, "tokenizer.ggml.eos_token_id", 0, c.vocab_size - 1, 1);
  c.eos_token_id = {eos};
  if (const GgufValue* tokens = f.find("tokenizer.ggml.tokens"))
    if (tokens->is_array() && tokens->element_type == GgufType::STRING)
      for (std::size_t i = 0; i < tokens->strings.size(); ++i)
        if (tokens->strings[i] == "<end_of_turn>" && int(i) != eos) {
          c.eos_token_id.push_back(int(i));
          break;
        }

  try {
    c.validate(f.path() + " (gemma3.* metadata)");
  } catch (const ConfigError& e) {
    throw GgufError(e.what());
  }
  return c;
}

namespace detail {

// Hands out the tensors load_gguf_model reads, checking each, and remembers which.
class GgufTensorReader {
 public:
  GgufTensorReader(const GgufFile& f, std::function<void(double)> progress)
      : f_(f), progress_(std::move(progress)) {}

  Weight matrix(const std::string& name, std::int64_t rows, std::int64_t cols) {
    const GgufTensorInfo& t = get(name, {std::uint64_t(cols), std::uint64_t(rows)});
    const std::optional<DType> d = dtype_from_ggml(t.ggml_type);
    if (!d)
      throw GgufError(f_.path() + ": tensor '" + name + "' type: expected one of F32, F16, BF16, Q4_0, Q4_1, Q5_0, " +
                      "Q5_1, Q8_0, Q4_K, Q5_K, Q6_K (the types the kernels multiply), found " +
                      ggml_type_name(t.ggml_type));
    Weight w;
    w.dtype = *d;
    w.data = t.data;
    w.rows = rows;
    w.cols = cols;
    return w;
  }

  // A norm weight: stored as 1 + w (f32), returned as the library's w.
  Vector norm(const std::string& name, std::int64_t n) {
    const GgufTensorInfo& t = get(name, {std::uint64_t(n)});
    const std::optional<DType> d = dtype_from_ggml(t.ggml_type);
    if (!d || dtype_is_quantized(*d))
      throw GgufError(f_.path() + ": tensor '" + name + "' type: expected F32, F16 or BF16 (a norm weight), found " +
                      ggml_type_name(t.ggml_type));
    Vector v(n);
    to_f32(*d, t.data, v.data(), std::size_t(n));
    v.array() -= 1.0f;  // the converter stored 1 + w
    return v;
  }

  // Every tensor in the file must have been read.
  void check_all_used() const {
    for (const GgufTensorInfo& t : f_.tensors())
      if (!used_.count(t.name))
        throw GgufError(f_.path() + ": tensor '" + t.name + "': expected only the gemma3 text-decoder tensors " +
                        "(token_embd, output_norm, blk.N.*; the LM head is tied to token_embd), found this one too");
  }

 private:
  const GgufTensorInfo& get(const std::string& name, const std::vector<std::uint64_t>& dims) {
    const GgufTensorInfo* t = f_.find_tensor(name);
    if (!t) throw GgufError(f_.path() + ": tensor '" + name + "': expected present, found missing");
    if (t->dims != dims)
      throw GgufError(f_.path() + ": tensor '" + name + "': expected dims " + gguf_dims_string(dims) +
                      " (ne0 first, from the gemma3.* metadata), found " + gguf_dims_string(t->dims));
    used_.insert(name);
    if (progress_ && !f_.tensors().empty()) progress_(double(used_.size()) / double(f_.tensors().size()));
    return *t;
  }

  const GgufFile& f_;
  std::function<void(double)> progress_;
  std::set<std::string> used_;
};

}  // namespace detail

// The model from an open GgufFile: weights are views into it (the model keeps the
// file alive through weights().storage). `vocab`, if given, receives the tokenizer
// data; a tokenizer whose size differs from token_embd's rows is an error either way.
// `progress` is called with 0, then after each tensor is checked (fraction of the
// file's tensors), and 1 at the end. `backend`: the one the model runs on (null: the
// default of model.hpp).
inline Gemma3ForCausalLM load_gguf_model(const GgufFile& f, Vocabulary* vocab = nullptr,
                                         std::function<void(double fraction)> progress = {},
                                         std::shared_ptr<const Backend> backend = nullptr) {
  if (progress) progress(0.0);
  const Gemma3TextConfig c = config_from_gguf(f);

  if (vocab) {
    *vocab = vocabulary_from_gguf(f);
    if (vocab->tokens.size() != std::size_t(c.vocab_size))
      throw GgufError(f.path() + ": metadata 'tokenizer.ggml.tokens': expected " + std::to_string(c.vocab_size) +
                      " tokens (the rows of token_embd.weight), found " + std::to_string(vocab->tokens.size()));
  } else if (const GgufValue* tokens = f.find("tokenizer.ggml.tokens")) {
    if (tokens->is_array() && tokens->count != std::uint64_t(c.vocab_size))
      throw GgufError(f.path() + ": metadata 'tokenizer.ggml.tokens': expected " + std::to_string(c.vocab_size) +
                      " tokens (the rows of token_embd.weight), found " + std::to_string(tokens->count));
  }

  detail::GgufTensorReader r(f, progress);
  Gemma3TextWeights w = read_text_weights(
      c, &TextWeightName::gguf,
      [&](const std::string& name, std::int64_t rows, std::int64_t cols) { return r.matrix(name, rows, cols); },
      [&](const std::string& name, std::int64_t n) { return r.norm(name, n); });
  r.check_all_used();
  w.storage = {f.storage()};
  if (progress) progress(1.0);
  return Gemma3ForCausalLM(c, std::move(w), std::move(backend));
}

// The model from a .gguf file, memory-mapped (see the overload above).
inline Gemma3ForCausalLM load_gguf_model(const std::string& path, Vocabulary* vocab = nullptr,
                                         std::function<void(double fraction)> progress = {},
                                         std::shared_ptr<const Backend> backend = nullptr) {
  const GgufFile f(path);
  return load_gguf_model(f, vocab, std::move(progress), std::move(backend));
}

}  // namespace gemma3
