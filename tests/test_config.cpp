// Gemma3TextConfig: the three config.json spellings, the two file shapes, and the
// presets' released values (the released config.json files).
#include "catch.hpp"
#include "fixture_helpers.hpp"

#include "gemma3/config_json.hpp"

using gemma3::LayerType;

namespace {
// A gemma3_text config with every size field, plus `extra` fields (a JSON fragment).
std::string text_config(const std::string& extra) {
  return R"({"model_type": "gemma3_text", "vocab_size": 262144, "hidden_size": 1152, "intermediate_size": 6912,
             "num_hidden_layers": 26, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256,
             "sliding_window": 512, "max_position_embeddings": 32768, "query_pre_attn_scalar": 256)" +
         (extra.empty() ? "" : ", " + extra) + "}";
}
std::vector<int> global_layers(const gemma3::Gemma3TextConfig& c) {
  std::vector<int> g;
  for (int i = 0; i < c.num_hidden_layers; ++i)
    if (!c.is_sliding(i)) g.push_back(i);
  return g;
}
}  // namespace

TEST_CASE("config.json, v4.50 spelling: sliding_window_pattern, rope_theta, rope_local_base_freq, rope_scaling",
          "[config]") {
  const gemma3::Gemma3TextConfig c = gemma3::parse_config_json(text_config(
      R"("sliding_window_pattern": 6, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
         "rope_scaling": {"rope_type": "linear", "factor": 8.0})"));
  CHECK(global_layers(c) == std::vector<int>{5, 11, 17, 23});
  CHECK(c.rope_for(LayerType::full_attention).rope_theta == 1e6);
  CHECK(c.rope_for(LayerType::full_attention).factor == 8.0);
  CHECK(c.rope_for(LayerType::sliding_attention).rope_theta == 1e4);
  CHECK(c.rope_for(LayerType::sliding_attention).factor == 1.0);
  // The older "type" key inside rope_scaling.
  const gemma3::Gemma3TextConfig old = gemma3::parse_config_json(text_config(R"("rope_scaling": {"type": "linear", "factor": 4})"));
  CHECK(old.rope_for(LayerType::full_attention).factor == 4.0);
}

TEST_CASE("config.json, layer_types spelling", "[config]") {
  std::string types = "\"layer_types\": [";
  for (int i = 0; i < 26; ++i) types += std::string(i ? "," : "") + (i == 0 ? "\"full_attention\"" : "\"sliding_attention\"");
  types += "]";
  const gemma3::Gemma3TextConfig c = gemma3::parse_config_json(text_config(types + R"(, "sliding_window_pattern": 6)"));
  CHECK(global_layers(c) == std::vector<int>{0});  // the explicit list wins over the pattern
}

TEST_CASE("config.json, v5 rope_parameters spelling", "[config]") {
  const gemma3::Gemma3TextConfig c = gemma3::parse_config_json(text_config(
      R"("rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                             "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})"));
  CHECK(c.rope_scaling);
  CHECK(c.rope_for(LayerType::full_attention).factor == 8.0);
  CHECK(c.rope_for(LayerType::full_attention).rope_theta == 1e6);
  CHECK(c.rope_for(LayerType::sliding_attention).rope_theta == 1e4);
  CHECK(c.rope_for(LayerType::sliding_attention).factor == 1.0);
  CHECK(global_layers(c) == std::vector<int>{5, 11, 17, 23});  // no layer_types, no pattern: the default 6
}

TEST_CASE("config.json of Gemma3ForConditionalGeneration: text_config with HF defaults", "[config]") {
  // The released 4B config.json lists only what differs from Gemma3TextConfig's defaults.
  const gemma3::Gemma3TextConfig c = gemma3::parse_config_json(R"({
    "architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
    "boi_token_index": 255999, "eoi_token_index": 256000, "image_token_index": 262144, "mm_tokens_per_image": 256,
    "eos_token_id": [1, 106],
    "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                    "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                    "sliding_window": 1024},
    "vision_config": {"hidden_size": 1152, "image_size": 896}})");
  const gemma3::Gemma3TextConfig preset = gemma3::gemma3_4b();
  CHECK(c.hidden_size == preset.hidden_size);
  CHECK(c.num_attention_heads == preset.num_attention_heads);  // default 8
  CHECK(c.num_key_value_heads == preset.num_key_value_heads);  // default 4
  CHECK(c.head_dim == 256);
  CHECK(c.vocab_size == 262208);
  CHECK(c.layer_types == preset.layer_types);
  CHECK(c.rope_for(LayerType::full_attention).factor == 8.0);
}

TEST_CASE("the fixtures' config.json files (transformers 5.24) parse to what they say", "[config]") {
  const gemma3::Gemma3TextConfig c = gemma3::load_config_json(fixtures::path("tiny_global_last") + "/config.json");
  CHECK(c.hidden_size == 48);
  CHECK(c.head_dim == 16);
  CHECK(c.query_pre_attn_scalar == 24);
  CHECK(global_layers(c) == std::vector<int>{5});
  CHECK(c.rope_for(LayerType::full_attention).factor == 8.0);
  const gemma3::Gemma3TextConfig b = gemma3::load_config_json(fixtures::path("tiny_local_last") + "/config.json");
  CHECK(global_layers(b) == std::vector<int>{1});
  CHECK(!b.rope_scaling);
}

TEST_CASE("presets carry the released values", "[config]") {
  struct Row { const char* name; int vocab, hidden, inter, layers, heads, kv, head_dim; double scalar; int window; double factor; std::vector<int> first_globals; bool last_global; };
  const Row rows[] = {
      {"270m", 262144, 640, 2048, 18, 4, 1, 256, 256, 512, 1.0, {5, 11, 17}, true},
      {"1b", 262144, 1152, 6912, 26, 4, 1, 256, 256, 512, 1.0, {5, 11, 17, 23}, false},
      {"4b", 262208, 2560, 10240, 34, 8, 4, 256, 256, 1024, 8.0, {5, 11, 17, 23, 29}, false},
      {"12b", 262208, 3840, 15360, 48, 16, 8, 256, 256, 1024, 8.0, {5, 11, 17, 23, 29, 35, 41, 47}, true},
      {"27b", 262208, 5376, 21504, 62, 32, 16, 128, 168, 1024, 8.0, {5, 11, 17, 23, 29, 35, 41, 47, 53, 59}, false},
  };
  for (const Row& r : rows) {
    const gemma3::Gemma3TextConfig c = gemma3::gemma3_preset(r.name);
    INFO(r.name);
    CHECK(c.vocab_size == r.vocab);
    CHECK(c.hidden_size == r.hidden);
    CHECK(c.intermediate_size == r.inter);
    CHECK(c.num_hidden_layers == r.layers);
    CHECK(c.num_attention_heads == r.heads);
    CHECK(c.num_key_value_heads == r.kv);
    CHECK(c.head_dim == r.head_dim);
    CHECK(c.query_pre_attn_scalar == r.scalar);
    CHECK(c.sliding_window == r.window);
    CHECK(c.rope_for(LayerType::full_attention).factor == r.factor);
    CHECK(c.rope_for(LayerType::sliding_attention).factor == 1.0);
    CHECK(c.rope_for(LayerType::full_attention).rope_theta == 1e6);
    CHECK(c.rope_for(LayerType::sliding_attention).rope_theta == 1e4);
    CHECK(global_layers(c) == r.first_globals);
    CHECK(!c.is_sliding(c.num_hidden_layers - 1) == r.last_global);
    CHECK(c.eos_token_id == std::vector<int>{1, 106});
    CHECK_NOTHROW(c.validate());
  }
  CHECK_THROWS_AS(gemma3::gemma3_preset("2b"), gemma3::ConfigError);
}
