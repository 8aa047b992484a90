// cuda/src/attention_decode.cu -- decode attention (one query per sequence) over the KV
// cache, split-K ("flash-decoding"), and kv_append, which stores a call's keys and values.
//
// Decode. The query of sequence b sits at position p; query head h reads kv head h / G
// (G = num_heads / num_kv_heads) and sees the keys at positions [k0, p], k0 = first_key(p)
// (p - W + 1 on sliding layers, 0 on global ones), each read in place from slot
// cache_slot(position) of the sequence's cache (a sliding layer's ring, never reordered):
//
//   x_j   = scale q_h . k_j, or softcap tanh(scale q_h . k_j / softcap) when softcap > 0
//   s_j   = x_j log2(e)                                          (plan.hpp score_log2)
//   out_h = sum_j 2^(s_j - m) v_j / sum_j 2^(s_j - m),    m = max_j s_j
//
// Grid (splits, num_kv_heads, batch). A sequence's keys k0..p are cut into tiles of
// kKeyTile keys, and CTA s takes the tiles split_range(n_tiles, splits, s), for all G
// query heads of its kv head, so each K/V row is loaded once and serves G heads:
//
//   keys     k0 ................................................... p
//   tiles    | 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 |10 |
//   splits   [ CTA 0     ][ CTA 1     ][ CTA 2   ][ CTA 3   ]     (splits = 4)
//
// `splits` is planned on the host from the longest sequence (max_position); a shorter
// sequence has fewer tiles, and its last CTAs get empty ranges. Sequence b's cache rows
// start b seq_stride into the one allocation, or at k_caches[b] / v_caches[b] when each
// sequence owns its cache (kv_types.cuh sequence_rows; the model's decode batches).
//
// Inside a CTA (kThreads = 4 warps), a walker is kLanes = head_dim / 8 lanes (a warp for
// head_dim 256, a half-warp for 128); each lane holds 8 consecutive dims (one 16-byte
// load of K, one of V). Walker w takes keys w, w + NW, w + 2 NW, ... of the CTA's range
// (NW walkers), kUnroll keys per step so several loads are in flight, reduces each dot
// product across its lanes with xor shuffles, and keeps an online softmax per head:
//
//   m' = max(m, s)    l' = l 2^(m - m') + 2^(s - m')    O' = O 2^(m - m') + 2^(s - m') v
//
// The walkers then merge through shared memory (merge_weight):
//   m = max_w m_w    l = sum_w 2^(m_w - m) l_w    O = sum_w 2^(m_w - m) O_w
// With one split the CTA writes out = O / l. Otherwise it writes its partial (m, l, O)
// to the workspace and decode_combine_kernel merges the splits the same way. Version 3
// (attention_decode_fused) needs no combine kernel: each CTA counts itself done on a
// counter of its (sequence, kv head), and the last one merges the partials, with the
// combine kernel's arithmetic (combine_splits), so its outputs are the same bits. A walker or
// a split without keys keeps m = kNoScore, l = 0 and weighs 0; l = 0 outputs 0.
//
// Workspace (splits > 1), float32:
//   part_o [batch, num_heads, splits, head_dim]   unnormalised O of each split
//   part_m [batch, num_heads, splits]             its max score (log2 domain)
//   part_l [batch, num_heads, splits]             its sum of 2^(s - m)
//
// A position outside [0, max_position] on the device (a caller's error the host cannot
// see) reads nothing and outputs NaN for that sequence.
//
// kv_append. Row t of sequence b ([batch * T, num_kv_heads * head_dim] float32) is
// position (positions ? positions[b] : pos0) + t; it is rounded to the cache type and
// stored at slot cache_slot(position) of sequence b's cache. A ring keeps only the rows
// plan.hpp rows_kept says (the last `capacity`), so no two stores of a call share a slot.
// A position outside a global layer's cache (or negative) stores nothing.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

#include "decode_versions.hpp"
#include "gemma3/cuda/plan.hpp"
#include "heads.cuh"
#include "kv_types.cuh"

namespace gemma3 {
namespace cuda {
namespace {

constexpr int kThreads = 128;        // decode CTA: 4 warps
constexpr int kKeyTile = 32;         // keys per tile, the unit the splits divide
constexpr int kMaxSplits = 256;      // at most this many CTAs per (sequence, kv head)
constexpr int kAppendThreads = 256;  // kv_append: threads per row

void check_cuda(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) throw std::runtime_error(what + ": " + cudaGetErrorString(e));
}

const char* kv_name(KvType t) { return t == KvType::bf16 ? "bf16" : "f16"; }

// The largest position of the call: max_position when positions live on the device,
// else pos0 (every sequence's position).
long long max_pos(const AttentionArgs& a) { return a.positions ? a.max_position : a.pos0; }

struct DecodeParams {
  const float* q;       // [batch, num_heads * head_dim]
  float* out;           // [batch, num_heads * head_dim]
  std::uint16_t* out_bf16;  // the same rounded to bf16, or null
  const void* k_cache;  // [batch][capacity][num_kv_heads * head_dim], seq_stride apart
  const void* v_cache;
  long long seq_stride;
  void* const* k_caches;  // [batch] each sequence's rows, or null (then k_cache)
  void* const* v_caches;
  int capacity;
  int num_heads, num_kv_heads;
  float scale, softcap;
  bool sliding;
  int window;
  int pos0;
  const int* positions;  // [batch] or null
  int max_position;      // every valid position is <= this
  int splits;
  unsigned* counters;  // [batch, num_kv_heads] zero on entry and on return (fused combine), or null
  float* part_o;  // [batch, num_heads, splits, head_dim]
  float* part_m;  // [batch, num_heads, splits]
  float* part_l;  // [batch, num_heads, splits]
};

__device__ __forceinline__ int decode_position(const DecodeParams& p, int b) {
  return p.positions ? p.positions[b] : p.pos0;
}
__device__ __forceinline__ bool position_ok(const DecodeParams& p, int pos) {
  return pos >= 0 && pos <= p.max_position;
}
__device__ __forceinline__ float nan_value() { return __int_as_float(0x7fffffff); }

// out[i] = x, and its bf16 (bf16_bits: the GEMM input to_bf16 would make) when asked for.
__device__ __forceinline__ void store_out(const DecodeParams& p, long long i, float x) {
  p.out[i] = x;
  if (p.out_bf16) p.out_bf16[i] = static_cast<std::uint16_t>(bf16_bits(x));
}

// One 16-bit cache value (its bits) as float32.
template <KvType K> __device__ __forceinline__ float bits_to_float(unsigned int bits);
template <> __device__ __forceinline__ float bits_to_float<KvType::bf16>(unsigned int bits) {
  return __uint_as_float(bits << 16);
}
template <> __device__ __forceinline__ float bits_to_float<KvType::f16>(unsigned int bits) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(bits)));
}

// 8 cache values held in a 16-byte register (value i in bits 16 i .. 16 i + 15, little
// endian) as float32.
template <KvType K> __device__ __forceinline__ void unpack8(const uint4& r, float f[8]) {
  const unsigned int w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = bits_to_float<K>(w[i] & 0xffffu);
    f[2 * i + 1] = bits_to_float<K>(w[i] >> 16);
  }
}

// out of (sequence, query head) bh, dim d, from the splits' partials (decode_combine_kernel
// and the fused tail of decode_split_kernel; L2 loads: other CTAs wrote them):
//   out = sum_s w_s O_s / sum_s w_s l_s,   w_s = 2^(m_s - max_s m_s)
template <int D>
__device__ __forceinline__ float combine_splits(const DecodeParams& p, long long bh, int d) {
  const float* pm = p.part_m + bh * p.splits;
  const float* pl = p.part_l + bh * p.splits;
  const float* po = p.part_o + bh * p.splits * D + d;
  float m_all = kNoScore;
  for (int s = 0; s < p.splits; ++s) m_all = fmaxf(m_all, __ldcg(pm + s));
  float l_all = 0.f, acc = 0.f;
  for (int s = 0; s < p.splits; ++s) {
    const float m = __ldcg(pm + s);
    const float w = merge_weight(m, m_all);
    l_all = fmaf(w, __ldcg(pl + s), l_all);
    acc = fmaf(w, __ldcg(po + static_cast<long long>(s) * D), acc);
  }
  return l_all > 0.f ? acc / l_all : 0.f;
}

// kFused (version 3): with splits > 1, the last CTA of a (sequence, kv head) to finish
// merges the partials itself, so no combine kernel follows.
template <int D, KvType KT, int G, bool kFused>
__global__ void __launch_bounds__(kThreads) decode_split_kernel(const DecodeParams p) {
  static_assert(D == 128 || D == 256, "head_dim 128 or 256");
  using Elem = typename KvTraits<KT>::T;
  constexpr int kLanes = D / 8;                // lanes per walker: one key, 8 dims a lane
  constexpr int kWalkers = kThreads / kLanes;  // NW: 4 (head_dim 256) or 8 (128)
  constexpr int kWarpWalkers = 32 / kLanes;    // walkers per warp
  constexpr int kUnroll = G <= 4 ? 4 : 2;      // keys per walker step (loads in flight)

  __shared__ float s_o[kWalkers][G][D];  // [walkers, G, head_dim] each walker's O
  __shared__ float s_m[kWalkers][G];     // [walkers, G] each walker's max
  __shared__ float s_l[kWalkers][G];     // [walkers, G] each walker's sum
  __shared__ float s_w[kWalkers][G];     // [walkers, G] merge weights 2^(m_w - m)
  __shared__ float s_m_all[G];          // [G] the split's max, all walkers merged
  __shared__ float s_l_all[G];          // [G] the split's sum, all walkers merged

  const int split = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z;
  const int walker = threadIdx.x / kLanes, lane = threadIdx.x % kLanes, d0 = lane * 8;
  const int pos = decode_position(p, b);
  const bool pos_ok = position_ok(p, pos);

  // This CTA's keys [key_begin, key_end): its split of the sequence's tiles.
  int key_begin = 0, key_end = 0;
  if (pos_ok) {
    const int k0 = first_key(p.sliding, p.window, pos);
    const Range tiles = split_range(ceil_div(pos - k0 + 1, kKeyTile), p.splits, split);
    key_begin = k0 + tiles.begin * kKeyTile;
    key_end = imin(k0 + tiles.end * kKeyTile, pos + 1);
  }

  // q of the G heads kvh * G + g, this lane's 8 dims.
  float q[G][8];
  const float* qh = p.q + (static_cast<long long>(b) * p.num_heads + kvh * G) * D + d0;
#pragma unroll
  for (int g = 0; g < G; ++g)
#pragma unroll
    for (int i = 0; i < 8; ++i) q[g][i] = __ldg(qh + g * D + i);

  float m[G], l[G], o[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = kNoScore;
    l[g] = 0.f;
#pragma unroll
    for (int i = 0; i < 8; ++i) o[g][i] = 0.f;
  }

  const long long row = static_cast<long long>(p.num_kv_heads) * D;  // elements per cache row
  const long long head = static_cast<long long>(kvh) * D + d0;
  const Elem* kp = sequence_rows<const Elem>(p.k_cache, p.k_caches, p.seq_stride, b) + head;
  const Elem* vp = sequence_rows<const Elem>(p.v_cache, p.v_caches, p.seq_stride, b) + head;

  // Step `base`: walker w takes keys base + w + u NW, u < kUnroll. The loop runs while
  // the warp's first walker has a key, so every lane of a warp runs the same steps (the
  // shuffles need the whole warp); a walker past the end computes on zeros and skips
  // the update.
  const int warp_first = (threadIdx.x / 32) * kWarpWalkers;
  for (int base = key_begin; base + warp_first < key_end; base += kUnroll * kWalkers) {
    uint4 kraw[kUnroll], vraw[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int j = base + walker + u * kWalkers;
      kraw[u] = make_uint4(0u, 0u, 0u, 0u);
      vraw[u] = make_uint4(0u, 0u, 0u, 0u);
      if (j < key_end) {
        const long long off = static_cast<long long>(cache_slot(p.sliding, p.capacity, j)) * row;
        kraw[u] = __ldg(reinterpret_cast<const uint4*>(kp + off));
        vraw[u] = __ldg(reinterpret_cast<const uint4*>(vp + off));
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      float kf[8];
      unpack8<KT>(kraw[u], kf);
      float dot[G];
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float acc = 0.f;
#pragma unroll
        for (int i = 0; i < 8; ++i) acc = fmaf(q[g][i], kf[i], acc);
        dot[g] = acc;
      }
#pragma unroll
      for (int off = kLanes / 2; off > 0; off /= 2)
#pragma unroll
        for (int g = 0; g < G; ++g) dot[g] += __shfl_xor_sync(0xffffffffu, dot[g], off);
      if (base + walker + u * kWalkers < key_end) {
        float vf[8];
        unpack8<KT>(vraw[u], vf);
#pragma unroll
        for (int g = 0; g < G; ++g) {
          const float s = score_log2(dot[g], p.scale, p.softcap);
          const float m_new = fmaxf(m[g], s);
          const float corr = exp2f(m[g] - m_new);
          const float w = exp2f(s - m_new);
          l[g] = fmaf(l[g], corr, w);
#pragma unroll
          for (int i = 0; i < 8; ++i) o[g][i] = fmaf(o[g][i], corr, w * vf[i]);
          m[g] = m_new;
        }
      }
    }
  }

  // Merge the walkers.
#pragma unroll
  for (int g = 0; g < G; ++g)
#pragma unroll
    for (int i = 0; i < 8; ++i) s_o[walker][g][d0 + i] = o[g][i];
  if (lane == 0) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
      s_m[walker][g] = m[g];
      s_l[walker][g] = l[g];
    }
  }
  __syncthreads();
  if (threadIdx.x < G) {
    const int g = threadIdx.x;
    float m_all = kNoScore;
    for (int w = 0; w < kWalkers; ++w) m_all = fmaxf(m_all, s_m[w][g]);
    float l_all = 0.f;
    for (int w = 0; w < kWalkers; ++w) {
      const float wt = merge_weight(s_m[w][g], m_all);
      s_w[w][g] = wt;
      l_all = fmaf(wt, s_l[w][g], l_all);
    }
    s_m_all[g] = m_all;
    s_l_all[g] = l_all;
  }
  __syncthreads();
  for (int e = threadIdx.x; e < G * D; e += kThreads) {
    const int g = e / D, d = e % D;
    float acc = 0.f;
#pragma unroll
    for (int w = 0; w < kWalkers; ++w) acc = fmaf(s_w[w][g], s_o[w][g][d], acc);
    const long long bh = static_cast<long long>(b) * p.num_heads + kvh * G + g;  // (sequence, query head)
    if (p.splits == 1) {
      const float l_all = s_l_all[g];
      store_out(p, bh * D + d, !pos_ok ? nan_value() : (l_all > 0.f ? acc / l_all : 0.f));
    } else {
      const long long part = bh * p.splits + split;
      p.part_o[part * D + d] = acc;
      if (d == 0) {
        p.part_m[part] = s_m_all[g];
        p.part_l[part] = s_l_all[g];
      }
    }
  }

  if constexpr (kFused) {
    // The threadFenceReduction pattern: each thread's partials are visible device-wide
    // before its CTA counts itself; the CTA that counts last sees every split's.
    if (p.splits == 1) return;
    __shared__ bool s_last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
      unsigned* count = p.counters + static_cast<long long>(b) * p.num_kv_heads + kvh;
      s_last = atomicAdd(count, 1u) == static_cast<unsigned>(p.splits - 1);
      if (s_last) *count = 0u;  // every split has counted: zero again for the next call
    }
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    for (int e = threadIdx.x; e < G * D; e += kThreads) {
      const int g = e / D, d = e % D;
      const long long bh = static_cast<long long>(b) * p.num_heads + kvh * G + g;
      store_out(p, bh * D + d, !pos_ok ? nan_value() : combine_splits<D>(p, bh, d));
    }
  }
}

// Grid batch * num_heads, one thread per dim: out = sum_s w_s O_s / sum_s w_s l_s,
// w_s = 2^(m_s - max_s m_s).
template <int D>
__global__ void __launch_bounds__(D) decode_combine_kernel(const DecodeParams p) {
  const long long bh = blockIdx.x;  // b * num_heads + h
  const int b = static_cast<int>(bh / p.num_heads);
  const int d = threadIdx.x;
  store_out(p, bh * D + d, !position_ok(p, decode_position(p, b)) ? nan_value() : combine_splits<D>(p, bh, d));
}

template <int D, KvType KT, int G>
void launch_decode(const DecodeParams& p, int batch, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(p.splits), static_cast<unsigned>(p.num_kv_heads), static_cast<unsigned>(batch));
  const bool fused = p.counters != nullptr;
  if (fused) decode_split_kernel<D, KT, G, true><<<grid, kThreads, 0, stream>>>(p);
  else decode_split_kernel<D, KT, G, false><<<grid, kThreads, 0, stream>>>(p);
  check_cuda(cudaGetLastError(), std::string("decode_split_kernel<head_dim ") + std::to_string(D) + ", " +
                                     kv_name(KT) + ", G " + std::to_string(G) + (fused ? ", fused" : "") + "> launch");
  if (p.splits > 1 && !fused) {
    decode_combine_kernel<D><<<static_cast<unsigned>(batch * p.num_heads), D, 0, stream>>>(p);
    check_cuda(cudaGetLastError(), std::string("decode_combine_kernel<head_dim ") + std::to_string(D) + "> launch");
  }
}

template <int D, KvType KT>
void launch_decode_group(const DecodeParams& p, int G, int batch, cudaStream_t stream) {
  switch (G) {
    case 1: return launch_decode<D, KT, 1>(p, batch, stream);
    case 2: return launch_decode<D, KT, 2>(p, batch, stream);
    case 4: return launch_decode<D, KT, 4>(p, batch, stream);
    case 8: return launch_decode<D, KT, 8>(p, batch, stream);
    default: throw std::invalid_argument("attention_decode: unsupported GQA group " + std::to_string(G));
  }
}

struct AppendParams {
  const float* k_rows;  // [batch * T, width]
  const float* v_rows;
  void* k_cache;  // [batch][capacity][width], seq_stride apart
  void* v_cache;
  long long seq_stride;
  void* const* k_caches;  // [batch] each sequence's rows, or null (then k_cache)
  void* const* v_caches;
  int capacity;
  int width;  // num_kv_heads * head_dim
  int T;
  bool sliding;  // a ring
  int pos0;
  const int* positions;  // [batch] or null
  int kept_begin, kept;  // rows_kept: rows kept_begin .. kept_begin + kept - 1 of each sequence
};

// Grid batch * kept: block r stores row t = kept_begin + r % kept of sequence b = r / kept.
template <KvType KT>
__global__ void __launch_bounds__(kAppendThreads) kv_append_kernel(const AppendParams p) {
  using Elem = typename KvTraits<KT>::T;
  const int r = blockIdx.x;
  const int b = r / p.kept, t = p.kept_begin + r % p.kept;
  const int pos = (p.positions ? p.positions[b] : p.pos0) + t;
  if (pos < 0 || (!p.sliding && pos >= p.capacity)) return;  // outside the cache: stores nothing
  const long long dst = static_cast<long long>(cache_slot(p.sliding, p.capacity, pos)) * p.width;
  const long long src = (static_cast<long long>(b) * p.T + t) * p.width;
  Elem* kc = sequence_rows<Elem>(p.k_cache, p.k_caches, p.seq_stride, b) + dst;
  Elem* vc = sequence_rows<Elem>(p.v_cache, p.v_caches, p.seq_stride, b) + dst;
  for (int c = threadIdx.x; c < p.width; c += kAppendThreads) {
    kc[c] = KvTraits<KT>::from_float(p.k_rows[src + c]);
    vc[c] = KvTraits<KT>::from_float(p.v_rows[src + c]);
  }
}

}  // namespace

int decode_key_tile() { return kKeyTile; }

void check_cache_pointers(const AttentionArgs& a, const std::function<void(const std::string&)>& fail) {
  if ((a.k_caches == nullptr) != (a.v_caches == nullptr)) fail("k_caches and v_caches go together (both or neither)");
  if (a.k_caches) {
    if (a.k_cache || a.v_cache || a.seq_stride != 0)
      fail("a call takes either one allocation (k_cache, v_cache, seq_stride) or each sequence's own (k_caches, "
           "v_caches), not both");
  } else if (!a.k_cache || !a.v_cache) {
    fail("k_cache and v_cache (or k_caches and v_caches) must be set");
  }
}

void check_decode_args(const AttentionArgs& a, const char* who, bool any_shape) {
  const auto fail = [&](const std::string& what) { throw std::invalid_argument(std::string(who) + ": " + what); };
  const auto str = [](long long x) { return std::to_string(x); };
  if (a.T != 1) fail("decode takes one query per sequence (T == 1), got T = " + str(a.T));
  if (a.batch < 1 || a.batch > 65535) fail("batch must be in [1, 65535], got " + str(a.batch));
  if (any_shape ? (a.head_dim < 1 || a.head_dim > 256) : (a.head_dim != 128 && a.head_dim != 256))
    fail(std::string("head_dim must be ") + (any_shape ? "1 .. 256" : "128 or 256") + ", got " + str(a.head_dim));
  if (a.num_kv_heads < 1 || a.num_kv_heads > 65535 || a.num_heads < 1 || a.num_heads % a.num_kv_heads != 0)
    fail("num_heads (" + str(a.num_heads) + ") must be a multiple of num_kv_heads (" + str(a.num_kv_heads) + ")");
  const int G = a.num_heads / a.num_kv_heads;
  if (!any_shape && G != 1 && G != 2 && G != 4 && G != 8)
    fail("the GQA group num_heads / num_kv_heads must be 1, 2, 4 or 8, got " + str(G));
  if (!a.q || !a.out) fail("q and out must both be set");
  check_cache_pointers(a, fail);
  if (a.capacity < 1) fail("capacity must be >= 1, got " + str(a.capacity));
  if (a.sliding && a.window < 1) fail("a sliding layer needs window >= 1, got " + str(a.window));
  if (!std::isfinite(a.scale)) fail("scale must be finite");
  if (!(a.softcap >= 0.f) || !std::isfinite(a.softcap)) fail("softcap must be >= 0 (0: none)");
  const long long pmax = max_pos(a);
  if (pmax < 0 || (!a.positions && a.pos0 < 0))
    fail(std::string(a.positions ? "max_position" : "pos0") + " must be >= 0, got " + str(pmax));
  // Rows the longest query reads: all of 0..pmax (global), or its window (sliding ring).
  const long long rows = a.sliding ? std::min<long long>(a.window, pmax + 1) : pmax + 1;
  if (rows > a.capacity)
    fail(std::string(a.sliding ? "a sliding layer's ring" : "a global layer's cache") + " of capacity " +
         str(a.capacity) + " cannot hold the " + str(rows) + " keys of position " + str(pmax));
  const long long row = static_cast<long long>(a.num_kv_heads) * a.head_dim;
  if (a.k_caches) return;  // each sequence's own rows: no stride; their alignment is the caller's word
  if (a.batch > 1 && a.seq_stride < a.capacity * row)
    fail("seq_stride (" + str(a.seq_stride) + ") must be >= capacity * num_kv_heads * head_dim (" +
         str(a.capacity * row) + ")");
  if (a.seq_stride < 0) fail("seq_stride must be >= 0, got " + str(a.seq_stride));
  if (!any_shape && a.seq_stride % 8 != 0) fail("seq_stride must be a multiple of 8 (16-byte rows)");
  if (!any_shape &&
      (reinterpret_cast<std::uintptr_t>(a.k_cache) % 16 || reinterpret_cast<std::uintptr_t>(a.v_cache) % 16))
    fail("k_cache and v_cache must be 16-byte aligned");
}

int attention_decode_splits(const AttentionArgs& a, int num_sms) {
  if (num_sms < 1)
    throw std::invalid_argument("attention_decode: num_sms must be >= 1, got " + std::to_string(num_sms));
  const long long pmax = std::max(0LL, max_pos(a));
  const long long keys = a.sliding ? std::max(1LL, std::min<long long>(a.window, pmax + 1)) : pmax + 1;
  const int n_tiles = static_cast<int>((keys + kKeyTile - 1) / kKeyTile);
  return decode_splits(std::max(1, a.batch) * std::max(1, a.num_kv_heads), n_tiles, num_sms, kMaxSplits);
}

std::size_t attention_decode_workspace(const AttentionArgs& a, int num_sms) {
  const int splits = attention_decode_splits(a, num_sms);
  if (splits == 1) return 0;
  const std::size_t parts =
      std::size_t(std::max(1, a.batch)) * std::size_t(std::max(1, a.num_heads)) * std::size_t(splits);
  return parts * (std::size_t(std::max(1, a.head_dim)) + 2) * sizeof(float);
}

namespace {
void decode_with(const AttentionArgs& a, int num_sms, unsigned* counters, cudaStream_t stream);
}  // namespace

void attention_decode(const AttentionArgs& a, int num_sms, cudaStream_t stream) {
  check_decode_args(a, "attention_decode");
  decode_with(a, num_sms, nullptr, stream);
}

void attention_decode_fused(const AttentionArgs& a, int num_sms, unsigned* counters, cudaStream_t stream) {
  check_decode_args(a, "attention_decode_fused");
  if (!counters) throw std::invalid_argument("attention_decode_fused: needs counters [batch * num_kv_heads], zeroed");
  decode_with(a, num_sms, counters, stream);
}

namespace {
void decode_with(const AttentionArgs& a, int num_sms, unsigned* counters, cudaStream_t stream) {
  const int splits = attention_decode_splits(a, num_sms);
  const std::size_t need = attention_decode_workspace(a, num_sms);
  if (need > 0 && (!a.workspace || a.workspace_bytes < need))
    throw std::invalid_argument("attention_decode: needs a workspace of " + std::to_string(need) +
                                " bytes (attention_decode_workspace), got " + std::to_string(a.workspace_bytes));
  if (need > 0 && reinterpret_cast<std::uintptr_t>(a.workspace) % 16)
    throw std::invalid_argument("attention_decode: the workspace must be 16-byte aligned");

  DecodeParams p{};
  p.q = a.q;
  p.out = a.out;
  p.out_bf16 = a.out_bf16;
  p.k_cache = a.k_cache;
  p.v_cache = a.v_cache;
  p.seq_stride = a.seq_stride;
  p.k_caches = a.k_caches;
  p.v_caches = a.v_caches;
  p.capacity = a.capacity;
  p.num_heads = a.num_heads;
  p.num_kv_heads = a.num_kv_heads;
  p.scale = a.scale;
  p.softcap = a.softcap;
  p.sliding = a.sliding;
  p.window = a.window;
  p.pos0 = a.pos0;
  p.positions = a.positions;
  p.max_position = static_cast<int>(max_pos(a));
  p.splits = splits;
  p.counters = counters;
  if (splits > 1) {
    const std::size_t parts = std::size_t(a.batch) * std::size_t(a.num_heads) * std::size_t(splits);
    p.part_o = static_cast<float*>(a.workspace);  // [parts, head_dim]
    p.part_m = p.part_o + parts * std::size_t(a.head_dim);
    p.part_l = p.part_m + parts;
  }
  const int G = a.num_heads / a.num_kv_heads;
  if (a.head_dim == 256) {
    if (a.kv_type == KvType::bf16) launch_decode_group<256, KvType::bf16>(p, G, a.batch, stream);
    else launch_decode_group<256, KvType::f16>(p, G, a.batch, stream);
  } else {
    if (a.kv_type == KvType::bf16) launch_decode_group<128, KvType::bf16>(p, G, a.batch, stream);
    else launch_decode_group<128, KvType::f16>(p, G, a.batch, stream);
  }
}
}  // namespace

void kv_append(const AttentionArgs& a, const float* k_rows, const float* v_rows, cudaStream_t stream) {
  const auto fail = [](const std::string& what) { throw std::invalid_argument("kv_append: " + what); };
  const auto str = [](long long x) { return std::to_string(x); };
  if (a.batch < 1) fail("batch must be >= 1, got " + str(a.batch));
  if (a.T < 0) fail("T must be >= 0, got " + str(a.T));
  if (a.num_kv_heads < 1 || a.head_dim < 1)
    fail("num_kv_heads and head_dim must be >= 1, got " + str(a.num_kv_heads) + ", " + str(a.head_dim));
  if (a.capacity < 1) fail("capacity must be >= 1, got " + str(a.capacity));
  if (!k_rows || !v_rows) fail("k_rows and v_rows must both be set");
  check_cache_pointers(a, fail);
  const long long width = static_cast<long long>(a.num_kv_heads) * a.head_dim;
  if (width > (1 << 30)) fail("num_kv_heads * head_dim too large");
  if (!a.k_caches && a.batch > 1 && a.seq_stride < a.capacity * width)
    fail("seq_stride (" + str(a.seq_stride) + ") must be >= capacity * num_kv_heads * head_dim (" +
         str(a.capacity * width) + ")");
  const long long pmax = max_pos(a);
  if (pmax < 0 || (!a.positions && a.pos0 < 0))
    fail(std::string(a.positions ? "max_position" : "pos0") + " must be >= 0, got " + str(pmax));
  if (!a.sliding && pmax + a.T > a.capacity)
    fail("a global layer's cache of capacity " + str(a.capacity) + " cannot hold positions up to " +
         str(pmax + a.T - 1));
  if (a.T == 0) return;
  const Range kept = rows_kept(a.sliding, a.capacity, a.T);
  const long long blocks = static_cast<long long>(a.batch) * kept.size();
  if (blocks > 0x7fffffffLL) fail("batch * rows kept exceeds the grid");

  AppendParams p{};
  p.k_rows = k_rows;
  p.v_rows = v_rows;
  p.k_cache = a.k_cache;
  p.v_cache = a.v_cache;
  p.seq_stride = a.seq_stride;
  p.k_caches = a.k_caches;
  p.v_caches = a.v_caches;
  p.capacity = a.capacity;
  p.width = static_cast<int>(width);
  p.T = a.T;
  p.sliding = a.sliding;
  p.pos0 = a.pos0;
  p.positions = a.positions;
  p.kept_begin = kept.begin;
  p.kept = kept.size();
  if (a.kv_type == KvType::bf16) {
    kv_append_kernel<KvType::bf16><<<static_cast<unsigned>(blocks), kAppendThreads, 0, stream>>>(p);
    check_cuda(cudaGetLastError(), "kv_append_kernel<bf16> launch");
  } else {
    kv_append_kernel<KvType::f16><<<static_cast<unsigned>(blocks), kAppendThreads, 0, stream>>>(p);
    check_cuda(cudaGetLastError(), "kv_append_kernel<f16> launch");
  }
}

}  // namespace cuda
}  // namespace gemma3
