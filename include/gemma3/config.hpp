// gemma3/config.hpp -- Gemma3TextConfig: every field of HF's config, and the
// released sizes.
//
// Field names are those of transformers' Gemma3TextConfig / config.json, so a
// reader can hold config.json beside this struct. Derived rules live here too:
//
//   layer i is global ("full_attention") iff (i + 1) % sliding_window_pattern == 0
//     (pattern 6: five sliding layers, then one global), unless config.json lists
//     layer_types explicitly;
//   sliding layers: RoPE base rope_local_base_freq (10 000), never scaled;
//   global layers:  RoPE base rope_theta (1 000 000), positions / rope_scaling.factor
//     (8 on 4B, 12B, 27B; none on 270M and 1B);
//   attention scale = query_pre_attn_scalar ^ -0.5 (168 on 27B, not head_dim 128).
//
// Presets: the values of the released config.json files (the Hugging Face Hub's
// google/gemma-3-270m, -1b-it, -4b-it, -12b-it, -27b-it).
// Reading config.json (all three spellings): config_json.hpp.
// Pinned by tests/test_config.cpp.
#pragma once

#include <cmath>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace gemma3 {

enum class LayerType { sliding_attention, full_attention };

inline const char* layer_type_name(LayerType t) {
  return t == LayerType::full_attention ? "full_attention" : "sliding_attention";
}

// One RoPE setting: theta = base, linear scaling divides positions by `factor`.
struct RopeParameters {
  std::string rope_type = "default";  // "default" or "linear"
  double rope_theta = 10000.0;
  double factor = 1.0;                // 1 unless rope_type == "linear"
};

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Gemma3TextConfig {
  // --- sizes
  int vocab_size = 262208;
  int hidden_size = 2304;
  int intermediate_size = 9216;
  int num_hidden_layers = 26;
  int num_attention_heads = 8;
  int num_key_value_heads = 4;
  int head_dim = 256;
  int max_position_embeddings = 131072;
  // --- attention
  double query_pre_attn_scalar = 256;
  int sliding_window = 4096;
  int sliding_window_pattern = 6;              // only used to derive layer_types
  std::vector<LayerType> layer_types;          // [num_hidden_layers]
  bool attention_bias = false;
  double attention_dropout = 0.0;
  std::optional<double> attn_logit_softcapping;   // None for every Gemma 3 checkpoint
  std::optional<double> final_logit_softcapping;  // None for every Gemma 3 checkpoint
  bool use_bidirectional_attention = false;       // EmbeddingGemma only; not supported here
  // --- RoPE (v4 spelling; v5's rope_parameters maps onto these)
  double rope_theta = 1000000.0;               // global layers
  double rope_local_base_freq = 10000.0;       // sliding layers
  std::optional<RopeParameters> rope_scaling;  // global layers only
  // --- the rest of HF's fields
  double rms_norm_eps = 1e-6;
  std::string hidden_activation = "gelu_pytorch_tanh";
  bool tie_word_embeddings = true;
  double initializer_range = 0.02;
  bool use_cache = true;
  int pad_token_id = 0;
  int bos_token_id = 2;
  std::vector<int> eos_token_id = {1};

  // RoPE used by layers of this type (base, scaling factor).
  RopeParameters rope_for(LayerType t) const {
    RopeParameters p;
    if (t == LayerType::sliding_attention) {
      p.rope_theta = rope_local_base_freq;  // never scaled
      return p;
    }
    p.rope_theta = rope_theta;
    if (rope_scaling) {
      p.rope_type = rope_scaling->rope_type;
      p.factor = rope_scaling->factor;
    }
    return p;
  }

  bool is_sliding(int layer) const { return layer_types[std::size_t(layer)] == LayerType::sliding_attention; }
  float attention_scale() const { return float(1.0 / std::sqrt(query_pre_attn_scalar)); }

  // layer_types from the 5:1 rule when the file did not list them.
  void derive_layer_types() {
    layer_types.assign(std::size_t(num_hidden_layers), LayerType::sliding_attention);
    for (int i = 0; i < num_hidden_layers; ++i)
      if ((i + 1) % sliding_window_pattern == 0) layer_types[std::size_t(i)] = LayerType::full_attention;
  }

  // Throws ConfigError naming the field, the expected range and the value found.
  void validate(const std::string& source = "config") const {
    auto bad = [&](const std::string& field, const std::string& expected, const std::string& found) {
      throw ConfigError(source + ": field '" + field + "': expected " + expected + ", found " + found);
    };
    auto num = [](double v) {
      std::ostringstream os;
      os << v;
      return os.str();
    };
    auto positive = [&](const char* field, long long v, long long max) {
      if (v < 1 || v > max)
        bad(field, "an integer in [1, " + std::to_string(max) + "]", std::to_string(v));
    };
    positive("vocab_size", vocab_size, 1 << 24);
    positive("hidden_size", hidden_size, 1 << 16);
    positive("intermediate_size", intermediate_size, 1 << 20);
    positive("num_hidden_layers", num_hidden_layers, 4096);
    positive("num_attention_heads", num_attention_heads, 4096);
    positive("num_key_value_heads", num_key_value_heads, 4096);
    positive("head_dim", head_dim, 1 << 14);
    positive("max_position_embeddings", max_position_embeddings, 1 << 24);
    positive("sliding_window", sliding_window, 1 << 24);
    if (head_dim % 2 != 0) bad("head_dim", "an even number (RoPE rotates pairs)", std::to_string(head_dim));
    if (num_attention_heads % num_key_value_heads != 0)
      bad("num_key_value_heads", "a divisor of num_attention_heads = " + std::to_string(num_attention_heads),
          std::to_string(num_key_value_heads));
    if (!(query_pre_attn_scalar > 0) || !std::isfinite(query_pre_attn_scalar))
      bad("query_pre_attn_scalar", "a positive number", num(query_pre_attn_scalar));
    if (!(rms_norm_eps > 0) || rms_norm_eps > 1) bad("rms_norm_eps", "a number in (0, 1]", num(rms_norm_eps));
    if (!(rope_theta > 1) || !std::isfinite(rope_theta)) bad("rope_theta", "a number > 1", num(rope_theta));
    if (!(rope_local_base_freq > 1) || !std::isfinite(rope_local_base_freq))
      bad("rope_local_base_freq", "a number > 1", num(rope_local_base_freq));
    if (rope_scaling) {
      if (rope_scaling->rope_type != "linear" && rope_scaling->rope_type != "default")
        bad("rope_scaling.rope_type", "\"linear\" or \"default\" (the types Gemma 3 uses)",
            "\"" + rope_scaling->rope_type + "\"");
      if (!(rope_scaling->factor > 0) || !std::isfinite(rope_scaling->factor))
        bad("rope_scaling.factor", "a positive number", num(rope_scaling->factor));
    }
    if (int(layer_types.size()) != num_hidden_layers)
      bad("layer_types", std::to_string(num_hidden_layers) + " entries (num_hidden_layers)",
          std::to_string(layer_types.size()));
    if (hidden_activation != "gelu_pytorch_tanh" && hidden_activation != "gelu_tanh")
      bad("hidden_activation", "\"gelu_pytorch_tanh\"", "\"" + hidden_activation + "\"");
    if (attention_bias) bad("attention_bias", "false (Gemma 3 has no biases)", "true");
    if (!tie_word_embeddings) bad("tie_word_embeddings", "true (Gemma 3 ties the LM head)", "false");
    if (use_bidirectional_attention) bad("use_bidirectional_attention", "false (EmbeddingGemma is not supported)", "true");
    auto cap = [&](const char* field, const std::optional<double>& c) {
      if (c && (!(*c > 0) || !std::isfinite(*c))) bad(field, "null or a positive number", num(*c));
    };
    cap("attn_logit_softcapping", attn_logit_softcapping);
    cap("final_logit_softcapping", final_logit_softcapping);
  }
};

// --- presets: the released text configs (their config.json on the Hub) ------

namespace detail {
inline Gemma3TextConfig make_preset(int vocab, int hidden, int inter, int layers, int heads, int kv, int head_dim,
                                    double qscalar, int window, int max_pos, double global_rope_factor) {
  Gemma3TextConfig c;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv;
  c.head_dim = head_dim;
  c.query_pre_attn_scalar = qscalar;
  c.sliding_window = window;
  c.max_position_embeddings = max_pos;
  if (global_rope_factor != 1.0) c.rope_scaling = RopeParameters{"linear", 1000000.0, global_rope_factor};
  c.eos_token_id = {1, 106};
  c.derive_layer_types();
  return c;
}
}  // namespace detail

inline Gemma3TextConfig gemma3_270m() { return detail::make_preset(262144, 640, 2048, 18, 4, 1, 256, 256, 512, 32768, 1.0); }
inline Gemma3TextConfig gemma3_1b() { return detail::make_preset(262144, 1152, 6912, 26, 4, 1, 256, 256, 512, 32768, 1.0); }
inline Gemma3TextConfig gemma3_4b() { return detail::make_preset(262208, 2560, 10240, 34, 8, 4, 256, 256, 1024, 131072, 8.0); }
inline Gemma3TextConfig gemma3_12b() { return detail::make_preset(262208, 3840, 15360, 48, 16, 8, 256, 256, 1024, 131072, 8.0); }
inline Gemma3TextConfig gemma3_27b() { return detail::make_preset(262208, 5376, 21504, 62, 32, 16, 128, 168, 1024, 131072, 8.0); }

// "270m", "1b", "4b", "12b", "27b".
inline Gemma3TextConfig gemma3_preset(const std::string& name) {
  if (name == "270m") return gemma3_270m();
  if (name == "1b") return gemma3_1b();
  if (name == "4b") return gemma3_4b();
  if (name == "12b") return gemma3_12b();
  if (name == "27b") return gemma3_27b();
  throw ConfigError("unknown Gemma 3 preset '" + name + "': expected one of 270m, 1b, 4b, 12b, 27b");
}

}  // namespace gemma3
