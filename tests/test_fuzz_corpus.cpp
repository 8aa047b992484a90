// The fuzz targets (fuzz/fuzz_targets.hpp) under the normal build: every committed
// seed in fuzz/corpus/ and every saved reproducer in fuzz/crashes/ goes through
// them, so the targets keep compiling without clang and a fixed crash stays fixed.
// The fuzzing itself (clang, libFuzzer, sanitizers) is fuzz/run.sh; see docs/fuzzing.md.
#include "catch.hpp"

#include "../fuzz/fuzz_targets.hpp"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

const std::string kFuzzDir = std::string(GEMMA3_FIXTURES_DIR) + "/../../fuzz";

std::vector<unsigned char> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<unsigned char>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(e.path());
  return out;
}

}  // namespace

// Every fuzz target, by the name of its corpus folder and its crash-file prefix.
struct Target {
  const char* name;
  int (*run)(const std::uint8_t*, std::size_t);
  std::size_t min_seeds;
};
const Target kTargets[] = {
    {"gguf", gemma3_fuzz::gguf_one_input, 5},
    {"safetensors", gemma3_fuzz::safetensors_one_input, 5},
#ifdef GEMMA3_HAVE_IMAGE_DECODERS
    {"image", gemma3_fuzz::image_one_input, 10},
#endif
    {"config_json", gemma3_fuzz::config_json_one_input, 5},
    {"tokenizer_model", gemma3_fuzz::tokenizer_model_one_input, 3},
    {"tokenizer_text", gemma3_fuzz::tokenizer_text_one_input, 10},
};

TEST_CASE("fuzz corpus: every seed and saved reproducer goes through the fuzz targets cleanly", "[fuzz]") {
  for (const Target& t : kTargets) {
    const std::vector<fs::path> seeds = files_in(kFuzzDir + "/corpus/" + t.name);
    INFO(t.name);
    CHECK(seeds.size() >= t.min_seeds);
    for (const fs::path& p : seeds) {
      INFO(p.string());
      const auto b = read_bytes(p);
      CHECK(b.size() <= 16384);  // seeds stay small
      CHECK(t.run(b.data(), b.size()) == 0);
    }
  }
  for (const fs::path& p : files_in(kFuzzDir + "/crashes")) {  // reproducers, named <target>-crash-<sha1>
    const std::string name = p.filename().string();
    INFO(p.string());
    const auto b = read_bytes(p);
    bool known = false;
    for (const Target& t : kTargets)
      if (name.rfind(std::string(t.name) + "-", 0) == 0) {
        CHECK(t.run(b.data(), b.size()) == 0);
        known = true;
      }
    CHECK(known);
  }
}

TEST_CASE("fuzz corpus: the valid model seeds load completely, so fuzzing starts deep in the loader", "[gguf][fuzz]") {
  for (const char* name : {"tiny_gemma3_q8_0", "tiny_gemma3_f32"}) {
    INFO(name);
    const auto b = read_bytes(kFuzzDir + "/corpus/gguf/" + name);
    const gemma3::GgufFile g(gemma3::MappedFile::from_bytes(b, name));
    gemma3::Vocabulary v;
    const gemma3::Gemma3ForCausalLM m = gemma3::load_gguf_model(g, &v);
    CHECK(m.config().num_hidden_layers == 1);
    CHECK(!v.tokens.empty());
  }
  const auto b = read_bytes(kFuzzDir + "/corpus/safetensors/valid.safetensors");
  const gemma3::SafetensorsFile st(gemma3::MappedFile::from_bytes(b, "valid.safetensors"));
  CHECK(st.tensors().size() == 4);
}
