// cuda/src/ops.cu -- the small steps of the model on the GPU (the launchers of ops.hpp).
//
//   embed           out[t, :] = float(table[ids[t], :]) * scale         a block per token
//   set_rows        h[rows[i], :] = values[i, :]                        a block per row
//   rms_norm        out[r, :] = x[r, :] / sqrt(sum(x[r, :]^2) / n + eps) * (1 + w)
//                   a block per row: the sum of squares is a block reduction, float32
//   rms_norm_heads  the same per head_dim slice: a warp per slice
//   rope            a thread per (row, pair i): angle = float(pos0 + row) * inv_freq[i]
//                   (positions[row] for a decode batch's rows; the float32 product
//                   of rope.hpp), its cos and sin once (float64
//                   sincospi, heads.cuh says why), then every head:
//                     x[i]     <- x[i] cos - x[i + D/2] sin
//                     x[i+D/2] <- x[i + D/2] cos + x[i] sin
//                   rms_norm_heads and rope round as heads.cuh spells them, the same
//                   operations the fused qk_norm_rope.cu runs.
//   residual_rms_norm   h[r, :] += rms_norm(x[r, :]; wx), then (optionally)
//                   out[r, :] = rms_norm(h[r, :]; w): a block per row; the steps
//                   between two GEMMs of a decoder block (post-norm, residual add, the
//                   next pre-norm) as one kernel, each value rounded exactly as
//                   rms_norm_kernel and add_kernel round it (sum_squares4 and
//                   norm_scale4, explicitly rounded), so it gives their bits
//   add, gelu_tanh_mul, to_bf16   elementwise, four values per thread (16-byte loads)
//                   where the pointers and the length allow it, one at a time otherwise
//   rms_norm and gelu_tanh_mul may also write their output rounded to bf16 (to_bf16's
//                   bits), the input of the GEMM that usually follows them
//   argmax          two passes: blocks of a grid-stride loop keep their best (value,
//                   index), then one block merges them. The order: the larger value;
//                   on equal values the smaller index; a NaN is never taken.
#include "ops.hpp"

#include "heads.cuh"

#include <cstdint>
#include <stdexcept>
#include <string>

#include <cuda_runtime.h>

#if defined(__USE_FAST_MATH__)
#error "ops.cu needs the accurate single-precision functions (tanhf): do not build it with --use_fast_math"
#endif

namespace gemma3 {
namespace cuda {

namespace {

constexpr int kThreads = 256;     // threads per block of every kernel here
constexpr int kArgmaxBlocks = 256;  // most blocks of argmax's first pass

void check_launch(const char* kernel) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("gemma3::cuda::") + kernel + ": kernel launch failed: " +
                             cudaGetErrorString(e));
}

bool aligned(const void* p, std::size_t bytes) { return reinterpret_cast<std::uintptr_t>(p) % bytes == 0; }

// Blocks for `items` work items of kThreads each, capped (the kernels loop over the rest).
unsigned grid_for(std::size_t items) {
  const std::size_t blocks = (items + kThreads - 1) / kThreads;
  return unsigned(blocks < 65536 ? (blocks > 0 ? blocks : 1) : 65536);
}

// ---- device helpers ------------------------------------------------------------------

// The sum of v over the block (kThreads threads), returned to every thread. Each kSlot
// has its own shared array, called at most once per kernel (the array is not reused
// after the barrier): a kernel with two sums uses slots 0 and 1.
template <int kSlot = 0>
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float partial[kThreads / 32];
  v = warp_sum(v);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
  __syncthreads();
  float total = 0.f;
#pragma unroll
  for (int i = 0; i < kThreads / 32; ++i) total += partial[i];  // the same order in every thread
  return total;
}

// Four values as bf16 (bf16_bits) at p, 8-byte aligned.
__device__ __forceinline__ void store_bf16x4(std::uint16_t* p, float4 v) {
  *reinterpret_cast<uint2*>(p) =
      make_uint2(bf16_bits(v.x) | (bf16_bits(v.y) << 16), bf16_bits(v.z) | (bf16_bits(v.w) << 16));
}

// gemma3::gelu_tanh (kernels/gelu.hpp): the same formula, float32, accurate tanhf.
__device__ __forceinline__ float gelu_tanh(float u) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
  return 0.5f * u * (1.0f + tanhf(k * (u + 0.044715f * u * u * u)));
}

// ---- kernels -------------------------------------------------------------------------

// out [T, H] = table [vocab, H] (bf16 bits) rows ids, times scale. kVec: H % 8 == 0 and
// the table 16-byte aligned, so a thread moves 8 values (one 16-byte load).
template <bool kVec>
__global__ __launch_bounds__(kThreads) void embed_kernel(const std::uint16_t* table, int vocab, int H,
                                                         const int* ids, float scale, float* out) {
  const int t = blockIdx.x;
  const int id = ids[t];
  float* o = out + std::size_t(t) * std::size_t(H);
  if (id < 0 || id >= vocab) {
    for (int i = threadIdx.x; i < H; i += kThreads) o[i] = __int_as_float(0x7fc00000);  // NaN
    return;
  }
  const std::uint16_t* row = table + std::size_t(id) * std::size_t(H);
  if (kVec) {
    for (int i = threadIdx.x * 8; i < H; i += kThreads * 8) {
      const uint4 raw = *reinterpret_cast<const uint4*>(row + i);  // values i .. i + 7, low half first
      const float4 a = make_float4(__uint_as_float(raw.x << 16) * scale, __uint_as_float(raw.x & 0xffff0000u) * scale,
                                   __uint_as_float(raw.y << 16) * scale, __uint_as_float(raw.y & 0xffff0000u) * scale);
      const float4 b = make_float4(__uint_as_float(raw.z << 16) * scale, __uint_as_float(raw.z & 0xffff0000u) * scale,
                                   __uint_as_float(raw.w << 16) * scale, __uint_as_float(raw.w & 0xffff0000u) * scale);
      *reinterpret_cast<float4*>(o + i) = a;
      *reinterpret_cast<float4*>(o + i + 4) = b;
    }
  } else {
    for (int i = threadIdx.x; i < H; i += kThreads) o[i] = __uint_as_float(std::uint32_t(row[i]) << 16) * scale;
  }
}

// h[rows[i], :] = values[i, :]
__global__ __launch_bounds__(kThreads) void set_rows_kernel(float* h, int cols, const int* rows, const float* values) {
  const int i = blockIdx.x;
  float* dst = h + std::size_t(rows[i]) * std::size_t(cols);
  const float* src = values + std::size_t(i) * std::size_t(cols);
  for (int c = threadIdx.x; c < cols; c += kThreads) dst[c] = src[c];
}

// This thread's part of the sum of squares of row xr [n]: with kVec its float4 groups
// i = 4 threadIdx.x, + 4 kThreads, ... (sum_squares4 each), else its values i =
// threadIdx.x, + kThreads, ...; in that order, explicitly rounded. Every kernel that
// normalises a row sums it here, so they all round alike.
template <bool kVec>
__device__ __forceinline__ float row_sum_squares(const float* xr, int n) {
  float ss = 0.f;
  if (kVec) {
    for (int i = threadIdx.x * 4; i < n; i += kThreads * 4)
      ss = __fadd_rn(ss, sum_squares4(*reinterpret_cast<const float4*>(xr + i)));
  } else {
    for (int i = threadIdx.x; i < n; i += kThreads) ss = __fadd_rn(ss, __fmul_rn(xr[i], xr[i]));
  }
  return ss;
}

// 1 / sqrt(mean of squares + eps) of a row whose squares this thread summed to ss.
template <int kSlot = 0>
__device__ __forceinline__ float row_inv_rms(float ss, int n, float eps) {
  return 1.0f / sqrtf(block_sum<kSlot>(ss) / float(n) + eps);
}

// x / rms * (1 + w) for one value (norm_scale4's rounding).
__device__ __forceinline__ float norm_scale1(float v, float inv_rms, float w) {
  return __fmul_rn(__fmul_rn(v, inv_rms), __fadd_rn(1.0f, w));
}

// out [rows, n] = RMSNorm(x) * (1 + w), a block per row; out may be x (each thread
// rewrites only the values it read, after the block's barrier). kVec: n % 4 == 0 and
// x, out, w 16-byte aligned.
template <bool kVec>
__global__ __launch_bounds__(kThreads) void rms_norm_kernel(const float* x, const float* w, float eps, float* out,
                                                            std::uint16_t* out16, int n) {
  const float* xr = x + std::size_t(blockIdx.x) * std::size_t(n);
  float* orow = out + std::size_t(blockIdx.x) * std::size_t(n);
  std::uint16_t* o16 = out16 ? out16 + std::size_t(blockIdx.x) * std::size_t(n) : nullptr;
  const float inv_rms = row_inv_rms(row_sum_squares<kVec>(xr, n), n, eps);
  if (kVec) {
    for (int i = threadIdx.x * 4; i < n; i += kThreads * 4) {
      const float4 r = norm_scale4(*reinterpret_cast<const float4*>(xr + i), inv_rms,
                                   *reinterpret_cast<const float4*>(w + i));
      *reinterpret_cast<float4*>(orow + i) = r;
      if (o16) store_bf16x4(o16 + i, r);
    }
  } else {
    for (int i = threadIdx.x; i < n; i += kThreads) {
      const float r = norm_scale1(xr[i], inv_rms, w[i]);
      orow[i] = r;
      if (o16) o16[i] = std::uint16_t(bf16_bits(r));
    }
  }
}

// Row r of h [rows, n] += RMSNorm(x row r) * (1 + wx) (x is only read); with kNorm, then
// out row r = RMSNorm(h row r) * (1 + w) (+ out16, its bf16), out may be h. A block per
// row; every value rounds as rms_norm_kernel<true> then add_kernel<true> then
// rms_norm_kernel<true> would round it (the same threads hold the same float4 groups),
// so the result is their bits. n % 4 == 0; x, wx, h, w, out 16-byte and out16 8-byte
// aligned (the launcher checks).
template <bool kNorm>
__global__ __launch_bounds__(kThreads) void residual_rms_norm_kernel(const float* x, const float* wx, float eps_x,
                                                                     float* h, const float* w, float eps,
                                                                     float* out, std::uint16_t* out16, int n) {
  const std::size_t row = std::size_t(blockIdx.x) * std::size_t(n);
  const float* xr = x + row;
  float* hr = h + row;
  const float inv_x = row_inv_rms<0>(row_sum_squares<true>(xr, n), n, eps_x);
  float ss = 0.f;  // of the new h, summed as row_sum_squares<true> sums it
  for (int i = threadIdx.x * 4; i < n; i += kThreads * 4) {
    const float4 y = norm_scale4(*reinterpret_cast<const float4*>(xr + i), inv_x,
                                 *reinterpret_cast<const float4*>(wx + i));
    float4 v = *reinterpret_cast<const float4*>(hr + i);
    v = make_float4(__fadd_rn(v.x, y.x), __fadd_rn(v.y, y.y), __fadd_rn(v.z, y.z), __fadd_rn(v.w, y.w));
    *reinterpret_cast<float4*>(hr + i) = v;
    if (kNorm) ss = __fadd_rn(ss, sum_squares4(v));
  }
  if (!kNorm) return;
  const float inv_rms = row_inv_rms<1>(ss, n, eps);
  float* orow = out + row;
  std::uint16_t* o16 = out16 ? out16 + row : nullptr;
  for (int i = threadIdx.x * 4; i < n; i += kThreads * 4) {  // the values this thread wrote above
    const float4 r = norm_scale4(*reinterpret_cast<const float4*>(hr + i), inv_rms,
                                 *reinterpret_cast<const float4*>(w + i));
    *reinterpret_cast<float4*>(orow + i) = r;
    if (o16) store_bf16x4(o16 + i, r);
  }
}

// x [slices, head_dim] normalised slice by slice in place, a warp per slice (the whole
// warp leaves together when its slice is past the end). kVec: head_dim % 4 == 0, x and
// w 16-byte aligned.
template <bool kVec>
__global__ __launch_bounds__(kThreads) void rms_norm_heads_kernel(float* x, long long slices, int head_dim,
                                                                  const float* w, float eps) {
  const long long s = (long long)blockIdx.x * (kThreads / 32) + (threadIdx.x >> 5);
  if (s >= slices) return;
  const int lane = threadIdx.x & 31;
  float* p = x + s * head_dim;
  float ss = 0.f;
  if (kVec) {  // lane l: values 4 l + 128 c (plan.hpp qk_lane_value, which the fused kernel follows)
    for (int i = lane * 4; i < head_dim; i += 32 * 4)
      ss = __fadd_rn(ss, sum_squares4(*reinterpret_cast<const float4*>(p + i)));
  } else {
    for (int i = lane; i < head_dim; i += 32) ss += p[i] * p[i];
  }
  const float inv_rms = head_inv_rms(ss, head_dim, eps);
  if (kVec) {
    for (int i = lane * 4; i < head_dim; i += 32 * 4)
      *reinterpret_cast<float4*>(p + i) = norm_scale4(*reinterpret_cast<const float4*>(p + i), inv_rms,
                                                      *reinterpret_cast<const float4*>(w + i));
  } else {
    for (int i = lane; i < head_dim; i += 32) p[i] = (p[i] * inv_rms) * (1.0f + w[i]);
  }
}

// x [rows, n_heads * head_dim], RoPE in place: a thread per (row, i < head_dim / 2),
// looping over the heads with one angle.
__global__ __launch_bounds__(kThreads) void rope_kernel(float* x, int rows, int n_heads, int head_dim,
                                                        const float* inv_freq, int pos0, const int* positions) {
  const int half = head_dim / 2;
  const long long total = (long long)rows * half;
  for (long long idx = (long long)blockIdx.x * kThreads + threadIdx.x; idx < total;
       idx += (long long)gridDim.x * kThreads) {
    const int i = int(idx % half);
    const int row = int(idx / half);
    float c, s;
    rope_cos_sin(positions ? positions[row] : pos0 + row, inv_freq[i], &c, &s);
    float* v = x + std::size_t(row) * std::size_t(n_heads) * std::size_t(head_dim) + i;
    for (int h = 0; h < n_heads; ++h, v += head_dim) {
      const float a = v[0], b = v[half];
      v[0] = rope_first(a, b, c, s);
      v[half] = rope_second(a, b, c, s);
    }
  }
}

// h [n] += x [n]; kVec: n % 4 == 0 and both 16-byte aligned.
template <bool kVec>
__global__ __launch_bounds__(kThreads) void add_kernel(float* h, const float* x, std::size_t n) {
  const std::size_t stride = std::size_t(gridDim.x) * kThreads;
  if (kVec) {
    for (std::size_t j = std::size_t(blockIdx.x) * kThreads + threadIdx.x; j < n / 4; j += stride) {
      float4 a = reinterpret_cast<float4*>(h)[j];
      const float4 b = reinterpret_cast<const float4*>(x)[j];
      a = make_float4(__fadd_rn(a.x, b.x), __fadd_rn(a.y, b.y), __fadd_rn(a.z, b.z), __fadd_rn(a.w, b.w));
      reinterpret_cast<float4*>(h)[j] = a;
    }
  } else {
    for (std::size_t j = std::size_t(blockIdx.x) * kThreads + threadIdx.x; j < n; j += stride)
      h[j] = __fadd_rn(h[j], x[j]);
  }
}

// gate [n] = gelu_tanh(gate) * up; kVec as add_kernel.
template <bool kVec>
__global__ __launch_bounds__(kThreads) void gelu_tanh_mul_kernel(float* gate, const float* up, std::uint16_t* gate16,
                                                                 std::size_t n) {
  const std::size_t stride = std::size_t(gridDim.x) * kThreads;
  if (kVec) {
    for (std::size_t j = std::size_t(blockIdx.x) * kThreads + threadIdx.x; j < n / 4; j += stride) {
      float4 g = reinterpret_cast<float4*>(gate)[j];
      const float4 u = reinterpret_cast<const float4*>(up)[j];
      g.x = gelu_tanh(g.x) * u.x; g.y = gelu_tanh(g.y) * u.y; g.z = gelu_tanh(g.z) * u.z; g.w = gelu_tanh(g.w) * u.w;
      reinterpret_cast<float4*>(gate)[j] = g;
      if (gate16) store_bf16x4(gate16 + 4 * j, g);
    }
  } else {
    for (std::size_t j = std::size_t(blockIdx.x) * kThreads + threadIdx.x; j < n; j += stride) {
      gate[j] = gelu_tanh(gate[j]) * up[j];
      if (gate16) gate16[j] = std::uint16_t(bf16_bits(gate[j]));
    }
  }
}

// y [n] = bf16 bits of x [n]; kVec: n % 4 == 0, x 16-byte and y 8-byte aligned (four
// values in, one 8-byte store out).
template <bool kVec>
__global__ __launch_bounds__(kThreads) void to_bf16_kernel(const float* x, std::uint16_t* y, std::size_t n) {
  const std::size_t stride = std::size_t(gridDim.x) * kThreads;
  if (kVec) {
    for (std::size_t j = std::size_t(blockIdx.x) * kThreads + threadIdx.x; j < n / 4; j += stride) {
      const float4 v = reinterpret_cast<const float4*>(x)[j];
      reinterpret_cast<uint2*>(y)[j] =
          make_uint2(bf16_bits(v.x) | (bf16_bits(v.y) << 16), bf16_bits(v.z) | (bf16_bits(v.w) << 16));
    }
  } else {
    for (std::size_t j = std::size_t(blockIdx.x) * kThreads + threadIdx.x; j < n; j += stride)
      y[j] = std::uint16_t(bf16_bits(x[j]));
  }
}

// ---- argmax ----

// (bv, bi) := the better of itself and (v, i). Index -1: no value (every one seen was
// NaN). Better: present; then the larger value; then the smaller index.
__device__ __forceinline__ void take_better(float& bv, int& bi, float v, int i) {
  if (i < 0) return;
  if (bi < 0 || v > bv || (v == bv && i < bi)) {
    bv = v;
    bi = i;
  }
}

// The best (value, index) of the block's threads, in thread 0.
__device__ __forceinline__ void block_best(float& bv, int& bi) {
  __shared__ float vals[kThreads / 32];
  __shared__ int idxs[kThreads / 32];
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float ov = __shfl_down_sync(0xffffffffu, bv, offset);
    const int oi = __shfl_down_sync(0xffffffffu, bi, offset);
    take_better(bv, bi, ov, oi);
  }
  if ((threadIdx.x & 31) == 0) {
    vals[threadIdx.x >> 5] = bv;
    idxs[threadIdx.x >> 5] = bi;
  }
  __syncthreads();
  if (threadIdx.x == 0)
    for (int w = 1; w < kThreads / 32; ++w) take_better(bv, bi, vals[w], idxs[w]);
}

// Pass 1, grid (blocks, rows): block b's best of row r of x [rows, n] into
// part_val[r * gridDim.x + b], part_idx[...].
__global__ __launch_bounds__(kThreads) void argmax_blocks_kernel(const float* x, int n, float* part_val,
                                                                 int* part_idx) {
  x += static_cast<long long>(blockIdx.y) * n;
  part_val += static_cast<long long>(blockIdx.y) * gridDim.x;
  part_idx += static_cast<long long>(blockIdx.y) * gridDim.x;
  float bv = 0.f;
  int bi = -1;
  for (int i = blockIdx.x * kThreads + threadIdx.x; i < n; i += gridDim.x * kThreads) {
    const float v = x[i];
    if (!isnan(v) && (bi < 0 || v > bv)) {  // i grows: on ties the first stays
      bv = v;
      bi = i;
    }
  }
  block_best(bv, bi);
  if (threadIdx.x == 0) {
    part_val[blockIdx.x] = bv;
    part_idx[blockIdx.x] = bi;
  }
}

// Pass 2, one block per row r: merges the row's `parts` partial bests; out[r] = the
// index, 0 if none.
__global__ __launch_bounds__(kThreads) void argmax_merge_kernel(const float* part_val, const int* part_idx, int parts,
                                                                int* out) {
  part_val += static_cast<long long>(blockIdx.x) * parts;
  part_idx += static_cast<long long>(blockIdx.x) * parts;
  out += blockIdx.x;
  float bv = 0.f;
  int bi = -1;
  for (int j = threadIdx.x; j < parts; j += kThreads) take_better(bv, bi, part_val[j], part_idx[j]);
  block_best(bv, bi);
  if (threadIdx.x == 0) *out = bi < 0 ? 0 : bi;
}

}  // namespace

// ---- launchers -------------------------------------------------------------------------

void embed(const std::uint16_t* table, int vocab, int H, const int* ids, int T, float scale, float* out,
           cudaStream_t stream) {
  if (T <= 0 || H <= 0) return;
  if (H % 8 == 0 && aligned(table, 16) && aligned(out, 16))
    embed_kernel<true><<<T, kThreads, 0, stream>>>(table, vocab, H, ids, scale, out);
  else
    embed_kernel<false><<<T, kThreads, 0, stream>>>(table, vocab, H, ids, scale, out);
  check_launch("embed");
}

void set_rows(float* h, int cols, const int* rows, int n, const float* values, cudaStream_t stream) {
  if (n <= 0 || cols <= 0) return;
  set_rows_kernel<<<n, kThreads, 0, stream>>>(h, cols, rows, values);
  check_launch("set_rows");
}

void rms_norm(const float* x, const float* w, float eps, float* out, int rows, int n, cudaStream_t stream,
              std::uint16_t* out_bf16) {
  if (rows <= 0 || n <= 0) return;
  if (n % 4 == 0 && aligned(x, 16) && aligned(w, 16) && aligned(out, 16) && aligned(out_bf16, 8))
    rms_norm_kernel<true><<<rows, kThreads, 0, stream>>>(x, w, eps, out, out_bf16, n);
  else
    rms_norm_kernel<false><<<rows, kThreads, 0, stream>>>(x, w, eps, out, out_bf16, n);
  check_launch("rms_norm");
}

void rms_norm_heads(float* x, int rows, int n_heads, int head_dim, const float* w, float eps, cudaStream_t stream) {
  const long long slices = (long long)rows * n_heads;
  if (slices <= 0 || head_dim <= 0) return;
  const long long blocks = (slices + kThreads / 32 - 1) / (kThreads / 32);
  if (blocks > 0x7fffffffLL) throw std::invalid_argument("gemma3::cuda::rms_norm_heads: too many rows");
  if (head_dim % 4 == 0 && aligned(x, 16) && aligned(w, 16))
    rms_norm_heads_kernel<true><<<unsigned(blocks), kThreads, 0, stream>>>(x, slices, head_dim, w, eps);
  else
    rms_norm_heads_kernel<false><<<unsigned(blocks), kThreads, 0, stream>>>(x, slices, head_dim, w, eps);
  check_launch("rms_norm_heads");
}

void rope(float* x, int rows, int n_heads, int head_dim, const float* inv_freq, int pos0, cudaStream_t stream,
          const int* positions) {
  if (head_dim % 2 != 0) throw std::invalid_argument("gemma3::cuda::rope: head_dim must be even");
  if (rows <= 0 || n_heads <= 0 || head_dim <= 0) return;
  rope_kernel<<<grid_for(std::size_t(rows) * std::size_t(head_dim / 2)), kThreads, 0, stream>>>(
      x, rows, n_heads, head_dim, inv_freq, pos0, positions);
  check_launch("rope");
}

bool residual_rms_norm_fits(const float* x, const float* wx, float* h, const float* w, float* out,
                            const std::uint16_t* out_bf16, int n) {
  return n > 0 && n % 4 == 0 && aligned(x, 16) && aligned(wx, 16) && aligned(h, 16) && aligned(w, 16) &&
         aligned(out, 16) && aligned(out_bf16, 8);
}

void residual_rms_norm(const float* x, const float* wx, float eps_x, float* h, int rows, int n, cudaStream_t stream,
                       const float* w, float eps, float* out, std::uint16_t* out_bf16) {
  if (rows <= 0 || n <= 0) return;
  if (!residual_rms_norm_fits(x, wx, h, w, out, out_bf16, n) || (w != nullptr) != (out != nullptr))
    throw std::invalid_argument("gemma3::cuda::residual_rms_norm: rows of " + std::to_string(n) +
                                " values, or pointers, the kernel does not take (see residual_rms_norm_fits)");
  if (out)
    residual_rms_norm_kernel<true><<<rows, kThreads, 0, stream>>>(x, wx, eps_x, h, w, eps, out, out_bf16, n);
  else
    residual_rms_norm_kernel<false><<<rows, kThreads, 0, stream>>>(x, wx, eps_x, h, w, eps, out, out_bf16, n);
  check_launch("residual_rms_norm");
}

void add(float* h, const float* x, std::size_t n, cudaStream_t stream) {
  if (n == 0) return;
  if (n % 4 == 0 && aligned(h, 16) && aligned(x, 16))
    add_kernel<true><<<grid_for(n / 4), kThreads, 0, stream>>>(h, x, n);
  else
    add_kernel<false><<<grid_for(n), kThreads, 0, stream>>>(h, x, n);
  check_launch("add");
}

void gelu_tanh_mul(float* gate, const float* up, std::size_t n, cudaStream_t stream, std::uint16_t* gate_bf16) {
  if (n == 0) return;
  if (n % 4 == 0 && aligned(gate, 16) && aligned(up, 16) && aligned(gate_bf16, 8))
    gelu_tanh_mul_kernel<true><<<grid_for(n / 4), kThreads, 0, stream>>>(gate, up, gate_bf16, n);
  else
    gelu_tanh_mul_kernel<false><<<grid_for(n), kThreads, 0, stream>>>(gate, up, gate_bf16, n);
  check_launch("gelu_tanh_mul");
}

void to_bf16(const float* x, std::uint16_t* y, std::size_t n, cudaStream_t stream) {
  if (n == 0) return;
  if (n % 4 == 0 && aligned(x, 16) && aligned(y, 8))
    to_bf16_kernel<true><<<grid_for(n / 4), kThreads, 0, stream>>>(x, y, n);
  else
    to_bf16_kernel<false><<<grid_for(n), kThreads, 0, stream>>>(x, y, n);
  check_launch("to_bf16");
}

std::size_t argmax_workspace_bytes(int rows) {
  return std::size_t(rows < 1 ? 1 : rows) * std::size_t(kArgmaxBlocks) * (sizeof(float) + sizeof(int));
}

void argmax(const float* x, int n, int* out, void* workspace, cudaStream_t stream) {
  argmax_rows(x, 1, n, out, workspace, stream);
}

void argmax_rows(const float* x, int rows, int n, int* out, void* workspace, cudaStream_t stream) {
  if (n <= 0) throw std::invalid_argument("gemma3::cuda::argmax: n must be >= 1");
  if (rows <= 0 || rows > 65535) throw std::invalid_argument("gemma3::cuda::argmax: rows must be in [1, 65535]");
  if (!workspace) throw std::invalid_argument("gemma3::cuda::argmax: no workspace");
  const int per_block = kThreads * 4;
  const int blocks = (n + per_block - 1) / per_block < kArgmaxBlocks ? (n + per_block - 1) / per_block : kArgmaxBlocks;
  float* part_val = static_cast<float*>(workspace);                           // [rows, blocks]
  int* part_idx = reinterpret_cast<int*>(part_val + std::size_t(rows) * kArgmaxBlocks);  // [rows, blocks]
  argmax_blocks_kernel<<<dim3(unsigned(blocks), unsigned(rows)), kThreads, 0, stream>>>(x, n, part_val, part_idx);
  check_launch("argmax (blocks)");
  argmax_merge_kernel<<<unsigned(rows), kThreads, 0, stream>>>(part_val, part_idx, blocks, out);
  check_launch("argmax (merge)");
}

}  // namespace cuda
}  // namespace gemma3
