// gemma3/vision/mmproj.hpp -- the vision tower and projector from a llama.cpp "mmproj" GGUF.
//
// llama.cpp keeps Gemma 3's vision part in a separate GGUF (mmproj-*.gguf) beside the
// text model's. Its metadata (clip.*) and tensors, as llama.cpp's tools/mtmd/clip-impl.h
// names them (used by build_siglip in tools/mtmd/clip.cpp), mapped onto this library's
// SigLIP / projector weights:
//
//   clip.projector_type (or clip.vision.projector_type) = "gemma3"
//   clip.vision.image_size 896, .patch_size 14, .embedding_length 1152,
//   .feed_forward_length 4304, .block_count 27, .attention.head_count 16,
//   .attention.layer_norm_epsilon 1e-6, .projection_dim = text hidden size,
//   .projector.scale_factor = pool kernel (written only when != 4; default 4)
//
//   v.patch_embd.weight    ne [14, 14, 3, 1152]  = HF patch_embedding.weight [1152, 3, 14, 14]
//   v.patch_embd.bias      [1152]
//   v.position_embd.weight ne [1152, 4096]       = position_embedding.weight
//   v.blk.N.attn_{q,k,v,out}.{weight,bias}       = self_attn.{q,k,v,out}_proj
//   v.blk.N.ln1 / ln2.{weight,bias}              = layer_norm1 / layer_norm2 (plain LayerNorm, stored as is)
//   v.blk.N.ffn_up / ffn_down.{weight,bias}      = mlp.fc1 / mlp.fc2 -- older converters swapped the
//                                                  two names, so (as clip.cpp does) the shapes decide
//   v.post_ln.{weight,bias}                      = post_layernorm
//   mm.input_projection.weight ne [H, 1152]      = mm_input_projection_weight [1152, H], same bytes
//   mm.soft_emb_norm.weight [1152]               = 1 + mm_soft_emb_norm (the converter adds the 1;
//                                                  this loader subtracts it, like gguf_model.hpp)
//
// The image token ids are not in the file; Gemma 3's (255999 / 256000 / 262144) are
// used. llama.cpp's text GGUF has 262144 embedding rows (the 64 padding rows of HF's
// 262208 are dropped), so <image_soft_token> is outside its vocabulary: the model
// embeds it as id 0 and then replaces the row, as transformers does.
//
// No real mmproj file is available offline: this is pinned by
// tests/test_vision_mmproj.cpp with an mmproj written from the tiny HF fixture in
// exactly this layout, whose soft tokens must equal the safetensors path's.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../gguf.hpp"
#include "../gguf_model.hpp"
#include "multimodal.hpp"

namespace gemma3 {

namespace detail {

class MmprojReader {
 public:
  explicit MmprojReader(const GgufFile& f) : f_(f) {}

  const GgufTensorInfo& get(const std::string& name, const std::vector<std::uint64_t>& dims) const {
    const GgufTensorInfo* t = f_.find_tensor(name);
    if (!t) throw GgufError(f_.path() + ": tensor '" + name + "': expected present, found missing");
    if (t->dims != dims)
      throw GgufError(f_.path() + ": tensor '" + name + "': expected dims " + gguf_dims_string(dims) +
                      " (ne0 first, from the clip.vision.* metadata), found " + gguf_dims_string(t->dims));
    return *t;
  }
  DType dtype(const GgufTensorInfo& t, bool allow_quantized) const {
    const std::optional<DType> d = dtype_from_ggml(t.ggml_type);
    if (!d || (!allow_quantized && dtype_is_quantized(*d)))
      throw GgufError(f_.path() + ": tensor '" + t.name + "' type: expected " +
                      (allow_quantized ? "a type the kernels multiply (F32, F16, BF16, Q8_0, ...)" : "F32, F16 or BF16") +
                      ", found " + ggml_type_name(t.ggml_type));
    return *d;
  }
  // A weight viewed as [rows, cols] over a tensor with the given dims.
  Weight matrix(const std::string& name, const std::vector<std::uint64_t>& dims, std::int64_t rows,
                std::int64_t cols) const {
    const GgufTensorInfo& t = get(name, dims);
    Weight w;
    w.dtype = dtype(t, true);
    w.data = t.data;
    w.rows = rows;
    w.cols = cols;
    return w;
  }
  Vector vector(const std::string& name, std::int64_t n) const {
    const GgufTensorInfo& t = get(name, {std::uint64_t(n)});
    Vector v(n);
    to_f32(dtype(t, false), t.data, v.data(), std::size_t(n));
    return v;
  }
  int int_key(const std::string& key, long long lo, long long hi, std::optional<int> fallback = std::nullopt) const {
    if (!f_.find(key) && fallback) return *fallback;
    const std::int64_t v = f_.get_int(key);
    if (v < lo || v > hi)
      throw GgufError(f_.path() + ": key '" + key + "': expected an integer in [" + std::to_string(lo) + ", " +
                      std::to_string(hi) + "], found " + std::to_string(v));
    return int(v);
  }
  const GgufFile& file() const { return f_; }

 private:
  const GgufFile& f_;
};

}  // namespace detail

// The vision config and weights of an mmproj GGUF, for a text model of hidden size text_hidden_size.
// The returned weights keep `f` alive (storage).
inline std::pair<Gemma3VisionConfig, Gemma3VisionWeights> load_mmproj(std::shared_ptr<const GgufFile> file,
                                                                      int text_hidden_size) {
  const GgufFile& f = *file;
  const detail::MmprojReader r(f);
  std::string type;
  if (f.find("clip.projector_type")) type = f.get_string("clip.projector_type");
  else if (f.find("clip.vision.projector_type")) type = f.get_string("clip.vision.projector_type");
  if (type != "gemma3")
    throw GgufError(f.path() + ": key 'clip.projector_type': expected \"gemma3\" (a Gemma 3 mmproj file), found " +
                    (type.empty() ? std::string("nothing") : "\"" + type + "\""));

  Gemma3VisionConfig c;
  SiglipVisionConfig& v = c.vision_config;
  v.image_size = r.int_key("clip.vision.image_size", 1, 1 << 14);
  v.patch_size = r.int_key("clip.vision.patch_size", 1, 1 << 10);
  v.hidden_size = r.int_key("clip.vision.embedding_length", 1, 1 << 16);
  v.intermediate_size = r.int_key("clip.vision.feed_forward_length", 1, 1 << 20);
  v.num_hidden_layers = r.int_key("clip.vision.block_count", 1, 1024);
  v.num_attention_heads = r.int_key("clip.vision.attention.head_count", 1, 1024);
  v.layer_norm_eps = f.get_float("clip.vision.attention.layer_norm_epsilon");
  v.vision_use_head = false;
  const int projection_dim = r.int_key("clip.vision.projection_dim", 1, 1 << 16);
  if (projection_dim != text_hidden_size)
    throw GgufError(f.path() + ": key 'clip.vision.projection_dim': expected the text model's hidden size " +
                    std::to_string(text_hidden_size) + ", found " + std::to_string(projection_dim));
  const int pool = r.int_key("clip.vision.projector.scale_factor", 1, 1 << 10, 4);
  if (v.image_size % v.patch_size != 0 || v.patches_per_side() % pool != 0)
    throw GgufError(f.path() + ": keys clip.vision.image_size / patch_size / projector.scale_factor: expected " +
                    "image_size / patch_size divisible by the pool " + std::to_string(pool) + ", found " +
                    std::to_string(v.image_size) + " / " + std::to_string(v.patch_size));
  const int side = v.patches_per_side() / pool;
  c.mm_tokens_per_image = side * side;
  c.validate(f.path());

  using U = std::uint64_t;
  const U Hv = U(v.hidden_size), I = U(v.intermediate_size), p = U(v.patch_size), Ht = U(text_hidden_size);
  Gemma3VisionWeights w;
  SiglipVisionWeights& t = w.vision_tower;
  t.patch_embedding = r.matrix("v.patch_embd.weight", {p, p, 3, Hv}, std::int64_t(Hv), v.patch_dim());
  t.patch_bias = r.vector("v.patch_embd.bias", std::int64_t(Hv));
  t.position_embedding = r.matrix("v.position_embd.weight", {Hv, U(v.num_patches())}, v.num_patches(), std::int64_t(Hv));
  auto layer_norm = [&](const std::string& name) {
    return LayerNormWeights{r.vector(name + ".weight", std::int64_t(Hv)), r.vector(name + ".bias", std::int64_t(Hv))};
  };
  for (int i = 0; i < v.num_hidden_layers; ++i) {
    const std::string b = "v.blk." + std::to_string(i) + ".";
    SiglipEncoderLayerWeights e;
    e.layer_norm1 = layer_norm(b + "ln1");
    e.layer_norm2 = layer_norm(b + "ln2");
    auto proj = [&](const std::string& name, Weight& W, Vector& bias, U out, U in) {
      W = r.matrix(b + name + ".weight", {in, out}, std::int64_t(out), std::int64_t(in));
      bias = r.vector(b + name + ".bias", std::int64_t(out));
    };
    proj("attn_q", e.q_proj, e.q_bias, Hv, Hv);
    proj("attn_k", e.k_proj, e.k_bias, Hv, Hv);
    proj("attn_v", e.v_proj, e.v_bias, Hv, Hv);
    proj("attn_out", e.out_proj, e.out_bias, Hv, Hv);
    // fc1 maps hidden -> intermediate (ne [Hv, I]); which of ffn_up / ffn_down holds it depends on the converter.
    const GgufTensorInfo* up = f.find_tensor(b + "ffn_up.weight");
    const bool swapped = up && up->dims == std::vector<U>{I, Hv} && I != Hv;
    proj(swapped ? "ffn_down" : "ffn_up", e.fc1, e.fc1_bias, I, Hv);
    proj(swapped ? "ffn_up" : "ffn_down", e.fc2, e.fc2_bias, Hv, I);
    t.layers.push_back(std::move(e));
  }
  t.post_layernorm = layer_norm("v.post_ln");

  Gemma3MultiModalProjectorWeights& m = w.multi_modal_projector;
  m.mm_soft_emb_norm = r.vector("mm.soft_emb_norm.weight", std::int64_t(Hv));
  m.mm_soft_emb_norm.array() -= 1.0f;  // stored as 1 + w
  const GgufTensorInfo& M = r.get("mm.input_projection.weight", {Ht, Hv});  // bytes of HF's M [Hv, Ht]
  const DType md = r.dtype(M, true);
  Matrix m_f32(static_cast<Eigen::Index>(Hv), static_cast<Eigen::Index>(Ht));  // [vision_hidden, text_hidden]
  const Weight as_rows{md, M.data, std::int64_t(Hv), std::int64_t(Ht)};
  for (std::int64_t row = 0; row < std::int64_t(Hv); ++row) dequantize_row(as_rows, row, m_f32.row(row).data());
  auto transposed = std::make_shared<Matrix>(m_f32.transpose());  // [text_hidden, vision_hidden], once at load
  m.mm_input_projection = Weight{DType::F32, transposed->data(), std::int64_t(Ht), std::int64_t(Hv)};
  w.storage.push_back(file);
  w.storage.push_back(transposed);
  return {c, std::move(w)};
}

inline std::pair<Gemma3VisionConfig, Gemma3VisionWeights> load_mmproj(const std::string& path, int text_hidden_size) {
  return load_mmproj(std::make_shared<const GgufFile>(path), text_hidden_size);
}

// A llama.cpp pair: the text model's GGUF and its mmproj GGUF.
inline Gemma3ForConditionalGeneration load_gguf_multimodal_model(const std::string& model_path,
                                                                 const std::string& mmproj_path,
                                                                 Vocabulary* vocab = nullptr) {
  Gemma3ForCausalLM text = load_gguf_model(model_path, vocab);
  auto [config, weights] = load_mmproj(mmproj_path, text.config().hidden_size);
  return Gemma3ForConditionalGeneration(std::move(text), config, std::move(weights));
}

}  // namespace gemma3
