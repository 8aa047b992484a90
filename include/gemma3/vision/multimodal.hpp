// gemma3/vision/multimodal.hpp -- Gemma3ForConditionalGeneration: text and images in, logits out.
//
//   image (any size)
//     -> [full image, Pan-and-Scan crops...]                 pan_and_scan.hpp (optional)
//     -> each: pixel values [3, 896 * 896]                   preprocess.hpp
//     -> each: SigLIP tower [4096, 1152]                     siglip.hpp
//     -> each: projector -> 256 soft tokens [256, H]         projector.hpp
//   prompt ids: each image's <start_of_image> (boi) becomes
//       [108 "\n\n", boi, image_token x 256, eoi, 108]       expand_image_tokens()
//     (with crops: before_original + block + before_crops + block + (between_crops + block) ...)
//   language model (model.hpp): embeddings of the soft tokens := the image's soft
//     tokens (unscaled); each image / crop is one bidirectional group in attention.
//
// Prompt ids. HF builds the expansion as TEXT and tokenizes the whole string
// (Gemma3Processor); JAX inserts ids directly after tokenizing (the block above,
// _token_utils.add_extra_tokens_for_images). This header does the JAX thing, because
// it needs no tokenizer: the two agree except where HF's tokenizer merges the "\n"
// ending "user\n" with the "\n\n" that starts the block into one "\n\n\n" piece
// (docs/vision.md; transformers' processing_gemma3.py builds the text). For
// Pan-and-Scan the phrases "Here is the original image " etc. must be tokenized by
// the caller (PanAndScanPromptIds); HF again tokenizes them together with the rest
// of the string.
//
// Limits checked before any work: an image given to a text-only model (270M / 1B
// checkpoints have no vision tower); a prompt whose soft-token groups do not match
// the images given (HF: "Image features and image tokens do not match"); a prompt
// (with its 256 tokens per image and crop) longer than the KV cache has room for.
//
// Weights (load_hf_multimodal_model): config.json of model_type "gemma3" with
// vision_config, and the tensors under any prefix transformers has written:
//   text:      language_model.model. | model.language_model.          (checkpoint.hpp)
//   vision:    vision_tower.vision_model. | model.vision_tower.vision_model. |
//              vision_tower. | model.vision_tower.      (the last two: transformers 5.x saves)
//   projector: multi_modal_projector. | model.multi_modal_projector.
// A model_type "gemma3_text" folder loads as a text-only model (has_vision() false).
//
// Mirrors Gemma3ForConditionalGeneration / Gemma3Model.forward (transformers 5.24,
// token_type_ids passed). Pinned by tests/test_vision_model.cpp against the tiny
// fixture (two images, one Pan-and-Scanned into 3 crops: 5 image groups).
#pragma once

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "../checkpoint.hpp"
#include "../model.hpp"
#include "config.hpp"
#include "image.hpp"
#include "pan_and_scan.hpp"
#include "preprocess.hpp"
#include "projector.hpp"
#include "siglip.hpp"

namespace gemma3 {

// ---- prompt ids ----------------------------------------------------------------

// The ids standing for one image (or crop): [108, boi, image x mm_tokens_per_image, eoi, 108].
inline std::vector<int> image_token_block(const Gemma3VisionConfig& c) {
  std::vector<int> ids{c.double_newline_token_id, c.boi_token_index};
  ids.insert(ids.end(), std::size_t(c.mm_tokens_per_image), c.image_token_index);
  ids.push_back(c.eoi_token_index);
  ids.push_back(c.double_newline_token_id);
  return ids;
}

// Tokenized Pan-and-Scan phrases (HF: "Here is the original image ", " and here are
// some crops to help you see better ", " " between crops).
struct PanAndScanPromptIds {
  std::vector<int> before_original;
  std::vector<int> before_crops;
  std::vector<int> between_crops;
};

// Replace the k-th boi token of `ids` by image k's block(s); num_crops[k] crops
// (0: no Pan-and-Scan). The number of boi tokens must equal num_crops.size().
inline std::vector<int> expand_image_tokens(const std::vector<int>& ids, const std::vector<int>& num_crops,
                                            const Gemma3VisionConfig& c, const PanAndScanPromptIds* pas = nullptr) {
  const std::vector<int> block = image_token_block(c);
  std::vector<int> out;
  std::size_t image = 0;
  auto append = [&out](const std::vector<int>& v) { out.insert(out.end(), v.begin(), v.end()); };
  for (int id : ids) {
    if (id != c.boi_token_index) {
      out.push_back(id);
      continue;
    }
    if (image >= num_crops.size())
      throw std::invalid_argument("expand_image_tokens: more <start_of_image> tokens in the prompt than the " +
                                  std::to_string(num_crops.size()) + " images given");
    const int n = num_crops[image++];
    if (n == 0) {
      append(block);
      continue;
    }
    if (!pas || pas->before_original.empty() || pas->before_crops.empty() || pas->between_crops.empty())
      throw std::invalid_argument("expand_image_tokens: image " + std::to_string(image - 1) + " has " +
                                  std::to_string(n) + " Pan-and-Scan crops, which the prompt introduces with the "
                                  "phrases \"Here is the original image\" and \"and here are some crops\": "
                                  "PanAndScanPromptIds must hold them tokenized (a tokenizer is needed)");
    append(pas->before_original);
    append(block);
    append(pas->before_crops);
    for (int i = 0; i < n; ++i) {
      if (i) append(pas->between_crops);
      append(block);
    }
  }
  if (image != num_crops.size())
    throw std::invalid_argument("expand_image_tokens: " + std::to_string(num_crops.size()) + " images given but " +
                                std::to_string(image) + " <start_of_image> tokens in the prompt");
  return out;
}

// HF's token_type_ids: 1 at image soft tokens, 0 elsewhere.
inline std::vector<int> image_token_type_ids(const std::vector<int>& ids, const Gemma3VisionConfig& c) {
  std::vector<int> types(ids.size());
  for (std::size_t t = 0; t < ids.size(); ++t) types[t] = ids[t] == c.image_token_index ? 1 : 0;
  return types;
}

// ---- the model -------------------------------------------------------------------

struct Gemma3VisionWeights {
  SiglipVisionWeights vision_tower;
  Gemma3MultiModalProjectorWeights multi_modal_projector;
  std::vector<std::shared_ptr<const void>> storage;  // the transposed projection copy, mapped files
};

// Optional taps for tests: per image group, the tower's and projector's outputs.
struct MultimodalTrace {
  std::vector<Matrix> vision_hidden;   // [groups] x [num_patches, vision_hidden]
  std::vector<SiglipTrace> siglip;     // [groups]
  std::vector<Matrix> image_features;  // [groups] x [mm_tokens_per_image, text_hidden]
  ForwardTrace text;
};

class Gemma3ForConditionalGeneration {
 public:
  // A text-only model (no vision tower): images are refused with a clear error.
  explicit Gemma3ForConditionalGeneration(Gemma3ForCausalLM language_model)
      : language_model_(std::move(language_model)) {}

  Gemma3ForConditionalGeneration(Gemma3ForCausalLM language_model, Gemma3VisionConfig config,
                                 Gemma3VisionWeights weights)
      : language_model_(std::move(language_model)), config_(std::move(config)), weights_(std::move(weights)) {
    config_->validate("Gemma3ForConditionalGeneration");
  }

  bool has_vision() const { return config_.has_value(); }
  const Gemma3ForCausalLM& language_model() const { return language_model_; }
  const Backend& backend() const { return language_model_.backend(); }

  // The same model (weights shared) with its language model on another backend.
  Gemma3ForConditionalGeneration with_backend(std::shared_ptr<const Backend> backend) const {
    Gemma3ForConditionalGeneration m = *this;
    m.language_model_ = language_model_.with_backend(std::move(backend));
    return m;
  }
  const Gemma3VisionConfig& vision_config() const {
    require_vision("vision_config");
    return *config_;
  }
  const Gemma3VisionWeights& vision_weights() const { return weights_; }

  KVCache new_cache(int max_cache_len = 0, std::optional<DType> kv_dtype = std::nullopt) const {
    return language_model_.new_cache(max_cache_len, kv_dtype);
  }

  // One image -> the pixel values the tower sees: [full image, crops...], each [3, S * S].
  std::vector<Matrix> preprocess(const Image& image, bool do_pan_and_scan = false,
                                 const PanAndScanOptions& options = {}) const {
    require_vision("preprocess");
    Gemma3ImageProcessorConfig p;
    p.size = config_->vision_config.image_size;
    std::vector<Matrix> out;
    for (const Image& view : do_pan_and_scan ? pan_and_scan(image, options) : std::vector<Image>{image})
      out.push_back(preprocess_image(view, p));
    return out;
  }

  // Pixel values [3, S * S] of one image or crop -> soft tokens [mm_tokens_per_image, text_hidden].
  Matrix encode_image(const Matrix& pixel_values, Matrix* vision_hidden = nullptr,
                      SiglipTrace* trace = nullptr) const {
    require_vision("encode_image");
    const Matrix v = siglip_vision_tower(backend(), config_->vision_config, weights_.vision_tower, pixel_values, trace);
    if (vision_hidden) *vision_hidden = v;
    return gemma3_multimodal_projector(backend(), *config_, weights_.multi_modal_projector, v);
  }

  // Run a prompt whose soft tokens (image_token_index) come in groups of
  // mm_tokens_per_image, one group per entry of `pixel_values`, in order. All
  // groups must be in this call (the prompt's prefill); later calls continue
  // with text (decode). Returns logits like Gemma3ForCausalLM::forward.
  Matrix forward(const std::vector<int>& input_ids, const std::vector<Matrix>& pixel_values, KVCache& cache,
                 Logits which = Logits::all, MultimodalTrace* trace = nullptr) const {
    const int T = int(input_ids.size());
    if (!has_vision()) {
      bool has_image_tokens = !pixel_values.empty();
      for (int id : input_ids) has_image_tokens |= id == Gemma3VisionConfig{}.image_token_index;
      if (has_image_tokens)
        throw std::invalid_argument("Gemma3ForConditionalGeneration: this model has no vision tower (a text-only "
                                    "checkpoint, model_type \"gemma3_text\", e.g. 270M or 1B): it cannot take images");
      return language_model_.forward(input_ids, cache, which, trace ? &trace->text : nullptr);
    }
    const Gemma3VisionConfig& c = *config_;
    ImageTokens images;
    images.group_ids = image_group_ids(image_token_type_ids(input_ids, c));
    int groups = 0, soft = 0;
    for (int g : images.group_ids) {
      groups = std::max(groups, g + 1);
      soft += g >= 0;
    }
    // The limits, before the (expensive) vision tower runs.
    if (cache.length() + T > cache.max_cache_len())
      throw std::length_error("Gemma3ForConditionalGeneration: a prompt of " + std::to_string(T) + " tokens (" +
                              std::to_string(soft) + " of them image soft tokens: " + std::to_string(groups) +
                              " images or crops x " + std::to_string(c.mm_tokens_per_image) + ") at position " +
                              std::to_string(cache.length()) + " does not fit in the KV cache's " +
                              std::to_string(cache.max_cache_len()) + " positions");
    if (groups != int(pixel_values.size()) || soft != groups * c.mm_tokens_per_image)
      throw std::invalid_argument("Gemma3ForConditionalGeneration: the prompt has " + std::to_string(soft) +
                                  " image soft tokens in " + std::to_string(groups) + " groups; expected " +
                                  std::to_string(pixel_values.size()) + " groups (one per image or crop given) of " +
                                  std::to_string(c.mm_tokens_per_image) + " (mm_tokens_per_image)");
    for (std::size_t g = 0, t = 0; g < std::size_t(groups); ++g) {  // each group exactly one run of N
      while (images.group_ids[t] != int(g)) ++t;
      for (int i = 0; i < c.mm_tokens_per_image; ++i, ++t)
        if (t >= images.group_ids.size() || images.group_ids[t] != int(g))
          throw std::invalid_argument("Gemma3ForConditionalGeneration: image " + std::to_string(g) + "'s soft tokens " +
                                      "are not one run of " + std::to_string(c.mm_tokens_per_image));
    }

    const int H = language_model_.config().hidden_size;
    images.features.resize(soft, H);  // [soft tokens, hidden_size]
    for (int g = 0; g < groups; ++g) {
      Matrix vision_hidden;
      SiglipTrace siglip;
      const Matrix f = encode_image(pixel_values[std::size_t(g)], &vision_hidden, trace ? &siglip : nullptr);
      images.features.middleRows(Eigen::Index(g) * c.mm_tokens_per_image, c.mm_tokens_per_image) = f;
      if (trace) {
        trace->vision_hidden.push_back(std::move(vision_hidden));
        trace->siglip.push_back(std::move(siglip));
        trace->image_features.push_back(f);
      }
    }
    // HF: a soft-token id outside the text vocabulary is embedded as id 0 (then replaced).
    std::vector<int> ids = input_ids;
    if (c.image_token_index >= language_model_.config().vocab_size)
      for (int& id : ids)
        if (id == c.image_token_index) id = 0;
    return language_model_.forward(ids, cache, which, trace ? &trace->text : nullptr, &images);
  }

  // The prompt at once; logits of its last token [vocab_size].
  Vector prefill(const std::vector<int>& input_ids, const std::vector<Matrix>& pixel_values, KVCache& cache) const {
    return forward(input_ids, pixel_values, cache, Logits::last).row(0).transpose();
  }

  // One text token after the prompt; its logits [vocab_size].
  Vector decode(int token_id, KVCache& cache) const { return language_model_.decode(token_id, cache); }

 private:
  void require_vision(const char* what) const {
    if (!config_)
      throw std::invalid_argument(std::string("Gemma3ForConditionalGeneration::") + what +
                                  ": this model has no vision tower (a text-only checkpoint, model_type "
                                  "\"gemma3_text\", e.g. 270M or 1B): it cannot take images");
  }

  Gemma3ForCausalLM language_model_;
  std::optional<Gemma3VisionConfig> config_;
  Gemma3VisionWeights weights_;
};

// ---- loading -----------------------------------------------------------------------

namespace detail {

inline std::vector<std::string> vision_tower_names(const std::string& name) {
  return {"vision_tower.vision_model." + name, "model.vision_tower.vision_model." + name, "vision_tower." + name,
          "model.vision_tower." + name};
}
inline std::vector<std::string> projector_names(const std::string& name) {
  return {"multi_modal_projector." + name, "model.multi_modal_projector." + name};
}

inline Vector stored_vector(const HfCheckpoint& ck, const std::vector<std::string>& names, std::int64_t n) {
  const TensorView& t = ck.stored_tensor(names, {n});
  Vector v(n);
  to_f32(HfCheckpoint::float_dtype(t), t.data, v.data(), std::size_t(n));
  return v;
}

// A weight viewed as [rows, cols] over a tensor of the given stored shape.
inline Weight stored_matrix(const HfCheckpoint& ck, const std::vector<std::string>& names,
                            const std::vector<std::int64_t>& shape, std::int64_t rows, std::int64_t cols) {
  const TensorView& t = ck.stored_tensor(names, shape);
  Weight w;
  w.dtype = HfCheckpoint::float_dtype(t);
  w.data = t.data;
  w.rows = rows;
  w.cols = cols;
  return w;
}

}  // namespace detail

// The vision tower and projector of an opened checkpoint (config from its config.json).
inline Gemma3VisionWeights load_hf_vision_weights(const HfCheckpoint& ck, const Gemma3VisionConfig& c,
                                                  int text_hidden_size) {
  using detail::projector_names;
  using detail::stored_matrix;
  using detail::stored_vector;
  using detail::vision_tower_names;
  const SiglipVisionConfig& v = c.vision_config;
  const std::int64_t Hv = v.hidden_size, I = v.intermediate_size, p = v.patch_size;
  Gemma3VisionWeights w;
  SiglipVisionWeights& t = w.vision_tower;
  t.patch_embedding = stored_matrix(ck, vision_tower_names("embeddings.patch_embedding.weight"),
                                    {Hv, v.num_channels, p, p}, Hv, v.patch_dim());
  t.patch_bias = stored_vector(ck, vision_tower_names("embeddings.patch_embedding.bias"), Hv);
  t.position_embedding = stored_matrix(ck, vision_tower_names("embeddings.position_embedding.weight"),
                                       {v.num_patches(), Hv}, v.num_patches(), Hv);
  auto layer_norm = [&](const std::string& name) {
    return LayerNormWeights{stored_vector(ck, vision_tower_names(name + ".weight"), Hv),
                            stored_vector(ck, vision_tower_names(name + ".bias"), Hv)};
  };
  for (int i = 0; i < v.num_hidden_layers; ++i) {
    const std::string l = "encoder.layers." + std::to_string(i) + ".";
    SiglipEncoderLayerWeights e;
    e.layer_norm1 = layer_norm(l + "layer_norm1");
    e.layer_norm2 = layer_norm(l + "layer_norm2");
    auto proj = [&](const std::string& name, Weight& W, Vector& b, std::int64_t out, std::int64_t in) {
      W = stored_matrix(ck, vision_tower_names(l + name + ".weight"), {out, in}, out, in);
      b = stored_vector(ck, vision_tower_names(l + name + ".bias"), out);
    };
    proj("self_attn.q_proj", e.q_proj, e.q_bias, Hv, Hv);
    proj("self_attn.k_proj", e.k_proj, e.k_bias, Hv, Hv);
    proj("self_attn.v_proj", e.v_proj, e.v_bias, Hv, Hv);
    proj("self_attn.out_proj", e.out_proj, e.out_bias, Hv, Hv);
    proj("mlp.fc1", e.fc1, e.fc1_bias, I, Hv);
    proj("mlp.fc2", e.fc2, e.fc2_bias, Hv, I);
    t.layers.push_back(std::move(e));
  }
  t.post_layernorm = layer_norm("post_layernorm");

  Gemma3MultiModalProjectorWeights& m = w.multi_modal_projector;
  m.mm_soft_emb_norm = stored_vector(ck, projector_names("mm_soft_emb_norm.weight"), Hv);
  // mm_input_projection_weight is [vision_hidden, text_hidden] and used as x . M; keep
  // one float32 copy of M^T ([text_hidden, vision_hidden]) so that linear() applies it.
  const TensorView& M = ck.stored_tensor(projector_names("mm_input_projection_weight"), {Hv, text_hidden_size});
  Matrix m_f32(Hv, text_hidden_size);  // [vision_hidden, text_hidden]
  to_f32(HfCheckpoint::float_dtype(M), M.data, m_f32.data(), std::size_t(Hv * text_hidden_size));
  auto transposed = std::make_shared<Matrix>(m_f32.transpose());  // [text_hidden, vision_hidden], row-major
  m.mm_input_projection = Weight{DType::F32, transposed->data(), text_hidden_size, Hv};
  w.storage = ck.storage();
  w.storage.push_back(transposed);
  return w;
}

// A Gemma 3 checkpoint folder: the 4B / 12B / 27B multimodal models, or a text-only
// one (270M / 1B, or a "gemma3" config without vision_config), which then refuses images.
inline Gemma3ForConditionalGeneration load_hf_multimodal_model(const std::string& folder) {
  const HfCheckpoint ck(folder);
  Gemma3ForCausalLM text = load_hf_model(ck);
  const std::optional<Gemma3VisionConfig> vc = load_vision_config_json(folder + "/config.json");
  if (!vc) return Gemma3ForConditionalGeneration(std::move(text));
  Gemma3VisionWeights w = load_hf_vision_weights(ck, *vc, text.config().hidden_size);
  return Gemma3ForConditionalGeneration(std::move(text), *vc, std::move(w));
}

}  // namespace gemma3
