// cuda/src/prefill_versions.hpp -- the versions of prefill attention the kernel lab
// (lab/prefill_lab.cpp) and the tests hold side by side, and the host rules they share.
//
//   version 1    attention_prefill_v1: one warp per (query, query head) on CUDA cores,
//                an online softmax over every key the mask lets it see. The plain
//                baseline, float32 throughout.
//   tiled        attention_prefill (attention.hpp): flash attention on tensor cores, a
//                CTA per (kv head, tile of 64 packed GQA rows), visiting only the key
//                tiles plan.hpp's key_tiles_needed names, its tile loads (cp.async)
//                overlapping the tensor cores. What the backend runs.
//   tiled-sync   attention_prefill_sync_loads: the same kernel with every tile load
//                through registers (no cp.async), the same bits; the lab times it
//                against the tiled kernel, to see what the overlap gives.
//
// Both compute, for query t at position p = pos0 + t and query head h (kv head h / G),
//   out[t, h] = softmax_k(score(q . k_k)) v_k   over the keys k the mask allows
//   (attention_mask.hpp: k >= first_key(p), and k <= p or k in p's image group)
// from the same key sources: positions < pos0 from the cache in place (slot
// plan.hpp cache_slot), positions >= pos0 from k_new / v_new rounded to the cache type.
// Both round q to bfloat16 as they read it. The tiled kernel also rounds K and V to
// bfloat16 for the tensor cores (exact for a bf16 cache; an f16 cache loses its three
// extra mantissa bits) and P = exp2(s - m) to bfloat16 before the PV product.
#pragma once

#include <cuda_runtime_api.h>

#include "attention.hpp"

namespace gemma3 {
namespace cuda {

// Version 1 (see above). Same arguments and checks as attention_prefill, and any
// head_dim from 1 to 256.
void attention_prefill_v1(const AttentionArgs& a, cudaStream_t stream);

// The tiled kernel with synchronous tile loads (see above). Same arguments, checks and
// workspace as attention_prefill.
void attention_prefill_sync_loads(const AttentionArgs& a, cudaStream_t stream);

// Throws std::invalid_argument, naming `who` and the field, unless `a` is a prefill call
// the kernels support: batch == 1, T >= 1, head_dim 128 or 256 (version 1, any_head_dim:
// 1 .. 256, no alignment asked), num_heads a multiple of
// num_kv_heads, q / out / k_new / v_new given (and the caches when pos0 > 0), 16-byte
// aligned, and every key the queries may see still in the cache: global layers
// pos0 + T <= capacity; sliding layers capacity >= window (the ring keeps the whole
// window) or capacity >= pos0 + T (nothing has wrapped).
void check_prefill_args(const AttentionArgs& a, const char* who, bool any_head_dim = false);

// Packed GQA rows per CTA of the tiled kernel, and its key tile for a head_dim.
int prefill_rows_per_tile();
int prefill_key_tile(int head_dim);

}  // namespace cuda
}  // namespace gemma3
