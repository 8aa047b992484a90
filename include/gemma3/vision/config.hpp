// gemma3/vision/config.hpp -- the vision half of a Gemma 3 config.json.
//
//   SiglipVisionConfig   config.json "vision_config" (HF SiglipVisionConfig field names)
//   Gemma3VisionConfig   that + the top-level multimodal fields of Gemma3Config:
//                        mm_tokens_per_image, boi/eoi/image_token_index
//
// Derived sizes (4B / 12B / 27B share one SigLIP So400m/14 tower):
//   patches_per_side = image_size / patch_size                 896 / 14 = 64  -> 4096 patches
//   tokens_per_side  = sqrt(mm_tokens_per_image)               sqrt(256) = 16
//   pool kernel      = patches_per_side / tokens_per_side      64 / 16 = 4    (4 x 4 average pool)
//   head_dim         = hidden_size / num_attention_heads       1152 / 16 = 72
//
// The text decoder's fields ("text_config") are read by config_json.hpp. A
// config.json of model_type "gemma3_text" (270M, 1B) has no vision part:
// parse_vision_config_json returns std::nullopt for it.
//
// Mirrors transformers' SiglipVisionConfig and Gemma3Config. Pinned by
// tests/test_vision_model.cpp (the tiny fixture's config.json, bad values).
#pragma once

#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "../config.hpp"
#include "../config_json.hpp"
#include "../detail/json.hpp"

namespace gemma3 {

struct SiglipVisionConfig {
  int hidden_size = 1152;
  int intermediate_size = 4304;
  int num_hidden_layers = 27;
  int num_attention_heads = 16;
  int num_channels = 3;
  int image_size = 896;
  int patch_size = 14;
  double layer_norm_eps = 1e-6;
  std::string hidden_act = "gelu_pytorch_tanh";
  bool vision_use_head = false;  // the attention-pooling head; Gemma 3 never uses its output

  int patches_per_side() const { return image_size / patch_size; }
  int num_patches() const { return patches_per_side() * patches_per_side(); }
  int head_dim() const { return hidden_size / num_attention_heads; }
  int patch_dim() const { return num_channels * patch_size * patch_size; }  // inputs of one patch: 3 * 14 * 14
};

struct Gemma3VisionConfig {
  SiglipVisionConfig vision_config;
  int mm_tokens_per_image = 256;
  int boi_token_index = 255999;    // <start_of_image>
  int eoi_token_index = 256000;    // <end_of_image>
  int image_token_index = 262144;  // <image_soft_token>
  int double_newline_token_id = 108;  // "\n\n" in Gemma 3's tokenizer (not in config.json)

  int tokens_per_side() const { return int(std::lround(std::sqrt(double(mm_tokens_per_image)))); }
  int pool_kernel() const { return vision_config.patches_per_side() / tokens_per_side(); }

  // Throws ConfigError naming the field, what was expected and what was found.
  void validate(const std::string& source = "config") const {
    const SiglipVisionConfig& v = vision_config;
    auto bad = [&](const std::string& field, const std::string& expected, const std::string& found) {
      throw ConfigError(source + ": field '" + field + "': expected " + expected + ", found " + found);
    };
    auto range = [&](const char* field, long long value, long long max) {
      if (value < 1 || value > max) bad(field, "an integer in [1, " + std::to_string(max) + "]", std::to_string(value));
    };
    range("vision_config.hidden_size", v.hidden_size, 1 << 16);
    range("vision_config.intermediate_size", v.intermediate_size, 1 << 20);
    range("vision_config.num_hidden_layers", v.num_hidden_layers, 1024);
    range("vision_config.num_attention_heads", v.num_attention_heads, 1024);
    range("vision_config.image_size", v.image_size, 1 << 14);
    range("vision_config.patch_size", v.patch_size, 1 << 10);
    range("mm_tokens_per_image", mm_tokens_per_image, 1 << 16);
    if (v.num_channels != 3) bad("vision_config.num_channels", "3 (RGB)", std::to_string(v.num_channels));
    if (v.hidden_size % v.num_attention_heads != 0)
      bad("vision_config.num_attention_heads", "a divisor of hidden_size = " + std::to_string(v.hidden_size),
          std::to_string(v.num_attention_heads));
    if (v.image_size % v.patch_size != 0)
      bad("vision_config.patch_size", "a divisor of image_size = " + std::to_string(v.image_size),
          std::to_string(v.patch_size));
    if (!(v.layer_norm_eps > 0) || v.layer_norm_eps > 1)
      bad("vision_config.layer_norm_eps", "a number in (0, 1]", std::to_string(v.layer_norm_eps));
    if (v.hidden_act != "gelu_pytorch_tanh" && v.hidden_act != "gelu_tanh")
      bad("vision_config.hidden_act", "\"gelu_pytorch_tanh\"", "\"" + v.hidden_act + "\"");
    const int side = tokens_per_side();
    if (side * side != mm_tokens_per_image)
      bad("mm_tokens_per_image", "a square number (tokens form a square grid)", std::to_string(mm_tokens_per_image));
    if (v.patches_per_side() % side != 0)
      bad("mm_tokens_per_image", "a square of a divisor of image_size / patch_size = " +
          std::to_string(v.patches_per_side()), std::to_string(mm_tokens_per_image));
    for (const auto& [field, id] : {std::pair<const char*, int>{"boi_token_index", boi_token_index},
                                    {"eoi_token_index", eoi_token_index},
                                    {"image_token_index", image_token_index}})
      if (id < 0) bad(field, "a token id >= 0", std::to_string(id));
  }
};

// The released 4B / 12B / 27B values (vision_config in the config.json of
// google/gemma-3-4b-it, -12b-it, -27b-it on the Hugging Face Hub).
inline Gemma3VisionConfig gemma3_vision_preset() { return Gemma3VisionConfig{}; }

// The vision config of a config.json's text, or nullopt for a text-only model
// (model_type "gemma3_text", or "gemma3" without vision_config).
inline std::optional<Gemma3VisionConfig> parse_vision_config_json(const std::string& text,
                                                                  const std::string& source = "config.json") {
  const detail::Json root = detail::parse_config_object(text, source);
  detail::ConfigReader top(root, source, "");
  std::string model_type;
  top.string("model_type", model_type);
  if (model_type == "gemma3_text") return std::nullopt;
  if (model_type != "gemma3")
    top.bad("model_type", "\"gemma3\" or \"gemma3_text\"",
            model_type.empty() ? "nothing (the field is missing)" : "\"" + model_type + "\"");
  const detail::Json* vc = root.find("vision_config");
  if (!vc || vc->is_null()) return std::nullopt;
  if (!vc->is_object()) top.bad("vision_config", "an object", detail::ConfigReader::describe(*vc));

  Gemma3VisionConfig c;
  top.integer("mm_tokens_per_image", c.mm_tokens_per_image, false);
  top.integer("boi_token_index", c.boi_token_index, false);
  top.integer("eoi_token_index", c.eoi_token_index, false);
  top.integer("image_token_index", c.image_token_index, false);
  const detail::ConfigReader r(*vc, source, "vision_config.");
  SiglipVisionConfig& v = c.vision_config;
  // Sizes are required: HF fills missing ones with SiglipVisionConfig's defaults
  // (a 224 / 16 / 768 tower), which is never what a Gemma 3 checkpoint holds.
  r.integer("hidden_size", v.hidden_size, true);
  r.integer("intermediate_size", v.intermediate_size, true);
  r.integer("num_hidden_layers", v.num_hidden_layers, true);
  r.integer("num_attention_heads", v.num_attention_heads, true);
  r.integer("image_size", v.image_size, true);
  r.integer("patch_size", v.patch_size, true);
  r.integer("num_channels", v.num_channels, false);
  r.real("layer_norm_eps", v.layer_norm_eps);
  r.string("hidden_act", v.hidden_act);
  r.boolean("vision_use_head", v.vision_use_head);
  c.validate(source);
  return c;
}

inline std::optional<Gemma3VisionConfig> load_vision_config_json(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ConfigError(path + ": cannot open the file");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_vision_config_json(ss.str(), path);
}

}  // namespace gemma3
