// cuda/src/attention_prefill.cu -- prefill attention: T queries of one sequence at
// positions pos0 .. pos0 + T - 1, flash attention on tensor cores (mma.sync m16n8k16,
// bfloat16 inputs, float32 accumulators).
//
//   out[t, h] = sum_k P[k] v_k / sum_k P[k],   P[k] = exp2(s_k - m),
//   s_k = score_log2(q_t,h . k_k, scale, softcap)   (plan.hpp: the log2 domain)
//
// over the keys k the mask allows (attention_mask.hpp). One CTA takes one kv head and
// M = 64 packed GQA rows (plan.hpp: packed row r = query r / G, head kv G + r % G), so
// every K/V tile it loads serves the G query heads of the kv head. Its 4 warps own 16
// rows each; the CTA walks the key tiles of N keys (N = 64 for head_dim 128, 32 for 256)
// that plan.hpp key_tiles_needed names -- on a sliding layer about (W + M / G) / N of
// them whatever T, so the cost grows as T x W, not T^2:
//
//            key tiles j ->                       per key tile j, per warp (16 rows):
//   packed  +---+---+---+---+---+---+            S = Q K_j^T      16 x N   mma, float32
//   rows    | . | . | m | u | u | m |  <- CTA    s = score_log2(S) (mask: -inf)
//   r0..    +---+---+---+---+---+---+            m' = max(m, rowmax s)
//             needed: [first, last]              P = exp2(s - m')  rounded to bf16
//             u = unmasked (no mask)             l = l exp2(m - m') + rowsum P
//             m = masked  (per element)          O = O exp2(m - m') + P V_j    16 x D
//   out = O / l (0 when l = 0), written for rows r < T G only (the rest is padding).
//
// The per-element mask is applied on key tiles outside key_tiles_unmasked, and on every
// tile when image groups are present:
//   allowed(q, k) = k >= first_key(q) && (k <= q || (group[q - pos0] >= 0 &&
//                   pos0 <= k < pos0 + T && group[k - pos0] == group[q - pos0]))
// A masked score is -inf; the running max starts at kNoScore (finite), so a row with no
// visible key keeps l = 0 and comes out as 0, never NaN.
//
// Key sources (the kernel never writes the cache; kv_append runs afterwards):
//   k <  pos0       the cache in place, slot cache_slot(sliding, capacity, k)
//   k >= pos0       k_new / v_new row k - pos0, rounded to the cache type, then bf16:
//                   stage_fresh_kernel writes these rows once, in bf16, to the
//                   workspace, so the tile loads copy them as they are
//   outside [first_key(first position of the tile), pos0 + T)   zeros (never visible;
//                   zeros keep 0 * garbage out of the PV product)
//
// The loads overlap the tensor cores (cp.async, sm_80+): a tile's rows go from global to
// shared memory without passing through registers, 16 bytes per copy, and land when the
// issuing thread waits (cp.async.wait_group) -- bf16 rows are copied as they are; an f16
// cache's rows still pass through registers, rounded to bf16. (kAsync = false, the lab's
// attention_prefill_sync_loads, loads every row through registers instead, with the same
// bits, to measure what the overlap gives.) Per key tile j:
//
//   wait + barrier   K_j has landed; no warp still reads V_{j-1}
//   issue V_j        (lands while the warps compute S = Q K_j^T and the softmax)
//   S, softmax
//   wait + barrier   V_j has landed; no warp still reads K_j
//   issue K_{j+1}    (lands while the warps compute O += P V_j)
//   O += P V_j
//
// Fragments (PTX ISA, mma.m16n8k16, g = lane / 4, c = lane % 4; a register holds two
// bf16, the lower index in the low half):
//   A 16x16 (row-major)  a0:(g, 2c..2c+1)  a1:(g+8, 2c..)  a2:(g, 2c+8..)  a3:(g+8, 2c+8..)
//   B 16x8  (k x n)      b0:(k = 2c..2c+1, n = g)          b1:(k = 2c+8..2c+9, n = g)
//   C 16x8  (4 floats)   c0,c1:(g, 2c..2c+1)               c2,c3:(g+8, 2c..2c+1)
// Q (A of S = Q K^T) and K (B: B[d][key] = K[key][d], rows of K) come from shared memory
// by ldmatrix; V (B of P V: B[key][d]) by ldmatrix.trans; P (A of P V) straight from the
// S accumulators: the C layout of two neighbouring n8 tiles is the A layout of one k16.
// Shared memory rows are padded by 8 values (16 bytes) so ldmatrix is conflict-free.
#include <atomic>
#include <cstdint>
#include <cstring>
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

constexpr int kRows = 64;      // M: packed rows per CTA
constexpr int kWarps = 4;      // 16 rows each
constexpr int kThreads = kWarps * 32;

template <int D>
struct Tile {  // one buffer each for Q, K and V: the K and V loads take turns
  static constexpr int N = D == 256 ? 32 : 64;  // keys per key tile
  static constexpr int S = D + 8;               // shared row stride (values): 16 bytes of padding
  static constexpr std::size_t smem_bytes =
      std::size_t(kRows + 2 * N) * S * sizeof(__nv_bfloat16) + std::size_t(N) * sizeof(int);
};

struct Params {
  const float* q;      // [T, num_heads * D]
  float* out;          // [T, num_heads * D]
  const __nv_bfloat16* k_fresh;  // [T, num_kv_heads * D]: k_new rounded to the cache type, then bf16
  const __nv_bfloat16* v_fresh;
  const void* k_cache;  // [capacity, num_kv_heads * D]
  const void* v_cache;
  const int* group;     // [T] or null
  const int* last_key;  // [T] or null
  int num_heads, num_kv_heads, G, T, pos0, window, capacity, q_tiles;
  bool sliding;
  float scale, softcap;
};

void check_launch(const char* kernel) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("gemma3::cuda::") + kernel + ": kernel launch failed: " +
                             cudaGetErrorString(e));
}

void check_call(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("gemma3::cuda::") + what + ": " + cudaGetErrorString(e));
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// ---- device helpers ------------------------------------------------------------------

__device__ __forceinline__ std::uint32_t smem_u32(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}

#ifdef GEMMA3_CUDA_EMULATOR  // cuda/emu: the same instructions, as the PTX ISA defines them, on the CPU
__device__ __forceinline__ void ldmatrix_x4(std::uint32_t r[4], const __nv_bfloat16* p) { gemma3_emu::ldmatrix_x4(r, p, false); }
__device__ __forceinline__ void ldmatrix_x4_trans(std::uint32_t r[4], const __nv_bfloat16* p) {
  gemma3_emu::ldmatrix_x4(r, p, true);
}
__device__ __forceinline__ void mma_bf16(float c[4], const std::uint32_t a[4], std::uint32_t b0, std::uint32_t b1) {
  gemma3_emu::mma_m16n8k16_bf16(c, a, b0, b1);
}
__device__ __forceinline__ void cp_async_16(void* dst, const void* src) { gemma3_emu::cp_async_16(dst, src); }
__device__ __forceinline__ void cp_async_commit() { gemma3_emu::cp_async_commit(); }
__device__ __forceinline__ void cp_async_wait_all() { gemma3_emu::cp_async_wait(0); }
#else
// Four 8x8 bf16 matrices; lanes 8i .. 8i + 7 give the row addresses of matrix i.
// Register i holds matrix i's (row lane / 4, columns 2 (lane % 4), +1).
__device__ __forceinline__ void ldmatrix_x4(std::uint32_t r[4], const __nv_bfloat16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p))
               : "memory");
}
// The same, transposed: register i holds matrix i's (rows 2 (lane % 4), +1; column lane / 4).
__device__ __forceinline__ void ldmatrix_x4_trans(std::uint32_t r[4], const __nv_bfloat16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p))
               : "memory");
}

// c (16x8 float) += a (16x16 bf16) b (16x8 bf16)
__device__ __forceinline__ void mma_bf16(float c[4], const std::uint32_t a[4], std::uint32_t b0, std::uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// 16 bytes from global memory (src) to shared memory (dst), both 16-byte aligned, in the
// background; .cg: through L2 only (a tile is read once per CTA).
__device__ __forceinline__ void cp_async_16(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_u32(dst)), "l"(src) : "memory");
}
// Closes this thread's group of copies issued so far.
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until every committed group of this thread has landed (other threads' copies
// are theirs to wait for: a barrier follows).
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }
#endif

__device__ __forceinline__ std::uint32_t bits(__nv_bfloat162 v) {
  std::uint32_t u;
  memcpy(&u, &v, 4);
  return u;
}

// (lo, hi) rounded to bf16 in one register (lo in the low half, the lower index), and
// their rounded values added to `sum`.
__device__ __forceinline__ std::uint32_t pack_bf16_sum(float lo, float hi, float& sum) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  sum += __low2float(v) + __high2float(v);
  return bits(v);
}

// 16 bytes from global to shared memory (both 16-byte aligned): by cp.async, or through
// a register.
template <bool kAsync>
__device__ __forceinline__ void copy16(void* dst, const void* src) {
  if constexpr (kAsync) cp_async_16(dst, src);
  else *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
}

// 8 floats as 8 bf16 (16 bytes) at dst (16-byte aligned).
__device__ __forceinline__ void store8_bf16(__nv_bfloat16* dst, const float x[8]) {
  uint4 u;
  u.x = bits(__floats2bfloat162_rn(x[0], x[1]));
  u.y = bits(__floats2bfloat162_rn(x[2], x[3]));
  u.z = bits(__floats2bfloat162_rn(x[4], x[5]));
  u.w = bits(__floats2bfloat162_rn(x[6], x[7]));
  *reinterpret_cast<uint4*>(dst) = u;
}

__device__ __forceinline__ void load8_f32(const float* p, float x[8]) {
  const float4 a = *reinterpret_cast<const float4*>(p);
  const float4 b = *reinterpret_cast<const float4*>(p + 4);
  x[0] = a.x; x[1] = a.y; x[2] = a.z; x[3] = a.w;
  x[4] = b.x; x[5] = b.y; x[6] = b.z; x[7] = b.w;
}

// Starts loading the rows of key positions key0 .. key0 + N - 1 of kv head `kvh`, of K
// (cache = k_cache, fresh = k_fresh) or of V, into dst ([N][S] bf16) from the key
// sources above, as one group of cp.async copies; positions outside [lo, pos0 + T) are
// stored as 0 at once, and so are an f16 cache's rows, rounded to bf16. The rows are in
// place once this thread has waited (cp_async_wait_all) and the block has passed a
// barrier. kAsync = false: every row through registers (ld.global, st.shared) at once.
template <int D, KvType KT, bool kAsync>
__device__ __forceinline__ void issue_key_rows(const Params& p, const void* cache, const __nv_bfloat16* fresh, int kvh,
                                               int key0, int lo, __nv_bfloat16* dst) {
  using E = typename KvTraits<KT>::T;
  constexpr int N = Tile<D>::N, S = Tile<D>::S, C8 = D / 8;  // C8: 8-value chunks per row
  const std::size_t row = std::size_t(p.num_kv_heads) * D;  // values per cache / fresh row
  const int end = p.pos0 + p.T;
#pragma unroll 2
  for (int c = threadIdx.x; c < N * C8; c += kThreads) {
    const int n = c / C8, d = (c % C8) * 8;
    const int pos = key0 + n;
    __nv_bfloat16* to = dst + n * S + d;
    if (pos < lo || pos >= end) {
      *reinterpret_cast<uint4*>(to) = make_uint4(0u, 0u, 0u, 0u);  // +0.0 in bf16
    } else if (pos < p.pos0) {
      const std::size_t off = std::size_t(cache_slot(p.sliding, p.capacity, pos)) * row + std::size_t(kvh) * D + d;
      if constexpr (KT == KvType::bf16) {
        copy16<kAsync>(to, static_cast<const E*>(cache) + off);
      } else {
        float x[8];
        load8<KT>(static_cast<const E*>(cache) + off, x);
        store8_bf16(to, x);
      }
    } else {
      copy16<kAsync>(to, fresh + std::size_t(pos - p.pos0) * row + std::size_t(kvh) * D + d);
    }
  }
  if constexpr (kAsync) cp_async_commit();
}

// The call's own rows, once, for the tile loads: fresh[i] = bf16(round_kv(x[i])) for k_new
// and v_new ([T, num_kv_heads * D] each, 8 values per thread).
template <KvType KT>
__global__ void stage_fresh_kernel(const float* k_new, const float* v_new, __nv_bfloat16* k_fresh,
                                   __nv_bfloat16* v_fresh, long long chunks) {
  const long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= chunks) return;
  const std::size_t at = std::size_t(c) * 8;
  float x[8];
  load8_f32(k_new + at, x);
#pragma unroll
  for (int i = 0; i < 8; ++i) x[i] = round_kv<KT>(x[i]);
  store8_bf16(k_fresh + at, x);
  load8_f32(v_new + at, x);
#pragma unroll
  for (int i = 0; i < 8; ++i) x[i] = round_kv<KT>(x[i]);
  store8_bf16(v_fresh + at, x);
}

// ---- the tiled kernel ----------------------------------------------------------------
// grid (num_kv_heads, q_tiles), kThreads threads; dynamic shared memory Tile<D>::smem_bytes.
template <int D, KvType KT, bool kAsync>
__global__ void __launch_bounds__(kThreads) prefill_tiled_kernel(const Params p) {
  constexpr int N = Tile<D>::N, S = Tile<D>::S;
  extern __shared__ __align__(16) unsigned char smem[];
  __nv_bfloat16* Qs = reinterpret_cast<__nv_bfloat16*>(smem);  // [M][S]  the CTA's packed rows of q
  __nv_bfloat16* Ks = Qs + kRows * S;                          // [N][S]  key tile
  __nv_bfloat16* Vs = Ks + N * S;                              // [N][S]  value tile
  int* kgroup = reinterpret_cast<int*>(Vs + N * S);            // [N]     image group of each key (-1: none)
  __shared__ int s_last_key;

  const int kvh = blockIdx.x;
  const int qt = p.q_tiles - 1 - int(blockIdx.y);  // the longest rows (latest positions) start first
  const int r0 = qt * kRows;
  const int rows = p.T * p.G;
  const int end = p.pos0 + p.T;  // one past the call's last position
  const bool images = p.group != nullptr;
  const Range pos = tile_positions(p.pos0, p.T, p.G, r0, kRows);

  // The last key any row of the tile sees: its last position, or later for image tokens.
  int last_key_max = pos.end - 1;
  if (images) {
    if (threadIdx.x == 0) s_last_key = last_key_max;
    __syncthreads();
    for (int t = pos.begin - p.pos0 + int(threadIdx.x); t < pos.end - p.pos0; t += kThreads)
      atomicMax(&s_last_key, imin(p.last_key[t], end - 1));
    __syncthreads();
    last_key_max = s_last_key;
  }
  const Range need = key_tiles_needed(p.sliding, p.window, pos, last_key_max, N);
  const Range unmasked = images ? Range{0, 0} : key_tiles_unmasked(p.sliding, p.window, pos, N);
  const int lo = first_key(p.sliding, p.window, pos.begin);

  // Q tile: packed row i = query t = (r0 + i) / G, head kvh G + (r0 + i) % G; padding rows 0.
  constexpr int C8 = D / 8;
  for (int c = threadIdx.x; c < kRows * C8; c += kThreads) {
    const int i = c / C8, d = (c % C8) * 8;
    const int r = r0 + i;
    float x[8];
    if (r < rows) {
      const int t = r / p.G, h = kvh * p.G + r % p.G;
      load8_f32(p.q + (std::size_t(t) * p.num_heads + h) * D + d, x);
    } else {
#pragma unroll
      for (int k = 0; k < 8; ++k) x[k] = 0.f;
    }
    store8_bf16(Qs + i * S + d, x);
  }

  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int g = lane / 4, c4 = lane % 4;
  const bool warp_active = r0 + warp * 16 < rows;  // else all 16 rows are padding

  // This thread's two rows: local rows warp 16 + g (i = 0) and warp 16 + g + 8 (i = 1).
  int qpos[2], qfirst[2], qgroup[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int t = (r0 + warp * 16 + g + 8 * i) / p.G;
    qpos[i] = p.pos0 + t;
    qfirst[i] = first_key(p.sliding, p.window, qpos[i]);
    qgroup[i] = images && t < p.T ? p.group[t] : -1;
  }

  // ldmatrix row addresses of this lane (see the fragment table at the top).
  //   Q: matrix i = lane / 8 covers rows +8 (i & 1), columns +8 (i >> 1): a0..a3
  //   K: matrix i covers keys +8 (i >> 1), dims +8 (i & 1): b0, b1 of n8 tile 2jn, then 2jn + 1
  //   V: matrix i covers keys +8 (i & 1), dims +8 (i >> 1): b0, b1 of dims n8 tile 2dn, then 2dn + 1
  const int mi = lane / 8, mr = lane % 8;
  const __nv_bfloat16* q_lane = Qs + (warp * 16 + mr + (mi & 1) * 8) * S + (mi >> 1) * 8;
  const __nv_bfloat16* k_lane = Ks + (mr + (mi >> 1) * 8) * S + (mi & 1) * 8;
  const __nv_bfloat16* v_lane = Vs + (mr + (mi & 1) * 8) * S + (mi >> 1) * 8;

  float o[D / 8][4];  // O: 16 rows x D of this warp, C layout per n8 tile of dims
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {kNoScore, kNoScore};  // running max (log2 domain) of rows g, g + 8
  float l[2] = {0.f, 0.f};            // this lane's part of the running sum of P

  // K tile j and the image groups of its keys (read by the mask, so they change when K does).
  auto issue_k = [&](int j) {
    const int key0 = j * N;
    issue_key_rows<D, KT, kAsync>(p, p.k_cache, p.k_fresh, kvh, key0, lo, Ks);
    if (images)
      for (int n = threadIdx.x; n < N; n += kThreads) {
        const int k = key0 + n;
        kgroup[n] = k >= p.pos0 && k < end ? p.group[k - p.pos0] : -1;
      }
  };
  if (need.begin < need.end) issue_k(need.begin);

  for (int j = need.begin; j < need.end; ++j) {
    const int key0 = j * N;
    if constexpr (kAsync) cp_async_wait_all();
    __syncthreads();  // K_j is in place (and Q, on the first tile); no warp reads V_{j-1} any more
    issue_key_rows<D, KT, kAsync>(p, p.v_cache, p.v_fresh, kvh, key0, lo, Vs);

    // S = Q K^T: 16 x N per warp; then the scores in the log2 domain, the mask, the rows'
    // new max, and O and l rescaled to it. A warp of padding rows only loads and waits.
    float s[N / 8][4];
    if (warp_active) {
#pragma unroll
      for (int n = 0; n < N / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        std::uint32_t a[4];
        ldmatrix_x4(a, q_lane + kk * 16);
#pragma unroll
        for (int jn = 0; jn < N / 16; ++jn) {
          std::uint32_t b[4];
          ldmatrix_x4(b, k_lane + jn * 16 * S + kk * 16);
          mma_bf16(s[2 * jn], a, b[0], b[1]);
          mma_bf16(s[2 * jn + 1], a, b[2], b[3]);
        }
      }

      const bool masked = images || j < unmasked.begin || j >= unmasked.end;
      float mx[2] = {kNoScore, kNoScore};
#pragma unroll
      for (int n = 0; n < N / 8; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int i = e / 2;
          const int k = key0 + n * 8 + 2 * c4 + (e & 1);
          float x = score_log2(s[n][e], p.scale, p.softcap);
          if (masked) {
            const bool ok = k >= qfirst[i] && (k <= qpos[i] || (qgroup[i] >= 0 && kgroup[k - key0] == qgroup[i]));
            if (!ok) x = -INFINITY;
          }
          s[n][e] = x;
          mx[i] = fmaxf(mx[i], x);
        }
      float alpha[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) {  // the 4 lanes of a quad share rows g, g + 8
        mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
        mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
        const float m_new = fmaxf(m[i], mx[i]);  // finite: m starts at kNoScore
        alpha[i] = exp2f(m[i] - m_new);
        m[i] = m_new;
        l[i] *= alpha[i];
      }
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        o[n][0] *= alpha[0];
        o[n][1] *= alpha[0];
        o[n][2] *= alpha[1];
        o[n][3] *= alpha[1];
      }
    }

    if constexpr (kAsync) cp_async_wait_all();
    __syncthreads();  // V_j is in place; no warp reads K_j (or its image groups) any more
    if (j + 1 < need.end) issue_k(j + 1);
    if (!warp_active) continue;

    // O += P V, P = exp2(s - m) rounded to bf16 (a masked -inf gives 0).
#pragma unroll
    for (int kk = 0; kk < N / 16; ++kk) {
      std::uint32_t a[4];
      a[0] = pack_bf16_sum(exp2f(s[2 * kk][0] - m[0]), exp2f(s[2 * kk][1] - m[0]), l[0]);
      a[1] = pack_bf16_sum(exp2f(s[2 * kk][2] - m[1]), exp2f(s[2 * kk][3] - m[1]), l[1]);
      a[2] = pack_bf16_sum(exp2f(s[2 * kk + 1][0] - m[0]), exp2f(s[2 * kk + 1][1] - m[0]), l[0]);
      a[3] = pack_bf16_sum(exp2f(s[2 * kk + 1][2] - m[1]), exp2f(s[2 * kk + 1][3] - m[1]), l[1]);
#pragma unroll
      for (int dn = 0; dn < D / 16; ++dn) {
        std::uint32_t b[4];
        ldmatrix_x4_trans(b, v_lane + kk * 16 * S + dn * 16);
        mma_bf16(o[2 * dn], a, b[0], b[1]);
        mma_bf16(o[2 * dn + 1], a, b[2], b[3]);
      }
    }
  }

  // out = O / l over the quad's full row sums; padding rows are never written.
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int r = r0 + warp * 16 + g + 8 * i;
    if (r >= rows) continue;
    const float inv = l[i] > 0.f ? 1.f / l[i] : 0.f;
    const int t = r / p.G, h = kvh * p.G + r % p.G;
    float* dst = p.out + (std::size_t(t) * p.num_heads + h) * D + 2 * c4;
#pragma unroll
    for (int n = 0; n < D / 8; ++n)
      *reinterpret_cast<float2*>(dst + n * 8) = make_float2(o[n][2 * i] * inv, o[n][2 * i + 1] * inv);
  }
}

// More than 48 KB of dynamic shared memory must be asked for, once per kernel and device.
template <int D, KvType KT, bool kAsync>
void launch_tiled(const Params& p, cudaStream_t stream, const char* name) {
  auto kernel = prefill_tiled_kernel<D, KT, kAsync>;
  const std::size_t smem = Tile<D>::smem_bytes;
  static std::atomic<unsigned long long> attribute_set{0};  // bit d: done on device d
  int device = 0;
  check_call(cudaGetDevice(&device), "attention_prefill: cudaGetDevice");
  const unsigned long long bit = device < 64 ? 1ull << device : 0ull;
  if (!bit || !(attribute_set.load() & bit)) {
    check_call(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
               "attention_prefill: cudaFuncSetAttribute(MaxDynamicSharedMemorySize)");
    attribute_set.fetch_or(bit);
  }
  const dim3 grid(unsigned(p.num_kv_heads), unsigned(p.q_tiles));
  kernel<<<grid, kThreads, smem, stream>>>(p);
  check_launch(name);
}

}  // namespace

int prefill_rows_per_tile() { return kRows; }

std::size_t attention_prefill_workspace(const AttentionArgs& a) {
  return 2 * std::size_t(a.T) * std::size_t(a.num_kv_heads) * std::size_t(a.head_dim) * sizeof(__nv_bfloat16);
}
int prefill_key_tile(int head_dim) { return head_dim == 256 ? Tile<256>::N : Tile<128>::N; }

void check_prefill_args(const AttentionArgs& a, const char* who, bool any_head_dim) {
  const std::string w = std::string(who) + ": ";
  auto fail = [&](const std::string& what) { throw std::invalid_argument(w + what); };
  if (a.batch != 1) fail("batch must be 1 (one sequence per prefill call), got " + std::to_string(a.batch));
  if (a.T < 1) fail("T must be >= 1, got " + std::to_string(a.T));
  if (any_head_dim ? (a.head_dim < 1 || a.head_dim > 256) : (a.head_dim != 128 && a.head_dim != 256))
    fail(std::string("head_dim must be ") + (any_head_dim ? "1 .. 256" : "128 or 256") + ", got " +
         std::to_string(a.head_dim));
  if (a.num_heads < 1 || a.num_kv_heads < 1)
    fail("num_heads and num_kv_heads must be >= 1, got " + std::to_string(a.num_heads) + " and " +
         std::to_string(a.num_kv_heads));
  if (a.num_heads % a.num_kv_heads != 0)
    fail("num_heads (" + std::to_string(a.num_heads) + ") must be a multiple of num_kv_heads (" +
         std::to_string(a.num_kv_heads) + ")");
  if (a.num_kv_heads > 65535) fail("num_kv_heads must be <= 65535, got " + std::to_string(a.num_kv_heads));
  if (a.kv_type != KvType::bf16 && a.kv_type != KvType::f16) fail("kv_type must be bf16 or f16");
  if (a.pos0 < 0) fail("pos0 must be >= 0, got " + std::to_string(a.pos0));
  if (a.T > (1 << 30) / (a.num_heads / a.num_kv_heads) || a.pos0 > (1 << 30) - a.T)
    fail("T = " + std::to_string(a.T) + " at pos0 = " + std::to_string(a.pos0) + " is too long");
  if (ceil_div(a.T * (a.num_heads / a.num_kv_heads), kRows) > 65535)
    fail("T * num_heads / num_kv_heads = " + std::to_string(a.T * (a.num_heads / a.num_kv_heads)) +
         " packed rows is more than 65535 tiles of " + std::to_string(kRows));
  if (a.sliding && a.window < 1) fail("a sliding layer's window must be >= 1, got " + std::to_string(a.window));
  if (!(a.softcap >= 0.f)) fail("softcap must be >= 0 (0: none)");
  if (!a.q || !a.out || !a.k_new || !a.v_new) fail("q, out, k_new and v_new must be given");
  if (a.out_bf16) fail("out_bf16 is decode's only: prefill writes out alone");
  if (a.k_caches || a.v_caches) fail("takes its one sequence's cache as k_cache / v_cache, not k_caches / v_caches");
  if (a.pos0 > 0 && (!a.k_cache || !a.v_cache)) fail("k_cache and v_cache must be given when pos0 > 0");
  if (!any_head_dim && (!aligned16(a.q) || !aligned16(a.out) || !aligned16(a.k_new) || !aligned16(a.v_new) || !aligned16(a.k_cache) ||
      !aligned16(a.v_cache)))
    fail("q, out, k_new, v_new and the caches must be 16-byte aligned");
  if ((a.group == nullptr) != (a.last_key == nullptr)) fail("group and last_key go together (both or neither)");
  const int end = a.pos0 + a.T;
  if (a.sliding) {
    if (a.capacity < a.window && a.capacity < end)
      fail("a sliding layer's cache of capacity " + std::to_string(a.capacity) + " holds neither the window (" +
           std::to_string(a.window) + ") nor positions 0 .. " + std::to_string(end - 1));
  } else if (end > a.capacity) {
    fail("positions up to " + std::to_string(end - 1) + " do not fit a global layer's cache of capacity " +
         std::to_string(a.capacity));
  }
}

namespace {

template <bool kAsync>
void run_prefill(const AttentionArgs& a, cudaStream_t stream, const char* who) {
  check_prefill_args(a, who);
  const std::size_t staged = attention_prefill_workspace(a);
  if (!a.workspace || a.workspace_bytes < staged || !aligned16(a.workspace))
    throw std::invalid_argument(std::string(who) + ": workspace must be 16-byte aligned device memory of at least " +
                                std::to_string(staged) + " bytes (attention_prefill_workspace), got " +
                                std::to_string(a.workspace ? a.workspace_bytes : 0));
  auto* k_fresh = static_cast<__nv_bfloat16*>(a.workspace);  // [T, num_kv_heads * D], then v's
  __nv_bfloat16* v_fresh = k_fresh + staged / 2 / sizeof(__nv_bfloat16);
  Params p{};
  p.q = a.q;
  p.out = a.out;
  p.k_fresh = k_fresh;
  p.v_fresh = v_fresh;
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
  p.q_tiles = ceil_div(a.T * p.G, kRows);
  p.sliding = a.sliding;
  p.scale = a.scale;
  p.softcap = a.softcap;
  const bool bf16 = a.kv_type == KvType::bf16;

  // The call's own rows in bf16, once: the tile loads then copy them as they are.
  const long long chunks = (long long)a.T * a.num_kv_heads * a.head_dim / 8;
  constexpr int kStageThreads = 256;
  const unsigned stage_blocks = unsigned((chunks + kStageThreads - 1) / kStageThreads);
  if (bf16) stage_fresh_kernel<KvType::bf16><<<stage_blocks, kStageThreads, 0, stream>>>(a.k_new, a.v_new, k_fresh, v_fresh, chunks);
  else stage_fresh_kernel<KvType::f16><<<stage_blocks, kStageThreads, 0, stream>>>(a.k_new, a.v_new, k_fresh, v_fresh, chunks);
  check_launch("attention_prefill: stage_fresh_kernel");

  if (a.head_dim == 256) {
    if (bf16) launch_tiled<256, KvType::bf16, kAsync>(p, stream, "prefill_tiled_kernel<256, bf16>");
    else launch_tiled<256, KvType::f16, kAsync>(p, stream, "prefill_tiled_kernel<256, f16>");
  } else {
    if (bf16) launch_tiled<128, KvType::bf16, kAsync>(p, stream, "prefill_tiled_kernel<128, bf16>");
    else launch_tiled<128, KvType::f16, kAsync>(p, stream, "prefill_tiled_kernel<128, f16>");
  }
}

}  // namespace

void attention_prefill(const AttentionArgs& a, cudaStream_t stream) { run_prefill<true>(a, stream, "attention_prefill"); }

void attention_prefill_sync_loads(const AttentionArgs& a, cudaStream_t stream) {
  run_prefill<false>(a, stream, "attention_prefill_sync_loads");
}

}  // namespace cuda
}  // namespace gemma3
