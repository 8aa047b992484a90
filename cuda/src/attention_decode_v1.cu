// cuda/src/attention_decode_v1.cu -- decode attention, version 1: the plain baseline the
// kernel lab holds the split-K kernel (attention_decode.cu) against, and the kernel for
// the shapes that one does not take (head_dim other than 128 / 256, any GQA group).
//
// One CTA per (query head h, sequence b), grid (num_heads, batch), 4 warps. The query at
// position p reads kv head h / G and the keys [k0, p], k0 = first_key(p), from slot
// cache_slot(position) of the sequence's cache. Warp w takes keys k0 + w, k0 + w + 4, ...
// one at a time; lane l holds dims l, l + 32, l + 64, ... (< head_dim), the dot product
// is reduced across the warp with xor shuffles, and the warp keeps one online softmax:
//
//   s = score_log2(q_h . k_j)
//   m' = max(m, s)    l' = l 2^(m - m') + 2^(s - m')    O' = O 2^(m - m') + 2^(s - m') v_j
//
// The 4 warps merge through shared memory (merge_weight) and write out = O / l.
// No split, no GQA packing (each query head reads its K/V rows itself), no unrolling,
// scalar loads (no alignment asked).
#include <stdexcept>
#include <string>

#include "decode_versions.hpp"
#include "gemma3/cuda/plan.hpp"
#include "heads.cuh"
#include "kv_types.cuh"

namespace gemma3 {
namespace cuda {
namespace {

constexpr int kV1Warps = 4;

struct V1Params {
  const float* q;       // [batch, num_heads * head_dim]
  float* out;           // [batch, num_heads * head_dim]
  std::uint16_t* out_bf16;  // the same rounded to bf16, or null
  const void* k_cache;  // [batch][capacity][num_kv_heads * head_dim], seq_stride apart
  const void* v_cache;
  long long seq_stride;
  void* const* k_caches;  // [batch] each sequence's rows, or null (then k_cache)
  void* const* v_caches;
  int capacity;
  int num_heads, num_kv_heads, head_dim;
  float scale, softcap;
  bool sliding;
  int window;
  int pos0;
  const int* positions;  // [batch] or null
  int max_position;
};

void check_cuda(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) throw std::runtime_error(what + ": " + cudaGetErrorString(e));
}

// kPer: dims per lane, head_dim <= 32 kPer.
template <int kPer, KvType KT>
__global__ void __launch_bounds__(kV1Warps * 32, 1) decode_v1_kernel(const V1Params p) {
  using Elem = typename KvTraits<KT>::T;
  __shared__ float s_o[kV1Warps][32 * kPer];  // [warps, head_dim (padded)]
  __shared__ float s_m[kV1Warps];
  __shared__ float s_l[kV1Warps];

  const int D = p.head_dim;
  const int h = blockIdx.x, b = blockIdx.y;
  const int kvh = h / (p.num_heads / p.num_kv_heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int pos = p.positions ? p.positions[b] : p.pos0;
  const bool pos_ok = pos >= 0 && pos <= p.max_position;
  const int k0 = pos_ok ? first_key(p.sliding, p.window, pos) : 0;
  const int last = pos_ok ? pos : -1;  // keys k0 .. last

  const long long bh = static_cast<long long>(b) * p.num_heads + h;
  float q[kPer], o[kPer];
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int d = lane + 32 * i;
    q[i] = d < D ? p.q[bh * D + d] : 0.f;
    o[i] = 0.f;
  }
  float m = kNoScore, l = 0.f;

  const long long row = static_cast<long long>(p.num_kv_heads) * D;
  const long long head = static_cast<long long>(kvh) * D;
  const Elem* kc = sequence_rows<const Elem>(p.k_cache, p.k_caches, p.seq_stride, b) + head;
  const Elem* vc = sequence_rows<const Elem>(p.v_cache, p.v_caches, p.seq_stride, b) + head;
  for (int j = k0 + warp; j <= last; j += kV1Warps) {  // j is the same across the warp
    const long long off = static_cast<long long>(cache_slot(p.sliding, p.capacity, j)) * row;
    float dot = 0.f;
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int d = lane + 32 * i;
      if (d < D) dot = fmaf(q[i], KvTraits<KT>::to_float(kc[off + d]), dot);
    }
#pragma unroll
    for (int x = 16; x > 0; x /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, x);
    const float s = score_log2(dot, p.scale, p.softcap);
    const float m_new = fmaxf(m, s);
    const float corr = exp2f(m - m_new), w = exp2f(s - m_new);
    l = fmaf(l, corr, w);
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int d = lane + 32 * i;
      const float v = d < D ? KvTraits<KT>::to_float(vc[off + d]) : 0.f;
      o[i] = fmaf(o[i], corr, w * v);
    }
    m = m_new;
  }

#pragma unroll
  for (int i = 0; i < kPer; ++i) s_o[warp][lane + 32 * i] = o[i];
  if (lane == 0) {
    s_m[warp] = m;
    s_l[warp] = l;
  }
  __syncthreads();
  float m_all = kNoScore;
  for (int w = 0; w < kV1Warps; ++w) m_all = fmaxf(m_all, s_m[w]);
  float l_all = 0.f;
  for (int w = 0; w < kV1Warps; ++w) l_all = fmaf(merge_weight(s_m[w], m_all), s_l[w], l_all);
  for (int d = threadIdx.x; d < D; d += kV1Warps * 32) {
    float acc = 0.f;
    for (int w = 0; w < kV1Warps; ++w) acc = fmaf(merge_weight(s_m[w], m_all), s_o[w][d], acc);
    const float r = !pos_ok ? __int_as_float(0x7fffffff) : (l_all > 0.f ? acc / l_all : 0.f);
    p.out[bh * D + d] = r;
    if (p.out_bf16) p.out_bf16[bh * D + d] = static_cast<std::uint16_t>(bf16_bits(r));
  }
}

template <int kPer, KvType KT>
void launch_v1(const V1Params& p, int batch, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(p.num_heads), static_cast<unsigned>(batch));
  decode_v1_kernel<kPer, KT><<<grid, kV1Warps * 32, 0, stream>>>(p);
  check_cuda(cudaGetLastError(), std::string("decode_v1_kernel<") + std::to_string(kPer) + " dims a lane, " +
                                     (KT == KvType::bf16 ? "bf16" : "f16") + "> launch");
}

template <KvType KT>
void launch_v1_dims(const V1Params& p, int batch, cudaStream_t stream) {
  const int per = (p.head_dim + 31) / 32;  // 1 .. 8
  if (per <= 1) launch_v1<1, KT>(p, batch, stream);
  else if (per <= 2) launch_v1<2, KT>(p, batch, stream);
  else if (per <= 4) launch_v1<4, KT>(p, batch, stream);
  else launch_v1<8, KT>(p, batch, stream);
}

__global__ void latency_probe_kernel(const float* x, float* y) {
  if (threadIdx.x == 0) *y = *x;
}

}  // namespace

void attention_decode_v1(const AttentionArgs& a, cudaStream_t stream) {
  check_decode_args(a, "attention_decode_v1", /*any_shape=*/true);
  V1Params p{};
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
  p.head_dim = a.head_dim;
  p.scale = a.scale;
  p.softcap = a.softcap;
  p.sliding = a.sliding;
  p.window = a.window;
  p.pos0 = a.pos0;
  p.positions = a.positions;
  p.max_position = a.positions ? a.max_position : a.pos0;
  if (a.kv_type == KvType::bf16) launch_v1_dims<KvType::bf16>(p, a.batch, stream);
  else launch_v1_dims<KvType::f16>(p, a.batch, stream);
}

void decode_latency_probe(const float* x, float* y, cudaStream_t stream) {
  latency_probe_kernel<<<1, 32, 0, stream>>>(x, y);
  check_cuda(cudaGetLastError(), "latency_probe_kernel launch");
}

}  // namespace cuda
}  // namespace gemma3
