// attention_weights.hpp and ForwardTrace::last_token_attention: what the last token
// of a forward call attended to, read from the KV cache the call filled.
//
// The expected rows are recomputed here from scratch, without the cache: each token's
// key from its input to the layer (ForwardTrace's hidden states), the mask from
// may_attend(), a softmax in double. So a wrong ring slot, a window one off or a key
// read before its RoPE shows up as a mismatch. Every fixture (windows 4, 2 and 1 with
// sequences past them; GQA groups 1, 2 and 4; softcapping), the reference backend and
// the CPU backend with float32 and float16 caches, prefill and decode rows.
#include "catch.hpp"
#include "fixture_helpers.hpp"

#include "gemma3/checkpoint.hpp"
#include "gemma3/backends/reference.hpp"
#include "gemma3/model.hpp"

using gemma3::Matrix;

namespace {

// [NH, p + 1] from the layer inputs X [p + 1, hidden_size] of positions 0 .. p.
Matrix attention_from_scratch(const gemma3::Gemma3ForCausalLM& m, int layer, const Matrix& X) {
  const gemma3::Gemma3TextConfig& c = m.config();
  const auto& w = m.weights().layers[std::size_t(layer)];
  const bool sliding = c.is_sliding(layer);
  const gemma3::RotaryEmbedding rope(c.head_dim, c.rope_for(sliding ? gemma3::LayerType::sliding_attention
                                                                     : gemma3::LayerType::full_attention));
  const int n = int(X.rows()), p = n - 1, NH = c.num_attention_heads, KV = c.num_key_value_heads, D = c.head_dim;
  const float eps = float(c.rms_norm_eps);
  gemma3::ReferenceBackend ref;
  Matrix a = X;
  gemma3::rms_norm_rows(a, w.input_layernorm, eps);
  Matrix q, k;
  ref.linear_host(w.self_attn.q_proj, a.bottomRows(1), q);
  ref.linear_host(w.self_attn.k_proj, a, k);
  gemma3::rms_norm_heads(q, D, w.self_attn.q_norm, eps);
  gemma3::rms_norm_heads(k, D, w.self_attn.k_norm, eps);
  rope.apply(q, p);
  rope.apply(k, 0);
  Matrix P = Matrix::Zero(NH, n);
  for (int h = 0; h < NH; ++h) {
    std::vector<double> s(std::size_t(n), -1e300);
    double mx = -1e300, sum = 0;
    for (int j = 0; j < n; ++j) {
      if (!gemma3::may_attend(sliding, c.sliding_window, p, j)) continue;
      double d = 0;
      for (int e = 0; e < D; ++e) d += double(q(0, h * D + e)) * double(k(j, (h / (NH / KV)) * D + e));
      d *= c.attention_scale();
      if (c.attn_logit_softcapping) d = *c.attn_logit_softcapping * std::tanh(d / *c.attn_logit_softcapping);
      s[std::size_t(j)] = d;
      mx = std::max(mx, d);
    }
    for (int j = 0; j < n; ++j)
      if (s[std::size_t(j)] > -1e299) sum += std::exp(s[std::size_t(j)] - mx);
    for (int j = 0; j < n; ++j)
      if (s[std::size_t(j)] > -1e299) P(h, j) = float(std::exp(s[std::size_t(j)] - mx) / sum);
  }
  return P;
}

void check_rows(const gemma3::Gemma3ForCausalLM& m, std::optional<gemma3::DType> kv, const std::vector<int>& ids,
                double tol) {
  const gemma3::Gemma3TextConfig& c = m.config();
  const int n = int(ids.size());
  // The hidden states of the whole sequence at once: each layer's input for every position.
  gemma3::ForwardTrace all;
  {
    gemma3::KVCache cache = m.new_cache(n, kv);
    m.forward(ids, cache, gemma3::Logits::last, &all);
  }
  // The rows under test: a prefill of n - 1 tokens, then one decode step.
  gemma3::KVCache cache = m.new_cache(n, kv);
  gemma3::ForwardTrace pre, dec;
  pre.hidden_states = dec.hidden_states = false;
  pre.attention = dec.attention = true;
  const std::vector<int> head(ids.begin(), ids.end() - 1);
  const Matrix logits_traced = m.forward(head, cache, gemma3::Logits::last, &pre);
  m.forward({ids.back()}, cache, gemma3::Logits::last, &dec);
  CHECK(pre.layer_outputs.empty());
  REQUIRE(int(pre.last_token_attention.size()) == c.num_hidden_layers);
  REQUIRE(int(dec.last_token_attention.size()) == c.num_hidden_layers);
  {  // tracing changes nothing
    gemma3::KVCache plain = m.new_cache(n, kv);
    CHECK((m.forward(head, plain, gemma3::Logits::last) - logits_traced).cwiseAbs().maxCoeff() == 0.0f);
  }

  for (int layer = 0; layer < c.num_hidden_layers; ++layer) {
    const Matrix& X = layer == 0 ? all.embeddings : all.layer_outputs[std::size_t(layer - 1)];  // [n, hidden]
    for (int which = 0; which < 2; ++which) {
      const int len = which == 0 ? n - 1 : n;
      const Matrix& got = (which == 0 ? pre : dec).last_token_attention[std::size_t(layer)];
      const Matrix want = attention_from_scratch(m, layer, X.topRows(len));
      INFO("layer " << layer << (c.is_sliding(layer) ? " (sliding)" : " (global)") << ", query position "
                    << len - 1 << (which == 0 ? " (prefill)" : " (decode)"));
      REQUIRE(got.rows() == c.num_attention_heads);
      REQUIRE(got.cols() == len);
      CHECK((got - want).cwiseAbs().maxCoeff() <= tol);
      for (int h = 0; h < got.rows(); ++h) {
        CHECK(std::abs(double(got.row(h).sum()) - 1.0) <= 1e-5);
        const int first = gemma3::first_visible_key(c.is_sliding(layer), c.sliding_window, len - 1);
        if (first > 0) CHECK(got.row(h).head(first).cwiseAbs().maxCoeff() == 0.0f);  // outside the window
        CHECK(got.row(h).segment(first, len - first).minCoeff() > 0.0f);
      }
    }
  }
}

}  // namespace

TEST_CASE("last_token_attention: the rows the cache gives equal the ones recomputed from scratch",
          "[attention_weights]") {
  for (const char* name : {"tiny_global_last", "tiny_local_last", "tiny_sharded_f16"}) {
    INFO(name);
    const gemma3::Gemma3ForCausalLM loaded = gemma3::load_hf_model(fixtures::path(name));
    const std::vector<int> ids =
        fixtures::ids(gemma3::SafetensorsFile(fixtures::path(name) + "/expected.safetensors"), "input_ids");
    REQUIRE(int(ids.size()) > loaded.config().sliding_window + 1);  // the ring has wrapped at the last query
    const auto ref = loaded.with_backend(std::make_shared<const gemma3::ReferenceBackend>());
    check_rows(ref, std::nullopt, ids, 2e-6);
    const auto cpu = loaded.with_backend(std::make_shared<const gemma3::CpuBackend>(gemma3::CpuBackend::Options{}));
    check_rows(cpu, gemma3::DType::F32, ids, 2e-4);  // the CPU backend's int16 activations, where quantized
    check_rows(cpu, gemma3::DType::F16, ids, 5e-3);  // keys rounded to float16 in the cache
  }
}

TEST_CASE("last_token_attention_weights: a wrong-shaped input is refused", "[attention_weights]") {
  const gemma3::Gemma3ForCausalLM m = gemma3::load_hf_model(fixtures::path("tiny_global_last"));
  gemma3::KVCache cache = m.new_cache(4);
  m.forward({1, 2}, cache);
  const gemma3::RotaryEmbedding rope(m.config().head_dim, m.config().rope_for(gemma3::LayerType::full_attention));
  CHECK_THROWS_WITH(gemma3::last_token_attention_weights(m.backend(), m.config(), false, m.weights().layers[0], rope,
                                                         Matrix::Zero(2, m.config().hidden_size), 1, cache.layer(0)),
                    Catch::Contains("[1, hidden_size"));
}
