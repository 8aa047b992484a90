// gemma3/backends/cpu.hpp -- the CPU backend: the same steps as backends/reference.hpp,
// made fast for this machine.
//
// Where it departs from the reference, and why (docs/architecture.md, "The CPU backend"):
//   linear      quantized weights are read in place, never widened to a float32 copy:
//               fused dequantize-and-dot kernels (AVX2), or on AVX-512 VNNI and WASM SIMD128
//               int16 activations (quant/q16.hpp: 3.1e-5 of each block's max) with an
//               integer row dot for decode and a packed-tile GEMM for prefill
//               (kernels/matmul.hpp, kernels/gemm_q16.hpp); rows split over a thread pool;
//   attention   the query heads that share a kv head are stacked so each key and value
//               row is read once per kv head; prefill works in tiles of 64 queries over
//               the key range their mask needs; decode reads the cached rows in place
//               (float32 or float16) with SIMD kernels split over the pool
//               (kernels/kv_dot.hpp), and a sliding layer's ring is read unrotated;
//   KV cache    float32, or float16 (half the memory and half the bytes decode reads);
//               a float16 cache rounds the chunk's own K and V before its queries use them;
//   small ops   GeGLU, softmax exponentials and argmax with SIMD twins.
// Every choice is a field of Options, fixed when the backend is made.
// Held to ReferenceBackend by tests/test_backends.cpp on every instruction set this
// machine has.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../backend.hpp"
#include "../kernels/argmax.hpp"
#include "../kernels/dot.hpp"
#include "../kernels/gelu.hpp"
#include "../kernels/isa.hpp"
#include "../kernels/kv_dot.hpp"
#include "../kernels/matmul.hpp"
#include "../kernels/softmax.hpp"
#include "../kernels/thread_pool.hpp"

namespace gemma3 {

namespace cpu {

// ---- the cache's rows, converted with SIMD ----------------------------------------

// A block of cached rows as a float32 matrix: mapped in place (F32) or widened into buf (F16).
inline Eigen::Map<const Matrix, 0, Eigen::OuterStride<>> as_f32(const KVView& v, Matrix& buf, Isa isa) {
  using StridedMap = Eigen::Map<const Matrix, 0, Eigen::OuterStride<>>;
  if (v.dtype == DType::F32)
    return StridedMap(static_cast<const float*>(v.data), v.rows, v.cols, Eigen::OuterStride<>(v.stride));
  buf.resize(v.rows, v.cols);
  for (Eigen::Index j = 0; j < v.rows; ++j) kernels::widen_f16(isa, v.element(j, 0), buf.row(j).data(), v.cols);
  return StridedMap(buf.data(), v.rows, v.cols, Eigen::OuterStride<>(v.cols));
}
// Row r of the store = x [width], rounded to its dtype (the same bits as KVRowStore::store).
inline void store_row(KVRowStore& s, int r, const float* x, Isa isa) {
  if (s.dtype() == DType::F32) std::copy(x, x + s.width(), reinterpret_cast<float*>(s.row_data(r)));
  else kernels::narrow_f16(isa, x, s.row_data(r), s.width());
}
// Row r of the store as float32 into out [width].
inline void load_row(const KVRowStore& s, int r, float* out, Isa isa) {
  const KVView v = s.view(r, 1);
  if (s.dtype() == DType::F32) std::copy_n(static_cast<const float*>(v.data), s.width(), out);
  else kernels::widen_f16(isa, v.data, out, s.width());
}
// x [T, width] := what storing it would keep (the same bits as KVRowStore::round).
inline void round_to_store(const KVRowStore& s, Matrix& x, Isa isa) {
  if (s.dtype() == DType::F32) return;
  std::vector<std::uint16_t> half(std::size_t(x.size()));
  kernels::narrow_f16(isa, x.data(), half.data(), x.size());
  kernels::widen_f16(isa, half.data(), x.data(), x.size());
}

// ---- attention ----------------------------------------------------------------------

// The two products of one decoding token, spread over the thread pool. Eigen's GEMM
// would first pack the [n, D] keys (or values) for a product with only `group` rows,
// on one thread; here each key row is read once, in place, for all the group's heads
// (kernels/kv_dot.hpp: scalar and AVX2 twins, float32 or float16 rows).
//   scores [rows, n] = q_group [rows, D] . keys [n, D]^T      (the keys split over threads)
inline void scores_one_token(const Matrix& q_group, const KVView& keys, Matrix& scores, Isa isa, ThreadPool& pool) {
  const Eigen::Index rows = q_group.rows(), n = keys.rows, D = keys.cols;
  scores.resize(rows, n);
  pool.parallel_for(0, n, [&](std::int64_t j0, std::int64_t j1) {
    kernels::kv_scores(isa, q_group.data(), rows, D, keys.dtype, keys.element(j0, 0), keys.stride, j1 - j0,
                       scores.data() + j0, n);
  }, 64);
}
//   out [rows, D] = p [rows, n] . values [n, D]                (the keys split over threads)
// The keys are cut into a number of parts that depends on n only (so the result does
// not depend on the thread count); each part streams its value rows once, adding
// p(r, j) * values[j] into its own partial sums [rows, D], and the partials are
// added in part order.
inline void weighted_values_one_token(const Matrix& p, const KVView& values, Matrix& out, Isa isa, ThreadPool& pool) {
  const Eigen::Index rows = p.rows(), n = p.cols(), D = values.cols;
  constexpr Eigen::Index kMinPart = 64, kMaxParts = 16;
  const Eigen::Index part = std::max(kMinPart, (n + kMaxParts - 1) / kMaxParts);
  const Eigen::Index parts = (n + part - 1) / part;
  thread_local Matrix scratch;  // the calling thread's; the workers write into it through `partial`
  Matrix& partial = scratch;    // [parts * rows, D]
  partial.resize(parts * rows, D);
  pool.parallel_for(0, parts, [&](std::int64_t a, std::int64_t b) {
    for (std::int64_t k = a; k < b; ++k) {
      auto acc = partial.middleRows(k * rows, rows);
      acc.setZero();
      kernels::kv_weighted(isa, p.data(), n, rows, D, values.dtype, values.data, values.stride, k * part,
                           std::min<Eigen::Index>(n, (k + 1) * part), acc.data());
    }
  }, 1);
  out = partial.topRows(rows);
  for (Eigen::Index k = 1; k < parts; ++k) out += partial.middleRows(k * rows, rows);
}

// The two products of a prompt's block of queries with the kernels of kernels/kv_dot.hpp,
// four query rows at a time over only the keys those rows see (lo(r) .. hi(r); the
// softmax zeroes around them), the keys in runs of kManyKeys (their rows stay in L1
// while every row group passes). For Isa::wasm_simd128, where Eigen 3.4 has no SIMD
// packets and its GEMM runs scalar (1B shape, 512 tokens, one thread under node: one
// layer's attention 27-31 -> 18 ms, softmax included); elsewhere Eigen's GEMM is faster.
constexpr int kManyKeys = 32;
// f(r0, r1, j0, j1) for each group of four rows r0 .. r1 - 1 and run of keys j0 .. j1 - 1 they see.
template <class Lo, class Hi, class F>
inline void many_queries_blocks(int rows, Lo&& lo, Hi&& hi, F&& f) {
  struct Run {
    int j0, j1;  // keys j0 .. j1 - 1
  };
  std::vector<Run> seen(static_cast<std::size_t>((rows + 3) / 4));  // the keys each group of rows sees
  Run all{lo(0), hi(0) + 1};
  for (int r = 0; r < rows; ++r) {
    const int j0 = lo(r), j1 = hi(r) + 1;
    Run& g = seen[std::size_t(r / 4)];
    g = r % 4 == 0 ? Run{j0, j1} : Run{std::min(g.j0, j0), std::max(g.j1, j1)};
    all = {std::min(all.j0, j0), std::max(all.j1, j1)};
  }
  for (int k0 = all.j0; k0 < all.j1; k0 += kManyKeys)
    for (std::size_t g = 0; g < seen.size(); ++g) {
      const int j0 = std::max(seen[g].j0, k0), j1 = std::min(seen[g].j1, k0 + kManyKeys);
      if (j0 < j1) f(int(4 * g), std::min(rows, int(4 * g) + 4), j0, j1);
    }
}
//   scores [rows, n] = q_group [rows, D] . keys [n, D]^T   (outside a row group's keys: 0)
template <class Keys, class Lo, class Hi>
inline void many_queries_scores(const Matrix& q_group, const Keys& keys, Lo&& lo, Hi&& hi, Matrix& scores, Isa isa) {
  const int D = int(q_group.cols());
  scores.setZero(q_group.rows(), keys.rows());  // the scaling after reads every score
  many_queries_blocks(int(q_group.rows()), lo, hi, [&](int r0, int r1, int j0, int j1) {
    kernels::kv_scores(isa, q_group.row(r0).data(), r1 - r0, D, DType::F32, keys.row(j0).data(), keys.outerStride(),
                       j1 - j0, scores.row(r0).data() + j0, scores.cols());
  });
}
//   out [rows, D] = p [rows, n] . values [n, D]   (p is zero outside each row's keys)
template <class Values, class Lo, class Hi>
inline void many_queries_values(const Matrix& p, const Values& values, Lo&& lo, Hi&& hi, Matrix& out, Isa isa) {
  const int D = int(values.cols());
  out.setZero(p.rows(), D);
  many_queries_blocks(int(p.rows()), lo, hi, [&](int r0, int r1, int j0, int j1) {
    kernels::kv_weighted(isa, p.row(r0).data(), p.cols(), r1 - r0, D, DType::F32, values.data(), values.outerStride(),
                         j0, j1, out.row(r0).data());
  });
}

// Scaled dot-product attention of T queries (positions pos0 ..) over n keys whose
// positions are the contiguous run ctx0 .. ctx0 + n - 1.
//   q [T, NH * D], keys/values [n, KV * D]  ->  out [T, NH * D]
// The `group` query heads that share one kv head are stacked into one matrix, so
// each key and value row is read once per kv head, not once per query head.
// `images` (multimodal prefill only) lets image soft tokens see forward within their image.
// keys and values are float32 or float16 rows in place (kv_cache.hpp's KVView; a Matrix converts).
inline void grouped_query_attention(const AttentionShape& s, const AttentionMask& mask, const Matrix& q,
                                    const KVView& keys, const KVView& values, int ctx0, Matrix& out, Isa isa,
                                    ThreadPool& pool) {
  const int pos0 = mask.pos0;
  const ImageGroups* images = mask.images;
  const int T = int(q.rows());
  const int D = s.head_dim;
  const int group = s.num_attention_heads / s.num_key_value_heads;
  constexpr int kQueryBlock = 64;  // bounds the score matrix at [64 * group, keys] for long prompts
  out.resize(T, Eigen::Index(s.num_attention_heads) * D);
  // One task per (kv head, block of queries): each writes its own columns and rows of
  // out, with the same operations whatever thread runs it. A prompt's tasks go over
  // the pool; a decoding token's one task per kv head runs on the caller, and its two
  // products spread their keys over the pool instead (scores_one_token and
  // weighted_values_one_token).
  const int blocks = (T + kQueryBlock - 1) / kQueryBlock;
  auto task = [&](int kv, int t0) {
    Matrix q_group;  // [tokens in block * group, D]: row t * group + g is query head kv * group + g of token t
    Matrix scores;   // [tokens in block * group, keys in range]
    Matrix o_group;  // [tokens in block * group, D]
    Matrix widened;  // [keys in range, D]: float16 keys or values as float32, for the GEMMs
    const int tb = std::min(kQueryBlock, T - t0);
    const int q_first = pos0 + t0, q_last = pos0 + t0 + tb - 1;
    const int k_lo = mask.first_key(q_first) - ctx0;  // index into keys
    int k_hi = q_last;  // last key position any query of the block sees (later than q_last only for images)
    if (images)
      for (int p = q_first; p <= q_last; ++p) k_hi = std::max(k_hi, images->last_visible_key(p));
    const int n = k_hi - ctx0 + 1 - k_lo;
    q_group.resize(tb * group, D);
    for (int t = 0; t < tb; ++t)
      for (int g = 0; g < group; ++g)
        q_group.row(t * group + g) = q.block(t0 + t, (kv * group + g) * D, 1, D);

    // The keys row r sees: lo(r) .. hi(r), indices into the n keys (for an image's soft
    // token some of them are hidden again below).
    auto lo_of = [&](int r) { return mask.first_key(q_first + r / group) - ctx0 - k_lo; };
    auto hi_of = [&](int r) {
      const int qp = q_first + r / group;
      return (images ? images->last_visible_key(qp) : qp) - ctx0 - k_lo;
    };
    const bool by_rows = tb > 1 && isa == Isa::wasm_simd128;  // see many_queries_scores
    if (tb == 1) scores_one_token(q_group, keys.block(k_lo, kv * D, n, D), scores, isa, pool);  // decode
    else if (by_rows) many_queries_scores(q_group, as_f32(keys.block(k_lo, kv * D, n, D), widened, isa), lo_of, hi_of, scores, isa);
    else scores.noalias() = q_group * as_f32(keys.block(k_lo, kv * D, n, D), widened, isa).transpose();
    scores *= s.scale;
    if (s.softcap) {
      const float c = float(*s.softcap);
      scores = scores.unaryExpr([c](float x) { return c * std::tanh(x / c); });
    }
    for (int r = 0; r < tb * group; ++r) {  // mask, then softmax over the visible keys
      const int qp = q_first + r / group;
      const int lo = lo_of(r), hi = hi_of(r);  // inclusive
      auto row = scores.row(r);
      // Keys after the query are visible only to a soft token of the same image.
      auto visible = [&](int j) {
        if (j < lo || j > hi) return false;
        const int kp = ctx0 + k_lo + j;
        return kp <= qp || images->same_group(qp, kp);
      };
      if (!images) {  // text: the visible keys are the run lo .. hi
        const float mx = row.segment(lo, hi - lo + 1).maxCoeff();
        const float sum = exp_shift_sum(row.data() + lo, hi - lo + 1, mx, isa);  // kernels/softmax.hpp
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
    if (tb == 1) weighted_values_one_token(scores, values.block(k_lo, kv * D, n, D), o_group, isa, pool);
    else if (by_rows) many_queries_values(scores, as_f32(values.block(k_lo, kv * D, n, D), widened, isa), lo_of, hi_of, o_group, isa);
    else o_group.noalias() = scores * as_f32(values.block(k_lo, kv * D, n, D), widened, isa);
    for (int t = 0; t < tb; ++t)
      for (int g = 0; g < group; ++g)
        out.block(t0 + t, (kv * group + g) * D, 1, D) = o_group.row(t * group + g);
  };
  if (T == 1) {
    for (int kv = 0; kv < s.num_key_value_heads; ++kv) task(kv, 0);
    return;
  }
  pool.parallel_for(0, std::int64_t(s.num_key_value_heads) * blocks, [&](std::int64_t a, std::int64_t b) {
    for (std::int64_t i = a; i < b; ++i) task(int(i / blocks), int(i % blocks) * kQueryBlock);
  });
}

}  // namespace cpu

// The name of an instruction set as isa_name() spells it ("scalar", "avx2", "avx512",
// "wasm_simd128") -> the Isa; throws on anything else.
inline Isa isa_from_name(const std::string& s) {
  for (Isa i : {Isa::scalar, Isa::avx2, Isa::avx512, Isa::wasm_simd128})
    if (s == isa_name(i)) return i;
  throw std::invalid_argument("unknown instruction set '" + s + "': expected scalar, avx2, avx512 or wasm_simd128");
}

// What CpuBackend runs with, fixed when it is made.
struct CpuBackendOptions {
  Isa isa = best_isa();            // the kernels' instruction set
  int threads = 0;                 // threads in the pool; 0: every hardware thread
  bool int16_activations = true;   // on Isa::avx512 / wasm_simd128: quantized weights read int16 activations
  DType kv_dtype = DType::F32;     // the cache new_cache() makes: F32 or F16

  // Options from the environment, for programs that take no flags:
  //   GEMMA3_NUM_THREADS=n   GEMMA3_ISA=scalar|avx2|avx512   GEMMA3_KV_TYPE=f32|f16
  static CpuBackendOptions from_environment() {
    CpuBackendOptions o;
    if (const char* s = std::getenv("GEMMA3_NUM_THREADS"); s && *s) o.threads = std::max(0, std::atoi(s));
    if (const char* s = std::getenv("GEMMA3_ISA"); s && *s) o.isa = isa_from_name(s);
    if (const char* s = std::getenv("GEMMA3_KV_TYPE"); s && *s) {
      const std::string t = s;
      if (t != "f32" && t != "f16") throw std::invalid_argument("GEMMA3_KV_TYPE must be f32 or f16, got '" + t + "'");
      o.kv_dtype = t == "f16" ? DType::F16 : DType::F32;
    }
    return o;
  }
};

class CpuBackend : public Backend {
 public:
  using Options = CpuBackendOptions;

  explicit CpuBackend(Options o = Options()) : opts_(o) {
    if (!isa_available(opts_.isa))
      throw std::invalid_argument(std::string("CpuBackend: instruction set ") + isa_name(opts_.isa) +
                                  " is not available on this machine or in this build");
    if (opts_.kv_dtype != DType::F32 && opts_.kv_dtype != DType::F16)
      throw std::invalid_argument(std::string("CpuBackend: kv_dtype must be f32 or f16, got ") + dtype_name(opts_.kv_dtype));
    if (opts_.threads <= 0) opts_.threads = int(std::max(1u, std::thread::hardware_concurrency()));
    pool_ = std::make_shared<ThreadPool>(opts_.threads);
  }

  const Options& options() const { return opts_; }
  ThreadPool& pool() const { return *pool_; }

  std::string name() const override {
    return std::string("cpu ") + isa_name(opts_.isa) + ", " + std::to_string(opts_.threads) +
           (opts_.threads == 1 ? " thread" : " threads") +
           (opts_.isa == Isa::avx512 || opts_.isa == Isa::wasm_simd128 ? (opts_.int16_activations ? ", int16 activations" : ", float activations") : "") +
           ", " + dtype_name(opts_.kv_dtype) + " cache";
  }

  // Activations are host matrices; backend.hpp's host defaults run the small steps.
  void linear(const Weight& W, const Activations& X, Activations& Y) const override {
    gemma3::linear(W, X.host(), Y.host(), opts_.isa, *pool_, opts_.int16_activations);
  }
  void linear_host(const Weight& W, const Matrix& X, Matrix& Y) const override {
    gemma3::linear(W, X, Y, opts_.isa, *pool_, opts_.int16_activations);
  }
  void linear_many(const Activations& X,
                   std::initializer_list<std::pair<const Weight*, Activations*>> jobs) const override {
    std::vector<std::pair<const Weight*, Matrix*>> host_jobs;
    for (const auto& j : jobs) host_jobs.emplace_back(j.first, &j.second->host());
    gemma3::linear_many(X.host(), host_jobs, opts_.isa, *pool_, opts_.int16_activations);
  }
  void gelu_tanh_mul(Activations& gate, const Activations& up) const override {
    gemma3::gelu_tanh_mul(gate.host().data(), up.host().data(), gate.host().size(), opts_.isa, *pool_);
  }
  KVCache new_cache(const Gemma3TextConfig& config, int max_cache_len, std::optional<DType> kv_dtype) const override {
    return KVCache(config, max_cache_len, kv_dtype.value_or(opts_.kv_dtype));
  }
  void lm_head_last(const Weight& W, const Activations& h, float* logits) const override {
    const Matrix& x = h.host();
    matvec(W, x.row(x.rows() - 1).data(), logits, opts_.isa, *pool_, opts_.int16_activations);
  }
  int argmax(const float* x, std::size_t n) const override { return int(gemma3::argmax(x, n, opts_.isa)); }

  void attention(const AttentionShape& s, const AttentionMask& mask, const Activations& q_a, const Activations& k_a,
                 const Activations& v_a, LayerKVCache& cache, Activations& context_a) const override {
    const Matrix &q = q_a.host(), &k_in = k_a.host(), &v_in = v_a.host();
    Matrix& context = context_a.host();
    cache.require_host_rows("CpuBackend");
    const int T = int(q.rows()), pos0 = mask.pos0;
    // A float16 cache keeps K and V rounded to float16: round this chunk's own rows the
    // same way first, so its queries see what later tokens will read back.
    Matrix k_rounded, v_rounded;  // [T, KV * D], only for a float16 cache
    if (cache.k.dtype() != DType::F32) {
      k_rounded = k_in;
      v_rounded = v_in;
      cpu::round_to_store(cache.k, k_rounded, opts_.isa);
      cpu::round_to_store(cache.v, v_rounded, opts_.isa);
    }
    const Matrix& k = cache.k.dtype() != DType::F32 ? k_rounded : k_in;
    const Matrix& v = cache.v.dtype() != DType::F32 ? v_rounded : v_in;
    const Isa isa = opts_.isa;
    ThreadPool& pool = *pool_;
    if (!mask.sliding) {
      // Global layer: write this chunk's rows, then attend over positions 0 .. pos0+T-1 in place.
      for (int t = 0; t < T; ++t) {
        cpu::store_row(cache.k, pos0 + t, k.row(t).data(), isa);
        cpu::store_row(cache.v, pos0 + t, v.row(t).data(), isa);
      }
      cpu::grouped_query_attention(s, mask, q, cache.k.view(0, pos0 + T), cache.v.view(0, pos0 + T), 0, context, isa,
                                   pool);
    } else if (T == 1 && mask.images == nullptr) {
      // Sliding layer, one token (decode): write its row into the ring first (it
      // replaces position pos0 - capacity, which the window no longer shows), then the
      // ring's n filled rows are exactly the keys the query sees: in position order
      // until the ring wraps, a rotation of them after. All n are visible, and
      // attention over keys that are all visible does not depend on their order (RoPE
      // is already in the keys), so the ring is used in place: no copy per token.
      cpu::store_row(cache.k, cache.slot(pos0), k.data(), isa);
      cpu::store_row(cache.v, cache.slot(pos0), v.data(), isa);
      const int n = std::min(pos0 + 1, cache.capacity);
      cpu::grouped_query_attention(s, mask, q, cache.k.view(0, n), cache.v.view(0, n), pos0 + 1 - n, context, isa, pool);
    } else {
      // Sliding layer, many tokens: the keys the chunk's first query can still see come
      // from the ring, followed by the chunk's own keys; then the ring keeps the newest rows.
      const int ctx0 = mask.first_key(pos0);
      const int n_old = pos0 - ctx0;
      Matrix keys(n_old + T, k.cols()), values(n_old + T, v.cols());  // [n_old + T, KV * D]
      for (int j = 0; j < n_old; ++j) {
        cpu::load_row(cache.k, cache.slot(ctx0 + j), keys.row(j).data(), isa);
        cpu::load_row(cache.v, cache.slot(ctx0 + j), values.row(j).data(), isa);
      }
      keys.bottomRows(T) = k;
      values.bottomRows(T) = v;
      cpu::grouped_query_attention(s, mask, q, keys, values, ctx0, context, isa, pool);
      for (int t = std::max(0, T - cache.capacity); t < T; ++t) {
        cpu::store_row(cache.k, cache.slot(pos0 + t), k.row(t).data(), isa);
        cpu::store_row(cache.v, cache.slot(pos0 + t), v.row(t).data(), isa);
      }
    }
  }

 private:
  Options opts_;
  std::shared_ptr<ThreadPool> pool_;
};

}  // namespace gemma3
