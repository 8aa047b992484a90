// gemma3/attention.hpp -- Gemma 3 self-attention: GQA, QK-norm, RoPE, sliding window.
//
//   q = x Wq^T  [T, num_attention_heads * head_dim]
//   k = x Wk^T  [T, num_key_value_heads * head_dim],   v = x Wv^T (same shape)
//   q, k = RMSNorm per head (q_norm, k_norm; (1+w))      <- before RoPE
//   q, k = RoPE(q, k)   (base and scaling by layer type, rope.hpp)
//   for query head h, using kv head h / (num_attention_heads / num_key_value_heads):
//     s[j]  = (q_h . k_j) * query_pre_attn_scalar^-0.5     (168^-0.5 on 27B, not head_dim^-0.5)
//     s[j]  = softcap * tanh(s[j] / softcap)               (only if attn_logit_softcapping is set:
//             never in a released Gemma 3 config; applied as JAX and Gemma 2 do, while
//             transformers 5.24's Gemma3Attention ignores the field -- tests/test_model.cpp)
//     p     = softmax over the keys j the mask allows (attention_mask.hpp), float32
//     o_h   = sum_j p[j] v_j
//   out = concat_h(o_h) Wo^T   [T, hidden_size]
//
// New keys and values go into the layer's KV cache (kv_cache.hpp) so that the next
// call, at a later position, sees them; with a float16 cache they are rounded to
// float16 before any query uses them (what the cache keeps, for every query alike).
// The same function runs a whole prompt (prefill, T > 1, matrix products) or one
// token (decode, T = 1, matrix-vector).
// Multimodal prompts pass the image groups of the chunk: an image soft token then
// also sees the later soft tokens of its own image (attention_mask.hpp); text-only
// calls pass nothing and the rule is the plain causal / sliding one.
//
// Mirrors Gemma3Attention with eager_attention_forward. Pinned by the model
// fixtures in tests/test_model.cpp (GQA groups 1, 2 and 4; scalar != head_dim;
// windows 1, 2 and 4) and the prefill/decode equality tests there.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "attention_mask.hpp"
#include "config.hpp"
#include "kernels/kv_dot.hpp"
#include "kernels/matmul.hpp"
#include "kernels/softmax.hpp"
#include "kv_cache.hpp"
#include "rms_norm.hpp"
#include "rope.hpp"
#include "tensor.hpp"

namespace gemma3 {

struct Gemma3AttentionWeights {
  Weight q_proj;  // [num_attention_heads * head_dim, hidden_size]
  Weight k_proj;  // [num_key_value_heads * head_dim, hidden_size]
  Weight v_proj;  // [num_key_value_heads * head_dim, hidden_size]
  Weight o_proj;  // [hidden_size, num_attention_heads * head_dim]
  Vector q_norm;  // [head_dim]
  Vector k_norm;  // [head_dim]
};

struct AttentionShape {
  int num_attention_heads;
  int num_key_value_heads;
  int head_dim;
  float scale;                    // query_pre_attn_scalar^-0.5
  std::optional<double> softcap;  // attn_logit_softcapping
  bool sliding;
  int sliding_window;
};

// The two products of one decoding token, spread over the thread pool. Eigen's GEMM
// would first pack the [n, D] keys (or values) for a product with only `group` rows,
// on one thread; here each key row is read once, in place, for all the group's heads
// (kernels/kv_dot.hpp: scalar and AVX2 twins, float32 or float16 rows).
//   scores [rows, n] = q_group [rows, D] . keys [n, D]^T      (the keys split over threads)
inline void scores_one_token(const Matrix& q_group, const KVView& keys, Matrix& scores) {
  const Eigen::Index rows = q_group.rows(), n = keys.rows, D = keys.cols;
  scores.resize(rows, n);
  const Isa isa = active_isa();
  default_pool().parallel_for(0, n, [&](std::int64_t j0, std::int64_t j1) {
    kernels::kv_scores(isa, q_group.data(), rows, D, keys.dtype, keys.element(j0, 0), keys.stride, j1 - j0,
                       scores.data() + j0, n);
  }, 64);
}
//   out [rows, D] = p [rows, n] . values [n, D]                (the keys split over threads)
// The keys are cut into a number of parts that depends on n only (so the result does
// not depend on the thread count); each part streams its value rows once, adding
// p(r, j) * values[j] into its own partial sums [rows, D], and the partials are
// added in part order.
inline void weighted_values_one_token(const Matrix& p, const KVView& values, Matrix& out) {
  const Eigen::Index rows = p.rows(), n = p.cols(), D = values.cols;
  constexpr Eigen::Index kMinPart = 64, kMaxParts = 16;
  const Eigen::Index part = std::max(kMinPart, (n + kMaxParts - 1) / kMaxParts);
  const Eigen::Index parts = (n + part - 1) / part;
  thread_local Matrix scratch;  // the calling thread's; the workers write into it through `partial`
  Matrix& partial = scratch;    // [parts * rows, D]
  partial.resize(parts * rows, D);
  const Isa isa = active_isa();
  default_pool().parallel_for(0, parts, [&](std::int64_t a, std::int64_t b) {
    for (std::int64_t k = a; k < b; ++k) {
      auto acc = partial.middleRows(k * rows, rows);
      acc.setZero();
      kernels::kv_weighted(isa, p.data(), n, rows, D, values.dtype, values.data, values.stride, k * part,
                           std::min(n, (k + 1) * part), acc.data());
    }
  }, 1);
  out = partial.topRows(rows);
  for (Eigen::Index k = 1; k < parts; ++k) out += partial.middleRows(k * rows, rows);
}

// Scaled dot-product attention of T queries (positions pos0 ..) over n keys whose
// positions are the contiguous run ctx0 .. ctx0 + n - 1.
//   q [T, NH * D], keys/values [n, KV * D]  ->  out [T, NH * D]
// The `group` query heads that share one kv head are stacked into one matrix, so
// each key and value row is read once per kv head, not once per query head.
// `images` (multimodal prefill only) lets image soft tokens see forward within their image.
// keys and values are float32 or float16 (kv_cache.hpp's KVView; a Matrix converts).
inline void grouped_query_attention(const AttentionShape& s, const Matrix& q, int pos0, const KVView& keys,
                                    const KVView& values, int ctx0, Matrix& out, const ImageGroups* images = nullptr) {
  const int T = int(q.rows());
  const int D = s.head_dim;
  const int group = s.num_attention_heads / s.num_key_value_heads;
  constexpr int kQueryBlock = 64;  // bounds the score matrix at [64 * group, keys] for long prompts
  out.resize(T, Eigen::Index(s.num_attention_heads) * D);
  Matrix q_group;  // [tokens in block * group, D]: row t * group + g is query head kv * group + g of token t
  Matrix scores;   // [tokens in block * group, keys in range]
  Matrix o_group;  // [tokens in block * group, D]
  Matrix widened;  // [keys in range, D]: float16 keys or values as float32, for the GEMMs
  for (int kv = 0; kv < s.num_key_value_heads; ++kv) {
    for (int t0 = 0; t0 < T; t0 += kQueryBlock) {
      const int tb = std::min(kQueryBlock, T - t0);
      const int q_first = pos0 + t0, q_last = pos0 + t0 + tb - 1;
      const int k_lo = first_visible_key(s.sliding, s.sliding_window, q_first) - ctx0;  // index into keys
      int k_hi = q_last;  // last key position any query of the block sees (later than q_last only for images)
      if (images)
        for (int p = q_first; p <= q_last; ++p) k_hi = std::max(k_hi, images->last_visible_key(p));
      const int n = k_hi - ctx0 + 1 - k_lo;
      q_group.resize(tb * group, D);
      for (int t = 0; t < tb; ++t)
        for (int g = 0; g < group; ++g)
          q_group.row(t * group + g) = q.block(t0 + t, (kv * group + g) * D, 1, D);

      if (tb == 1) scores_one_token(q_group, keys.block(k_lo, kv * D, n, D), scores);  // decode
      else scores.noalias() = q_group * keys.block(k_lo, kv * D, n, D).as_f32(widened).transpose();
      scores *= s.scale;
      if (s.softcap) {
        const float c = float(*s.softcap);
        scores = scores.unaryExpr([c](float x) { return c * std::tanh(x / c); });
      }
      for (int r = 0; r < tb * group; ++r) {  // mask, then softmax over the visible keys
        const int qp = q_first + r / group;
        const int lo = first_visible_key(s.sliding, s.sliding_window, qp) - ctx0 - k_lo;
        const int hi = (images ? images->last_visible_key(qp) : qp) - ctx0 - k_lo;  // inclusive
        auto row = scores.row(r);
        // Keys after the query are visible only to a soft token of the same image.
        auto visible = [&](int j) {
          if (j < lo || j > hi) return false;
          const int kp = ctx0 + k_lo + j;
          return kp <= qp || images->same_group(qp, kp);
        };
        if (!images) {  // text: the visible keys are the run lo .. hi
          const float mx = row.segment(lo, hi - lo + 1).maxCoeff();
          const float sum = exp_shift_sum(row.data() + lo, hi - lo + 1, mx);  // kernels/softmax.hpp
          row.head(lo).setZero();
          row.tail(n - 1 - hi).setZero();
          row /= sum;
          continue;
        }
        float mx = -std::numeric_limits<float>::infinity();
        for (int j = lo; j <= hi; ++j)
          if (visible(j)) mx = std::max(mx, row(j));
        float sum = 0.0f;
        for (int j = 0; j < n; ++j) {
          const float e = visible(j) ? std::exp(row(j) - mx) : 0.0f;
          row(j) = e;
          sum += e;
        }
        row /= sum;
      }
      if (tb == 1) weighted_values_one_token(scores, values.block(k_lo, kv * D, n, D), o_group);
      else o_group.noalias() = scores * values.block(k_lo, kv * D, n, D).as_f32(widened);
      for (int t = 0; t < tb; ++t)
        for (int g = 0; g < group; ++g)
          out.block(t0 + t, (kv * group + g) * D, 1, D) = o_group.row(t * group + g);
    }
  }
}

// out [T, hidden_size] = attention over x [T, hidden_size] at positions pos0 .. pos0+T-1.
inline void gemma3_attention(const Gemma3TextConfig& c, bool sliding, const Gemma3AttentionWeights& w,
                             const RotaryEmbedding& rope, const Matrix& x, int pos0, LayerKVCache& cache,
                             Matrix& out, const ImageGroups* images = nullptr) {
  const int T = int(x.rows());
  const int D = c.head_dim;
  const float eps = float(c.rms_norm_eps);
  Matrix q, k, v;  // [T, NH * D], [T, KV * D], [T, KV * D]
  linear_many(x, {{&w.q_proj, &q}, {&w.k_proj, &k}, {&w.v_proj, &v}});  // = linear() of each, one job for one token
  rms_norm_heads(q, D, w.q_norm, eps);  // QK-norm comes before RoPE
  rms_norm_heads(k, D, w.k_norm, eps);
  rope.apply(q, pos0);
  rope.apply(k, pos0);

  // A float16 cache keeps K and V rounded to float16 (kv_cache.hpp): round this chunk's
  // own rows the same way first, so its queries see what later tokens will read back.
  cache.k.round(k);
  cache.v.round(v);

  const AttentionShape shape{c.num_attention_heads, c.num_key_value_heads, D, c.attention_scale(),
                             c.attn_logit_softcapping, sliding, c.sliding_window};
  Matrix context;  // [T, NH * D]
  if (!sliding) {
    // Global layer: write this chunk's rows, then attend over positions 0 .. pos0+T-1 in place.
    for (int t = 0; t < T; ++t) {
      cache.k.store(pos0 + t, k.row(t).data());
      cache.v.store(pos0 + t, v.row(t).data());
    }
    grouped_query_attention(shape, q, pos0, cache.k.view(0, pos0 + T), cache.v.view(0, pos0 + T), 0, context, images);
  } else if (T == 1 && images == nullptr) {
    // Sliding layer, one token (decode): write its row into the ring first (it
    // replaces position pos0 - capacity, which the window no longer shows), then the
    // ring's n filled rows are exactly the keys the query sees: in position order
    // until the ring wraps, a rotation of them after. All n are visible, and
    // attention over keys that are all visible does not depend on their order (RoPE
    // is already in the keys), so the ring is used in place: no copy per token.
    cache.k.store(cache.slot(pos0), k.data());
    cache.v.store(cache.slot(pos0), v.data());
    const int n = std::min(pos0 + 1, cache.capacity);
    grouped_query_attention(shape, q, pos0, cache.k.view(0, n), cache.v.view(0, n), pos0 + 1 - n, context);
  } else {
    // Sliding layer: the keys the chunk's first query can still see come from the
    // ring, followed by the chunk's own keys; then the ring keeps the newest rows.
    const int ctx0 = first_visible_key(true, c.sliding_window, pos0);
    const int n_old = pos0 - ctx0;
    Matrix keys(n_old + T, k.cols()), values(n_old + T, v.cols());  // [n_old + T, KV * D]
    for (int j = 0; j < n_old; ++j) {
      cache.k.load(cache.slot(ctx0 + j), keys.row(j).data());
      cache.v.load(cache.slot(ctx0 + j), values.row(j).data());
    }
    keys.bottomRows(T) = k;
    values.bottomRows(T) = v;
    grouped_query_attention(shape, q, pos0, keys, values, ctx0, context, images);
    for (int t = std::max(0, T - cache.capacity); t < T; ++t) {
      cache.k.store(cache.slot(pos0 + t), k.row(t).data());
      cache.v.store(cache.slot(pos0 + t), v.row(t).data());
    }
  }
  linear(w.o_proj, context, out);
}

}  // namespace gemma3
