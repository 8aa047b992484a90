// The backend seam with the activations and the KV cache off the host.
//
// DeviceSim below stands in for a GPU backend: every Activations it makes holds its
// own buffer (the "device memory"), whose host matrix stays empty, so the model code
// cannot read it (Activations::host() throws); its KV cache keeps no host rows; its
// weights are "uploaded" once, on first use. Its arithmetic is ReferenceBackend's. It
// counts every byte that crosses between host and device.
//
// What it proves about backend.hpp:
//   - the model runs every step through the backend: prefill, decode, ForwardTrace and
//     the multimodal path give the reference backend's numbers, with nothing read on
//     the host behind the backend's back;
//   - a greedy decode step moves one token id in (4 bytes) and one id out (4 bytes),
//     a sampling decode step one id in and one row of logits out, and no weight
//     crosses after the first step; a greedy decode batch of B sequences moves B ids
//     and B positions in and B ids out;
//   - a cache made by one backend is refused by another with a clear error.
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "catch.hpp"
#include "fixture_helpers.hpp"
#include "test_vision_helpers.hpp"

#include "gemma3/backends/cpu.hpp"
#include "gemma3/backends/reference.hpp"
#include "gemma3/checkpoint.hpp"
#include "gemma3/generate.hpp"
#include "gemma3/vision/multimodal.hpp"

using gemma3::Activations;
using gemma3::Matrix;

namespace {

class DeviceSim : public gemma3::Backend {
 public:
  struct Traffic {
    std::size_t to_device = 0;  // activation bytes host -> device (ids, image features)
    std::size_t to_host = 0;    // bytes device -> host (ids, logits, downloads)
    std::size_t weights = 0;    // weight bytes uploaded (once per weight)
  };
  mutable Traffic traffic;

  std::string name() const override { return "device-sim"; }

  void embed(const gemma3::Weight& table, const std::vector<int>& ids, float scale, Activations& out) const override {
    upload_once(table.data, table.row_bytes() * std::size_t(table.rows));
    traffic.to_device += ids.size() * sizeof(int);
    Matrix h;
    gemma3::embed(table, ids, scale, h);
    out = wrap(std::move(h));
  }
  void set_rows(Activations& h, const std::vector<int>& rows, const Matrix& values) const override {
    traffic.to_device += rows.size() * sizeof(int) + std::size_t(values.size()) * sizeof(float);
    for (std::size_t i = 0; i < rows.size(); ++i) buf(h).row(rows[i]) = values.row(Eigen::Index(i));
  }
  void rms_norm(const Activations& x, const gemma3::Vector& w, float eps, Activations& out) const override {
    upload_once(w.data(), std::size_t(w.size()) * sizeof(float));
    if (&out != &x) out = wrap(buf(x));
    gemma3::rms_norm_rows(buf(out), w, eps);
  }
  void rms_norm_heads(Activations& x, int head_dim, const gemma3::Vector& w, float eps) const override {
    upload_once(w.data(), std::size_t(w.size()) * sizeof(float));
    gemma3::rms_norm_heads(buf(x), head_dim, w, eps);
  }
  void rope(Activations& x, const gemma3::RotaryEmbedding& rope, int pos0) const override {
    upload_once(rope.inv_freq().data(), rope.inv_freq().size() * sizeof(float));
    rope.apply(buf(x), pos0);
  }
  void add(Activations& h, const Activations& x) const override { buf(h) += buf(x); }
  Activations upload(const Matrix& x) const override {
    traffic.to_device += std::size_t(x.size()) * sizeof(float);
    return wrap(x);
  }
  Matrix download(const Activations& x) const override {
    traffic.to_host += std::size_t(buf(x).size()) * sizeof(float);
    return buf(x);
  }

  void linear(const gemma3::Weight& W, const Activations& X, Activations& Y) const override {
    upload_once(W.data, W.row_bytes() * std::size_t(W.rows));
    Matrix y;
    ref_.linear_host(W, buf(X), y);
    Y = wrap(std::move(y));
  }
  void gelu_tanh_mul(Activations& gate, const Activations& up) const override {
    Activations g(buf(gate));
    ref_.gelu_tanh_mul(g, Activations(buf(up)));
    buf(gate) = g.host();
  }
  gemma3::KVCache new_cache(const gemma3::Gemma3TextConfig& config, int max_cache_len,
                            std::optional<gemma3::DType> kv_dtype) const override {
    gemma3::KVCache cache(config, max_cache_len, kv_dtype.value_or(gemma3::DType::F32), /*host_rows=*/false);
    const gemma3::KVCache rows(config, max_cache_len, kv_dtype.value_or(gemma3::DType::F32));  // the device's
    for (int i = 0; i < cache.num_layers(); ++i) cache.layer(i).device = std::make_shared<gemma3::LayerKVCache>(rows.layer(i));
    return cache;
  }
  void attention(const gemma3::AttentionShape& s, const gemma3::AttentionMask& mask, const Activations& q,
                 const Activations& k, const Activations& v, gemma3::LayerKVCache& cache,
                 Activations& context) const override {
    if (!cache.device) throw std::invalid_argument("device-sim: this cache has no device rows");
    if (mask.images) traffic.to_device += std::size_t(q.rows()) * sizeof(int);  // the image group ids
    Activations c;
    ref_.attention(s, mask, Activations(buf(q)), Activations(buf(k)), Activations(buf(v)),
                   *static_cast<gemma3::LayerKVCache*>(cache.device.get()), c);
    context = wrap(std::move(c.host()));
  }
  void lm_head_last(const gemma3::Weight& W, const Activations& h, float* logits) const override {
    upload_once(W.data, W.row_bytes() * std::size_t(W.rows));
    traffic.to_host += std::size_t(W.rows) * sizeof(float);
    ref_.lm_head_last(W, Activations(Matrix(buf(h).bottomRows(1))), logits);
  }
  int lm_head_argmax(const gemma3::Weight& W, const Activations& h) const override {
    upload_once(W.data, W.row_bytes() * std::size_t(W.rows));
    std::vector<float> logits(std::size_t(W.rows));  // on the device
    ref_.lm_head_last(W, Activations(Matrix(buf(h).bottomRows(1))), logits.data());
    traffic.to_host += sizeof(int);
    return ref_.argmax(logits.data(), logits.size());
  }
  int argmax(const float* x, std::size_t n) const override { return ref_.argmax(x, n); }

  // A decode batch: the positions cross once per step (every layer asks with the same).
  void rope_at(Activations& x, const gemma3::RotaryEmbedding& rope, const std::vector<int>& positions) const override {
    upload_once(rope.inv_freq().data(), rope.inv_freq().size() * sizeof(float));
    if (positions != positions_) {
      positions_ = positions;
      traffic.to_device += positions.size() * sizeof(int);
    }
    Activations h(buf(x));
    ref_.rope_at(h, rope, positions);
    buf(x) = h.host();
  }
  void attention_batch(const gemma3::AttentionShape& s, bool sliding, int sliding_window,
                       const std::vector<int>& positions, const Activations& q, const Activations& k,
                       const Activations& v, const std::vector<gemma3::LayerKVCache*>& caches,
                       Activations& context) const override {
    std::vector<gemma3::LayerKVCache*> rows;  // the device's rows of each sequence's cache
    for (gemma3::LayerKVCache* c : caches) {
      if (!c || !c->device) throw std::invalid_argument("device-sim: this cache has no device rows");
      rows.push_back(static_cast<gemma3::LayerKVCache*>(c->device.get()));
    }
    Activations c;
    ref_.attention_batch(s, sliding, sliding_window, positions, Activations(buf(q)), Activations(buf(k)),
                         Activations(buf(v)), rows, c);
    context = wrap(std::move(c.host()));
  }
  std::vector<int> lm_head_argmax_rows(const gemma3::Weight& W, const Activations& h) const override {
    upload_once(W.data, W.row_bytes() * std::size_t(W.rows));
    const std::vector<int> ids = ref_.lm_head_argmax_rows(W, Activations(buf(h)));  // on the device
    traffic.to_host += ids.size() * sizeof(int);
    return ids;
  }

 private:
  static Activations wrap(Matrix m) {
    const Eigen::Index r = m.rows(), c = m.cols();
    return Activations(std::make_shared<Matrix>(std::move(m)), r, c);
  }
  static Matrix& buf(const Activations& a) {
    if (!a.on_device()) throw std::logic_error("device-sim: given host activations");
    return *static_cast<Matrix*>(a.device());
  }
  void upload_once(const void* p, std::size_t bytes) const {
    if (uploaded_.emplace(p, bytes).second) traffic.weights += bytes;
  }

  gemma3::ReferenceBackend ref_;
  mutable std::map<const void*, std::size_t> uploaded_;
  mutable std::vector<int> positions_;  // the decode batch's, as last sent
};

gemma3::Gemma3ForCausalLM tiny(const std::string& name, std::shared_ptr<const gemma3::Backend> backend) {
  const gemma3::Gemma3ForCausalLM m = gemma3::load_hf_model(fixtures::path(name), std::move(backend));
  gemma3::Gemma3TextConfig c = m.config();
  c.attn_logit_softcapping.reset();  // as transformers computes it (tests/test_model.cpp)
  return gemma3::Gemma3ForCausalLM(c, m.weights(), m.backend_ptr());
}

}  // namespace

TEST_CASE("device backend: the model runs through the seam alone and equals the reference backend", "[backends][model]") {
  const std::string name = GENERATE(values<std::string>({"tiny_global_last", "tiny_local_last", "tiny_sharded_f16"}));
  INFO(name);
  auto dev = std::make_shared<DeviceSim>();
  const gemma3::Gemma3ForCausalLM model = tiny(name, dev);
  const gemma3::Gemma3ForCausalLM ref = model.with_backend(std::make_shared<gemma3::ReferenceBackend>());
  const gemma3::SafetensorsFile expected(fixtures::path(name) + "/expected.safetensors");
  const std::vector<int> ids = fixtures::ids(expected, "input_ids");

  gemma3::KVCache cache = model.new_cache(64), ref_cache = ref.new_cache(64);
  CHECK(cache.layer(0).k.rows() == 0);  // no host rows: the model cannot have used them
  gemma3::ForwardTrace trace, ref_trace;
  const Matrix logits = model.forward(ids, cache, gemma3::Logits::all, &trace);
  const Matrix ref_logits = ref.forward(ids, ref_cache, gemma3::Logits::all, &ref_trace);
  CHECK(fixtures::compare(logits, ref_logits).rel <= 1e-6);
  REQUIRE(trace.layer_outputs.size() == ref_trace.layer_outputs.size());
  for (std::size_t i = 0; i < trace.layer_outputs.size(); ++i)
    CHECK(fixtures::compare(trace.layer_outputs[i], ref_trace.layer_outputs[i]).rel <= 1e-6);
  CHECK(fixtures::compare(trace.final_hidden, ref_trace.final_hidden).rel <= 1e-6);

  // Sampling decode: one id in, one row of logits out.
  for (int id : {5, 9, 2}) {
    dev->traffic = {};
    const gemma3::Vector a = model.decode(id, cache), b = ref.decode(id, ref_cache);
    CHECK(fixtures::compare(a.transpose(), b.transpose()).rel <= 1e-6);
    CHECK(dev->traffic.to_device == sizeof(int));
    CHECK(dev->traffic.to_host == std::size_t(model.config().vocab_size) * sizeof(float));
    CHECK(dev->traffic.weights == 0);
  }
}

TEST_CASE("device backend: a greedy decode step moves one id in and one id out", "[backends][model]") {
  auto dev = std::make_shared<DeviceSim>();
  const gemma3::Gemma3ForCausalLM model = tiny("tiny_local_last", dev);  // greedy runs past the window
  const gemma3::SafetensorsFile expected(fixtures::path("tiny_local_last") + "/expected.safetensors");
  const std::vector<int> ids = fixtures::ids(expected, "input_ids");
  const std::vector<int> want = fixtures::ids(expected, "greedy_continuation");  // transformers' generate()

  gemma3::KVCache cache = model.new_cache(int(ids.size() + want.size()) + 1);
  std::vector<int> got{model.prefill_greedy(ids, cache)};
  CHECK(dev->traffic.to_device == ids.size() * sizeof(int));
  CHECK(dev->traffic.to_host == sizeof(int));
  CHECK(dev->traffic.weights > 0);  // the first call uploads them
  while (got.size() < want.size()) {
    dev->traffic = {};
    got.push_back(model.decode_greedy(got.back(), cache));
    CHECK(dev->traffic.to_device == sizeof(int));
    CHECK(dev->traffic.to_host == sizeof(int));
    CHECK(dev->traffic.weights == 0);
  }
  CHECK(got == want);
}

TEST_CASE("device backend: a greedy decode batch moves B ids and B positions in and B ids out", "[backends][model][batch]") {
  auto dev = std::make_shared<DeviceSim>();
  const gemma3::Gemma3ForCausalLM model = tiny("tiny_local_last", dev);
  const gemma3::Gemma3ForCausalLM ref = model.with_backend(std::make_shared<gemma3::ReferenceBackend>());
  const gemma3::SafetensorsFile expected(fixtures::path("tiny_local_last") + "/expected.safetensors");
  const std::vector<int> ids = fixtures::ids(expected, "input_ids");
  const std::vector<std::vector<int>> prompts = {ids, {ids[1]}, {ids[0], ids[2], ids[3]}};
  const std::size_t B = prompts.size();
  std::vector<gemma3::KVCache> caches, ref_caches;
  std::vector<gemma3::KVCache*> ptrs, ref_ptrs;
  std::vector<int> next, ref_next;
  for (const auto& p : prompts) {
    caches.push_back(model.new_cache(64));
    ref_caches.push_back(ref.new_cache(64));
    next.push_back(model.prefill_greedy(p, caches.back()));
    ref_next.push_back(ref.prefill_greedy(p, ref_caches.back()));
  }
  for (std::size_t b = 0; b < B; ++b) {
    ptrs.push_back(&caches[b]);
    ref_ptrs.push_back(&ref_caches[b]);
  }
  for (int s = 0; s < 8; ++s) {
    dev->traffic = {};
    next = model.decode_greedy_batch(next, ptrs);
    ref_next = ref.decode_greedy_batch(ref_next, ref_ptrs);
    INFO("step " << s);
    CHECK(next == ref_next);
    CHECK(dev->traffic.to_device == 2 * B * sizeof(int));  // the ids and the positions
    CHECK(dev->traffic.to_host == B * sizeof(int));
    CHECK(dev->traffic.weights == 0);
  }
  // The logits of a sampling step: one row per sequence, the reference's.
  const Matrix a = model.decode_batch(next, ptrs), b = ref.decode_batch(ref_next, ref_ptrs);
  CHECK(fixtures::compare(a, b).rel <= 1e-6);
}

TEST_CASE("device backend: the tiny vision model through the seam equals the reference backend", "[backends][vision]") {
  auto dev = std::make_shared<DeviceSim>();
  const gemma3::Gemma3ForConditionalGeneration model =
      gemma3::load_hf_multimodal_model(fixtures::path("vision_tiny")).with_backend(dev);
  const gemma3::Gemma3ForConditionalGeneration ref = model.with_backend(std::make_shared<gemma3::ReferenceBackend>());
  const gemma3::SafetensorsFile expected(fixtures::path("vision_tiny") + "/expected.safetensors");
  const std::vector<int> ids = fixtures::ids(expected, "input_ids");
  std::vector<Matrix> pixels;
  for (std::int64_t i = 0; i < expected.at("pixel_values").shape.at(0); ++i)
    pixels.push_back(vision_fixtures::f32_slice(expected, "pixel_values", i, 3));
  gemma3::KVCache cache = model.new_cache(128), ref_cache = ref.new_cache(128);
  const Matrix ours = model.forward(ids, pixels, cache, gemma3::Logits::all);
  const Matrix want = ref.forward(ids, pixels, ref_cache, gemma3::Logits::all);
  CHECK(fixtures::compare(ours, want).rel <= 1e-6);
  CHECK(fixtures::compare(ours, fixtures::matrix(expected, "logits")).rel <= 1e-4);  // and transformers
  const gemma3::Vector next = model.decode(3, cache), ref_next = ref.decode(3, ref_cache);
  CHECK(fixtures::compare(next.transpose(), ref_next.transpose()).rel <= 1e-6);
}

TEST_CASE("backends refuse a KV cache another backend made", "[backends]") {
  const gemma3::Gemma3ForCausalLM on_device = tiny("tiny_global_last", std::make_shared<DeviceSim>());
  gemma3::CpuBackend::Options o;
  o.threads = 1;
  for (std::shared_ptr<const gemma3::Backend> host :
       {std::shared_ptr<const gemma3::Backend>(std::make_shared<gemma3::ReferenceBackend>()),
        std::shared_ptr<const gemma3::Backend>(std::make_shared<gemma3::CpuBackend>(o))}) {
    const gemma3::Gemma3ForCausalLM on_host = on_device.with_backend(host);
    gemma3::KVCache device_cache = on_device.new_cache(16);
    CHECK_THROWS_WITH(on_host.forward({2, 5}, device_cache), Catch::Matchers::Contains("not in host memory"));
    gemma3::KVCache host_cache = on_host.new_cache(16);
    CHECK_THROWS_WITH(on_device.forward({2, 5}, host_cache), Catch::Matchers::Contains("no device rows"));
  }
}
