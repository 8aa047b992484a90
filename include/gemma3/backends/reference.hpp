// gemma3/backends/reference.hpp -- the reference backend: Gemma 3's machine-dependent
// steps written as plainly as Eigen allows. Float32 everywhere, one thread, a float32
// KV cache.
//
//   linear:     Y = X . W^T, with W widened to float32 once, on first use
//   attention:  for each query head h (GQA: it reads kv head h / (NH / KV)):
//                 S   = Q_h K^T * query_pre_attn_scalar^-0.5     [T, n]  every query, every key
//                 S   = softcap * tanh(S / softcap)               (if set)
//                 S   = -inf where the mask forbids (q, k)        (attention_mask.hpp)
//                 P   = softmax(S) over each row (the keys)
//                 O_h = P V                                       [T, head_dim]
//
// It mirrors transformers' eager_attention_forward (modeling_gemma3.py) and is the
// backend every other is held to (tests/test_backends.cpp); tests/test_model.cpp
// holds it to transformers itself.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>

#include "../backend.hpp"
#include "../kernels/gelu.hpp"
#include "../quant/quant.hpp"

namespace gemma3 {

class ReferenceBackend : public Backend {
 public:
  std::string name() const override { return "reference"; }

  // Activations are host matrices (backend.hpp's host defaults run embed, RMSNorm,
  // RoPE and the residual adds with the plain functions of their headers).
  void linear(const Weight& W, const Activations& X, Activations& Y) const override {
    linear_host(W, X.host(), Y.host());
  }
  void linear_host(const Weight& W, const Matrix& X, Matrix& Y) const override {
    Y.noalias() = X * as_f32(W).transpose();  // [T, in] . [in, out]
  }

  void gelu_tanh_mul(Activations& gate_a, const Activations& up_a) const override {
    Matrix& gate = gate_a.host();
    gate = gate.binaryExpr(up_a.host(), [](float g, float u) { return gelu_tanh(g) * u; });
  }

  KVCache new_cache(const Gemma3TextConfig& config, int max_cache_len, std::optional<DType> kv_dtype) const override {
    if (kv_dtype && *kv_dtype != DType::F32)
      throw std::invalid_argument(std::string("ReferenceBackend: the cache is float32; asked for ") +
                                  dtype_name(*kv_dtype));
    return KVCache(config, max_cache_len, DType::F32);
  }

  void attention(const AttentionShape& s, const AttentionMask& mask, const Activations& q_a, const Activations& k_a,
                 const Activations& v_a, LayerKVCache& cache, Activations& context_a) const override {
    const Matrix &q = q_a.host(), &k = k_a.host(), &v = v_a.host();  // [T, NH * D], [T, KV * D], [T, KV * D]
    Matrix& context = context_a.host();                                 // [T, NH * D]
    cache.require_host_rows("ReferenceBackend");
    if (cache.k.dtype() != DType::F32) throw std::invalid_argument("ReferenceBackend: needs a float32 KV cache");
    const int T = int(q.rows()), D = s.head_dim, group = s.num_attention_heads / s.num_key_value_heads;
    // The keys this call may see: positions first .. pos0 + T - 1, the earlier ones
    // read back from the cache, the call's own from k and v.
    const int first = mask.first_key(mask.pos0), n = mask.pos0 + T - first;
    Matrix keys(n, k.cols()), values(n, v.cols());  // [n, KV * D]
    for (int j = 0; j < n - T; ++j) {
      cache.k.load(cache.slot(first + j), keys.row(j).data());
      cache.v.load(cache.slot(first + j), values.row(j).data());
    }
    keys.bottomRows(T) = k;
    values.bottomRows(T) = v;
    for (int t = 0; t < T; ++t) {  // then the cache keeps them (a ring keeps the newest)
      cache.k.store(cache.slot(mask.pos0 + t), k.row(t).data());
      cache.v.store(cache.slot(mask.pos0 + t), v.row(t).data());
    }

    context.resize(T, Eigen::Index(s.num_attention_heads) * D);  // [T, NH * D]
    for (int h = 0; h < s.num_attention_heads; ++h) {
      const int kv = h / group;  // GQA: query head h reads kv head h / group
      Matrix scores = q.middleCols(h * D, D) * keys.middleCols(kv * D, D).transpose() * s.scale;  // [T, n]
      for (int t = 0; t < T; ++t) {
        Eigen::Ref<RowVector> row = scores.row(t);  // [n]
        for (int j = 0; j < n; ++j) {
          if (s.softcap) row(j) = float(*s.softcap) * std::tanh(row(j) / float(*s.softcap));
          if (!mask.allows(mask.pos0 + t, first + j)) row(j) = -std::numeric_limits<float>::infinity();
        }
        row = (row.array() - row.maxCoeff()).exp();  // softmax over the keys
        row /= row.sum();
      }
      context.middleCols(h * D, D) = scores * values.middleCols(kv * D, D);  // [T, D]
    }
  }

  void lm_head_last(const Weight& W, const Activations& h, float* logits) const override {
    const Matrix& x = h.host();
    Eigen::Map<RowVector>(logits, W.rows).noalias() = x.row(x.rows() - 1) * as_f32(W).transpose();
  }

  int argmax(const float* x, std::size_t n) const override {
    std::size_t best = 0;
    for (std::size_t i = 1; i < n; ++i)
      if (x[i] > x[best] || (std::isnan(x[best]) && !std::isnan(x[i]))) best = i;
    return int(best);
  }

 private:
  // W as a float32 matrix [rows, cols]: the weight itself when it is float32, else a
  // copy widened (dequantized) once and kept for the backend's lifetime.
  Eigen::Map<const Matrix> as_f32(const Weight& W) const {
    if (W.dtype == DType::F32) return Eigen::Map<const Matrix>(static_cast<const float*>(W.data), W.rows, W.cols);
    std::lock_guard<std::mutex> lock(widened_->mutex);
    Matrix& m = widened_->by_weight[{W.data, W.rows, W.cols}];
    if (m.size() == 0) {
      m.resize(W.rows, W.cols);
      for (std::int64_t r = 0; r < W.rows; ++r) dequantize_row(W, r, m.row(r).data());
    }
    return Eigen::Map<const Matrix>(m.data(), m.rows(), m.cols());
  }

  struct Widened {
    std::mutex mutex;
    std::map<std::tuple<const void*, std::int64_t, std::int64_t>, Matrix> by_weight;
  };
  std::shared_ptr<Widened> widened_ = std::make_shared<Widened>();
};

}  // namespace gemma3
