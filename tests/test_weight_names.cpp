// weight_names.hpp: the one table of the text decoder's tensors. It is well-formed, and
// it names exactly the tensors of real files, with their shapes: every gemma3 tensor of
// the real 270M GGUF (no unknown name in the file, no table entry missing from it), and
// every text-decoder tensor of the tiny transformers fixtures (single file under model.,
// sharded under language_model.model.).
#include <cstdint>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "catch.hpp"
#include "fixture_helpers.hpp"

#include "gemma3/config_json.hpp"
#include "gemma3/gguf_model.hpp"
#include "gemma3/safetensors.hpp"
#include "gemma3/weight_names.hpp"

namespace {

std::string real_model_path() {
  if (const char* env = std::getenv("GEMMA3_GGUF_MODEL")) return env;
  return fixtures::dir() + "/../../models/gemma-3-270m-q4_k_m.gguf";
}

// name -> the shape the table gives it under `c`, HF order [rows, cols] (or [rows]).
std::map<std::string, std::vector<std::int64_t>> expected_shapes(const char* gemma3::TextWeightName::*column,
                                                                 const gemma3::Gemma3TextConfig& c) {
  std::map<std::string, std::vector<std::int64_t>> out;
  for (int i = 0; i < c.num_hidden_layers; ++i)
    for (const gemma3::TextWeightName& e : gemma3::kTextWeightNames) {
      if (!e.per_layer() && i > 0) continue;
      std::vector<std::int64_t> shape{gemma3::weight_dim(e.rows, c)};
      if (!e.is_vector()) shape.push_back(gemma3::weight_dim(e.cols, c));
      out[gemma3::weight_name(e.*column, i)] = shape;
    }
  return out;
}

// The text-decoder tensors of an HF fixture folder: name (prefix stripped) -> shape.
std::map<std::string, std::vector<std::int64_t>> hf_text_tensors(const std::vector<std::string>& files,
                                                                 const std::string& prefix) {
  std::map<std::string, std::vector<std::int64_t>> out;
  for (const std::string& file : files) {
    const gemma3::SafetensorsFile f(file);
    for (const gemma3::TensorView& t : f.tensors()) {
      if (t.name == "lm_head.weight") continue;  // tied to embed_tokens
      REQUIRE(t.name.compare(0, prefix.size(), prefix) == 0);
      out[t.name.substr(prefix.size())] = t.shape;
    }
  }
  return out;
}

}  // namespace

TEST_CASE("weight names: the table is well-formed", "[weights]") {
  std::set<std::string> hf, gguf;
  std::set<int> fields;
  for (const gemma3::TextWeightName& e : gemma3::kTextWeightNames) {
    INFO(e.hf << " / " << e.gguf);
    CHECK(hf.insert(e.hf).second);
    CHECK(gguf.insert(e.gguf).second);
    CHECK(fields.insert(int(e.field)).second);
    CHECK((std::string(e.gguf).find("{i}") != std::string::npos) == e.per_layer());
    CHECK(e.rows != gemma3::WeightDim::none);
    CHECK(std::string(e.meaning).size() > 0);
    // HF's norm weights are the vectors; GGUF's too (its *_norm tensors).
    const std::string h = e.hf, g = e.gguf;
    CHECK((h.find("norm") != std::string::npos) == e.is_vector());
    CHECK((g.find("norm") != std::string::npos) == e.is_vector());
  }
  CHECK(fields.size() == 15);  // every field of Gemma3TextWeights that holds a tensor

  CHECK(gemma3::weight_name("blk.{i}.attn_q.weight", 17) == "blk.17.attn_q.weight");
  CHECK(gemma3::weight_name("token_embd.weight", 3) == "token_embd.weight");
  const std::vector<std::string> names = gemma3::text_weight_names(&gemma3::TextWeightName::gguf, 2);
  REQUIRE(names.size() == 2 + 2 * 13);
  CHECK(names[0] == "token_embd.weight");
  CHECK(names[1] == "output_norm.weight");
  CHECK(names[2] == "blk.0.attn_norm.weight");
  CHECK(names.back() == "blk.1.post_ffw_norm.weight");
}

TEST_CASE("weight names: the table names exactly the gemma3 tensors of the real 270M GGUF", "[weights][real]") {
  const gemma3::GgufFile f(real_model_path());
  const gemma3::Gemma3TextConfig c = gemma3::config_from_gguf(f);
  const auto expected = expected_shapes(&gemma3::TextWeightName::gguf, c);

  std::set<std::string> in_file;
  for (const gemma3::GgufTensorInfo& t : f.tensors()) {
    INFO("tensor in the file: " << t.name);
    in_file.insert(t.name);
    const auto it = expected.find(t.name);
    REQUIRE(it != expected.end());  // no name the table does not know
    std::vector<std::uint64_t> dims;  // GGUF lists the HF shape the other way round
    for (auto d = it->second.rbegin(); d != it->second.rend(); ++d) dims.push_back(std::uint64_t(*d));
    CHECK(t.dims == dims);
  }
  for (const auto& [name, shape] : expected) {
    INFO("table entry: " << name);
    CHECK(in_file.count(name) == 1);  // none missing
  }
  CHECK(in_file.size() == expected.size());
  CHECK(expected.size() == std::size_t(2 + 13 * c.num_hidden_layers));
}

TEST_CASE("weight names: the table names exactly the text tensors of the tiny HF fixtures", "[weights]") {
  struct Case {
    std::string folder, prefix;
    std::vector<std::string> files;
  };
  const std::vector<Case> cases = {
      {"tiny_global_last", "model.", {"model.safetensors"}},
      {"tiny_sharded_f16", "language_model.model.",
       {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}},
  };
  for (const Case& k : cases) {
    INFO("fixture " << k.folder);
    const gemma3::Gemma3TextConfig c = gemma3::load_config_json(fixtures::path(k.folder + "/config.json"));
    std::vector<std::string> files;
    for (const std::string& file : k.files) files.push_back(fixtures::path(k.folder + "/" + file));
    const auto found = hf_text_tensors(files, k.prefix);
    const auto expected = expected_shapes(&gemma3::TextWeightName::hf, c);
    CHECK(found == expected);
  }
}
