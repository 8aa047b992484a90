// cuda/src/decode_versions.hpp -- the versions of decode attention the kernel lab
// (lab/decode_lab.cpp) and the tests hold side by side, and the host rules they share.
//
//   version 1    attention_decode_v1: one CTA per (sequence, query head), its 4 warps
//                walking the keys k0..p with an online softmax each, merged at the end.
//                No split, no GQA packing: the plain baseline, and the kernel for any
//                head_dim other than 128 and 256 (1 .. 256) and any GQA group.
//   split-K      attention_decode (attention.hpp): one CTA per (split, kv head,
//                sequence) serving the G query heads of the kv head, partials merged by a
//                combine kernel. What the backend runs.
//   version 3    attention_decode_fused: split-K whose last CTA per (sequence, kv head)
//                merges the partials itself (a counter in device memory), one launch
//                instead of two; the same bits as split-K. In the lab until a GPU run
//                shows it pays.
//
// Both compute, for the query of sequence b at position p and each query head h,
//   out_h = softmax_j(score(q_h . k_j)) v_j  over keys j in [first_key(p), p]
// with plan.hpp's score_log2 / merge_weight, and take the same AttentionArgs.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include <cuda_runtime_api.h>

#include "attention.hpp"

namespace gemma3 {
namespace cuda {

// Version 1 (see above). Same arguments and checks as attention_decode, and any head_dim
// from 1 to 256 and any GQA group; no workspace.
void attention_decode_v1(const AttentionArgs& a, cudaStream_t stream);

// Version 3 (see above). Same arguments and checks as attention_decode, plus counters:
// device unsigned [batch * num_kv_heads], zero on entry; the kernel leaves them zero, so
// one zeroed allocation serves call after call on a stream (and graph replays).
void attention_decode_fused(const AttentionArgs& a, int num_sms, unsigned* counters, cudaStream_t stream);

// Throws std::invalid_argument, naming `who` and the field, unless `a` is a decode call
// the kernels support: T == 1, head_dim 128 or 256, num_heads = G num_kv_heads with G in
// {1, 2, 4, 8} (version 1, any_shape: head_dim 1 .. 256, any G, no alignment asked),
// every position's keys still in the cache (global: max position < capacity; sliding:
// min(window, max position + 1) <= capacity), 16-byte aligned caches.
void check_decode_args(const AttentionArgs& a, const char* who, bool any_shape = false);

// How many splits attention_decode cuts each sequence's keys into on a device with
// num_sms SMs (plan.hpp decode_splits over tiles of decode_key_tile() keys).
int attention_decode_splits(const AttentionArgs& a, int num_sms);

// Calls fail (which throws) unless `a` names its caches one way: k_cache and v_cache
// (one allocation, seq_stride apart), or k_caches and v_caches (each sequence's own)
// with k_cache, v_cache null and seq_stride 0.
void check_cache_pointers(const AttentionArgs& a, const std::function<void(const std::string&)>& fail);
int decode_key_tile();

// One launch of a kernel that reads one float and writes it: the floor under any
// kernel's time (the lab replays it in a CUDA graph).
void decode_latency_probe(const float* x, float* y, cudaStream_t stream);

}  // namespace cuda
}  // namespace gemma3
