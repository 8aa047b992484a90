// The multimodal model against transformers' Gemma3ForConditionalGeneration
// (float32, eager, token_type_ids passed) on tests/fixtures/vision_tiny: a tiny
// random model (vision hidden 32, 2 layers, 4 heads, 56 x 56 images in 7 x 7
// patches -> 64 patches, pooled 4 x 4 -> 4 soft tokens; text hidden 48, 3 layers,
// sliding window 3) and a prompt with two images, the first Pan-and-Scanned into 3
// crops: 5 image groups with text between them.
// Also: the image-mask rules done the wrong ways, key-name schemes, and bad input.
#include <cmath>

#include "catch.hpp"
#include "loader_error_helpers.hpp"
#include "test_vision_helpers.hpp"

#include "gemma3/vision/multimodal.hpp"

using gemma3::Matrix;

namespace {

constexpr double kTol = 1e-4;

std::string tiny_dir() { return fixtures::path("vision_tiny"); }

const gemma3::SafetensorsFile& expected() {
  static const gemma3::SafetensorsFile f(tiny_dir() + "/expected.safetensors");
  return f;
}

const gemma3::Gemma3ForConditionalGeneration& model() {
  static const gemma3::Gemma3ForConditionalGeneration m = gemma3::load_hf_multimodal_model(tiny_dir());
  return m;
}

std::vector<Matrix> fixture_pixels() {
  std::vector<Matrix> out;
  const std::int64_t n = expected().at("pixel_values").shape.at(0);
  for (std::int64_t i = 0; i < n; ++i) out.push_back(vision_fixtures::f32_slice(expected(), "pixel_values", i, 3));
  return out;
}

// Logits of the fixture prompt with the given image groups (features from our tower).
Matrix logits_with_groups(const std::vector<int>& group_ids, float feature_scale = 1.0f) {
  const std::vector<int> ids = fixtures::ids(expected(), "input_ids");
  gemma3::ImageTokens images;
  images.group_ids = group_ids;
  const std::vector<Matrix> pv = fixture_pixels();
  const int N = model().vision_config().mm_tokens_per_image;
  images.features.resize(Eigen::Index(pv.size()) * N, model().language_model().config().hidden_size);
  for (std::size_t g = 0; g < pv.size(); ++g)
    images.features.middleRows(Eigen::Index(g) * N, N) = model().encode_image(pv[g]) * feature_scale;
  gemma3::KVCache cache = model().new_cache(128);
  return model().language_model().forward(ids, cache, gemma3::Logits::all, nullptr, &images);
}

std::vector<int> hf_groups() {
  return gemma3::image_group_ids(gemma3::image_token_type_ids(fixtures::ids(expected(), "input_ids"),
                                                              model().vision_config()));
}

}  // namespace

TEST_CASE("vision config.json: SiglipVisionConfig fields and the multimodal ones", "[vision]") {
  const auto c = gemma3::load_vision_config_json(tiny_dir() + "/config.json");
  REQUIRE(c);
  CHECK(c->vision_config.hidden_size == 32);
  CHECK(c->vision_config.intermediate_size == 40);
  CHECK(c->vision_config.num_hidden_layers == 2);
  CHECK(c->vision_config.num_attention_heads == 4);
  CHECK(c->vision_config.image_size == 56);
  CHECK(c->vision_config.patch_size == 7);
  CHECK(c->vision_config.layer_norm_eps == 1e-5);
  CHECK(!c->vision_config.vision_use_head);
  CHECK(c->mm_tokens_per_image == 4);
  CHECK(c->image_token_index == 300);
  CHECK(c->boi_token_index == 301);
  CHECK(c->eoi_token_index == 302);
  CHECK(c->pool_kernel() == 4);  // 8 x 8 patches -> 2 x 2 tokens: pooling matters
  // The released 4B / 12B / 27B tower.
  const gemma3::Gemma3VisionConfig r = gemma3::gemma3_vision_preset();
  CHECK(r.vision_config.num_patches() == 4096);
  CHECK(r.vision_config.head_dim() == 72);
  CHECK(r.pool_kernel() == 4);
  CHECK(r.vision_config.patch_dim() == 588);
  // Text-only configs have no vision part.
  CHECK(!gemma3::load_vision_config_json(fixtures::path("tiny_global_last") + "/config.json"));
}

TEST_CASE("vision config.json: bad values are refused, naming the field", "[vision]") {
  auto parse = [](const std::string& vision, const std::string& top = "") {
    return gemma3::parse_vision_config_json("{\"model_type\": \"gemma3\", " + top + "\"vision_config\": {" + vision +
                                            "}}", "cfg.json");
  };
  const std::string ok = "\"hidden_size\": 32, \"intermediate_size\": 40, \"num_hidden_layers\": 2, "
                         "\"num_attention_heads\": 4, \"image_size\": 56, \"patch_size\": 7";
  CHECK(parse(ok, "\"mm_tokens_per_image\": 4, ")->pool_kernel() == 4);
  // The default 256 tokens need 16 x 16 patches at least; 8 x 8 cannot be pooled to them.
  REQUIRE_THROWS_NAMING(gemma3::ConfigError, parse(ok), "mm_tokens_per_image", "image_size / patch_size = 8");
  REQUIRE_THROWS_NAMING(gemma3::ConfigError, parse(ok, "\"mm_tokens_per_image\": 5, "), "cfg.json",
                        "mm_tokens_per_image", "square");
  REQUIRE_THROWS_NAMING(gemma3::ConfigError, parse(ok, "\"mm_tokens_per_image\": 9, "), "mm_tokens_per_image", "divisor");
  REQUIRE_THROWS_NAMING(gemma3::ConfigError, parse("\"hidden_size\": 32"), "vision_config.intermediate_size", "missing");
  REQUIRE_THROWS_NAMING(gemma3::ConfigError,
                        parse("\"hidden_size\": 32, \"intermediate_size\": 40, \"num_hidden_layers\": 2, "
                              "\"num_attention_heads\": 5, \"image_size\": 56, \"patch_size\": 7"),
                        "vision_config.num_attention_heads", "divisor");
  REQUIRE_THROWS_NAMING(gemma3::ConfigError,
                        parse("\"hidden_size\": 32, \"intermediate_size\": 40, \"num_hidden_layers\": 2, "
                              "\"num_attention_heads\": 4, \"image_size\": 56, \"patch_size\": 9"),
                        "vision_config.patch_size", "divisor of image_size");
  REQUIRE_THROWS_NAMING(gemma3::ConfigError, parse(ok + ", \"hidden_act\": \"gelu\"", "\"mm_tokens_per_image\": 4, "),
                        "vision_config.hidden_act");
  REQUIRE_THROWS_NAMING(gemma3::ConfigError,
                        parse("\"hidden_size\": 32, \"intermediate_size\": 40, \"num_hidden_layers\": 2, "
                              "\"num_attention_heads\": 4, \"image_size\": -56, \"patch_size\": 7"),
                        "vision_config.image_size", "-56");
  REQUIRE_THROWS_NAMING(gemma3::ConfigError, gemma3::parse_vision_config_json("{\"model_type\": \"llama\"}", "cfg.json"),
                        "model_type", "llama");
}

TEST_CASE("SigLIP tower: every encoder layer and last_hidden_state match transformers", "[vision]") {
  const std::vector<Matrix> pv = fixture_pixels();
  REQUIRE(pv.size() == 5);
  for (std::size_t g = 0; g < pv.size(); ++g) {
    Matrix hidden;
    gemma3::SiglipTrace trace;
    const Matrix features = model().encode_image(pv[g], &hidden, &trace);
    INFO("image group " << g);
    for (std::size_t l = 0; l < trace.layer_outputs.size(); ++l) {
      const gemma3::TensorView& t = expected().at("vision_layer_outputs");  // [L, 5, 64, 32]
      Matrix ref(64, 32);
      std::memcpy(ref.data(), t.data + ((l * 5 + g) * 64 * 32) * 4, 64 * 32 * 4);
      const fixtures::Diff d = fixtures::compare(trace.layer_outputs[l], ref);
      INFO("layer " << l << ": " << d.str());
      CHECK(d.rel <= kTol);
    }
    const fixtures::Diff h = fixtures::compare(hidden, vision_fixtures::f32_slice(expected(), "vision_hidden", std::int64_t(g), 64));
    INFO("last_hidden_state: " << h.str());
    CHECK(h.rel <= kTol);
    const fixtures::Diff f = fixtures::compare(features, vision_fixtures::f32_slice(expected(), "image_features", std::int64_t(g), 4));
    INFO("projector output (soft tokens): " << f.str());
    CHECK(f.rel <= kTol);
  }
}

TEST_CASE("the model's own preprocessing gives the fixture's pixel values (Pan-and-Scan on)", "[vision]") {
  const std::vector<Matrix> ref = fixture_pixels();
  std::vector<Matrix> ours = model().preprocess(vision_fixtures::formula_image(1001, 300, 2), true);
  const std::vector<Matrix> square = model().preprocess(vision_fixtures::formula_image(40, 40, 1), true);
  ours.insert(ours.end(), square.begin(), square.end());
  REQUIRE(ours.size() == ref.size());
  for (std::size_t i = 0; i < ref.size(); ++i) CHECK((ours[i] - ref[i]).cwiseAbs().maxCoeff() == 0.0f);
}

TEST_CASE("prompt ids: expand_image_tokens builds the fixture prompt", "[vision]") {
  const gemma3::Gemma3VisionConfig& c = model().vision_config();
  const std::vector<int> prompt = {2, 105, 20, 21, 22, c.boi_token_index, 23, 24, 25, c.boi_token_index,
                                   26, 27, 106, 107, 105, 28};
  gemma3::PanAndScanPromptIds pas;
  pas.before_original = {40, 41, 42, 43, 44};
  pas.before_crops = {45, 46, 47, 48, 49, 50};
  pas.between_crops = {51};
  const std::vector<int> ids = gemma3::expand_image_tokens(prompt, {3, 0}, c, &pas);
  CHECK(ids == fixtures::ids(expected(), "input_ids"));
  CHECK(gemma3::image_token_type_ids(ids, c) == fixtures::ids(expected(), "token_type_ids"));
  CHECK(gemma3::image_token_block(c) == std::vector<int>{108, 301, 300, 300, 300, 300, 302, 108});
  const std::vector<int> groups = gemma3::image_group_ids(gemma3::image_token_type_ids(ids, c));
  CHECK(*std::max_element(groups.begin(), groups.end()) == 4);  // 5 groups
  // Errors: counts that do not match, crops without the phrase ids.
  CHECK_THROWS_AS(gemma3::expand_image_tokens(prompt, {0}, c), std::invalid_argument);
  CHECK_THROWS_AS(gemma3::expand_image_tokens(prompt, {0, 0, 0}, c), std::invalid_argument);
  CHECK_THROWS_AS(gemma3::expand_image_tokens(prompt, {2, 0}, c), std::invalid_argument);
  const gemma3::PanAndScanPromptIds untokenized;  // no tokenizer: the phrases would be dropped silently
  CHECK_THROWS_WITH(gemma3::expand_image_tokens(prompt, {2, 0}, c, &untokenized),
                    Catch::Matchers::Contains("a tokenizer is needed"));
  CHECK(gemma3::expand_image_tokens(prompt, {0, 0}, c, &untokenized).size() == prompt.size() + 2 * 7);  // no crops: fine
}

TEST_CASE("two images (5 groups) with text: embeddings, every layer, logits match transformers", "[vision]") {
  gemma3::KVCache cache = model().new_cache(128);
  gemma3::MultimodalTrace trace;
  const Matrix logits = model().forward(fixtures::ids(expected(), "input_ids"), fixture_pixels(), cache,
                                        gemma3::Logits::all, &trace);
  const fixtures::Diff e = fixtures::compare(trace.text.embeddings, fixtures::matrix(expected(), "inputs_embeds"));
  INFO("merged input embeddings: " << e.str());
  CHECK(e.rel <= kTol);
  for (int i = 0; i < 3; ++i) {
    const fixtures::Diff d = fixtures::compare(trace.text.layer_outputs[std::size_t(i)], fixtures::slice(expected(), "layer_outputs", i));
    INFO("text layer " << i << ": " << d.str());
    CHECK(d.rel <= kTol);
  }
  const fixtures::Diff l = fixtures::compare(logits, fixtures::matrix(expected(), "logits"));
  INFO("logits: " << l.str());
  CHECK(l.rel <= kTol);
  CHECK(trace.image_features.size() == 5);
}

TEST_CASE("after the image prompt, greedy decoding equals transformers' (KV cache path)", "[vision]") {
  const std::vector<int> want = fixtures::ids(expected(), "greedy_continuation");
  const Matrix want_logits = fixtures::matrix(expected(), "greedy_logits");
  gemma3::KVCache cache = model().new_cache(128);
  gemma3::Vector logits = model().prefill(fixtures::ids(expected(), "input_ids"), fixture_pixels(), cache);
  std::vector<int> got;
  Matrix steps(Eigen::Index(want.size()), logits.size());
  for (std::size_t g = 0; g < want.size(); ++g) {
    steps.row(Eigen::Index(g)) = logits.transpose();
    Eigen::Index best;
    logits.maxCoeff(&best);
    got.push_back(int(best));
    logits = model().decode(int(best), cache);
  }
  CHECK(got == want);
  const fixtures::Diff d = fixtures::compare(steps, want_logits);
  INFO("logits of each generation step: " << d.str());
  CHECK(d.rel <= kTol);
}

// The float16 KV cache (gemma3-cli's default) with image tokens, which attend both
// ways inside their image: the logits of the prompt stay within the float16 rounding
// of K and V of the float32 cache's (bound as in tests/test_model.cpp), and greedy
// decoding after it keeps transformers' tokens.
TEST_CASE("a float16 KV cache with images: prompt logits close to float32, same greedy tokens", "[vision][kv]") {
  const std::vector<int> ids = fixtures::ids(expected(), "input_ids");
  gemma3::KVCache c32 = model().new_cache(128), c16 = model().new_cache(128, gemma3::DType::F16);
  const Matrix l32 = model().forward(ids, fixture_pixels(), c32, gemma3::Logits::all);
  const Matrix l16 = model().forward(ids, fixture_pixels(), c16, gemma3::Logits::all);
  const fixtures::Diff d = fixtures::compare(l16, l32);
  INFO("float16 against float32 cache: " << d.str());
  CHECK(d.rel > 0);
  CHECK(d.rel <= 5e-3);
  const std::vector<int> want = fixtures::ids(expected(), "greedy_continuation");
  Eigen::Index best;
  l16.row(l16.rows() - 1).maxCoeff(&best);
  std::vector<int> got{int(best)};
  while (got.size() < want.size()) {
    model().decode(got.back(), c16).maxCoeff(&best);
    got.push_back(int(best));
  }
  CHECK(got == want);
}

TEST_CASE("the prompt split after the images (prefill, then text chunks) gives the same logits", "[vision]") {
  const std::vector<int> ids = fixtures::ids(expected(), "input_ids");
  const Matrix ref = fixtures::matrix(expected(), "logits");
  const std::size_t split = ids.size() - 5;  // the last image ends before this
  gemma3::KVCache cache = model().new_cache(128);
  const Matrix a = model().forward(std::vector<int>(ids.begin(), ids.begin() + std::ptrdiff_t(split)), fixture_pixels(), cache);
  const Matrix b = model().forward(std::vector<int>(ids.begin() + std::ptrdiff_t(split), ids.end()), {}, cache);
  Matrix both(ref.rows(), ref.cols());
  both << a, b;
  const fixtures::Diff d = fixtures::compare(both, ref);
  INFO(d.str());
  CHECK(d.rel <= kTol);
}

TEST_CASE("rule: image tokens attend bidirectionally within their image -- causal is wrong", "[vision][rules]") {
  const Matrix ref = fixtures::matrix(expected(), "logits");
  CHECK(fixtures::compare(logits_with_groups(hf_groups()), ref).rel <= kTol);
  // Every soft token its own group of one: causal attention with the features still
  // in place -- what HF does without token_type_ids.
  std::vector<int> singletons = hf_groups();
  int next = 0;
  for (int& g : singletons) g = g >= 0 ? next++ : -1;
  const Matrix causal = logits_with_groups(singletons);
  const fixtures::Diff vs_hf = fixtures::compare(causal, ref);
  INFO("causal vs HF: " << vs_hf.str());
  CHECK(vs_hf.rel > 100 * kTol);
  const fixtures::Diff vs_causal = fixtures::compare(causal, fixtures::matrix(expected(), "causal_logits"));
  INFO("causal vs HF's causal fallback: " << vs_causal.str());
  CHECK(vs_causal.rel <= kTol);
}

TEST_CASE("rule: an image never sees a later image (transformers 4.50's one-group bug)", "[vision][rules]") {
  std::vector<int> one_group = hf_groups();
  for (int& g : one_group) g = g >= 0 ? 0 : -1;
  const Matrix wrong = logits_with_groups(one_group);
  const fixtures::Diff vs_hf = fixtures::compare(wrong, fixtures::matrix(expected(), "logits"));
  INFO("one group vs HF: " << vs_hf.str());
  CHECK(vs_hf.rel > 100 * kTol);
  // ... and it is exactly what HF computes with that (wrong) mask.
  const fixtures::Diff vs_alt = fixtures::compare(wrong, fixtures::matrix(expected(), "alt_logits_one_group"));
  INFO("one group vs HF with the one-group mask: " << vs_alt.str());
  CHECK(vs_alt.rel <= kTol);
}

TEST_CASE("rule: sliding layers keep the window on image tokens (HF 5.24), not window OR image", "[vision][rules]") {
  // The fixture's window (3) is shorter than an image (4 soft tokens); there the spec's
  // "(causal AND window) OR same_image" differs from HF's "window AND (causal OR same_image)".
  REQUIRE(model().language_model().config().sliding_window < model().vision_config().mm_tokens_per_image);
  const fixtures::Diff d =
      fixtures::compare(fixtures::matrix(expected(), "alt_logits_or_rule"), fixtures::matrix(expected(), "logits"));
  INFO("HF with the OR rule vs HF: " << d.str());
  CHECK(d.rel > 100 * kTol);  // so matching `logits` (above) pins HF's rule
}

TEST_CASE("rule: image features are not scaled by sqrt(hidden_size)", "[vision][rules]") {
  const float s = gemma3::embed_scale(model().language_model().config().hidden_size);
  const fixtures::Diff d = fixtures::compare(logits_with_groups(hf_groups(), s), fixtures::matrix(expected(), "logits"));
  INFO("scaled features vs HF: " << d.str());
  CHECK(d.rel > 100 * kTol);
}

TEST_CASE("rule: mm_input_projection_weight is applied as x . M (stored [vision, text])", "[vision][rules]") {
  // Use M^T's data as if it were M (i.e. forget the transpose): only possible when
  // the widths are equal, so compare the loaded copy with the file instead.
  const gemma3::SafetensorsFile f(tiny_dir() + "/model.safetensors");
  const gemma3::TensorView& M = f.at("multi_modal_projector.mm_input_projection_weight");
  REQUIRE(M.shape == std::vector<std::int64_t>{32, 48});  // [vision_hidden, text_hidden]
  const gemma3::Weight& W = model().vision_weights().multi_modal_projector.mm_input_projection;
  CHECK(W.rows == 48);
  CHECK(W.cols == 32);
  const float* m = reinterpret_cast<const float*>(M.data);
  const float* w = static_cast<const float*>(W.data);
  int mismatches = 0;
  for (int i = 0; i < 32; ++i)
    for (int j = 0; j < 48; ++j) mismatches += w[j * 32 + i] != m[i * 48 + j];
  CHECK(mismatches == 0);
}

TEST_CASE("weights load under every key scheme transformers has written", "[vision]") {
  // 5.24's own save (the fixture): language_model.model., vision_tower., multi_modal_projector.
  const gemma3::SafetensorsFile src(tiny_dir() + "/model.safetensors");
  struct Scheme {
    const char* name;
    const char* text;
    const char* vision;
    const char* projector;
  };
  const Scheme schemes[] = {
      {"released (4.50)", "language_model.model.", "vision_tower.vision_model.", "multi_modal_projector."},
      {"re-saved (>= 4.52)", "model.language_model.", "model.vision_tower.vision_model.", "model.multi_modal_projector."},
      {"5.x with model.", "model.language_model.", "model.vision_tower.", "model.multi_modal_projector."}};
  const Matrix pv = fixture_pixels()[1];
  const Matrix want = model().encode_image(pv);
  for (const Scheme& s : schemes) {
    loader_errors::TempDir dir;
    std::vector<loader_errors::StTensor> tensors;
    for (const gemma3::TensorView& t : src.tensors()) {
      std::string name = t.name;
      auto swap = [&](const std::string& from, const std::string& to) {
        if (name.compare(0, from.size(), from) == 0) name = to + name.substr(from.size());
      };
      swap("language_model.model.", s.text);
      swap("vision_tower.", s.vision);
      swap("multi_modal_projector.", s.projector);
      tensors.push_back({name, t.dtype, t.shape, loader_errors::Bytes(t.data, t.data + t.nbytes)});
    }
    loader_errors::write_file(dir / "model.safetensors", loader_errors::serialize_safetensors(tensors));
    std::filesystem::copy_file(tiny_dir() + "/config.json", dir / "config.json");
    const gemma3::Gemma3ForConditionalGeneration m = gemma3::load_hf_multimodal_model(dir.str());
    INFO(s.name);
    REQUIRE(m.has_vision());
    CHECK((m.encode_image(pv) - want).cwiseAbs().maxCoeff() == 0.0f);
  }
}

TEST_CASE("bad input: an image for a text-only model", "[vision]") {
  const gemma3::Gemma3ForConditionalGeneration text_only =
      gemma3::load_hf_multimodal_model(fixtures::path("tiny_global_last"));
  CHECK(!text_only.has_vision());
  gemma3::KVCache cache = text_only.new_cache(64);
  REQUIRE_THROWS_NAMING(std::invalid_argument, text_only.forward({2, 3, 4}, fixture_pixels(), cache),
                        "no vision tower", "text-only");
  REQUIRE_THROWS_NAMING(std::invalid_argument, text_only.preprocess(vision_fixtures::formula_image(4, 4, 1)),
                        "no vision tower");
  CHECK(cache.length() == 0);
  // Text alone still works.
  CHECK(text_only.forward({2, 3, 4}, {}, cache).rows() == 3);
}

TEST_CASE("bad input: more image tokens than the context holds, or images that do not match the prompt", "[vision]") {
  const std::vector<int> ids = fixtures::ids(expected(), "input_ids");
  gemma3::KVCache small = model().new_cache(32);
  REQUIRE_THROWS_NAMING(std::length_error, model().forward(ids, fixture_pixels(), small), "does not fit",
                        "20 of them image soft tokens", "5 images or crops");
  CHECK(small.length() == 0);
  gemma3::KVCache cache = model().new_cache(128);
  std::vector<Matrix> four = fixture_pixels();
  four.pop_back();
  REQUIRE_THROWS_NAMING(std::invalid_argument, model().forward(ids, four, cache), "5 groups", "expected 4 groups");
  std::vector<int> short_group = ids;
  short_group.erase(std::find(short_group.begin(), short_group.end(), 300));  // an image with 3 soft tokens
  REQUIRE_THROWS_NAMING(std::invalid_argument, model().forward(short_group, fixture_pixels(), cache), "image soft tokens");
  REQUIRE_THROWS_AS(model().encode_image(Matrix::Zero(3, 10)), std::invalid_argument);
  CHECK(cache.length() == 0);
}

TEST_CASE("bad input: missing or misshapen vision tensors name the tensor", "[vision]") {
  const gemma3::SafetensorsFile src(tiny_dir() + "/model.safetensors");
  auto write_without = [&](const loader_errors::TempDir& dir, const std::string& drop, const std::string& reshape) {
    std::vector<loader_errors::StTensor> tensors;
    for (const gemma3::TensorView& t : src.tensors()) {
      if (t.name == drop) continue;
      std::vector<std::int64_t> shape = t.shape;
      if (t.name == reshape) shape = {t.numel()};
      tensors.push_back({t.name, t.dtype, shape, loader_errors::Bytes(t.data, t.data + t.nbytes)});
    }
    loader_errors::write_file(dir / "model.safetensors", loader_errors::serialize_safetensors(tensors));
    std::filesystem::copy_file(tiny_dir() + "/config.json", dir / "config.json");
  };
  {
    loader_errors::TempDir dir;
    write_without(dir, "vision_tower.encoder.layers.1.mlp.fc2.bias", "");
    REQUIRE_THROWS_NAMING(gemma3::CheckpointError, gemma3::load_hf_multimodal_model(dir.str()),
                          "vision_tower.vision_model.encoder.layers.1.mlp.fc2.bias", "found none");
  }
  {
    loader_errors::TempDir dir;
    write_without(dir, "", "multi_modal_projector.mm_input_projection_weight");
    REQUIRE_THROWS_NAMING(gemma3::CheckpointError, gemma3::load_hf_multimodal_model(dir.str()),
                          "multi_modal_projector.mm_input_projection_weight", "expected shape [32, 48]", "found [1536]");
  }
}

TEST_CASE("image groups and the mask rule, position by position", "[vision]") {
  // HF's get_block_sequence_ids_for_mask: a new group at each run of soft tokens.
  CHECK(gemma3::image_group_ids({0, 1, 1, 0, 1, 1, 1, 0, 1}) == std::vector<int>{-1, 0, 0, -1, 1, 1, 1, -1, 2});
  const gemma3::ImageGroups g(gemma3::image_group_ids({0, 1, 1, 0, 1, 1, 1, 0}), 10);  // positions 10..17
  CHECK(g.last_visible_key(11) == 12);  // image 0: positions 11, 12
  CHECK(g.last_visible_key(14) == 16);  // image 1: positions 14, 15, 16
  CHECK(g.last_visible_key(13) == 13);  // text
  CHECK(g.same_group(14, 16));
  CHECK(!g.same_group(11, 14));         // never a later image
  CHECK(!g.same_group(13, 13));         // text is in no group
  // Global layer: causal OR same image.
  CHECK(gemma3::may_attend(false, 3, 14, 16, g.same_group(14, 16)));
  CHECK(!gemma3::may_attend(false, 3, 12, 14, g.same_group(12, 14)));
  CHECK(gemma3::may_attend(false, 3, 16, 11, g.same_group(16, 11)));  // an earlier image, causally
  // Sliding layer, W = 2: the window still bounds how far back an image token sees (HF 5.24) ...
  CHECK(!gemma3::may_attend(true, 2, 16, 14, g.same_group(16, 14)));
  // ... while it may look forward to the end of its image.
  CHECK(gemma3::may_attend(true, 2, 14, 16, g.same_group(14, 16)));
}
