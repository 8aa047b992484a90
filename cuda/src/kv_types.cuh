// cuda/src/kv_types.cuh -- the cache's element types on the device: bf16 (the default:
// Gemma 3 overflows fp16 activations, transformers #36822) and f16. Loads of 8 values
// (16 bytes) widen to float32; stores round to nearest even.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "attention.hpp"

namespace gemma3 {
namespace cuda {

template <KvType> struct KvTraits;
template <> struct KvTraits<KvType::bf16> {
  using T = __nv_bfloat16;
  __device__ static float to_float(T x) { return __bfloat162float(x); }
  __device__ static T from_float(float x) { return __float2bfloat16_rn(x); }
};
template <> struct KvTraits<KvType::f16> {
  using T = __half;
  __device__ static float to_float(T x) { return __half2float(x); }
  __device__ static T from_float(float x) { return __float2half_rn(x); }
};

// x rounded to the cache type and back (what storing and reloading it gives).
template <KvType K> __device__ __forceinline__ float round_kv(float x) {
  return KvTraits<K>::to_float(KvTraits<K>::from_float(x));
}

// Sequence b's cache rows: its own allocation (own[b], when the call has k_caches /
// v_caches) or b seq_stride elements into the one shared allocation.
template <class Elem, class Shared>
__device__ __forceinline__ Elem* sequence_rows(Shared* shared, void* const* own, long long seq_stride, int b) {
  return own ? static_cast<Elem*>(own[b]) : static_cast<Elem*>(shared) + static_cast<long long>(b) * seq_stride;
}

// 8 consecutive cache values (16-byte aligned) as float32.
template <KvType K> __device__ __forceinline__ void load8(const typename KvTraits<K>::T* p, float out[8]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const typename KvTraits<K>::T* v = reinterpret_cast<const typename KvTraits<K>::T*>(&raw);
#pragma unroll
  for (int i = 0; i < 8; ++i) out[i] = KvTraits<K>::to_float(v[i]);
}

}  // namespace cuda
}  // namespace gemma3
