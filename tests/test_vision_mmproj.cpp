// llama.cpp mmproj GGUF loading (vision/mmproj.hpp). No real mmproj file exists
// offline, so these tests write one from the tiny HF fixture (tests/fixtures/vision_tiny)
// in llama.cpp's layout -- clip.* metadata, v.* / mm.* tensor names, dims ne0 first,
// soft_emb_norm stored as 1 + w -- and require the same soft tokens and logits as the
// safetensors path.
#include <cmath>

#include "catch.hpp"
#include "loader_error_helpers.hpp"
#include "test_gguf_writer.hpp"
#include "test_vision_helpers.hpp"

#include "gemma3/vision/mmproj.hpp"

using gemma3::Matrix;

namespace {

constexpr double kTol = 1e-4;

std::string tiny_dir() { return fixtures::path("vision_tiny"); }

const gemma3::Gemma3ForConditionalGeneration& hf_model() {
  static const gemma3::Gemma3ForConditionalGeneration m = gemma3::load_hf_multimodal_model(tiny_dir());
  return m;
}

struct MmprojOptions {
  bool f16_matrices = false;   // patch embedding and input projection as F16, as llama.cpp writes them
  bool legacy_ffn_names = false;  // fc1 as ffn_down, fc2 as ffn_up (older converters)
};

// The tiny fixture's vision weights as a Gemma 3 mmproj GGUF.
gguf_test::Writer mmproj_writer(const MmprojOptions& o = {}) {
  const gemma3::SafetensorsFile st(tiny_dir() + "/model.safetensors");
  gguf_test::Writer w;
  using V = gguf_test::Value;
  w.add("general.architecture", V::string("clip"));
  w.add("clip.projector_type", V::string("gemma3"));
  w.add("clip.has_vision_encoder", V::boolean(true));
  w.add("clip.use_gelu", V::boolean(true));
  w.add("clip.vision.image_size", V::u32(56));
  w.add("clip.vision.patch_size", V::u32(7));
  w.add("clip.vision.embedding_length", V::u32(32));
  w.add("clip.vision.feed_forward_length", V::u32(40));
  w.add("clip.vision.block_count", V::u32(2));
  w.add("clip.vision.attention.head_count", V::u32(4));
  w.add("clip.vision.attention.layer_norm_epsilon", V::f32(1e-5f));
  w.add("clip.vision.projection_dim", V::u32(48));
  w.add("clip.vision.image_mean", V::f32s({0.5f, 0.5f, 0.5f}));
  w.add("clip.vision.image_std", V::f32s({0.5f, 0.5f, 0.5f}));
  // 56 / 7 = 8 patches per side pooled to 2: scale factor 4 (the default, written anyway)
  w.add("clip.vision.projector.scale_factor", V::u32(4));

  auto put = [&](const std::string& gguf_name, const std::string& hf_name, bool f16, float add = 0.0f) {
    const gemma3::TensorView& t = st.at(hf_name);
    std::vector<std::uint64_t> dims(t.shape.rbegin(), t.shape.rend());  // ne0 first
    std::vector<float> values(std::size_t(t.numel()));
    std::memcpy(values.data(), t.data, t.nbytes);
    for (float& x : values) x += add;
    gguf_test::Bytes bytes;
    if (f16) {
      bytes.resize(values.size() * 2);
      for (std::size_t i = 0; i < values.size(); ++i) {
        const std::uint16_t h = gemma3::f32_to_f16(values[i]);
        std::memcpy(&bytes[2 * i], &h, 2);
      }
    } else {
      bytes.resize(values.size() * 4);
      std::memcpy(bytes.data(), values.data(), bytes.size());
    }
    w.tensor(gguf_name, f16 ? 1u : 0u, dims, bytes);
  };
  const std::string v = "vision_tower.";
  put("v.patch_embd.weight", v + "embeddings.patch_embedding.weight", o.f16_matrices);
  put("v.patch_embd.bias", v + "embeddings.patch_embedding.bias", false);
  put("v.position_embd.weight", v + "embeddings.position_embedding.weight", false);
  for (int i = 0; i < 2; ++i) {
    const std::string b = "v.blk." + std::to_string(i) + ".", h = v + "encoder.layers." + std::to_string(i) + ".";
    for (const char* s : {"weight", "bias"}) {
      put(b + "attn_q." + s, h + "self_attn.q_proj." + s, false);
      put(b + "attn_k." + s, h + "self_attn.k_proj." + s, false);
      put(b + "attn_v." + s, h + "self_attn.v_proj." + s, false);
      put(b + "attn_out." + s, h + "self_attn.out_proj." + s, false);
      put(b + "ln1." + s, h + "layer_norm1." + s, false);
      put(b + "ln2." + s, h + "layer_norm2." + s, false);
      put(b + (o.legacy_ffn_names ? "ffn_down." : "ffn_up.") + s, h + "mlp.fc1." + s, false);
      put(b + (o.legacy_ffn_names ? "ffn_up." : "ffn_down.") + s, h + "mlp.fc2." + s, false);
    }
  }
  put("v.post_ln.weight", v + "post_layernorm.weight", false);
  put("v.post_ln.bias", v + "post_layernorm.bias", false);
  put("mm.input_projection.weight", "multi_modal_projector.mm_input_projection_weight", o.f16_matrices);
  put("mm.soft_emb_norm.weight", "multi_modal_projector.mm_soft_emb_norm.weight", false, 1.0f);  // + 1 baked in
  return w;
}

gemma3::Gemma3ForConditionalGeneration with_mmproj(const std::string& path) {
  auto [config, weights] = gemma3::load_mmproj(path, 48);
  // The file has no token ids (Gemma 3's real ones are the defaults); the tiny vocabulary uses 300..302.
  config.image_token_index = hf_model().vision_config().image_token_index;
  config.boi_token_index = hf_model().vision_config().boi_token_index;
  config.eoi_token_index = hf_model().vision_config().eoi_token_index;
  return gemma3::Gemma3ForConditionalGeneration(hf_model().language_model(), config, std::move(weights));
}

}  // namespace

TEST_CASE("mmproj GGUF: soft tokens and logits equal the safetensors path", "[vision][gguf]") {
  const gemma3::SafetensorsFile expected(tiny_dir() + "/expected.safetensors");
  for (const bool legacy : {false, true}) {
    loader_errors::TempDir dir;
    MmprojOptions o;
    o.legacy_ffn_names = legacy;
    loader_errors::write_file(dir / "mmproj.gguf", mmproj_writer(o).bytes());
    const gemma3::Gemma3ForConditionalGeneration m = with_mmproj((dir / "mmproj.gguf").string());
    INFO((legacy ? "legacy ffn names" : "current ffn names"));
    CHECK(m.vision_config().mm_tokens_per_image == 4);
    CHECK(m.vision_config().vision_config.layer_norm_eps == Approx(1e-5));
    std::vector<Matrix> pv;
    for (std::int64_t i = 0; i < 5; ++i) pv.push_back(vision_fixtures::f32_slice(expected, "pixel_values", i, 3));
    CHECK((m.encode_image(pv[0]) - hf_model().encode_image(pv[0])).cwiseAbs().maxCoeff() == 0.0f);
    gemma3::KVCache cache = m.new_cache(128);
    const fixtures::Diff d =
        fixtures::compare(m.forward(fixtures::ids(expected, "input_ids"), pv, cache), fixtures::matrix(expected, "logits"));
    INFO("logits: " << d.str());
    CHECK(d.rel <= kTol);
  }
}

TEST_CASE("mmproj GGUF: F16 patch embedding and projection (as llama.cpp writes them)", "[vision][gguf]") {
  loader_errors::TempDir dir;
  MmprojOptions o;
  o.f16_matrices = true;
  loader_errors::write_file(dir / "mmproj.gguf", mmproj_writer(o).bytes());
  const gemma3::Gemma3ForConditionalGeneration m = with_mmproj((dir / "mmproj.gguf").string());
  CHECK(m.vision_weights().vision_tower.patch_embedding.dtype == gemma3::DType::F16);
  const gemma3::SafetensorsFile expected(tiny_dir() + "/expected.safetensors");
  const Matrix pv = vision_fixtures::f32_slice(expected, "pixel_values", 2, 3);
  const fixtures::Diff d = fixtures::compare(m.encode_image(pv), vision_fixtures::f32_slice(expected, "image_features", 2, 4));
  INFO("f16-rounded weights vs the f32 reference: " << d.str());
  CHECK(d.rel > 0.0);   // the rounding is visible ...
  CHECK(d.rel < 2e-2);  // ... and small
}

TEST_CASE("mmproj GGUF: bad files name the key or tensor", "[vision][gguf]") {
  loader_errors::TempDir dir;
  const std::string path = (dir / "mmproj.gguf").string();
  auto write = [&](gguf_test::Writer w) { loader_errors::write_file(path, w.bytes()); };

  write(mmproj_writer().add("clip.projector_type", gguf_test::Value::string("mlp")));
  REQUIRE_THROWS_NAMING(gemma3::GgufError, gemma3::load_mmproj(path, 48), "mmproj.gguf", "clip.projector_type", "\"mlp\"");

  write(mmproj_writer().erase("clip.projector_type"));
  REQUIRE_THROWS_NAMING(gemma3::GgufError, gemma3::load_mmproj(path, 48), "clip.projector_type", "nothing");

  write(mmproj_writer());
  REQUIRE_THROWS_NAMING(gemma3::GgufError, gemma3::load_mmproj(path, 64), "clip.vision.projection_dim", "64", "48");

  write(mmproj_writer().erase_tensor("v.blk.1.attn_k.bias"));
  REQUIRE_THROWS_NAMING(gemma3::GgufError, gemma3::load_mmproj(path, 48), "v.blk.1.attn_k.bias", "missing");

  gguf_test::Writer bad_dims = mmproj_writer();
  bad_dims.find_tensor("mm.input_projection.weight")->dims = {32, 48};  // transposed: not what the converter writes
  write(bad_dims);
  REQUIRE_THROWS_NAMING(gemma3::GgufError, gemma3::load_mmproj(path, 48), "mm.input_projection.weight",
                        "expected dims [48, 32]", "found [32, 48]");

  write(mmproj_writer().add("clip.vision.block_count", gguf_test::Value::u32(0)));
  REQUIRE_THROWS_NAMING(gemma3::GgufError, gemma3::load_mmproj(path, 48), "clip.vision.block_count");

  write(mmproj_writer().add("clip.vision.projector.scale_factor", gguf_test::Value::u32(3)));
  REQUIRE_THROWS_NAMING(gemma3::GgufError, gemma3::load_mmproj(path, 48), "scale_factor");
}
