// cuda/src/attention.hpp -- the attention kernels' launchers (internal to gemma3::cuda).
// Plain C++: the backend (backend.cpp) and the tests call these without nvcc.
//
// Layouts, all row-major, one token per row:
//   q, out      [batch * T, num_heads * head_dim]      float32 activations
//   k_new/v_new [T, num_kv_heads * head_dim]           float32: this call's keys/values (prefill)
//   k/v cache   [batch][capacity][num_kv_heads * head_dim]  bf16 or f16, seq_stride elements
//               between sequences; key position p in slot cache_slot(ring, capacity, p).
//               Or, in decode and kv_append, one allocation per sequence: k_caches[b] /
//               v_caches[b] (device arrays of pointers) hold sequence b's rows
//               [capacity_b][num_kv_heads * head_dim]. `capacity` is then the largest
//               capacity_b; a sequence whose ring is shorter (sliding: capacity_b =
//               min(W, its max_cache_len) < W) never wraps, so p mod capacity = p for
//               every position it holds, as its own p mod capacity_b; the caller checks
//               that every position lies inside its own sequence's cache.
//
// A call's keys: positions < pos0 come from the cache, positions >= pos0 from k_new /
// v_new (rounded to the cache type as they are read, so the result is what reading them
// back from the cache would give). kv_append then stores the rows the cache keeps.
// Decode (T = 1) appends first and then reads the cache alone.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

namespace gemma3 {
namespace cuda {

enum class KvType { bf16, f16 };

struct AttentionArgs {
  // ---- shape
  int num_heads = 0, num_kv_heads = 0, head_dim = 0;  // head_dim 128 or 256
  float scale = 0.f;    // query_pre_attn_scalar^-0.5
  float softcap = 0.f;  // attn_logit_softcapping, 0: none
  bool sliding = false;
  int window = 0;  // W, keys (p - W, p] on sliding layers
  KvType kv_type = KvType::bf16;

  // ---- queries: `batch` sequences of T queries each
  int batch = 1, T = 1;
  const float* q = nullptr;  // [batch * T, num_heads * head_dim]
  float* out = nullptr;      // [batch * T, num_heads * head_dim]
  // decode only (null in prefill): out also rounded to bf16 (gemma3::f32_to_bf16's bits)
  // [batch, num_heads * head_dim], the o_proj GEMM's input, so it needs no conversion
  std::uint16_t* out_bf16 = nullptr;

  // ---- positions
  int pos0 = 0;                  // position of query 0 (every sequence, when positions is null)
  const int* positions = nullptr;  // decode: device [batch], position of each sequence's query; or null
  int max_position = 0;            // decode: >= every position (plans the split count on the host)

  // ---- this call's keys and values (prefill; null in decode, which appends first)
  const float* k_new = nullptr;  // [T, num_kv_heads * head_dim]
  const float* v_new = nullptr;

  // ---- the layer's cache
  void* k_cache = nullptr;
  void* v_cache = nullptr;
  long long seq_stride = 0;  // elements between sequences' caches (capacity * num_kv_heads * head_dim)
  int capacity = 0;          // rows; the ring's C on a sliding layer (ring == sliding)
  // ---- or each sequence's own cache (decode and kv_append only; then k_cache, v_cache
  // and seq_stride are unused and must be null / 0): device arrays [batch] of 16-byte
  // aligned row pointers, one cache allocation per sequence
  void* const* k_caches = nullptr;
  void* const* v_caches = nullptr;

  // ---- image groups (prefill only; null for text)
  const int* group = nullptr;     // device [T]: image group of query t, -1 for text
  const int* last_key = nullptr;  // device [T]: last key position query t may see (>= its own)
  int last_key_max = -1;          // host: max of last_key, or pos0 + T - 1 without images

  // ---- scratch: decode's splits (attention_decode_workspace bytes) or prefill's staged
  // keys (attention_prefill_workspace bytes); device memory, 16-byte aligned
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
};

// Bytes of scratch attention_decode needs for these args on a device with num_sms SMs.
std::size_t attention_decode_workspace(const AttentionArgs& a, int num_sms);

// One query per sequence (T == 1), every sequence's K/V already in the cache (kv_append
// first). Split-K over the keys (plan.hpp decode_splits), then a combine kernel.
// Throws std::invalid_argument on unsupported shapes, std::runtime_error on CUDA errors.
void attention_decode(const AttentionArgs& a, int num_sms, cudaStream_t stream);

// T queries of one sequence (batch == 1): a tiled flash-attention kernel over the key
// tiles plan.hpp says each Q tile needs (window-limited on sliding layers). First stages
// k_new / v_new in bf16 (rounded to the cache type first) in the workspace, which must
// hold attention_prefill_workspace(a) bytes.
void attention_prefill(const AttentionArgs& a, cudaStream_t stream);
std::size_t attention_prefill_workspace(const AttentionArgs& a);

// Stores rows t of k_rows / v_rows ([batch * T, num_kv_heads * head_dim] float32) at
// position (positions ? positions[b] : pos0) + t of sequence b, rounded to the cache
// type; a ring keeps only the last `capacity` rows of the call (plan.hpp rows_kept).
void kv_append(const AttentionArgs& a, const float* k_rows, const float* v_rows, cudaStream_t stream);

// QK-norm then RoPE on this call's q [T, num_heads * head_dim] and k [T, num_kv_heads *
// head_dim], in place, in one launch (qk_norm_rope.cu): each head slice becomes
// x / sqrt(mean(x^2) + eps) * (1 + w) (q_norm / k_norm), then is rotated at position
// pos0 + t with inv_freq [head_dim / 2] -- ops.hpp's rms_norm_heads and rope, bit for bit.
// With v_append (decode: T == 1) the k row so made and v_append's row [num_kv_heads *
// head_dim] are also stored at pos0's cache slot, as kv_append does. One sequence
// (batch == 1); head_dim in plan.hpp's fused_qk_head_dim; q, k and the norm weights
// 16-byte aligned. Reads a's shape, T, pos0 and (for the append) cache fields.
struct QkNormRope {
  float* q = nullptr;
  float* k = nullptr;
  const float* q_norm = nullptr;  // [head_dim], device
  float q_eps = 0.f;
  const float* k_norm = nullptr;
  float k_eps = 0.f;
  const float* inv_freq = nullptr;  // [head_dim / 2], device
};
void qk_norm_rope(const AttentionArgs& a, const QkNormRope& x, const float* v_append, cudaStream_t stream);

}  // namespace cuda
}  // namespace gemma3
