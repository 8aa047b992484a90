// The two backends of backend.hpp against each other, model by model:
// ReferenceBackend (plain Eigen, float32, one thread) and CpuBackend on every
// instruction set this machine has (scalar, avx2, avx512), chosen on the backend
// object. Each mode has its own stated tolerance (relative error: max |diff| / max |ref|
// over all logits, as in fixture_helpers.hpp):
//
//   float weights (the tiny fixtures: f32, bf16, f16), float32 cache   5e-6   (measured 8.7e-7)
//   the same, float16 cache (CpuBackend only)                          2e-3   (measured 7.4e-4)
//   quantized weights (the real 270M, Q4_K_M), float activations       1e-5   (measured 1.3e-6)
//   quantized weights, int16 activations (avx512)                      5e-3   (measured 1.0e-3)
//   quantized weights, float16 cache                                   5e-3   (measured 4.5e-4)
//
// The reference backend is also held to transformers directly on the tiny fixtures
// (1e-4, as tests/test_model.cpp holds the default backend).
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <thread>
#include <memory>
#include <string>
#include <vector>

#include "catch.hpp"
#include "fixture_helpers.hpp"
#include "test_vision_helpers.hpp"

#include "gemma3/backends/cpu.hpp"
#include "gemma3/backends/reference.hpp"
#include "gemma3/checkpoint.hpp"
#include "gemma3/gguf_model.hpp"
#include "gemma3/vision/multimodal.hpp"

using gemma3::Matrix;

namespace {

constexpr double kFloatTol = 5e-6;    // float weights, float32 cache
constexpr double kF16CacheTol = 2e-3;  // float weights, float16 cache
constexpr double kQuantTol = 1e-5;     // quantized weights, float activations, float32 cache
constexpr double kRoundedTol = 5e-3;   // quantized weights, int16 activations or a float16 cache

std::shared_ptr<const gemma3::Backend> reference_backend() { return std::make_shared<const gemma3::ReferenceBackend>(); }

struct CpuMode {
  gemma3::Isa isa;
  bool int16;
  gemma3::DType kv;
  std::string name() const {
    return std::string(gemma3::isa_name(isa)) + (isa == gemma3::Isa::avx512 ? (int16 ? " int16" : " f32-act") : "") +
           ", " + gemma3::dtype_name(kv) + " cache";
  }
  std::shared_ptr<const gemma3::Backend> backend() const {
    gemma3::CpuBackend::Options o;
    o.isa = isa;
    o.int16_activations = int16;
    o.kv_dtype = kv;
    o.threads = 2;
    return std::make_shared<const gemma3::CpuBackend>(o);
  }
};

// Every CPU configuration this machine can run.
std::vector<CpuMode> cpu_modes() {
  std::vector<CpuMode> out;
  for (gemma3::Isa isa : {gemma3::Isa::scalar, gemma3::Isa::avx2, gemma3::Isa::avx512}) {
    if (!gemma3::isa_available(isa)) continue;
    for (bool int16 : {true, false}) {
      if (!int16 && isa != gemma3::Isa::avx512) continue;
      for (gemma3::DType kv : {gemma3::DType::F32, gemma3::DType::F16}) out.push_back({isa, int16, kv});
    }
  }
  return out;
}

// Logits of every position: the prompt in chunks of `chunk` tokens, then `decode_steps`
// more tokens one by one (greedy from the model's own logits; the tokens are returned).
struct Run {
  Matrix logits;            // [prompt + decode_steps, vocab]
  std::vector<int> greedy;  // the decoded tokens
};
template <class Model>
Run run(const Model& model, const std::vector<int>& prompt, int chunk, int decode_steps) {
  gemma3::KVCache cache = model.new_cache(int(prompt.size()) + decode_steps + 1);
  Run r;
  for (std::size_t t0 = 0; t0 < prompt.size(); t0 += std::size_t(chunk)) {
    const std::size_t t1 = std::min(prompt.size(), t0 + std::size_t(chunk));
    const Matrix part =
        model.forward(std::vector<int>(prompt.begin() + std::ptrdiff_t(t0), prompt.begin() + std::ptrdiff_t(t1)), cache);
    if (t0 == 0) r.logits.resize(Eigen::Index(prompt.size()) + decode_steps, part.cols());
    r.logits.middleRows(Eigen::Index(t0), part.rows()) = part;
  }
  for (int s = 0; s < decode_steps; ++s) {
    const Eigen::Index last = Eigen::Index(prompt.size()) + s - 1;
    const int next = model.backend().argmax(r.logits.row(last).data(), std::size_t(r.logits.cols()));
    r.greedy.push_back(next);
    r.logits.row(last + 1) = model.decode(next, cache).transpose();
  }
  return r;
}

gemma3::Gemma3ForCausalLM tiny(const std::string& name) {
  const gemma3::Gemma3ForCausalLM m = gemma3::load_hf_model(fixtures::path(name));
  gemma3::Gemma3TextConfig c = m.config();
  c.attn_logit_softcapping.reset();  // as transformers computes it (tests/test_model.cpp)
  return gemma3::Gemma3ForCausalLM(c, m.weights(), reference_backend());
}

}  // namespace

TEST_CASE("reference backend equals transformers on the tiny fixtures: prefill, decode, every layer", "[backends][model]") {
  const std::string name = GENERATE(values<std::string>({"tiny_global_last", "tiny_local_last", "tiny_sharded_f16"}));
  const gemma3::Gemma3ForCausalLM model = tiny(name);
  REQUIRE(model.backend().name() == "reference");
  const gemma3::SafetensorsFile expected(fixtures::path(name) + "/expected.safetensors");
  const std::vector<int> ids = fixtures::ids(expected, "input_ids");
  gemma3::KVCache cache = model.new_cache(64);
  gemma3::ForwardTrace trace;
  const Matrix logits = model.forward(ids, cache, gemma3::Logits::all, &trace);
  INFO(name);
  for (int i = 0; i < model.config().num_hidden_layers; ++i) {
    const fixtures::Diff d = fixtures::compare(trace.layer_outputs[std::size_t(i)], fixtures::slice(expected, "layer_outputs", i));
    INFO("layer " << i << ": " << d.str());
    CHECK(d.rel <= 1e-4);
  }
  const fixtures::Diff l = fixtures::compare(logits, fixtures::matrix(expected, "logits"));
  INFO("prefill logits: " << l.str());
  CHECK(l.rel <= 1e-4);
  const Run steps = run(model, ids, 1, 0);  // token by token
  const fixtures::Diff d = fixtures::compare(steps.logits, fixtures::matrix(expected, "logits"));
  INFO("decode logits: " << d.str());
  CHECK(d.rel <= 1e-4);
  // and greedy generation past the window
  const std::vector<int> want = fixtures::ids(expected, "greedy_continuation");
  const Run g = run(model, ids, 64, int(want.size()));
  CHECK(g.greedy == want);
}

TEST_CASE("reference backend refuses a float16 cache", "[backends]") {
  const gemma3::Gemma3ForCausalLM model = tiny("tiny_global_last");
  CHECK_THROWS_WITH(model.new_cache(8, gemma3::DType::F16), Catch::Matchers::Contains("float32"));
}

TEST_CASE("CPU backend on every Isa equals the reference backend: tiny fixtures", "[backends][model]") {
  const std::string name = GENERATE(values<std::string>({"tiny_global_last", "tiny_local_last", "tiny_sharded_f16"}));
  // soft-capping kept on here: both backends apply it
  const gemma3::Gemma3ForCausalLM ref_model =
      gemma3::load_hf_model(fixtures::path(name)).with_backend(reference_backend());
  const gemma3::SafetensorsFile expected(fixtures::path(name) + "/expected.safetensors");
  const std::vector<int> ids = fixtures::ids(expected, "input_ids");
  const Run ref = run(ref_model, ids, 5, 6);
  for (const CpuMode& mode : cpu_modes()) {
    const gemma3::Gemma3ForCausalLM model = ref_model.with_backend(mode.backend());
    for (int chunk : {1, 4, 64}) {
      const Run ours = run(model, ids, chunk, 6);
      const fixtures::Diff d = fixtures::compare(ours.logits, ref.logits);
      INFO(name << ", " << model.backend().name() << ", chunks of " << chunk << ": " << d.str());
      CHECK(d.rel <= (mode.kv == gemma3::DType::F16 ? kF16CacheTol : kFloatTol));
      CHECK(ours.greedy == ref.greedy);
    }
  }
}

TEST_CASE("CPU backend on every Isa equals the reference backend: tiny vision model", "[backends][vision]") {
  const gemma3::Gemma3ForConditionalGeneration cpu_model = gemma3::load_hf_multimodal_model(fixtures::path("vision_tiny"));
  const gemma3::Gemma3ForConditionalGeneration ref_model = cpu_model.with_backend(reference_backend());
  const gemma3::SafetensorsFile expected(fixtures::path("vision_tiny") + "/expected.safetensors");
  const std::vector<int> ids = fixtures::ids(expected, "input_ids");
  std::vector<Matrix> pixels;
  for (std::int64_t i = 0; i < expected.at("pixel_values").shape.at(0); ++i)
    pixels.push_back(vision_fixtures::f32_slice(expected, "pixel_values", i, 3));
  gemma3::KVCache ref_cache = ref_model.new_cache(128);
  const Matrix ref = ref_model.forward(ids, pixels, ref_cache, gemma3::Logits::all);
  {
    const fixtures::Diff d = fixtures::compare(ref, fixtures::matrix(expected, "logits"));
    INFO("reference backend vs transformers: " << d.str());
    CHECK(d.rel <= 1e-4);
  }
  const gemma3::Vector ref_next = ref_model.decode(3, ref_cache);
  for (const CpuMode& mode : cpu_modes()) {
    const gemma3::Gemma3ForConditionalGeneration model = ref_model.with_backend(mode.backend());
    gemma3::KVCache cache = model.new_cache(128);
    const Matrix ours = model.forward(ids, pixels, cache, gemma3::Logits::all);
    const gemma3::Vector next = model.decode(3, cache);
    const double tol = mode.kv == gemma3::DType::F16 ? kF16CacheTol : kFloatTol;
    const fixtures::Diff d = fixtures::compare(ours, ref);
    INFO(model.backend().name() << ": prompt logits " << d.str());
    CHECK(d.rel <= tol);
    const fixtures::Diff n = fixtures::compare(next.transpose(), ref_next.transpose());
    INFO("decode after the images: " << n.str());
    CHECK(n.rel <= tol);
  }
}

TEST_CASE("CPU backend on every Isa equals the reference backend: real 270M (quantized weights)", "[backends][real]") {
  std::string path = fixtures::dir() + "/../../models/gemma-3-270m-q4_k_m.gguf";
  if (const char* env = std::getenv("GEMMA3_GGUF_MODEL")) path = env;
  if (!std::ifstream(path).good())
    FAIL(path << " is missing: run `bash scripts/fetch-model.sh` (make test does) or set GEMMA3_GGUF_MODEL");
  const gemma3::Gemma3ForCausalLM ref_model = gemma3::load_gguf_model(path).with_backend(reference_backend());
  const gemma3::SafetensorsFile prompts(fixtures::path("real270m/reference.safetensors"));
  const std::string name = GENERATE(values<std::string>({"chat", "multilingual"}));
  const std::vector<int> ids = fixtures::ids(prompts, name + ".input_ids");
  const Run ref = run(ref_model, ids, 64, 8);
  for (const CpuMode& mode : cpu_modes()) {
    const gemma3::Gemma3ForCausalLM model = ref_model.with_backend(mode.backend());
    const Run ours = run(model, ids, 64, 8);
    const fixtures::Diff d = fixtures::compare(ours.logits, ref.logits);
    const bool rounded = (mode.isa == gemma3::Isa::avx512 && mode.int16) || mode.kv == gemma3::DType::F16;
    INFO(name << ", " << model.backend().name() << ": " << d.str());
    CHECK(d.rel <= (rounded ? kRoundedTol : kQuantTol));
    CHECK(ours.greedy == ref.greedy);
  }
}

TEST_CASE("a model made without a backend runs on every core (GEMMA3_NUM_THREADS overrides)", "[backends]") {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  CHECK(gemma3::CpuBackend().options().threads == int(cores));
  const char* env = std::getenv("GEMMA3_NUM_THREADS");
  const gemma3::CpuBackend::Options from_env = gemma3::CpuBackend::Options::from_environment();
  if (!env || !*env || std::atoi(env) <= 0) {
    const gemma3::Gemma3ForCausalLM model = gemma3::load_hf_model(fixtures::path("tiny_global_last"));  // no backend given
    const auto* cpu = dynamic_cast<const gemma3::CpuBackend*>(&model.backend());
    REQUIRE(cpu != nullptr);
    CHECK(cpu->options().threads == int(cores));
    CHECK(from_env.threads == 0);  // 0: every hardware thread
  } else {
    CHECK(from_env.threads == std::atoi(env));
  }
}
