// gemma3/config_json.hpp -- read Gemma3TextConfig from a Hugging Face config.json.
//
// Accepts the three spellings transformers has written over time:
//   v4.50:  "sliding_window_pattern": 6, "rope_theta", "rope_local_base_freq", "rope_scaling"
//   ~v4.53: "layer_types": ["sliding_attention", ..., "full_attention", ...]
//   v5:     "rope_parameters": {"full_attention": {...}, "sliding_attention": {...}}
// and both file shapes: a Gemma3ForCausalLM config (model_type "gemma3_text", all
// fields present) or a Gemma3ForConditionalGeneration config (model_type "gemma3",
// text fields under "text_config", where, as in HF, omitted fields take
// Gemma3TextConfig's defaults).
//
// Every problem throws ConfigError naming the file, the field, what was expected
// and what was found. Pinned by tests/test_config.cpp and tests/test_loader_errors.cpp.
#pragma once

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

#include "config.hpp"
#include "detail/json.hpp"

namespace gemma3 {

namespace detail {

class ConfigReader {
 public:
  ConfigReader(const Json& obj, std::string source, std::string prefix)
      : obj_(obj), source_(std::move(source)), prefix_(std::move(prefix)) {}

  [[noreturn]] void bad(const std::string& field, const std::string& expected, const std::string& found) const {
    throw ConfigError(source_ + ": field '" + prefix_ + field + "': expected " + expected + ", found " + found);
  }
  static std::string describe(const Json& v) {
    if (v.is_number()) {
      std::ostringstream os;
      os << v.number;
      return os.str();
    }
    if (v.is_string()) return "\"" + v.string + "\"";
    if (v.is_bool()) return v.boolean ? "true" : "false";
    return v.kind_name();
  }
  const Json* get(const std::string& key) const { return obj_.find(key); }

  // Integer field; `required` fields must be present, others keep `value`.
  void integer(const char* key, int& value, bool required) const {
    const Json* v = get(key);
    if (!v) {
      if (required) bad(key, "an integer", "nothing (the field is missing)");
      return;
    }
    if (!v->is_number() || v->number != std::floor(v->number) || std::fabs(v->number) > 2147483647.0)
      bad(key, "an integer", describe(*v));
    value = int(v->number);
  }
  void real(const char* key, double& value) const {
    const Json* v = get(key);
    if (!v) return;
    if (!v->is_number()) bad(key, "a number", describe(*v));
    value = v->number;
  }
  void optional_real(const char* key, std::optional<double>& value) const {
    const Json* v = get(key);
    if (!v) return;
    if (v->is_null()) { value.reset(); return; }
    if (!v->is_number()) bad(key, "a number or null", describe(*v));
    value = v->number;
  }
  void boolean(const char* key, bool& value) const {
    const Json* v = get(key);
    if (!v || v->is_null()) return;
    if (!v->is_bool()) bad(key, "true or false", describe(*v));
    value = v->boolean;
  }
  void string(const char* key, std::string& value) const {
    const Json* v = get(key);
    if (!v || v->is_null()) return;
    if (!v->is_string()) bad(key, "a string", describe(*v));
    value = v->string;
  }

  RopeParameters rope(const char* key, const Json& v) const {
    if (!v.is_object()) bad(key, "an object", describe(v));
    ConfigReader r(v, source_, prefix_ + key + ".");
    RopeParameters p;
    const Json* type = v.find("rope_type");
    if (!type) type = v.find("type");  // the older spelling
    if (type) {
      if (!type->is_string()) r.bad("rope_type", "a string", describe(*type));
      p.rope_type = type->string;
    }
    r.real("rope_theta", p.rope_theta);
    r.real("factor", p.factor);
    if (p.rope_type != "default" && p.rope_type != "linear")
      r.bad("rope_type", "\"default\" or \"linear\" (what Gemma 3 uses)", "\"" + p.rope_type + "\"");
    if (p.rope_type == "default") p.factor = 1.0;
    return p;
  }

 private:
  const Json& obj_;
  std::string source_;
  std::string prefix_;
};

}  // namespace detail

// Parse the text of a config.json; `source` names it in error messages.
namespace detail {
// The top-level object of a config.json; JSON errors become ConfigErrors naming `source`.
inline Json parse_config_object(const std::string& text, const std::string& source) {
  Json root;
  try {
    root = parse_json(text);
  } catch (const JsonError& e) {
    throw ConfigError(source + ": " + e.what());
  }
  if (!root.is_object()) throw ConfigError(source + ": expected a JSON object at top level, found " + root.kind_name());
  return root;
}
}  // namespace detail

inline Gemma3TextConfig parse_config_json(const std::string& text, const std::string& source = "config.json") {
  const detail::Json root = detail::parse_config_object(text, source);

  detail::ConfigReader top(root, source, "");
  std::string model_type;
  top.string("model_type", model_type);
  const detail::Json* fields = &root;
  std::string prefix;
  bool all_required = true;
  if (model_type == "gemma3") {  // Gemma3ForConditionalGeneration: the decoder's fields sit in text_config
    fields = root.find("text_config");
    if (!fields) top.bad("text_config", "an object (model_type is \"gemma3\")", "nothing (the field is missing)");
    if (!fields->is_object()) top.bad("text_config", "an object", detail::ConfigReader::describe(*fields));
    prefix = "text_config.";
    all_required = false;  // HF fills omitted text_config fields with Gemma3TextConfig defaults
  } else if (model_type != "gemma3_text") {
    top.bad("model_type", "\"gemma3_text\" or \"gemma3\"",
            model_type.empty() ? "nothing (the field is missing)" : "\"" + model_type + "\"");
  }
  const detail::ConfigReader r(*fields, source, prefix);

  Gemma3TextConfig c;
  r.integer("vocab_size", c.vocab_size, all_required);
  r.integer("hidden_size", c.hidden_size, all_required);
  r.integer("intermediate_size", c.intermediate_size, all_required);
  r.integer("num_hidden_layers", c.num_hidden_layers, all_required);
  r.integer("num_attention_heads", c.num_attention_heads, all_required);
  r.integer("num_key_value_heads", c.num_key_value_heads, all_required);
  r.integer("head_dim", c.head_dim, all_required);
  r.integer("max_position_embeddings", c.max_position_embeddings, false);
  r.real("query_pre_attn_scalar", c.query_pre_attn_scalar);
  r.integer("sliding_window", c.sliding_window, all_required);
  r.boolean("attention_bias", c.attention_bias);
  r.real("attention_dropout", c.attention_dropout);
  r.optional_real("attn_logit_softcapping", c.attn_logit_softcapping);
  r.optional_real("final_logit_softcapping", c.final_logit_softcapping);
  r.boolean("use_bidirectional_attention", c.use_bidirectional_attention);
  r.real("rms_norm_eps", c.rms_norm_eps);
  r.string("hidden_activation", c.hidden_activation);
  r.boolean("tie_word_embeddings", c.tie_word_embeddings);
  if (!fields->find("tie_word_embeddings")) top.boolean("tie_word_embeddings", c.tie_word_embeddings);
  r.real("initializer_range", c.initializer_range);
  r.boolean("use_cache", c.use_cache);
  r.integer("pad_token_id", c.pad_token_id, false);
  r.integer("bos_token_id", c.bos_token_id, false);
  if (const detail::Json* eos = fields->find("eos_token_id")) {
    c.eos_token_id.clear();
    auto token_id = [&](const detail::Json& e) {
      if (!e.is_number() || e.number != std::floor(e.number) || e.number < 0 || e.number > 2147483647.0)
        r.bad("eos_token_id", "a token id (integer >= 0) or a list of them", detail::ConfigReader::describe(e));
      c.eos_token_id.push_back(int(e.number));
    };
    if (eos->is_number()) {
      token_id(*eos);
    } else if (eos->is_array()) {
      for (const detail::Json& e : eos->array) token_id(e);
    } else if (!eos->is_null()) {
      r.bad("eos_token_id", "an integer or a list of integers", detail::ConfigReader::describe(*eos));
    }
  }

  // --- RoPE: v4 keys, then v5's rope_parameters (which wins when present).
  r.real("rope_theta", c.rope_theta);
  r.real("rope_local_base_freq", c.rope_local_base_freq);
  if (const detail::Json* rs = fields->find("rope_scaling"); rs && !rs->is_null()) {
    RopeParameters p = r.rope("rope_scaling", *rs);
    if (p.rope_type == "linear") c.rope_scaling = p;
  }
  if (const detail::Json* rp = fields->find("rope_parameters"); rp && !rp->is_null()) {
    if (!rp->is_object()) r.bad("rope_parameters", "an object", detail::ConfigReader::describe(*rp));
    const detail::Json* full = rp->find("full_attention");
    const detail::Json* sliding = rp->find("sliding_attention");
    if (!full || !sliding)
      r.bad("rope_parameters", "keys \"full_attention\" and \"sliding_attention\"",
            std::string("keys without ") + (full ? "\"sliding_attention\"" : "\"full_attention\""));
    detail::ConfigReader rr(*rp, source, prefix + "rope_parameters.");
    const RopeParameters g = rr.rope("full_attention", *full);
    const RopeParameters l = rr.rope("sliding_attention", *sliding);
    if (l.rope_type != "default")
      rr.bad("sliding_attention.rope_type", "\"default\" (sliding layers are never scaled)", "\"" + l.rope_type + "\"");
    c.rope_theta = g.rope_theta;
    c.rope_local_base_freq = l.rope_theta;
    c.rope_scaling.reset();
    if (g.rope_type == "linear") c.rope_scaling = g;
  }

  // --- which layers are global: explicit layer_types, else the 5:1 pattern.
  if (const detail::Json* lt = fields->find("layer_types"); lt && !lt->is_null()) {
    if (!lt->is_array()) r.bad("layer_types", "a list of strings", detail::ConfigReader::describe(*lt));
    c.layer_types.clear();
    for (std::size_t i = 0; i < lt->array.size(); ++i) {
      const detail::Json& e = lt->array[i];
      if (e.is_string() && e.string == "full_attention") c.layer_types.push_back(LayerType::full_attention);
      else if (e.is_string() && e.string == "sliding_attention") c.layer_types.push_back(LayerType::sliding_attention);
      else r.bad("layer_types[" + std::to_string(i) + "]", "\"full_attention\" or \"sliding_attention\"",
                 detail::ConfigReader::describe(e));
    }
  } else {
    r.integer("sliding_window_pattern", c.sliding_window_pattern, false);
    r.integer("_sliding_window_pattern", c.sliding_window_pattern, false);
    if (c.sliding_window_pattern < 1)
      r.bad("sliding_window_pattern", "an integer >= 1", std::to_string(c.sliding_window_pattern));
    if (c.num_hidden_layers < 0 || c.num_hidden_layers > 4096)
      r.bad("num_hidden_layers", "an integer in [1, 4096]", std::to_string(c.num_hidden_layers));
    c.derive_layer_types();
  }
  c.validate(source);
  return c;
}

// Read and parse a config.json file.
inline Gemma3TextConfig load_config_json(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ConfigError(path + ": cannot open the file");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_config_json(ss.str(), path);
}

}  // namespace gemma3
