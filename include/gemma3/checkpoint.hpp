// gemma3/checkpoint.hpp -- load a Hugging Face checkpoint folder into Gemma3ForCausalLM.
//
//   folder/config.json                                     (config_json.hpp)
//   folder/model.safetensors                               one file, or
//   folder/model.safetensors.index.json + its shards       {"weight_map": {tensor: shard file}}
//
// Tensor names: the HF column of weight_names.hpp's table (kTextWeightNames; printed in
// docs/weights.md), read in its order by read_text_weights. They are accepted under
// every prefix transformers has written for the text decoder:
//   model.                   Gemma3ForCausalLM                  model.layers.0.self_attn.q_proj.weight
//   language_model.model.    released multimodal checkpoints    language_model.model.layers.0...
//   model.language_model.    transformers >= 4.52 re-saves       model.language_model.layers.0...
// Vision tower, projector and lm_head.weight (tied) are ignored here; the vision
// loader (vision/multimodal.hpp) reads them through stored_tensor().
//
// dtypes: F32, BF16 and F16 weight matrices stay in their stored dtype, as views
// into the mapped file, and are widened to float32 by the matmul kernels where
// they are used (kernels/matmul.hpp): a bf16 checkpoint costs its file size, not
// twice it. The small norm vectors are converted to float32 once at load.
// Every tensor's presence, dtype and shape is checked against the config before
// use; errors name the file, the tensor, the expected and the found value.
//
// Pinned by tests/test_model.cpp (three fixtures: f32 / bf16 / sharded f16 under
// the language_model.model. prefix) and tests/test_loader_errors.cpp.
#pragma once

#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "config_json.hpp"
#include "model.hpp"
#include "safetensors.hpp"
#include "weight_names.hpp"

namespace gemma3 {

struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class HfCheckpoint {
 public:
  explicit HfCheckpoint(const std::string& folder) : folder_(folder) {
    config_ = load_config_json(join("config.json"));
    const std::string index_path = join("model.safetensors.index.json");
    if (exists(index_path)) {
      open_sharded(index_path);
    } else if (exists(join("model.safetensors"))) {
      add_file(join("model.safetensors"));
    } else {
      throw CheckpointError(folder + ": expected model.safetensors or model.safetensors.index.json, found neither");
    }
    index();
  }

  const Gemma3TextConfig& config() const { return config_; }

  // The tensor called `name` after its prefix (e.g. "layers.0.mlp.up_proj.weight"),
  // checked to have `shape` and a float dtype.
  const TensorView& tensor(const std::string& name, const std::vector<std::int64_t>& shape) const {
    const auto it = by_name_.find(name);
    if (it == by_name_.end())
      throw CheckpointError(folder_ + ": tensor '" + name + "' (under model., language_model.model. or "
                            "model.language_model.): expected present, found missing");
    return checked(*it->second.view, it->second.file, shape);
  }

  // The first of `names` (full names, as stored) that exists, checked like tensor().
  // For the parts whose prefixes differ between transformers versions (vision tower).
  const TensorView& stored_tensor(const std::vector<std::string>& names, const std::vector<std::int64_t>& shape) const {
    for (const std::string& name : names)
      for (const SafetensorsFile& f : files_)
        if (const TensorView* t = f.find(name)) return checked(*t, f.path(), shape);
    std::string tried;
    for (const std::string& name : names) tried += (tried.empty() ? "'" : ", '") + name + "'";
    throw CheckpointError(folder_ + ": tensor " + tried + ": expected one of these present, found none");
  }

  static DType float_dtype(const TensorView& t) {
    return t.dtype == "F32" ? DType::F32 : t.dtype == "BF16" ? DType::BF16 : DType::F16;
  }

  Weight matrix(const std::string& name, std::int64_t rows, std::int64_t cols) const {
    const TensorView& t = tensor(name, {rows, cols});
    Weight w;
    w.dtype = float_dtype(t);
    w.data = t.data;
    w.rows = rows;
    w.cols = cols;
    return w;
  }

  Vector vector(const std::string& name, std::int64_t n) const {
    const TensorView& t = tensor(name, {n});
    Vector v(n);
    const DType d = t.dtype == "F32" ? DType::F32 : t.dtype == "BF16" ? DType::BF16 : DType::F16;
    to_f32(d, t.data, v.data(), std::size_t(n));
    return v;
  }

  std::vector<std::shared_ptr<const void>> storage() const {
    std::vector<std::shared_ptr<const void>> s;
    for (const SafetensorsFile& f : files_) s.push_back(f.storage());
    return s;
  }

 private:
  struct Entry {
    const TensorView* view;
    std::string file;
  };

  static const TensorView& checked(const TensorView& t, const std::string& file, const std::vector<std::int64_t>& shape) {
    const std::string where = file + ": tensor '" + t.name + "'";
    if (t.dtype != "F32" && t.dtype != "BF16" && t.dtype != "F16")
      throw CheckpointError(where + ": expected dtype F32, BF16 or F16, found " + t.dtype);
    if (t.shape != shape)
      throw CheckpointError(where + ": expected shape " + shape_string(shape) + " (from config.json), found " +
                            shape_string(t.shape));
    return t;
  }

  std::string join(const std::string& name) const { return folder_ + "/" + name; }
  static bool exists(const std::string& path) { return std::ifstream(path).good(); }

  // The decoder-relative name, or "" for tensors this loader does not use.
  static std::string strip_prefix(const std::string& name) {
    for (const char* prefix : {"model.language_model.", "language_model.model.", "model."}) {
      const std::string p(prefix);
      if (name.compare(0, p.size(), p) == 0) return name.substr(p.size());
    }
    return "";
  }

  void add_file(const std::string& path) {
    files_.emplace_back(path);
  }

  void open_sharded(const std::string& index_path) {
    std::ifstream f(index_path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    detail::Json root;
    try {
      root = detail::parse_json(ss.str());
    } catch (const detail::JsonError& e) {
      throw CheckpointError(index_path + ": " + e.what());
    }
    const detail::Json* map = root.is_object() ? root.find("weight_map") : nullptr;
    if (!map || !map->is_object())
      throw CheckpointError(index_path + ": field 'weight_map': expected an object, found " +
                            (map ? map->kind_name() : "nothing"));
    std::map<std::string, std::size_t> shard_index;  // shard file -> files_ index
    std::vector<std::pair<std::string, std::string>> listed;
    for (const auto& kv : map->object) {
      if (!kv.second.is_string())
        throw CheckpointError(index_path + ": weight_map['" + kv.first + "']: expected a file name, found " +
                              kv.second.kind_name());
      const std::string& shard = kv.second.string;
      if (shard.empty() || shard.find('/') != std::string::npos || shard.find('\\') != std::string::npos ||
          shard == "." || shard == "..")
        throw CheckpointError(index_path + ": weight_map['" + kv.first +
                              "']: expected a file name inside the folder, found \"" + shard + "\"");
      if (!shard_index.count(shard)) {
        if (!exists(join(shard)))
          throw CheckpointError(index_path + ": weight_map['" + kv.first + "']: expected an existing file " +
                                join(shard) + ", found none");
        shard_index[shard] = files_.size();
        add_file(join(shard));
      }
      listed.emplace_back(kv.first, shard);
    }
    for (const auto& [name, shard] : listed)
      if (!files_[shard_index[shard]].find(name))
        throw CheckpointError(index_path + ": weight_map['" + name + "']: expected the tensor in " + shard +
                              ", found it missing there");
  }

  // The name table, built once all files are open.
  void index() {
    by_name_.clear();
    for (const SafetensorsFile& f : files_)
      for (const TensorView& t : f.tensors()) {
        const std::string short_name = strip_prefix(t.name);
        if (short_name.empty()) continue;
        if (by_name_.count(short_name))
          throw CheckpointError(f.path() + ": tensor '" + t.name + "': expected one tensor for '" + short_name +
                                "', found a second one: '" + by_name_[short_name].view->name + "' in " +
                                by_name_[short_name].file);
        by_name_[short_name] = Entry{&t, f.path()};
      }
  }

  std::string folder_;
  Gemma3TextConfig config_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, Entry> by_name_;
};

// Load the text decoder from an opened checkpoint folder: every tensor of
// weight_names.hpp's table under its HF name, checked against the config.
// `backend`: the one the model runs on (null: the default of model.hpp).
inline Gemma3ForCausalLM load_hf_model(const HfCheckpoint& ckpt, std::shared_ptr<const Backend> backend = nullptr) {
  const Gemma3TextConfig& c = ckpt.config();
  Gemma3TextWeights w = read_text_weights(
      c, &TextWeightName::hf,
      [&](const std::string& name, std::int64_t rows, std::int64_t cols) { return ckpt.matrix(name, rows, cols); },
      [&](const std::string& name, std::int64_t n) { return ckpt.vector(name, n); });
  w.storage = ckpt.storage();
  return Gemma3ForCausalLM(c, std::move(w), std::move(backend));
}

// Load the text decoder from a checkpoint folder (see the top of this file).
inline Gemma3ForCausalLM load_hf_model(const std::string& folder, std::shared_ptr<const Backend> backend = nullptr) {
  return load_hf_model(HfCheckpoint(folder), std::move(backend));
}

}  // namespace gemma3
