// cuda/src/attention_prefill_v1.cu -- prefill attention, version 1 (the kernel lab's
// plain baseline): one warp per (query t, query head h), CUDA cores, float32.
//
//   p = pos0 + t, kv head h / G, lane i holds dims i, i + 32, ... of q (rounded to bf16);
//   any head_dim up to 256 (the tiny test models have 8, 16 and 32: lanes past
//   head_dim hold nothing)
//   for k = first_key(p) .. last_key[t] (p for text), if the mask allows (p, k):
//       x = score_log2(q . k_k)                   (a warp sum, every lane gets it)
//       m' = max(m, x);  l = l 2^(m - m') + 2^(x - m');  o = o 2^(m - m') + 2^(x - m') v_k
//   out = o / l
//
// The mask is attention_mask.hpp's: k >= first_key(p) and (k <= p or k in p's image
// group). Keys < pos0 are read from the cache in place (slot plan.hpp cache_slot), keys
// >= pos0 from k_new / v_new rounded to the cache type, so the result is what reading
// them back from the cache would give. No tiles, no packing, no bf16 beyond q's rounding.
#include <cstdint>
#include <stdexcept>
#include <string>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "attention.hpp"
#include "gemma3/cuda/plan.hpp"
#include "kv_types.cuh"
#include "prefill_versions.hpp"

namespace gemma3 {
namespace cuda {

namespace {

constexpr int kWarpsPerBlock = 4;

struct ParamsV1 {
  const float* q;      // [T, num_heads * D]
  float* out;          // [T, num_heads * D]
  const float* k_new;  // [T, num_kv_heads * D]
  const float* v_new;
  const void* k_cache;  // [capacity, num_kv_heads * D]
  const void* v_cache;
  const int* group;     // [T] or null
  const int* last_key;  // [T] or null
  int num_heads, num_kv_heads, G, T, pos0, window, capacity, head_dim;
  bool sliding;
  float scale, softcap;
};

// grid: ceil(T num_heads / 4) blocks of 4 warps; warp w takes (t, h) = (w / num_heads, w % num_heads).
constexpr int kMaxPerLane = 8;  // head_dim <= 256

template <KvType KT>
__global__ void __launch_bounds__(kWarpsPerBlock * 32, 1) prefill_v1_kernel(const ParamsV1 p) {
  using E = typename KvTraits<KT>::T;
  constexpr int PER_LANE = kMaxPerLane;
  const int D = p.head_dim;
  const int w = int(blockIdx.x) * kWarpsPerBlock + int(threadIdx.x) / 32;
  const int lane = int(threadIdx.x) % 32;
  if (w >= p.T * p.num_heads) return;  // the whole warp leaves together
  const int t = w / p.num_heads, h = w % p.num_heads, kvh = h / p.G;
  const int qp = p.pos0 + t;
  const int end = p.pos0 + p.T;
  const int qgroup = p.group ? p.group[t] : -1;
  const int first = first_key(p.sliding, p.window, qp);
  const int last = p.last_key ? imin(imax(p.last_key[t], qp), end - 1) : qp;
  const std::size_t row = std::size_t(p.num_kv_heads) * D;

  float q[PER_LANE], o[PER_LANE];
  const float* qrow = p.q + (std::size_t(t) * p.num_heads + h) * D;
#pragma unroll
  for (int i = 0; i < PER_LANE; ++i) {
    const bool here = lane + 32 * i < D;
    q[i] = here ? __bfloat162float(__float2bfloat16_rn(qrow[lane + 32 * i])) : 0.f;
    o[i] = 0.f;
  }
  float m = kNoScore, l = 0.f;

  for (int k = first; k <= last; ++k) {
    const bool allowed = k <= qp || (qgroup >= 0 && k >= p.pos0 && p.group[k - p.pos0] == qgroup);
    if (!allowed) continue;  // the same for every lane
    float kv[PER_LANE], vv[PER_LANE];
    if (k < p.pos0) {
      const std::size_t off = std::size_t(cache_slot(p.sliding, p.capacity, k)) * row + std::size_t(kvh) * D;
      const E* kr = static_cast<const E*>(p.k_cache) + off;
      const E* vr = static_cast<const E*>(p.v_cache) + off;
#pragma unroll
      for (int i = 0; i < PER_LANE; ++i) {
        const bool here = lane + 32 * i < D;
        kv[i] = here ? KvTraits<KT>::to_float(kr[lane + 32 * i]) : 0.f;
        vv[i] = here ? KvTraits<KT>::to_float(vr[lane + 32 * i]) : 0.f;
      }
    } else {
      const std::size_t off = std::size_t(k - p.pos0) * row + std::size_t(kvh) * D;
#pragma unroll
      for (int i = 0; i < PER_LANE; ++i) {
        const bool here = lane + 32 * i < D;
        kv[i] = here ? round_kv<KT>(p.k_new[off + lane + 32 * i]) : 0.f;
        vv[i] = here ? round_kv<KT>(p.v_new[off + lane + 32 * i]) : 0.f;
      }
    }
    float dot = 0.f;
#pragma unroll
    for (int i = 0; i < PER_LANE; ++i) dot += q[i] * kv[i];
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
    const float x = score_log2(dot, p.scale, p.softcap);
    const float m_new = fmaxf(m, x);
    const float alpha = exp2f(m - m_new), w_k = exp2f(x - m_new);
    l = l * alpha + w_k;
#pragma unroll
    for (int i = 0; i < PER_LANE; ++i) o[i] = o[i] * alpha + w_k * vv[i];
    m = m_new;
  }

  const float inv = l > 0.f ? 1.f / l : 0.f;
  float* orow = p.out + (std::size_t(t) * p.num_heads + h) * D;
#pragma unroll
  for (int i = 0; i < PER_LANE; ++i)
    if (lane + 32 * i < D) orow[lane + 32 * i] = o[i] * inv;
}

template <KvType KT>
void launch_v1(const ParamsV1& p, cudaStream_t stream, const char* name) {
  const long long warps = (long long)p.T * p.num_heads;
  const unsigned blocks = unsigned((warps + kWarpsPerBlock - 1) / kWarpsPerBlock);
  prefill_v1_kernel<KT><<<blocks, kWarpsPerBlock * 32, 0, stream>>>(p);
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("gemma3::cuda::") + name + ": kernel launch failed: " + cudaGetErrorString(e));
}

}  // namespace

void attention_prefill_v1(const AttentionArgs& a, cudaStream_t stream) {
  check_prefill_args(a, "attention_prefill_v1", /*any_head_dim=*/true);
  ParamsV1 p{};
  p.q = a.q;
  p.out = a.out;
  p.k_new = a.k_new;
  p.v_new = a.v_new;
  p.k_cache = a.k_cache;
  p.v_cache = a.v_cache;
  p.group = a.group;
  p.last_key = a.last_key;
  p.num_heads = a.num_heads;
  p.num_kv_heads = a.num_kv_heads;
  p.G = a.num_heads / a.num_kv_heads;
  p.T = a.T;
  p.pos0 = a.pos0;
  p.window = a.sliding ? a.window : 0;
  p.capacity = a.capacity;
  p.sliding = a.sliding;
  p.scale = a.scale;
  p.softcap = a.softcap;
  p.head_dim = a.head_dim;
  if (a.kv_type == KvType::bf16) launch_v1<KvType::bf16>(p, stream, "prefill_v1_kernel<bf16>");
  else launch_v1<KvType::f16>(p, stream, "prefill_v1_kernel<f16>");
}

}  // namespace cuda
}  // namespace gemma3
