// The whole model through the CUDA backend (gemma3::cuda::make_backend) against the
// reference backend on the tiny fixtures, and against the CPU backend on the real 270M.
//
// Bounds (relative error = max|cuda - ref| / max|ref| over all logits, as in
// tests/fixture_helpers.hpp). The CUDA backend rounds every weight, every GEMM input
// and every cached key and value to bf16 (8 significant bits: 2^-9 relative per
// value). CPU emulations of exactly that rounding (ReferenceBackend with bf16
// weights, GEMM inputs, q, k and v; float32 everywhere else, the sums in other orders)
// measured
//   tiny_sharded_f16 1.8e-2, tiny_global_last 1.1e-2 to 1.4e-2, tiny_local_last 0.9e-2,
//     vision_tiny 1.0e-2 (random models with hidden 32 to 64: short dot products
//     average little of the rounding away)
//   the real 270M (Q4_K_M) against CpuBackend (float32 activations, f16 cache), chat and
//     multilingual prompts, 18 emulations that differ only in float32 rounding noise:
//     4e-3 to 1.1e-2 (largest at the second token, behind <bos>); the largest single
//     logit difference 0.4 to 1.06 (logits up to ~98)
// so the bounds are about three times the worst: 5e-2 (tiny) and 3e-2 (270M).
//
// The real 270M runs twice: with its weights widened to bf16 on upload, and with its
// GGUF blocks kept on the device (Options::keep_quantized: the dequantizing GEMV for
// decode, bf16 copies for the prompt's GEMMs), both within the same bounds.
//
// Greedy picks: wherever the reference's top-2 margin exceeds twice the largest logit
// difference, the picks must agree (then no rounding can swap them). On the 270M, the
// CUDA backend's greedy continuation (prefill_greedy / decode_greedy: one id in, one id
// out) equals the CPU backend's for the first 16 tokens at least, unless the two part
// at a near tie: the CPU's top-2 margin there under kNearTie = 2 logits, twice the
// largest logit difference measured (every emulated continuation agreed on all 32).
//
// QK-norm and RoPE wait for attention() to run them fused (Options::fuse_qk_norm_rope),
// and the post-norm and residual add for the next pre-norm (Options::fuse_residual_norm):
// any other use of the buffers runs them first, and the model's logits are the same bits
// with each fusion and without, and with decode steps and decode batches captured as CUDA
// graphs (Options::graphs) and without.
//
// Every output comes back through download() and is checked for NaN (a NaN counts as
// the largest error in fixtures::compare).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "catch.hpp"
#include "cuda_test_util.hpp"
#include "random_model.hpp"
#include "fixture_helpers.hpp"
#include "test_vision_helpers.hpp"

#include "gemma3/backends/cpu.hpp"
#include "gemma3/backends/reference.hpp"
#include "gemma3/checkpoint.hpp"
#include "gemma3/cuda/backend.hpp"
#include "gemma3/cuda/plan.hpp"
#include "gemma3/kernels/gelu.hpp"
#include "gemma3/load_model.hpp"
#include "gemma3/vision/multimodal.hpp"

using gemma3::Matrix;

namespace {

constexpr double kTinyTol = 5e-2;  // tiny fixtures vs ReferenceBackend
constexpr double kRealTol = 3e-2;  // the real 270M vs CpuBackend
constexpr float kNearTie = 2.0f;   // 270M: a top-2 margin (in logits) rounding may flip

std::shared_ptr<const gemma3::Backend> cuda_backend(std::optional<gemma3::DType> kv = std::nullopt) {
  gemma3::cuda::Options o;
  o.kv_dtype = kv;
  return gemma3::cuda::make_backend(o);
}

gemma3::Gemma3ForCausalLM tiny(const std::string& name) {
  return gemma3::load_hf_model(fixtures::path(name)).with_backend(std::make_shared<const gemma3::ReferenceBackend>());
}

// Logits of every position: the prompt in chunks of `chunk` tokens, then `forced`
// fed one token at a time.
Matrix run(const gemma3::Gemma3ForCausalLM& model, const std::vector<int>& prompt, int chunk,
           const std::vector<int>& forced) {
  gemma3::KVCache cache = model.new_cache(int(prompt.size() + forced.size()) + 1);
  Matrix logits;
  for (std::size_t t0 = 0; t0 < prompt.size(); t0 += std::size_t(chunk)) {
    const std::size_t t1 = std::min(prompt.size(), t0 + std::size_t(chunk));
    const Matrix part =
        model.forward(std::vector<int>(prompt.begin() + std::ptrdiff_t(t0), prompt.begin() + std::ptrdiff_t(t1)), cache);
    if (t0 == 0) logits.resize(Eigen::Index(prompt.size() + forced.size()), part.cols());
    logits.middleRows(Eigen::Index(t0), part.rows()) = part;
  }
  for (std::size_t s = 0; s < forced.size(); ++s)
    logits.row(Eigen::Index(prompt.size() + s)) = model.decode(forced[s], cache).transpose();
  return logits;
}

// The best index of a row and its lead over the runner-up.
struct Top2 {
  int best = 0;
  float margin = 0.f;
};
Top2 top2(const float* x, Eigen::Index n) {
  Top2 t;
  for (Eigen::Index i = 1; i < n; ++i)
    if (x[i] > x[t.best]) t.best = int(i);
  float second = -INFINITY;
  for (Eigen::Index i = 0; i < n; ++i)
    if (i != t.best) second = std::max(second, x[i]);
  t.margin = x[t.best] - second;
  return t;
}

// The reference's greedy continuation of `prompt`, n tokens.
std::vector<int> greedy(const gemma3::Gemma3ForCausalLM& model, const std::vector<int>& prompt, int n) {
  gemma3::KVCache cache = model.new_cache(int(prompt.size()) + n + 1);
  gemma3::Vector logits = model.prefill(prompt, cache);
  std::vector<int> out;
  for (int s = 0; s < n; ++s) {
    out.push_back(top2(logits.data(), logits.size()).best);
    logits = model.decode(out.back(), cache);
  }
  return out;
}

}  // namespace

TEST_CASE("cuda backend: the tiny fixtures equal the reference backend (prefill, chunks of 3, decode)",
          "[cuda][backend][model]") {
  const std::string name = GENERATE(values<std::string>({"tiny_global_last", "tiny_local_last", "tiny_sharded_f16"}));
  const gemma3::Gemma3ForCausalLM ref = tiny(name);  // soft-capping kept: both backends apply it
  const gemma3::SafetensorsFile expected(fixtures::path(name) + "/expected.safetensors");
  const std::vector<int> ids = fixtures::ids(expected, "input_ids");
  const std::vector<int> forced = greedy(ref, ids, 6);  // both decode the reference's picks
  const Matrix want = run(ref, ids, 64, forced);        // [prompt + 6, vocab]
  for (std::optional<gemma3::DType> kv : {std::optional<gemma3::DType>(), std::optional<gemma3::DType>(gemma3::DType::F16)}) {
    const gemma3::Gemma3ForCausalLM model = ref.with_backend(cuda_backend(kv));
    for (int chunk : {64, 3}) {
      const Matrix got = run(model, ids, chunk, forced);
      const fixtures::Diff d = fixtures::compare(got, want);
      INFO(name << ", " << model.backend().name() << ", chunks of " << chunk << ": " << d.str());
      CHECK(d.rel <= kTinyTol);
      // The pick of each row that chooses a next token (the prompt's last, then every decode).
      int checked = 0;
      for (Eigen::Index r = Eigen::Index(ids.size()) - 1; r < want.rows(); ++r) {
        const Top2 w = top2(want.row(r).data(), want.cols());
        if (w.margin <= 2 * d.max_abs) continue;  // a near tie: rounding may swap it
        ++checked;
        INFO("row " << r << ": reference picks " << w.best << " by " << w.margin);
        CHECK(top2(got.row(r).data(), got.cols()).best == w.best);
      }
      INFO(checked << " picks compared");
      CHECK(checked > 0);
    }
  }
}

TEST_CASE("cuda backend: ForwardTrace downloads every layer's hidden states", "[cuda][backend][model]") {
  const gemma3::Gemma3ForCausalLM ref = tiny("tiny_global_last");
  const gemma3::Gemma3ForCausalLM model = ref.with_backend(cuda_backend());
  const gemma3::SafetensorsFile expected(fixtures::path("tiny_global_last") + "/expected.safetensors");
  const std::vector<int> ids = fixtures::ids(expected, "input_ids");
  gemma3::KVCache cache = model.new_cache(64), ref_cache = ref.new_cache(64);
  CHECK(cache.layer(0).k.rows() == 0);  // no host rows: the model cannot have used them
  gemma3::ForwardTrace trace, ref_trace;
  const Matrix logits = model.forward(ids, cache, gemma3::Logits::all, &trace);
  const Matrix ref_logits = ref.forward(ids, ref_cache, gemma3::Logits::all, &ref_trace);
  CHECK(fixtures::compare(logits, ref_logits).rel <= kTinyTol);
  // The embeddings are bf16 rows times the scale: 2^-9 of each value.
  CHECK(fixtures::compare(trace.embeddings, ref_trace.embeddings).rel <= 4e-3);
  REQUIRE(trace.layer_outputs.size() == ref_trace.layer_outputs.size());
  for (std::size_t i = 0; i < trace.layer_outputs.size(); ++i) {
    const fixtures::Diff d = fixtures::compare(trace.layer_outputs[i], ref_trace.layer_outputs[i]);
    INFO("layer " << i << ": " << d.str());
    CHECK(d.rel <= kTinyTol);
  }
  CHECK(fixtures::compare(trace.final_hidden, ref_trace.final_hidden).rel <= kTinyTol);

  // The attention tap reads host cache rows, which a CUDA cache does not have.
  gemma3::ForwardTrace attention_trace;
  attention_trace.attention = true;
  CHECK_THROWS_WITH(model.forward({3}, cache, gemma3::Logits::last, &attention_trace),
                    Catch::Matchers::Contains("not in host memory"));
}

TEST_CASE("cuda backend: greedy decoding by id (prefill_greedy, decode_greedy, lm_head_argmax)", "[cuda][backend][model]") {
  const gemma3::Gemma3ForCausalLM ref = tiny("tiny_local_last");  // greedy runs past the window
  const gemma3::Gemma3ForCausalLM model = ref.with_backend(cuda_backend());
  const gemma3::SafetensorsFile expected(fixtures::path("tiny_local_last") + "/expected.safetensors");
  const std::vector<int> ids = fixtures::ids(expected, "input_ids");
  const int steps = int(fixtures::ids(expected, "greedy_continuation").size());
  gemma3::KVCache cache = model.new_cache(int(ids.size()) + steps + 1);
  gemma3::KVCache ref_cache = ref.new_cache(int(ids.size()) + steps + 1);
  // The reference follows the CUDA backend's tokens, so every pick is judged on the same history.
  std::vector<int> got{model.prefill_greedy(ids, cache)};
  gemma3::Vector ref_logits = ref.prefill(ids, ref_cache);
  for (int s = 0;; ++s) {
    const int pick = got.back();
    const float best = ref_logits.maxCoeff(), scale = ref_logits.cwiseAbs().maxCoeff();
    INFO("step " << s << ": picked " << pick << " with reference logit " << ref_logits[pick] << ", best " << best);
    REQUIRE(pick >= 0);
    REQUIRE(pick < ref_logits.size());
    CHECK(ref_logits[pick] >= best - 2 * kTinyTol * scale);
    if (int(got.size()) == steps) break;
    ref_logits = ref.decode(pick, ref_cache);
    got.push_back(model.decode_greedy(pick, cache));
  }

  // lm_head_argmax is the argmax of lm_head_last's logits, on the same hidden states.
  const gemma3::Backend& b = model.backend();
  std::mt19937 rng(11);
  const int H = model.config().hidden_size, vocab = model.config().vocab_size;
  const Matrix h = Eigen::Map<const Matrix>(cuda_test::randn(std::size_t(3) * H, rng).data(), 3, H);
  const gemma3::Activations h_dev = b.upload(h);
  std::vector<float> logits(std::size_t(vocab), NAN);
  b.lm_head_last(model.weights().embed_tokens, h_dev, logits.data());
  CHECK(b.lm_head_argmax(model.weights().embed_tokens, h_dev) == b.argmax(logits.data(), logits.size()));
  std::vector<float> host(static_cast<std::size_t>(vocab));
  ref.backend().lm_head_last(model.weights().embed_tokens, gemma3::Activations(h), host.data());
  CHECK(cuda_test::compare(logits, host).non_finite == 0);
  CHECK(cuda_test::compare(logits, host).relative <= 1e-2);  // bf16 weights and inputs, one dot product each
}

// A decode batch: the B rows go through the GEMMs together (cuBLAS with n = B rather
// than 1, so the sums run in other orders and a value may round to the neighbouring
// bf16), RoPE by rope_at, attention by attention_batch, the greedy ids by
// lm_head_argmax_rows. Against each sequence decoded alone on the same backend (bound
// 1e-2, the size of one bf16 step moved through the tiny models) and against the
// reference backend (kTinyTol).
namespace {

// One decode_batch step of `feed` on `batch`, against each sequence decoded alone on this
// backend (its own `alone` cache) and on the reference backend (`on_ref`).
void check_batch_step(const gemma3::Gemma3ForCausalLM& model, const gemma3::Gemma3ForCausalLM& ref,
                      const std::vector<int>& feed, const std::vector<gemma3::KVCache*>& batch,
                      std::vector<gemma3::KVCache>& alone, std::vector<gemma3::KVCache>& on_ref) {
  const Matrix got = model.decode_batch(feed, batch);  // [B, vocab]
  Matrix want_alone(got.rows(), got.cols()), want_ref(got.rows(), got.cols());
  for (std::size_t b = 0; b < feed.size(); ++b) {
    want_alone.row(Eigen::Index(b)) = model.decode(feed[b], alone[b]).transpose();
    want_ref.row(Eigen::Index(b)) = ref.decode(feed[b], on_ref[b]).transpose();
  }
  const fixtures::Diff da = fixtures::compare(got, want_alone), dr = fixtures::compare(got, want_ref);
  INFO("against each alone " << da.str() << "; against the reference " << dr.str());
  CHECK(da.rel <= 1e-2);
  CHECK(dr.rel <= kTinyTol);
}

}  // namespace

TEST_CASE("cuda backend: a decode batch equals each sequence decoded alone", "[cuda][backend][model][batch]") {
  const std::string name = GENERATE(values<std::string>({"tiny_global_last", "tiny_local_last", "tiny_sharded_f16"}));
  const gemma3::Gemma3ForCausalLM ref = tiny(name);
  const gemma3::Gemma3ForCausalLM model = ref.with_backend(cuda_backend());
  const gemma3::SafetensorsFile expected(fixtures::path(name) + "/expected.safetensors");
  const std::vector<int> ids = fixtures::ids(expected, "input_ids");
  // One past the window (its sliding caches have wrapped), one of a single token, ...
  const std::vector<std::vector<int>> prompts = {ids, {ids[0]}, {ids.begin(), ids.begin() + 3}, {ids.begin(), ids.end() - 1}};
  const std::size_t B = prompts.size();
  constexpr int kSteps = 5;
  const int vocab = model.config().vocab_size;
  std::vector<gemma3::KVCache> alone, batch, on_ref;
  std::vector<gemma3::KVCache*> ptrs;
  for (const auto& p : prompts) {
    const int len = int(p.size()) + kSteps + 2;
    alone.push_back(model.new_cache(len));
    batch.push_back(model.new_cache(len));
    on_ref.push_back(ref.new_cache(len));
    model.prefill(p, alone.back());
    model.prefill(p, batch.back());
    ref.prefill(p, on_ref.back());
  }
  for (auto& c : batch) ptrs.push_back(&c);
  for (int s = 0; s < kSteps; ++s) {
    std::vector<int> feed;
    for (std::size_t b = 0; b < B; ++b) feed.push_back((7 * s + 3 * int(b) + 1) % vocab);
    INFO(name << ", step " << s);
    check_batch_step(model, ref, feed, ptrs, alone, on_ref);
  }
  // The greedy ids, judged against the reference's logits on the same history.
  const std::vector<int> feed(B, ids[1]);
  const std::vector<int> picks = model.decode_greedy_batch(feed, ptrs);
  REQUIRE(picks.size() == B);
  for (std::size_t b = 0; b < B; ++b) {
    const gemma3::Vector r = ref.decode(feed[b], on_ref[b]);
    INFO("sequence " << b << " picked " << picks[b] << " with reference logit " << r[picks[b]] << ", best " << r.maxCoeff());
    REQUIRE(picks[b] >= 0);
    REQUIRE(picks[b] < vocab);
    CHECK(r[picks[b]] >= r.maxCoeff() - 2 * kTinyTol * r.cwiseAbs().maxCoeff());
    CHECK(batch[b].length() == on_ref[b].length());
  }
  // A cache of another backend in the batch is refused, and no sequence moves on.
  const int length0 = batch[0].length(), length1 = on_ref[1].length();
  CHECK_THROWS_AS(model.decode_batch({feed[0], feed[1]}, {&batch[0], &on_ref[1]}), std::invalid_argument);
  CHECK(batch[0].length() == length0);
  CHECK(on_ref[1].length() == length1);
}

TEST_CASE("cuda backend: a decode batch of caches of other lengths and types equals each sequence alone",
          "[cuda][backend][model][batch]") {
  // tiny_global_last (W = 4). A cache of 3 positions has a 3-row ring that never wraps;
  // the longer ones have rings of 4 that do; the global layers' caches all differ in
  // length. One launch serves those (the kernels read each sequence's rows through a
  // table). An F16 cache among BF16 ones cannot share the launch: that batch runs
  // sequence by sequence. Either way each row must be what decoding it alone gives.
  const gemma3::Gemma3ForCausalLM ref = tiny("tiny_global_last");
  const gemma3::Gemma3ForCausalLM model = ref.with_backend(cuda_backend());
  const gemma3::SafetensorsFile expected(fixtures::path("tiny_global_last") + "/expected.safetensors");
  const std::vector<int> ids = fixtures::ids(expected, "input_ids");
  REQUIRE(ids.size() >= 5);
  struct Seq {
    std::vector<int> prompt;
    int len;
    gemma3::DType kv;
  };
  const std::vector<Seq> seqs = {{{ids[0]}, 3, gemma3::DType::BF16},
                                 {ids, int(ids.size()) + 4, gemma3::DType::BF16},
                                 {{ids.begin(), ids.begin() + 5}, 40, gemma3::DType::BF16},
                                 {{ids.begin(), ids.begin() + 2}, 10, gemma3::DType::F16}};
  const int vocab = model.config().vocab_size;
  for (std::size_t B : {std::size_t(3), std::size_t(4)}) {
    INFO(B << " sequences" << (B == 4 ? ", one with an F16 cache" : ""));
    std::vector<gemma3::KVCache> alone, batch, on_ref;
    std::vector<gemma3::KVCache*> ptrs;
    for (std::size_t b = 0; b < B; ++b) {
      alone.push_back(model.new_cache(seqs[b].len, seqs[b].kv));
      batch.push_back(model.new_cache(seqs[b].len, seqs[b].kv));
      on_ref.push_back(ref.new_cache(seqs[b].len));
      model.prefill(seqs[b].prompt, alone.back());
      model.prefill(seqs[b].prompt, batch.back());
      ref.prefill(seqs[b].prompt, on_ref.back());
    }
    for (auto& c : batch) ptrs.push_back(&c);
    for (int s = 0; s < 2; ++s) {  // the 3-position cache is then full
      std::vector<int> feed;
      for (std::size_t b = 0; b < B; ++b) feed.push_back((5 * s + 3 * int(b) + 2) % vocab);
      INFO("step " << s);
      check_batch_step(model, ref, feed, ptrs, alone, on_ref);
    }
    // The full cache is refused before any sequence moves on.
    std::vector<int> lengths;
    for (const auto& c : batch) lengths.push_back(c.length());
    CHECK_THROWS(model.decode_batch(std::vector<int>(B, 1), ptrs));
    for (std::size_t b = 0; b < B; ++b) CHECK(batch[b].length() == lengths[b]);
  }
}

TEST_CASE("cuda backend: at the tuned kernels' head_dim 256, decode batches and decode version 3 hold",
          "[cuda][backend][model][batch]") {
  // The tiny fixtures' head_dims (8 to 32) run the version-1 kernels; this random bf16
  // model of Gemma 3's attention shape (4 q heads, 1 kv head, head_dim 256; W = 64, so
  // rings wrap and both layer kinds take several key tiles) runs split-K, the tables of
  // a decode batch, and Options::fuse_decode_combine.
  const gemma3::Gemma3TextConfig c = cuda_test::small_config_head_dim_256();
  const gemma3::Gemma3TextWeights w = cuda_test::random_weights(c, 77);
  const gemma3::Gemma3ForCausalLM ref(c, w, std::make_shared<const gemma3::ReferenceBackend>());
  const gemma3::Gemma3ForCausalLM model(c, w, cuda_backend());
  gemma3::cuda::Options o3;
  o3.fuse_decode_combine = true;
  const gemma3::Gemma3ForCausalLM v3(c, w, gemma3::cuda::make_backend(o3));

  std::vector<std::vector<int>> prompts;
  for (int n : {150, 5, 70}) {
    std::vector<int> p;
    for (int i = 0; i < n; ++i) p.push_back((37 * i + 11 * n + 2) % c.vocab_size);
    prompts.push_back(p);
  }
  const std::size_t B = prompts.size();
  std::vector<gemma3::KVCache> alone, batch, on_ref, alone3, batch3;
  std::vector<gemma3::KVCache*> ptrs, ptrs3;
  for (const auto& p : prompts) {
    const int len = int(p.size()) + 8;
    alone.push_back(model.new_cache(len));
    batch.push_back(model.new_cache(len));
    on_ref.push_back(ref.new_cache(len));
    alone3.push_back(v3.new_cache(len));
    batch3.push_back(v3.new_cache(len));
    const Matrix prompt_logits = model.forward(p, alone.back());
    const fixtures::Diff d = fixtures::compare(prompt_logits, ref.forward(p, on_ref.back()));
    INFO("prompt of " << p.size() << " tokens against the reference: " << d.str());
    CHECK(d.rel <= kTinyTol);
    model.prefill(p, batch.back());
    v3.prefill(p, alone3.back());
    v3.prefill(p, batch3.back());
  }
  for (auto& x : batch) ptrs.push_back(&x);
  for (auto& x : batch3) ptrs3.push_back(&x);
  for (int s = 0; s < 4; ++s) {
    std::vector<int> feed;
    for (std::size_t b = 0; b < B; ++b) feed.push_back((13 * s + 5 * int(b) + 1) % c.vocab_size);
    INFO("step " << s);
    const Matrix got3 = v3.decode_batch(feed, ptrs3);  // before check_batch_step moves `batch` on
    Matrix alone3_rows(got3.rows(), got3.cols());
    for (std::size_t b = 0; b < B; ++b) alone3_rows.row(Eigen::Index(b)) = v3.decode(feed[b], alone3[b]).transpose();
    const Matrix got = model.decode_batch(feed, ptrs);
    // split-K and version 3 give the same bits, batch or alone
    CHECK(std::memcmp(got.data(), got3.data(), std::size_t(got.size()) * sizeof(float)) == 0);
    Matrix alone_rows(got.rows(), got.cols()), ref_rows(got.rows(), got.cols());
    for (std::size_t b = 0; b < B; ++b) {
      alone_rows.row(Eigen::Index(b)) = model.decode(feed[b], alone[b]).transpose();
      ref_rows.row(Eigen::Index(b)) = ref.decode(feed[b], on_ref[b]).transpose();
    }
    CHECK(std::memcmp(alone_rows.data(), alone3_rows.data(), std::size_t(got.size()) * sizeof(float)) == 0);
    const fixtures::Diff da = fixtures::compare(got, alone_rows), dr = fixtures::compare(got, ref_rows);
    INFO("batch against each alone " << da.str() << "; against the reference " << dr.str());
    CHECK(da.rel <= 1e-2);
    CHECK(dr.rel <= kTinyTol);
  }
}

TEST_CASE("cuda backend: the tiny vision model equals the reference backend (image soft tokens)",
          "[cuda][backend][vision]") {
  // The image features come in through set_rows, the vision tower's projections through
  // linear_host, and each image's soft tokens see their whole image (the prefill
  // kernels' image groups).
  const gemma3::Gemma3ForConditionalGeneration ref =
      gemma3::load_hf_multimodal_model(fixtures::path("vision_tiny"))
          .with_backend(std::make_shared<const gemma3::ReferenceBackend>());
  const gemma3::Gemma3ForConditionalGeneration model = ref.with_backend(cuda_backend());
  const gemma3::SafetensorsFile expected(fixtures::path("vision_tiny") + "/expected.safetensors");
  const std::vector<int> ids = fixtures::ids(expected, "input_ids");
  std::vector<Matrix> pixels;
  for (std::int64_t i = 0; i < expected.at("pixel_values").shape.at(0); ++i)
    pixels.push_back(vision_fixtures::f32_slice(expected, "pixel_values", i, 3));
  gemma3::KVCache cache = model.new_cache(128), ref_cache = ref.new_cache(128);
  const fixtures::Diff d = fixtures::compare(model.forward(ids, pixels, cache, gemma3::Logits::all),
                                             ref.forward(ids, pixels, ref_cache, gemma3::Logits::all));
  INFO("prompt logits: " << d.str());
  CHECK(d.rel <= kTinyTol);
  const gemma3::Vector next = model.decode(3, cache), ref_next = ref.decode(3, ref_cache);
  const fixtures::Diff n = fixtures::compare(next.transpose(), ref_next.transpose());
  INFO("decode after the images: " << n.str());
  CHECK(n.rel <= kTinyTol);
}

TEST_CASE("cuda backend: the seam's small steps, and what it refuses", "[cuda][backend]") {
  REQUIRE(gemma3::cuda::device_count() >= 1);
  CHECK_THAT(gemma3::cuda::device_description(0), Catch::Matchers::Contains("sm_"));
  const std::shared_ptr<const gemma3::Backend> b = cuda_backend();
  CHECK_THAT(b->name(), Catch::Matchers::StartsWith("cuda ") && Catch::Matchers::Contains("BF16 cache"));
  CHECK_THAT(cuda_backend(gemma3::DType::F16)->name(), Catch::Matchers::Contains("F16 cache"));
  CHECK_THROWS_AS(cuda_backend(gemma3::DType::F32), std::invalid_argument);

  // upload / download: the same floats back
  std::mt19937 rng(12);
  const Matrix x = Eigen::Map<const Matrix>(cuda_test::randn(5 * 33, rng).data(), 5, 33);
  const gemma3::Activations a = b->upload(x);
  CHECK(a.on_device());
  CHECK_THROWS_AS(a.host(), std::logic_error);
  CHECK(b->download(a) == x);
  // rms_norm through the seam, in place and into another buffer
  const gemma3::Vector w = gemma3::Vector::Random(33);
  Matrix want = x;
  gemma3::rms_norm_rows(want, w, 1e-6f);
  gemma3::Activations out;
  b->rms_norm(a, w, 1e-6f, out);
  CHECK(fixtures::compare(b->download(out), want).rel <= 2e-5);
  CHECK(b->download(a) == x);  // the input untouched
  gemma3::Activations same = b->upload(x);
  b->rms_norm(same, w, 1e-6f, same);
  CHECK(fixtures::compare(b->download(same), want).rel <= 2e-5);
  // host activations are refused
  gemma3::Activations host_acts(x);
  CHECK_THROWS_WITH(b->add(host_acts, a), Catch::Matchers::Contains("host activations"));

  // caches: only this backend's own, and only bf16 / f16
  const gemma3::Gemma3ForCausalLM on_cuda = tiny("tiny_global_last").with_backend(b);
  CHECK_THROWS_WITH(on_cuda.new_cache(8, gemma3::DType::F32), Catch::Matchers::Contains("BF16 or F16"));
  gemma3::CpuBackend::Options o;
  o.threads = 1;
  for (std::shared_ptr<const gemma3::Backend> host :
       {std::shared_ptr<const gemma3::Backend>(std::make_shared<gemma3::ReferenceBackend>()),
        std::shared_ptr<const gemma3::Backend>(std::make_shared<gemma3::CpuBackend>(o))}) {
    const gemma3::Gemma3ForCausalLM on_host = on_cuda.with_backend(host);
    gemma3::KVCache cuda_cache = on_cuda.new_cache(16);
    CHECK_THROWS_WITH(on_host.forward({2, 5}, cuda_cache), Catch::Matchers::Contains("not in host memory"));
    gemma3::KVCache host_cache = on_host.new_cache(16);
    CHECK_THROWS_WITH(on_cuda.forward({2, 5}, host_cache), Catch::Matchers::Contains("made by another backend"));
  }
  // an id outside the vocabulary: the CPU's error, before anything runs
  gemma3::KVCache cache = on_cuda.new_cache(16);
  CHECK_THROWS_AS(on_cuda.forward({2, 100000}, cache), std::out_of_range);
}

TEST_CASE("cuda backend: a QK-norm or RoPE left waiting runs before any other use of its buffer",
          "[cuda][backend]") {
  const std::shared_ptr<const gemma3::Backend> b = cuda_backend();
  std::mt19937 rng(13);
  const int rows = 3, heads = 2, D = 16;
  const Matrix x = Eigen::Map<const Matrix>(cuda_test::randn(rows * heads * D, rng).data(), rows, heads * D);
  const gemma3::Vector w = gemma3::Vector::Random(D);
  gemma3::RopeParameters rp;
  const gemma3::RotaryEmbedding rope(D, rp);
  Matrix normed = x;
  gemma3::rms_norm_heads(normed, D, w, 1e-6f);
  Matrix roped = normed;
  rope.apply(roped, 7);

  gemma3::Activations a = b->upload(x);
  b->rms_norm_heads(a, D, w, 1e-6f);
  CHECK(fixtures::compare(b->download(a), normed).rel <= 2e-5);  // download runs it
  gemma3::Activations c = b->upload(x);
  b->rms_norm_heads(c, D, w, 1e-6f);
  b->rope(c, rope, 7);
  gemma3::Activations zero = b->upload(Matrix::Zero(rows, heads * D));
  b->add(zero, c);  // a kernel reading c runs both first
  CHECK(fixtures::compare(b->download(zero), roped).rel <= 2e-5);
  CHECK(fixtures::compare(b->download(c), roped).rel <= 2e-5);
  // twice on one buffer: both run, in order
  Matrix twice = normed;
  gemma3::rms_norm_heads(twice, D, w, 1e-6f);
  gemma3::Activations d = b->upload(x);
  b->rms_norm_heads(d, D, w, 1e-6f);
  b->rms_norm_heads(d, D, w, 1e-6f);
  CHECK(fixtures::compare(b->download(d), twice).rel <= 2e-5);
  // a buffer let go with its step waiting: the step never runs on the next owner
  for (int i = 0; i < 4; ++i) {
    gemma3::Activations gone = b->upload(x);
    b->rms_norm_heads(gone, D, w, 1e-6f);
  }
  const gemma3::Activations next = b->upload(x);  // likely the same pooled buffer
  CHECK(b->download(next) == x);
}

namespace {
// The model's logits (the prompt in chunks of 3 and of 7, then decode steps) and a
// decode batch's greedy ids on the default backend equal those on one made with
// `unfused`, bit for bit.
void check_same_bits(const gemma3::Gemma3ForCausalLM& ref, const gemma3::cuda::Options& unfused_options) {
  const gemma3::Gemma3ForCausalLM fused = ref.with_backend(cuda_backend());
  const gemma3::Gemma3ForCausalLM unfused = ref.with_backend(gemma3::cuda::make_backend(unfused_options));
  const std::vector<int> prompt = {2, 5, 9, 11, 4, 7, 13};
  const std::vector<int> forced = {3, 8, 1, 6, 10, 12, 5, 4, 9};
  for (int chunk : {3, 7}) {
    INFO("chunks of " << chunk);
    const Matrix a = run(fused, prompt, chunk, forced), b = run(unfused, prompt, chunk, forced);
    REQUIRE(a.allFinite());
    CHECK(a == b);
  }
  // greedy ids of a decode batch of 2 (lm_head_argmax_rows reads the final norm's copy)
  auto batch_ids = [&](const gemma3::Gemma3ForCausalLM& m) {
    std::vector<gemma3::KVCache> caches;
    std::vector<gemma3::KVCache*> ptrs;
    std::vector<int> ids, all;
    for (int b = 0; b < 2; ++b) {
      caches.push_back(m.new_cache(24));
      ids.push_back(m.prefill_greedy(std::vector<int>(prompt.begin(), prompt.begin() + 3 + 3 * b), caches.back()));
    }
    for (auto& c : caches) ptrs.push_back(&c);
    for (int s = 0; s < 6; ++s) {
      ids = m.decode_greedy_batch(ids, ptrs);
      all.insert(all.end(), ids.begin(), ids.end());
    }
    return all;
  };
  CHECK(batch_ids(fused) == batch_ids(unfused));
}
}  // namespace

TEST_CASE("cuda backend: the fused QK-norm + RoPE + cache write gives the unfused logits bit for bit",
          "[cuda][backend][model]") {
  const std::string name = GENERATE(values<std::string>({"tiny_global_last", "tiny_local_last", "tiny_sharded_f16"}));
  INFO(name);
  const gemma3::Gemma3ForCausalLM ref = tiny(name);
  REQUIRE(gemma3::cuda::fused_qk_head_dim(ref.config().head_dim));  // the fused kernel runs
  gemma3::cuda::Options o;
  o.fuse_qk_norm_rope = false;
  check_same_bits(ref, o);
}

namespace {
// a's buffer as it is in device memory now, without running what waits on it.
Matrix raw(const gemma3::Activations& a) {
  cuda_test::sync();
  Matrix m(a.rows(), a.cols());
  CUDA_TEST_CHECK(cudaMemcpy(m.data(), a.device(), std::size_t(m.size()) * sizeof(float), cudaMemcpyDeviceToHost));
  return m;
}
}  // namespace

TEST_CASE("cuda backend: the post-norm, residual add and pre-norm wait, run as one kernel, and before any other use",
          "[cuda][backend]") {
  // Options::fuse_residual_norm: every sequence of calls below gives the bits of a backend
  // that launches at each call, whatever reads the buffers and in whatever order.
  gemma3::cuda::Options plain_options;
  plain_options.fuse_residual_norm = false;
  const std::shared_ptr<const gemma3::Backend> fb = cuda_backend(), ub = gemma3::cuda::make_backend(plain_options);
  std::mt19937 rng(21);
  const int rows = 3;
  for (int n : {64, 6}) {  // 6: rows the 16-byte kernel cannot take, launched at each call
    INFO("rows of " << n);
    auto random = [&] { return Matrix(Eigen::Map<const Matrix>(cuda_test::randn(std::size_t(rows) * n, rng).data(), rows, n)); };
    const Matrix x0 = random(), x1 = random(), h0 = random(), h1 = random();
    const gemma3::Vector w1 = gemma3::Vector::Random(n) * 0.3f, w2 = gemma3::Vector::Random(n) * 0.3f;
    const float eps = 1e-6f;
    // runs `calls` on both backends and compares what `reads` downloads, in its order
    auto same = [&](auto&& calls, auto&& reads) {
      std::vector<gemma3::Activations> f = calls(*fb), u = calls(*ub);
      for (int i : reads) {
        INFO("buffer " << i);
        const Matrix a = fb->download(f[std::size_t(i)]), b = ub->download(u[std::size_t(i)]);
        REQUIRE(a.allFinite());
        CHECK(a == b);
      }
      return f;
    };
    // the decoder block's order: x normed in place, h += x, m = norm(h)
    auto block = [&](const gemma3::Backend& b) {
      std::vector<gemma3::Activations> v = {b.upload(x0), b.upload(h0), gemma3::Activations()};
      b.rms_norm(v[0], w1, eps, v[0]);
      b.add(v[1], v[0]);
      b.rms_norm(v[1], w2, eps, v[2]);
      return v;
    };
    std::vector<gemma3::Activations> f = same(block, std::vector<int>{2, 1, 0});
    same(block, std::vector<int>{0, 1, 2});
    same(block, std::vector<int>{1, 0, 2});
    // and against the CPU
    Matrix xn = x0, want_h = h0;
    gemma3::rms_norm_rows(xn, w1, eps);
    want_h += xn;
    Matrix want_m = want_h;
    gemma3::rms_norm_rows(want_m, w2, eps);
    CHECK(fixtures::compare(fb->download(f[2]), want_m).rel <= 2e-5);
    CHECK(fixtures::compare(fb->download(f[1]), want_h).rel <= 2e-5);
    CHECK(fixtures::compare(fb->download(f[0]), xn).rel <= 2e-5);
    if (n == 64) {
      // what waited: nothing ran until m was asked for, then one kernel wrote h and m
      // and left x as it was (its own norm still waits, for a reader)
      std::vector<gemma3::Activations> v = {fb->upload(x0), fb->upload(h0), gemma3::Activations()};
      fb->rms_norm(v[0], w1, eps, v[0]);
      CHECK(raw(v[0]) == x0);
      fb->add(v[1], v[0]);
      CHECK(raw(v[1]) == h0);
      fb->rms_norm(v[1], w2, eps, v[2]);
      CHECK(raw(v[0]) == x0);
      CHECK(raw(v[1]) == fb->download(f[1]));
      CHECK(raw(v[2]) == fb->download(f[2]));
      CHECK(fb->download(v[0]) == fb->download(f[0]));  // now x's norm runs
      CHECK(raw(v[0]) == fb->download(f[0]));
    }
    // the final norm: in place on h
    same([&](const gemma3::Backend& b) {
           std::vector<gemma3::Activations> v = {b.upload(x0), b.upload(h0)};
           b.rms_norm(v[0], w1, eps, v[0]);
           b.add(v[1], v[0]);
           b.rms_norm(v[1], w2, eps, v[1]);
           return v;
         },
         std::vector<int>{1, 0});
    // x written while h's add still waits: the add reads x as it was before
    same([&](const gemma3::Backend& b) {
           std::vector<gemma3::Activations> v = {b.upload(x0), b.upload(h0), gemma3::Activations()};
           b.rms_norm(v[0], w1, eps, v[0]);
           b.add(v[1], v[0]);
           b.add(v[0], b.upload(x1));
           b.rms_norm(v[1], w2, eps, v[2]);
           return v;
         },
         std::vector<int>{2, 1, 0});
    // two adds read one waiting norm; two adds wait on one h; a norm asked for twice
    same([&](const gemma3::Backend& b) {
           std::vector<gemma3::Activations> v = {b.upload(x0), b.upload(h0), b.upload(h1), gemma3::Activations(),
                                                 b.upload(x1)};
           b.rms_norm(v[0], w1, eps, v[0]);
           b.add(v[1], v[0]);
           b.add(v[2], v[0]);
           b.rms_norm(v[4], w2, eps, v[4]);
           b.add(v[2], v[4]);
           b.rms_norm(v[2], w2, eps, v[3]);
           b.rms_norm(v[4], w1, eps, v[4]);
           return v;
         },
         std::vector<int>{3, 0, 1, 2, 4});
    // a GEMM reads h while its add waits, and m through the copy the fused kernel kept
    const std::vector<float> wv = cuda_test::randn(std::size_t(8) * n, rng);
    const gemma3::Weight W{gemma3::DType::F32, wv.data(), 8, n};
    same([&](const gemma3::Backend& b) {
           std::vector<gemma3::Activations> v = {b.upload(x0), b.upload(h0), gemma3::Activations(),
                                                 gemma3::Activations(), gemma3::Activations()};
           b.rms_norm(v[0], w1, eps, v[0]);
           b.add(v[1], v[0]);
           b.linear(W, v[1], v[3]);
           b.rms_norm(v[1], w2, eps, v[2]);
           b.linear(W, v[2], v[4]);
           return v;
         },
         std::vector<int>{3, 4, 2});
  }
  // a buffer let go with its norm waiting: the norm never runs on the next owner
  const Matrix x = Eigen::Map<const Matrix>(cuda_test::randn(std::size_t(rows) * 64, rng).data(), rows, 64);
  const gemma3::Vector w = gemma3::Vector::Random(64);
  for (int i = 0; i < 4; ++i) {
    gemma3::Activations gone = fb->upload(x);
    fb->rms_norm(gone, w, 1e-6f, gone);
  }
  const gemma3::Activations next = fb->upload(x);  // likely the same pooled buffer
  CHECK(fb->download(next) == x);
}

TEST_CASE("cuda backend: the fused post-norm + residual add + pre-norm gives the unfused logits bit for bit",
          "[cuda][backend][model]") {
  const std::string name = GENERATE(values<std::string>({"tiny_global_last", "tiny_local_last", "tiny_sharded_f16"}));
  INFO(name);
  const gemma3::Gemma3ForCausalLM ref = tiny(name);
  REQUIRE(ref.config().hidden_size % 4 == 0);  // the fused kernel runs
  gemma3::cuda::Options o;
  o.fuse_residual_norm = false;
  check_same_bits(ref, o);
}

#ifdef GEMMA3_CUDA_EMULATOR
// On the emulator, whose device memory can be made small (gemma3_emu::set_device_memory):
// what the backend does when the device is full, which a GPU test cannot arrange reliably.
TEST_CASE("cuda backend: a full device is an error naming the allocation, and the backend goes on after it",
          "[cuda][backend][emu]") {
  const gemma3::Gemma3TextConfig c = cuda_test::small_config_head_dim_256();
  const gemma3::Gemma3TextWeights w = cuda_test::random_weights(c, 5);
  const std::shared_ptr<const gemma3::Backend> b = cuda_backend();
  const gemma3::Gemma3ForCausalLM model(c, w, b), fresh(c, w, cuda_backend());
  const std::vector<int> prompt = {2, 5, 9, 11, 4};
  std::size_t free_b = 0, total_b = 0;
  REQUIRE(cudaMemGetInfo(&free_b, &total_b) == cudaSuccess);
  const std::size_t in_use = total_b - free_b;
  struct Restore {
    std::size_t bytes;
    ~Restore() { gemma3_emu::set_device_memory(bytes); }
  } restore{total_b};
  // 1 MiB more than is in use: the bf16 weights alone are 12 MiB
  gemma3_emu::set_device_memory(in_use + (std::size_t(1) << 20));
  gemma3::KVCache cache = model.new_cache(16);
  try {
    model.forward(prompt, cache);
    FAIL("the forward pass ran on a device without room for its weights");
  } catch (const std::runtime_error& e) {
    INFO(e.what());
    CHECK_THAT(e.what(), Catch::Matchers::Contains("cudaMalloc of") && Catch::Matchers::Contains("out of memory") &&
                             Catch::Matchers::Contains("free of"));
  }
  // a cache too large for what is left: its layer named
  CHECK_THROWS_WITH(model.new_cache(1 << 14), Catch::Matchers::Contains("KV cache rows") &&
                                                  Catch::Matchers::Contains("out of memory"));
  // room again: the same backend runs, with the same results as a fresh one
  gemma3_emu::set_device_memory(total_b);
  gemma3::KVCache cache2 = model.new_cache(16), cache3 = fresh.new_cache(16);
  const Matrix a = model.forward(prompt, cache2), want = fresh.forward(prompt, cache3);
  REQUIRE(want.allFinite());
  CHECK(a == want);
  CHECK(model.decode(7, cache2) == fresh.decode(7, cache3));
}
#endif

TEST_CASE("cuda backend: Options::profile counts and times every outermost call of the seam", "[cuda][backend]") {
  gemma3::cuda::Options o;
  o.profile = true;
  const std::shared_ptr<const gemma3::Backend> b = gemma3::cuda::make_backend(o);
  const gemma3::Gemma3ForCausalLM model = tiny("tiny_global_last").with_backend(b);
  gemma3::KVCache cache = model.new_cache(16);
  int id = model.prefill_greedy({2, 5, 9}, cache);
  gemma3::cuda::profile(*b);  // dropped
  for (int s = 0; s < 3; ++s) id = model.decode_greedy(id, cache);
  const std::vector<gemma3::cuda::StepTime> table = gemma3::cuda::profile(*b);
  auto calls = [&](const std::string& step) {
    for (const gemma3::cuda::StepTime& t : table)
      if (t.step == step) {
        CHECK(t.host_us > 0);
        CHECK(t.gpu_us >= 0);
        return t.calls;
      }
    return 0LL;
  };
  const long long L = model.config().num_hidden_layers;
  CHECK(calls("embed") == 3);
  CHECK(calls("attention") == 3 * L);
  CHECK(calls("linear") == 3 * 2 * L);       // o_proj, down_proj
  CHECK(calls("linear_many") == 3 * 2 * L);  // q/k/v, gate/up: not counted again under linear
  CHECK(calls("rms_norm") == 3 * (4 * L + 1));
  CHECK(calls("lm_head_argmax") == 3);
  CHECK(gemma3::cuda::profile(*b).empty());  // reset
  CHECK_THROWS_WITH(gemma3::cuda::profile(*cuda_backend()), Catch::Matchers::Contains("without Options::profile"));
  CHECK_THROWS_WITH(gemma3::cuda::profile(gemma3::ReferenceBackend()), Catch::Matchers::Contains("not a CUDA backend"));
}

TEST_CASE("cuda backend: decode steps and batches captured as CUDA graphs give the same bits, and survive a throw",
          "[cuda][backend][model]") {
  const std::string name = GENERATE(values<std::string>({"tiny_global_last", "tiny_local_last", "tiny_sharded_f16"}));
  const gemma3::Gemma3ForCausalLM ref = tiny(name);
  gemma3::cuda::Options o;
  o.graphs = true;
  const std::shared_ptr<const gemma3::Backend> gb = gemma3::cuda::make_backend(o);
  const gemma3::Gemma3ForCausalLM graphed = ref.with_backend(gb);
  const gemma3::Gemma3ForCausalLM plain = ref.with_backend(cuda_backend());
  const std::vector<int> prompt = {2, 5, 9, 11, 4, 7, 13};
  const std::vector<int> forced = {3, 8, 1, 6, 10, 12, 5, 4, 9};
  INFO(name);
  // logits out of each step (lm_head_last), the prompt in chunks (not captured)
  const Matrix a = run(graphed, prompt, 3, forced), b = run(plain, prompt, 3, forced);
  REQUIRE(a.allFinite());
  CHECK(a == b);
  // greedy ids (lm_head_argmax): 12 steps, so the graph is updated many times, past a
  // sliding window of the tiny models
  auto greedy_ids = [&](const gemma3::Gemma3ForCausalLM& m) {
    gemma3::KVCache cache = m.new_cache(32);
    std::vector<int> ids{m.prefill_greedy(prompt, cache)};
    for (int s = 0; s < 12; ++s) ids.push_back(m.decode_greedy(ids.back(), cache));
    return ids;
  };
  CHECK(greedy_ids(graphed) == greedy_ids(plain));
  // decode batches of 3 sequences at different positions: logits (decode_batch) for 4
  // steps, then a step that throws inside its capture (sequence 1's cache swapped for one
  // of another backend at the same position, so the step's positions are the next
  // step's: they must go up again, since the dropped graph never copied them), then ids
  // (decode_greedy_batch) for 8 steps; every step from the second on is captured, its
  // ids and positions staged in page-locked memory
  auto batch_run = [&](const gemma3::Gemma3ForCausalLM& m) {
    std::vector<gemma3::KVCache> caches;
    std::vector<gemma3::KVCache*> ptrs;
    std::vector<int> ids;
    for (int b = 0; b < 3; ++b) {
      caches.push_back(m.new_cache(32));
      ids.push_back(m.prefill_greedy(std::vector<int>(prompt.begin(), prompt.begin() + 3 + 2 * b), caches.back()));
    }
    for (auto& c : caches) ptrs.push_back(&c);
    std::vector<Matrix> logits;
    for (int s = 0; s < 4; ++s) {
      logits.push_back(m.decode_batch(ids, ptrs));
      for (int b = 0; b < 3; ++b) logits.back().row(b).maxCoeff(&ids[std::size_t(b)]);
    }
    gemma3::KVCache foreign = ref.new_cache(32);
    ref.prefill({2, 5, 9, 11, 4, 7, 13, 3, 8}, foreign);  // 9 positions, as sequence 1 (5 + 4)
    std::vector<gemma3::KVCache*> mixed = {ptrs[0], &foreign, ptrs[2]};
    CHECK_THROWS_WITH(m.decode_greedy_batch(ids, mixed), Catch::Matchers::Contains("made by another backend"));
    std::vector<int> all_ids = ids;
    for (int s = 0; s < 8; ++s) {
      ids = m.decode_greedy_batch(ids, ptrs);
      all_ids.insert(all_ids.end(), ids.begin(), ids.end());
    }
    return std::make_pair(logits, all_ids);
  };
  const auto graphed_batch = batch_run(graphed), plain_batch = batch_run(plain);
  REQUIRE(graphed_batch.first.size() == plain_batch.first.size());
  for (std::size_t s = 0; s < plain_batch.first.size(); ++s) {
    INFO("batch step " << s);
    REQUIRE(graphed_batch.first[s].allFinite());
    CHECK(graphed_batch.first[s] == plain_batch.first[s]);
  }
  CHECK(graphed_batch.second == plain_batch.second);
  // a step that throws inside the capture (a cache of another backend, seen by the first
  // attention call): the capture is dropped and the backend goes on
  gemma3::KVCache foreign = ref.new_cache(16);
  CHECK_THROWS_WITH(graphed.decode_greedy(3, foreign), Catch::Matchers::Contains("made by another backend"));
  CHECK(greedy_ids(graphed) == greedy_ids(plain));
  // a profile times calls, which a graph does not have
  o.profile = true;
  CHECK_THROWS_WITH(gemma3::cuda::make_backend(o), Catch::Matchers::Contains("not both"));
}

TEST_CASE("cuda backend: linear_many, one stacked GEMM for one token and one per weight for more",
          "[cuda][backend]") {
  const std::shared_ptr<const gemma3::Backend> b = cuda_backend();
  std::mt19937 rng(14);
  const int in = 40;
  auto bf16 = [](float x) { return gemma3::bf16_to_f32(gemma3::f32_to_bf16(x)); };
  // rows 12, 8, 20: every output starts 16 bytes in line, so one token runs one GEMM over
  // the stack; 12, 7, 20: the third does not, so each runs its own
  for (const std::vector<int>& rows : {std::vector<int>{12, 8, 20}, std::vector<int>{12, 7, 20}})
    for (int T : {1, 3}) {
      INFO("rows " << rows[1] << ", T " << T);
      std::vector<Matrix> w;
      std::vector<gemma3::Weight> W;
      for (int r : rows) w.push_back(Eigen::Map<const Matrix>(cuda_test::randn(std::size_t(r) * in, rng).data(), r, in));
      for (const Matrix& m : w) W.push_back(gemma3::Weight{gemma3::DType::F32, m.data(), m.rows(), m.cols()});
      const Matrix x = Eigen::Map<const Matrix>(cuda_test::randn(std::size_t(T) * in, rng).data(), T, in);
      const gemma3::Activations X = b->upload(x);
      gemma3::Activations y0, y1, y2;
      b->linear_many(X, {{&W[0], &y0}, {&W[1], &y1}, {&W[2], &y2}});
      const gemma3::Activations* ys[] = {&y0, &y1, &y2};
      for (std::size_t i = 0; i < 3; ++i) {
        Matrix want(T, rows[i]);  // bf16 inputs and weights, float64 sums
        for (int t = 0; t < T; ++t)
          for (int o = 0; o < rows[i]; ++o) {
            double sum = 0;
            for (int c = 0; c < in; ++c) sum += double(bf16(x(t, c))) * double(bf16(w[i](o, c)));
            want(t, o) = float(sum);
          }
        const Matrix got = b->download(*ys[i]);
        REQUIRE(got.rows() == T);
        REQUIRE(got.cols() == rows[i]);
        CHECK(fixtures::compare(got, want).rel <= 1e-5);
      }
      // each output is its own: writing one leaves the others
      const Matrix before = b->download(y2);
      b->add(y0, b->upload(Matrix::Ones(T, rows[0])));
      CHECK(b->download(y2) == before);
    }
}

TEST_CASE("cuda backend: the bf16 copy rms_norm and gelu_tanh_mul keep for the next GEMM goes stale on any write",
          "[cuda][backend]") {
  const std::shared_ptr<const gemma3::Backend> b = cuda_backend();
  std::mt19937 rng(15);
  const int T = 2, in = 48, out = 16;
  auto bf16 = [](float x) { return gemma3::bf16_to_f32(gemma3::f32_to_bf16(x)); };
  const Matrix w = Eigen::Map<const Matrix>(cuda_test::randn(std::size_t(out) * in, rng).data(), out, in);
  const gemma3::Weight W{gemma3::DType::F32, w.data(), out, in};
  // linear(W, a) (first: it may read the copy) against a's values on the device then,
  // rounded to bf16, float64 sums: a GEMM that read a stale copy is off by the whole change
  auto check_linear = [&](const gemma3::Activations& a) {
    gemma3::Activations y;
    b->linear(W, a, y);
    const Matrix x = b->download(a);
    Matrix want(x.rows(), out);
    for (Eigen::Index t = 0; t < x.rows(); ++t)
      for (int o = 0; o < out; ++o) {
        double sum = 0;
        for (int c = 0; c < in; ++c) sum += double(bf16(x(t, c))) * double(bf16(w(o, c)));
        want(t, o) = float(sum);
      }
    CHECK(fixtures::compare(b->download(y), want).rel <= 1e-5);
  };
  const Matrix x = Eigen::Map<const Matrix>(cuda_test::randn(std::size_t(T) * in, rng).data(), T, in);
  const gemma3::Vector g = gemma3::Vector::Random(in) * 0.3f;
  gemma3::Activations a;
  b->rms_norm(b->upload(x), g, 1e-6f, a);  // a and its copy
  check_linear(a);                         // read through the copy
  check_linear(a);                         // the download dropped it: converted again
  b->rms_norm(b->upload(x), g, 1e-6f, a);
  b->add(a, b->upload(Matrix::Ones(T, in)));  // written: the copy is stale
  check_linear(a);
  gemma3::Activations gate = b->upload(x), up = b->upload(Matrix::Constant(T, in, 2.0f));
  b->gelu_tanh_mul(gate, up);  // gate and its copy
  check_linear(gate);
  b->gelu_tanh_mul(gate, up);
  b->rms_norm(gate, g, 1e-6f, gate);  // in place: a new copy of the new values
  check_linear(gate);
}

TEST_CASE("cuda backend on the real 270M: prefill logits and greedy continuations match the CPU backend",
          "[cuda][backend][real]") {
  const std::string path = std::string(GEMMA3_MODELS_DIR) + "/gemma-3-270m-q4_k_m.gguf";
  if (!std::ifstream(path).good()) {
    WARN(path << " is missing (bash scripts/fetch-model.sh fetches it): skipped");
    return;
  }
  gemma3::Vocabulary vocab;
  const gemma3::Gemma3ForCausalLM loaded = gemma3::load_model(path, &vocab, nullptr, cuda_backend());
  gemma3::CpuBackend::Options o;
  o.int16_activations = false;  // float32 activations
  o.kv_dtype = gemma3::DType::F16;
  const gemma3::Gemma3ForCausalLM cpu = loaded.with_backend(std::make_shared<const gemma3::CpuBackend>(o));
  const gemma3::SafetensorsFile prompts(fixtures::path("real270m/reference.safetensors"));
  constexpr int kSteps = 32;
  gemma3::cuda::Options kept;
  kept.keep_quantized = true;  // the GGUF blocks on the device: the GEMV, and the bf16 copies for prefill

  for (const gemma3::Gemma3ForCausalLM& model : {loaded, loaded.with_backend(gemma3::cuda::make_backend(kept))}) {
    // chat (22 tokens), multilingual (38), long (885: the 512-token window wraps; the
    // CUDA prefill runs it in chunks of 300)
    for (const std::string name : {"chat", "multilingual", "long"}) {
      const std::vector<int> ids = fixtures::ids(prompts, name + ".input_ids");
      const int len = int(ids.size()) + kSteps + 1;
      const bool chunked = ids.size() > 300;
      INFO(name << " (" << ids.size() << " tokens), " << model.backend().name() << " vs " << cpu.backend().name());

      // The prompt's logits: every position (the last only for `long`).
      gemma3::KVCache cpu_cache = cpu.new_cache(len), cuda_cache = model.new_cache(len);
      const Matrix want = cpu.forward(ids, cpu_cache, chunked ? gemma3::Logits::last : gemma3::Logits::all);
      Matrix got;
      for (std::size_t t0 = 0; t0 < ids.size(); t0 += 300) {
        const std::size_t t1 = std::min(ids.size(), t0 + 300);
        got = model.forward(std::vector<int>(ids.begin() + std::ptrdiff_t(t0), ids.begin() + std::ptrdiff_t(t1)),
                            cuda_cache, chunked ? gemma3::Logits::last : gemma3::Logits::all);
      }
      const fixtures::Diff d = fixtures::compare(got, want);
      INFO("prefill logits: " << d.str());
      CHECK(d.rel <= kRealTol);

      // Greedy: the CPU from its logits (keeping each step's margin), the CUDA backend by id.
      std::vector<int> cpu_ids;
      std::vector<float> margins;
      Top2 t = top2(want.row(want.rows() - 1).data(), want.cols());
      for (int s = 0; s < kSteps; ++s) {
        cpu_ids.push_back(t.best);
        margins.push_back(t.margin);
        const gemma3::Vector next = cpu.decode(t.best, cpu_cache);
        t = top2(next.data(), next.size());
      }
      gemma3::KVCache greedy_cache = model.new_cache(len);
      std::vector<int> cuda_ids{model.prefill_greedy(ids, greedy_cache)};
      while (int(cuda_ids.size()) < kSteps) cuda_ids.push_back(model.decode_greedy(cuda_ids.back(), greedy_cache));
      int same = 0;
      while (same < kSteps && cuda_ids[std::size_t(same)] == cpu_ids[std::size_t(same)]) ++same;
      INFO("the continuations agree on " << same << " of " << kSteps << " tokens"
           << (same < kSteps ? "; the CPU's margin where they part: " + std::to_string(margins[std::size_t(same)]) : ""));
      CHECK((same >= 16 || margins[std::size_t(same)] < kNearTie));
      if (same < kSteps)
        WARN(name << " (" << model.backend().name() << "): the CUDA and CPU greedy continuations part at token "
                  << same);
    }
  }
}
