// gemma3/backend.hpp -- the seam between what Gemma 3 computes and the machine that computes it.
//
// The model (model.hpp, decoder_layer.hpp, attention.hpp, mlp.hpp) spells Gemma 3 in
// plain steps: embedding, RMSNorm, QK-norm, RoPE, residual adds. The few steps whose
// best implementation depends on the machine go through a Backend, chosen once when
// the model is made:
//
//   linear        Y [T, out] = X [T, in] . W^T        every projection; W in any DType
//   linear_many   the same for several W that read one X (q/k/v; gate/up)
//   gelu_tanh_mul gate = gelu_tanh(gate) * up          the GeGLU product, elementwise
//   new_cache     the KV cache: where its rows live and in which dtype
//   attention     store this chunk's K and V rows in the cache, then attend over
//                 the keys the mask allows: softmax(q k^T * scale) v, GQA
//   lm_head_row   logits [vocab] = embed_tokens . h   one token's logits (decode)
//   argmax        the greedy token
//
// Two backends implement it:
//   ReferenceBackend (backends/reference.hpp)  plain Eigen, float32, one thread: the one
//                                              to read, and the one every other is tested
//                                              against (tests/test_backends.cpp);
//   CpuBackend       (backends/cpu.hpp)        SIMD kernels chosen at run time, a thread
//                                              pool, int16 activations, a float16 cache.
// Everything a backend needs (instruction set, threads, activation rounding, cache
// dtype) is a field of the backend object; nothing is process-wide.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "attention_mask.hpp"
#include "config.hpp"
#include "dtype.hpp"
#include "weight.hpp"
#include "kv_cache.hpp"
#include "tensor.hpp"

namespace gemma3 {

// The shape of one layer's attention, from the config (attention.hpp fills it).
struct AttentionShape {
  int num_attention_heads;
  int num_key_value_heads;
  int head_dim;
  float scale;                    // query_pre_attn_scalar^-0.5
  std::optional<double> softcap;  // attn_logit_softcapping (never set in a released Gemma 3)
};

class Backend {
 public:
  virtual ~Backend() = default;

  // A short name for reports ("reference", "cpu avx512 x2 threads, f16 cache").
  virtual std::string name() const = 0;

  // Y [T, W.rows] = X [T, W.cols] . W^T
  virtual void linear(const Weight& W, const Matrix& X, Matrix& Y) const = 0;

  // (*Y_i) = X . W_i^T for every pair (W_i, Y_i); a backend may run them as one job.
  virtual void linear_many(const Matrix& X, std::initializer_list<std::pair<const Weight*, Matrix*>> jobs) const {
    for (const auto& j : jobs) linear(*j.first, X, *j.second);
  }

  // gate [T, I] = gelu_tanh(gate) * up, elementwise (mlp.hpp).
  virtual void gelu_tanh_mul(Matrix& gate, const Matrix& up) const = 0;

  // The cache attention() reads and writes, for sequences up to max_cache_len tokens;
  // kv_dtype: the backend's own choice when not given.
  virtual KVCache new_cache(const Gemma3TextConfig& config, int max_cache_len,
                            std::optional<DType> kv_dtype = std::nullopt) const = 0;

  // One layer's attention for the T tokens at positions mask.pos0 .. pos0 + T - 1:
  //   q [T, NH * D], k and v [T, KV * D] (after QK-norm and RoPE)  ->  context [T, NH * D]
  // k and v are stored in `cache` first (so the next call sees them); the queries see
  // the keys mask.allows() and nothing else.
  virtual void attention(const AttentionShape& shape, const AttentionMask& mask, const Matrix& q, const Matrix& k,
                         const Matrix& v, LayerKVCache& cache, Matrix& context) const = 0;

  // logits [W.rows] = W [vocab, hidden] . h [hidden]: one token through the tied LM head.
  virtual void lm_head_row(const Weight& W, const float* h, float* logits) const = 0;

  // Index of the largest of x[0 .. n) (the first on ties; NaN never wins).
  virtual int argmax(const float* x, std::size_t n) const = 0;
};

}  // namespace gemma3
