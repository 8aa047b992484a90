// gemma3/backend.hpp -- the seam between what Gemma 3 computes and the machine that computes it.
//
// The model (model.hpp, decoder_layer.hpp, attention.hpp, mlp.hpp) spells Gemma 3 as a
// list of steps, and every step on the activations is a call to the Backend it was
// given when it was made. The activations themselves (Activations below) and the KV
// cache are the backend's: host matrices for the CPU backends, device buffers for a
// GPU backend, which the model never reads. So a decode step on a GPU moves one token
// id in and one id (decode_greedy) or one row of logits out, and nothing else.
//
//   embed          h [T, H] = embed_tokens[ids] * scale          the ids cross in here
//   set_rows       h's rows at image soft tokens := image features (multimodal prefill)
//   rms_norm       out = x / rms(x) * (1 + w), per row (rms_norm.hpp); rms_norm_heads per head
//   rope           rotate each head's pairs by position (rope.hpp)
//   add            h += x, the residual stream
//   linear         Y [T, out] = X [T, in] . W^T                  every projection; W in any DType
//   linear_many    the same for several W that read one X (q/k/v; gate/up)
//   gelu_tanh_mul  gate = gelu_tanh(gate) * up                   the GeGLU product
//   new_cache      the KV cache: where its rows live and in which dtype
//   attention      store this chunk's K and V rows in the cache, then attend over the
//                  keys the mask allows: softmax(q k^T * scale) v, GQA
//   lm_head_last   logits [vocab] = embed_tokens . h[last]       one row, out to the host
//   lm_head_argmax the greedy id of that row, computed where h is (only the id comes out)
//   rope_at, attention_batch, lm_head_argmax_rows
//                  the same three for a decode batch: row b of the activations is one
//                  token of sequence b, at its own position, with its own cache
//   upload         a host Matrix to activations (the vision tower's linear layers)
//   download       activations to a host Matrix (all-position logits, ForwardTrace)
//
// The small steps (embed .. add, upload, download) have host defaults here, which call the
// plain functions of the headers named; a backend whose activations live elsewhere
// overrides them all (tests/test_backends.cpp runs the model on a simulated device
// whose host matrices are never filled, and counts the bytes that cross).
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
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "attention_mask.hpp"
#include "config.hpp"
#include "dtype.hpp"
#include "embedding.hpp"
#include "kv_cache.hpp"
#include "rms_norm.hpp"
#include "rope.hpp"
#include "tensor.hpp"
#include "weight.hpp"

namespace gemma3 {

// Activations [rows, cols], float32, one token per row, held where the backend computes.
// The reference and CPU backends keep a host Matrix (host()); a device backend keeps
// its own buffer (device()) and never fills the host matrix, whose use then throws.
class Activations {
 public:
  Activations() = default;
  explicit Activations(Matrix m) : host_(std::move(m)) {}
  // A device backend's buffer of [rows, cols] floats.
  Activations(std::shared_ptr<void> device, Eigen::Index rows, Eigen::Index cols)
      : device_(std::move(device)), rows_(rows), cols_(cols) {}

  Eigen::Index rows() const { return device_ ? rows_ : host_.rows(); }
  Eigen::Index cols() const { return device_ ? cols_ : host_.cols(); }

  bool on_device() const { return bool(device_); }
  void* device() const { return device_.get(); }
  // The buffer's owner: a backend that defers work on a buffer tells, by a weak_ptr to
  // it, whether that buffer is still the one it saw.
  const std::shared_ptr<void>& device_buffer() const { return device_; }

  Matrix& host() {
    require_host();
    return host_;
  }
  const Matrix& host() const {
    require_host();
    return host_;
  }

 private:
  void require_host() const {
    if (device_)
      throw std::logic_error("Activations: these live on a device backend; read them through Backend::download");
  }
  Matrix host_;
  std::shared_ptr<void> device_;
  Eigen::Index rows_ = 0, cols_ = 0;
};

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

  // ---- the small steps: host defaults, overridden by a device backend ----------------

  // out [T, H] = table[ids] * scale (embedding.hpp; throws on an id outside the table).
  virtual void embed(const Weight& table, const std::vector<int>& ids, float scale, Activations& out) const {
    out = Activations();
    gemma3::embed(table, ids, scale, out.host());
  }
  // h.row(rows[i]) = values.row(i) for each i.
  virtual void set_rows(Activations& h, const std::vector<int>& rows, const Matrix& values) const {
    for (std::size_t i = 0; i < rows.size(); ++i) h.host().row(rows[i]) = values.row(Eigen::Index(i));
  }
  // out = RMSNorm(x) with the (1 + w) scale, per row; out may be x itself.
  virtual void rms_norm(const Activations& x, const Vector& w, float eps, Activations& out) const {
    if (&out != &x) out = Activations(x.host());
    rms_norm_rows(out.host(), w, eps);
  }
  // The same over each head_dim slice of every row (QK-norm), in place.
  virtual void rms_norm_heads(Activations& x, int head_dim, const Vector& w, float eps) const {
    gemma3::rms_norm_heads(x.host(), head_dim, w, eps);
  }
  // RoPE on every head of x, row t at position pos0 + t, in place.
  virtual void rope(Activations& x, const RotaryEmbedding& rope, int pos0) const { rope.apply(x.host(), pos0); }
  // h += x.
  virtual void add(Activations& h, const Activations& x) const { h.host() += x.host(); }
  // A host matrix as the backend's activations, and back.
  virtual Activations upload(const Matrix& x) const { return Activations(x); }
  virtual Matrix download(const Activations& x) const { return x.host(); }
  // The same for activations no longer needed: host ones are moved out, not copied.
  Matrix download_moved(Activations&& x) const { return x.on_device() ? download(x) : std::move(x.host()); }

  // ---- the heavy steps: every backend implements these -------------------------------

  // Y [T, W.rows] = X [T, W.cols] . W^T
  virtual void linear(const Weight& W, const Activations& X, Activations& Y) const = 0;

  // (*Y_i) = X . W_i^T for every pair (W_i, Y_i); a backend may run them as one job.
  virtual void linear_many(const Activations& X,
                           std::initializer_list<std::pair<const Weight*, Activations*>> jobs) const {
    for (const auto& j : jobs) linear(*j.first, X, *j.second);
  }

  // The same on host matrices, for the parts of the model that run on the host (the
  // SigLIP tower and the projector, once per image). The default moves them through
  // the backend's own activations.
  virtual void linear_host(const Weight& W, const Matrix& X, Matrix& Y) const {
    const Activations x = upload(X);
    Activations y;
    linear(W, x, y);
    Y = download_moved(std::move(y));
  }

  // gate [T, I] = gelu_tanh(gate) * up, elementwise (mlp.hpp).
  virtual void gelu_tanh_mul(Activations& gate, const Activations& up) const = 0;

  // The cache attention() reads and writes, for sequences up to max_cache_len tokens;
  // kv_dtype: the backend's own choice when not given.
  virtual KVCache new_cache(const Gemma3TextConfig& config, int max_cache_len,
                            std::optional<DType> kv_dtype = std::nullopt) const = 0;

  // One layer's attention for the T tokens at positions mask.pos0 .. pos0 + T - 1:
  //   q [T, NH * D], k and v [T, KV * D] (after QK-norm and RoPE)  ->  context [T, NH * D]
  // k and v are stored in `cache` first (so the next call sees them); the queries see
  // the keys mask.allows() and nothing else.
  virtual void attention(const AttentionShape& shape, const AttentionMask& mask, const Activations& q,
                         const Activations& k, const Activations& v, LayerKVCache& cache,
                         Activations& context) const = 0;

  // logits [W.rows] (host) = W [vocab, hidden] . h's last row: the tied LM head for one token.
  virtual void lm_head_last(const Weight& W, const Activations& h, float* logits) const = 0;

  // The greedy id: argmax of the last row's logits (final softcapping is monotone, so
  // it does not change the pick). The default brings the logits to the host.
  virtual int lm_head_argmax(const Weight& W, const Activations& h) const {
    std::vector<float> logits(std::size_t(W.rows));
    lm_head_last(W, h, logits.data());
    return argmax(logits.data(), logits.size());
  }

  // Index of the largest of x[0 .. n) on the host (the first on ties; NaN never wins).
  virtual int argmax(const float* x, std::size_t n) const = 0;

  // ---- a decode batch: B sequences, one token each, row b of every activation -------
  // (Gemma3ForCausalLM::decode_batch). The linear layers, norms and the MLP take the B
  // rows like the T rows of a prompt; only RoPE, attention and the LM head need to know
  // that the rows belong to different sequences. The host defaults run the one-sequence
  // steps row by row; a device backend overrides all three.

  // RoPE on every head of x [B, heads * head_dim], row b at positions[b], in place.
  virtual void rope_at(Activations& x, const RotaryEmbedding& rope, const std::vector<int>& positions) const {
    Matrix& m = x.host();
    require_batch(m.rows(), positions.size(), "rope_at");
    for (Eigen::Index b = 0; b < m.rows(); ++b)
      rope.rotate(m.row(b).data(), int(m.cols()) / rope.head_dim(), positions[std::size_t(b)]);
  }

  // One layer's attention for a decode batch: row b of q, k and v is the token of
  // sequence b at position positions[b]; it is stored in *caches[b] and attends over
  // that cache alone (the layer's mask, `sliding` / `sliding_window`). context [B, NH * D].
  virtual void attention_batch(const AttentionShape& shape, bool sliding, int sliding_window,
                               const std::vector<int>& positions, const Activations& q, const Activations& k,
                               const Activations& v, const std::vector<LayerKVCache*>& caches,
                               Activations& context) const {
    const Matrix &qm = q.host(), &km = k.host(), &vm = v.host();
    require_batch(qm.rows(), positions.size(), "attention_batch");
    require_batch(qm.rows(), caches.size(), "attention_batch");
    for (std::size_t b = 0; b < caches.size(); ++b)
      if (!caches[b]) throw std::invalid_argument("attention_batch: sequence " + std::to_string(b) + " has no KV cache");
    Matrix out(qm.rows(), qm.cols());  // [B, NH * D]
    for (Eigen::Index b = 0; b < qm.rows(); ++b) {
      const AttentionMask mask{sliding, sliding_window, positions[std::size_t(b)], nullptr};
      const Activations qb(Matrix(qm.row(b))), kb(Matrix(km.row(b))), vb(Matrix(vm.row(b)));
      Activations ob;
      attention(shape, mask, qb, kb, vb, *caches[std::size_t(b)], ob);
      out.row(b) = ob.host();
    }
    context = Activations(std::move(out));
  }

  // The greedy id of every row of h [B, hidden]: argmax of W . h[b]. The default brings
  // the logits [B, vocab] to the host.
  virtual std::vector<int> lm_head_argmax_rows(const Weight& W, const Activations& h) const {
    Activations logits;
    linear(W, h, logits);
    const Matrix m = download_moved(std::move(logits));  // [B, vocab]
    std::vector<int> ids(std::size_t(m.rows()));
    for (Eigen::Index b = 0; b < m.rows(); ++b) ids[std::size_t(b)] = argmax(m.row(b).data(), std::size_t(m.cols()));
    return ids;
  }

 protected:
  static void require_batch(Eigen::Index rows, std::size_t n, const char* who) {
    if (rows != Eigen::Index(n))
      throw std::invalid_argument(std::string(who) + ": " + std::to_string(rows) + " rows for " + std::to_string(n) +
                                  " sequences");
  }
};

}  // namespace gemma3
