// cuda/src/qk_norm_rope.cu -- QK-norm, RoPE and (in decode) the cache write of one
// layer's attention inputs in one launch, where the seam's calls would take five
// (rms_norm_heads on q and k, rope on q and k, kv_append).
//
//   a warp per head slice of one token: slices [0, NH) are q's heads, [NH, NH + KV) k's,
//   and with the append [NH + KV, NH + 2 KV) v's, which are only stored.
//   q or k slice x [D]:   lane l loads the float4s at 4 l + 128 c (plan.hpp qk_lane_value)
//                         ss   = its sum of squares, summed over the warp
//                         x    = x / sqrt(ss / D + eps) * (1 + w)          (QK-norm)
//                         pair = value j of lane rope_partner_lane(D, l), by a shuffle
//                                (D = 256: the lane's other float4)
//                         x[i] = x[i] cos - x[i + D/2] sin,  x[i + D/2] = x[i + D/2] cos + x[i] sin
//                                at angle (pos0 + t) * inv_freq[i]          (RoPE)
//                         stored back in place (and, for k with the append, at the row's
//                         cache slot, rounded to the cache type)
//
// The arithmetic is heads.cuh's, the operations ops.cu's rms_norm_heads and rope run,
// in the same order, so the result is theirs bit for bit (cuda/tests/test_ops.cpp).
#include <cstdint>
#include <stdexcept>
#include <string>

#include "attention.hpp"
#include "gemma3/cuda/plan.hpp"
#include "heads.cuh"
#include "kv_types.cuh"

namespace gemma3 {
namespace cuda {
namespace {

constexpr int kThreads = 256;  // 8 warps, 8 slices per block

struct QkParams {
  float* q;        // [T, NH * D]
  float* k;        // [T, KV * D]
  const float* v;  // [T, KV * D], the append only
  int T, NH, KV, D;
  const float* q_norm;
  const float* k_norm;
  float q_eps, k_eps;
  const float* inv_freq;  // [D / 2]
  int pos0;
  void* k_cache;  // [capacity, KV * D], the append only
  void* v_cache;
  int capacity;
  bool sliding;
};

// kWide: D = 256 (two float4 per lane, the RoPE pairs inside the lane); kAppend: store
// k and v at the cache slot of position pos0 + t (T == 1).
template <bool kWide, bool kAppend, KvType KT>
__global__ __launch_bounds__(kThreads) void qk_norm_rope_kernel(const QkParams p) {
  using Elem = typename KvTraits<KT>::T;
  const int slices = p.NH + p.KV + (kAppend ? p.KV : 0);  // per token
  const long long warp = (long long)blockIdx.x * (kThreads / 32) + (threadIdx.x >> 5);
  if (warp >= (long long)p.T * slices) return;  // the whole warp leaves together
  const int lane = threadIdx.x & 31;
  const int t = int(warp / slices), h = int(warp % slices), D = p.D;
  const int position = p.pos0 + t;
  const long long width = (long long)p.KV * D;
  long long row = -1;  // the cache row's first element, -1: nothing to store
  if (kAppend && position >= 0 && (p.sliding || position < p.capacity))
    row = (long long)cache_slot(p.sliding, p.capacity, position) * width;

  if (kAppend && h >= p.NH + p.KV) {  // a v head: stored as it is
    const int vh = h - p.NH - p.KV;
    if (row < 0) return;
    const float* src = p.v + t * width + (long long)vh * D;
    Elem* dst = static_cast<Elem*>(p.v_cache) + row + (long long)vh * D;
    for (int i = lane; i < D; i += 32) dst[i] = KvTraits<KT>::from_float(src[i]);
    return;
  }

  const bool is_q = h < p.NH;
  const int kh = h - p.NH;
  float* x = is_q ? p.q + ((long long)t * p.NH + h) * D : p.k + t * width + (long long)kh * D;
  const float* w = is_q ? p.q_norm : p.k_norm;
  constexpr int kChunks = kWide ? 2 : 1;

  float4 val[kChunks];
  float ss = 0.f;
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const int e = qk_lane_value(lane, c, 0);
    val[c] = e < D ? *reinterpret_cast<const float4*>(x + e) : make_float4(0.f, 0.f, 0.f, 0.f);
    if (e < D) ss = __fadd_rn(ss, sum_squares4(val[c]));
  }
  const float inv_rms = head_inv_rms(ss, D, is_q ? p.q_eps : p.k_eps);
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const int e = qk_lane_value(lane, c, 0);
    if (e < D) val[c] = norm_scale4(val[c], inv_rms, *reinterpret_cast<const float4*>(w + e));
  }

  float4 pair[kChunks];
  if (kWide) {
    pair[0] = val[kChunks - 1];
    pair[kChunks - 1] = val[0];
  } else {
    const int m = rope_partner_lane(D, lane) ^ lane;  // D / 8
    pair[0] = make_float4(__shfl_xor_sync(0xffffffffu, val[0].x, m), __shfl_xor_sync(0xffffffffu, val[0].y, m),
                          __shfl_xor_sync(0xffffffffu, val[0].z, m), __shfl_xor_sync(0xffffffffu, val[0].w, m));
  }

  const int half = D / 2;
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const int e = qk_lane_value(lane, c, 0);
    if (e >= D) continue;
    const bool first = e < half;  // all four values in one half (D >= 8)
    const int i0 = first ? e : e - half;
    const float own[4] = {val[c].x, val[c].y, val[c].z, val[c].w};
    const float other[4] = {pair[c].x, pair[c].y, pair[c].z, pair[c].w};
    float out[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      float cs, sn;
      rope_cos_sin(position, p.inv_freq[i0 + j], &cs, &sn);
      out[j] = first ? rope_first(own[j], other[j], cs, sn) : rope_second(other[j], own[j], cs, sn);
    }
    *reinterpret_cast<float4*>(x + e) = make_float4(out[0], out[1], out[2], out[3]);
    if (kAppend && !is_q && row >= 0) {
      Elem* dst = static_cast<Elem*>(p.k_cache) + row + (long long)kh * D + e;
#pragma unroll
      for (int j = 0; j < 4; ++j) dst[j] = KvTraits<KT>::from_float(out[j]);
    }
  }
}

template <bool kWide, bool kAppend, KvType KT>
void launch(const QkParams& p, unsigned blocks, cudaStream_t stream) {
  qk_norm_rope_kernel<kWide, kAppend, KT><<<blocks, kThreads, 0, stream>>>(p);
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace

void qk_norm_rope(const AttentionArgs& a, const QkNormRope& x, const float* v_append, cudaStream_t stream) {
  const auto fail = [](const std::string& what) { throw std::invalid_argument("qk_norm_rope: " + what); };
  const auto str = [](long long n) { return std::to_string(n); };
  if (!fused_qk_head_dim(a.head_dim)) fail("head_dim must be 8, 16, 32, 64, 128 or 256, got " + str(a.head_dim));
  if (a.num_kv_heads < 1 || a.num_heads < 1) fail("num_heads and num_kv_heads must be >= 1");
  if (a.T < 1 || a.batch != 1) fail("takes T >= 1 tokens of one sequence, got T = " + str(a.T) + ", batch " + str(a.batch));
  if (!x.q || !x.k || !x.q_norm || !x.k_norm || !x.inv_freq) fail("q, k, q_norm, k_norm and inv_freq must all be set");
  if (!aligned16(x.q) || !aligned16(x.k) || !aligned16(x.q_norm) || !aligned16(x.k_norm))
    fail("q, k, q_norm and k_norm must be 16-byte aligned");
  if (a.pos0 < 0 || a.pos0 > 0x7fffffff - a.T) fail("positions out of range");
  const bool append = v_append != nullptr;
  if (append) {
    if (a.T != 1) fail("the cache write is for decode (T == 1), got T = " + str(a.T));
    if (!a.k_cache || !a.v_cache || a.capacity < 1) fail("the append needs k_cache, v_cache and capacity");
    if (a.k_caches || a.v_caches) fail("the append takes the sequence's cache as k_cache / v_cache, not k_caches");
    if (!a.sliding && a.pos0 >= a.capacity)
      fail("a global layer's cache of capacity " + str(a.capacity) + " cannot hold position " + str(a.pos0));
  }
  QkParams p{};
  p.q = x.q;
  p.k = x.k;
  p.v = v_append;
  p.T = a.T;
  p.NH = a.num_heads;
  p.KV = a.num_kv_heads;
  p.D = a.head_dim;
  p.q_norm = x.q_norm;
  p.k_norm = x.k_norm;
  p.q_eps = x.q_eps;
  p.k_eps = x.k_eps;
  p.inv_freq = x.inv_freq;
  p.pos0 = a.pos0;
  p.k_cache = a.k_cache;
  p.v_cache = a.v_cache;
  p.capacity = a.capacity;
  p.sliding = a.sliding;
  const long long slices = (long long)a.T * (a.num_heads + a.num_kv_heads + (append ? a.num_kv_heads : 0));
  const long long blocks = (slices + kThreads / 32 - 1) / (kThreads / 32);
  if (blocks > 0x7fffffffLL) fail("too many tokens");
  const unsigned b = unsigned(blocks);
  const bool wide = a.head_dim == 256;
  if (!append) {
    if (wide) launch<true, false, KvType::bf16>(p, b, stream);
    else launch<false, false, KvType::bf16>(p, b, stream);
  } else if (a.kv_type == KvType::bf16) {
    if (wide) launch<true, true, KvType::bf16>(p, b, stream);
    else launch<false, true, KvType::bf16>(p, b, stream);
  } else {
    if (wide) launch<true, true, KvType::f16>(p, b, stream);
    else launch<false, true, KvType::f16>(p, b, stream);
  }
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw std::runtime_error(std::string("qk_norm_rope: kernel launch failed: ") + cudaGetErrorString(e));
}

}  // namespace cuda
}  // namespace gemma3
