// Each Gemma-specific rule, done the common wrong way inside a whole model, must
// fail the transformers reference that the right way matches (test_model.cpp).
// This proves the fixtures can tell the difference: a test that passes either
// way pins nothing. Component-level versions are in test_components.cpp.
#include <functional>

#include "catch.hpp"
#include "fixture_helpers.hpp"

#include "gemma3/checkpoint.hpp"

using gemma3::Matrix;

namespace {

constexpr double kTol = 1e-4;

// Relative error of the model's logits, after `mutate` changed its config or
// weights, against the reference logits of fixture `name`.
double logits_error(const std::string& name,
                    const std::function<void(gemma3::Gemma3TextConfig&, gemma3::Gemma3TextWeights&)>& mutate,
                    float embed_scale = 0.0f) {
  const gemma3::Gemma3ForCausalLM loaded = gemma3::load_hf_model(fixtures::path(name));
  gemma3::Gemma3TextConfig config = loaded.config();
  gemma3::Gemma3TextWeights weights = loaded.weights();
  config.attn_logit_softcapping.reset();  // as transformers computes it (see test_model.cpp)
  mutate(config, weights);
  gemma3::Gemma3ForCausalLM model(config, weights);
  if (embed_scale != 0.0f) model.set_embed_scale(embed_scale);
  const gemma3::SafetensorsFile expected(fixtures::path(name) + "/expected.safetensors");
  gemma3::KVCache cache = model.new_cache(64);
  const Matrix logits = model.forward(fixtures::ids(expected, "input_ids"), cache);
  const fixtures::Diff d = fixtures::compare(logits, fixtures::matrix(expected, "logits"));
  UNSCOPED_INFO(name << ": " << d.str());
  return d.rel;
}

void unchanged(gemma3::Gemma3TextConfig&, gemma3::Gemma3TextWeights&) {}

}  // namespace

TEST_CASE("rule: RMSNorm multiplies by (1 + w), not w", "[rules]") {
  CHECK(logits_error("tiny_global_last", unchanged) <= kTol);
  // x_hat * w is what (1 + w') computes with w' = w - 1, for all norms of the model.
  CHECK(logits_error("tiny_global_last", [](gemma3::Gemma3TextConfig&, gemma3::Gemma3TextWeights& w) {
          auto shift = [](gemma3::Vector& v) { v.array() -= 1.0f; };
          for (auto& l : w.layers) {
            shift(l.input_layernorm);
            shift(l.post_attention_layernorm);
            shift(l.pre_feedforward_layernorm);
            shift(l.post_feedforward_layernorm);
            shift(l.self_attn.q_norm);
            shift(l.self_attn.k_norm);
          }
          shift(w.norm);
        }) > 100 * kTol);
}

TEST_CASE("rule: embeddings are scaled by sqrt(hidden_size) in the activation dtype", "[rules]") {
  const int H = 48;  // tiny_global_last
  // No scale at all.
  CHECK(logits_error("tiny_global_last", unchanged, 1.0f) > 100 * kTol);
  // A float32 model rounding the scale to bf16 (6.9375 instead of 6.928203) is
  // also measurably off: the rounding is a property of the activation dtype.
  REQUIRE(gemma3::embed_scale(H, gemma3::DType::BF16) != gemma3::embed_scale(H));
  CHECK(logits_error("tiny_global_last", unchanged, gemma3::embed_scale(H, gemma3::DType::BF16)) > kTol);
}

TEST_CASE("rule: attention scale is query_pre_attn_scalar^-0.5, not head_dim^-0.5", "[rules]") {
  // tiny_global_last: query_pre_attn_scalar 24, head_dim 16 (27B: 168 vs 128).
  const gemma3::Gemma3TextConfig c0 = gemma3::load_config_json(fixtures::path("tiny_global_last") + "/config.json");
  REQUIRE(c0.query_pre_attn_scalar != c0.head_dim);
  CHECK(logits_error("tiny_global_last", [](gemma3::Gemma3TextConfig& c, gemma3::Gemma3TextWeights&) {
          c.query_pre_attn_scalar = c.head_dim;
        }) > 100 * kTol);
  CHECK(gemma3::gemma3_27b().attention_scale() == Approx(0.0771516750).epsilon(1e-7));
  CHECK(gemma3::gemma3_27b().head_dim == 128);
}

TEST_CASE("rule: local layers use base 10k unscaled, global layers 1M with the scaling", "[rules]") {
  // The global base on local layers too.
  CHECK(logits_error("tiny_global_last", [](gemma3::Gemma3TextConfig& c, gemma3::Gemma3TextWeights&) {
          c.rope_local_base_freq = c.rope_theta;
        }) > 100 * kTol);
  // The local base on global layers too.
  CHECK(logits_error("tiny_global_last", [](gemma3::Gemma3TextConfig& c, gemma3::Gemma3TextWeights&) {
          c.rope_theta = c.rope_local_base_freq;
        }) > 100 * kTol);
  // No linear scaling on global layers.
  REQUIRE(gemma3::load_config_json(fixtures::path("tiny_global_last") + "/config.json").rope_scaling);
  CHECK(logits_error("tiny_global_last", [](gemma3::Gemma3TextConfig& c, gemma3::Gemma3TextWeights&) {
          c.rope_scaling.reset();
        }) > 100 * kTol);
}

TEST_CASE("rule: a sliding layer sees W keys including the query, not W + 1 or W - 1", "[rules]") {
  for (const char* name : {"tiny_global_last", "tiny_local_last", "tiny_sharded_f16"}) {
    CHECK(logits_error(name, unchanged) <= kTol);
    CHECK(logits_error(name, [](gemma3::Gemma3TextConfig& c, gemma3::Gemma3TextWeights&) { c.sliding_window += 1; }) >
          100 * kTol);
    if (gemma3::load_config_json(fixtures::path(name) + "/config.json").sliding_window > 1)
      CHECK(logits_error(name, [](gemma3::Gemma3TextConfig& c, gemma3::Gemma3TextWeights&) { c.sliding_window -= 1; }) >
            100 * kTol);
  }
}

TEST_CASE("rule: which layers are global follows layer_types / the 5:1 pattern", "[rules]") {
  // Making every layer global (no sliding window anywhere) breaks the reference.
  CHECK(logits_error("tiny_global_last", [](gemma3::Gemma3TextConfig& c, gemma3::Gemma3TextWeights&) {
          c.layer_types.assign(c.layer_types.size(), gemma3::LayerType::full_attention);
        }) > 100 * kTol);
}
