// cuda/src/quantized.cu -- the kernels of quantized.hpp: GGUF block weights read on the
// device as stored.
//
//   gemv_blocks      a CTA of kGemvWarps warps, a warp per row of W; lane l takes parts
//                    l, l + 32, ... of the row (a part: 32 values, blocks.hpp), widens it
//                    into 32 registers, and adds its dot with each of up to kGemvChunk
//                    tokens' x (16-byte loads where x is 16-byte aligned); a butterfly
//                    sum over the warp gives each token's y. More tokens than a chunk:
//                    one launch per chunk of kGemvChunk tokens.
//   gemv_blocks_many the same warps for several weights that read one x (q, k and v;
//                    gate and up), in one launch: CTA c serves the weight whose range
//                    of CTAs holds c, through a switch on its block type, so every row
//                    is gemv_blocks' arithmetic (the same bits)
//   dequantize_bf16  a thread per part: 32 values widened, rounded to bf16 (bf16_bits:
//                    gemma3::f32_to_bf16's bits), stored as four 16-byte writes
//   embed_blocks     a CTA per token, a thread per part of its row
#include "quantized.hpp"

#include "gemma3/cuda/blocks.hpp"
#include "heads.cuh"

#include <stdexcept>
#include <string>

#include <cuda_runtime.h>

namespace gemma3 {
namespace cuda {

namespace {

constexpr int kGemvWarps = 4;      // rows per CTA of gemv_blocks
constexpr int kGemvChunk = 4;      // tokens per launch of gemv_blocks
constexpr int kThreads = 256;      // threads per CTA of the other two

void check_launch(const char* kernel) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("gemma3::cuda::") + kernel + ": kernel launch failed: " +
                             cudaGetErrorString(e));
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// The 32 values of part p of a row of kType blocks.
template <DType kType>
__device__ __forceinline__ void row_part(const std::uint8_t* row, int p, float* v) {
  constexpr int ppb = blocks::parts_per_block(kType);
  blocks::dequantize_part<kType>(row + std::size_t(p / ppb) * blocks::block_bytes(kType), p % ppb, v);
}

// y [T, rows] = x [T, cols] . W^T for T <= kGemvChunk tokens; x rows `cols` apart. The
// rows of CTA `cta`, a warp each.
template <DType kType, bool kVec>
__device__ __forceinline__ void gemv_rows(const std::uint8_t* __restrict__ W, int rows, int cols,
                                          const float* __restrict__ x, int T, float* __restrict__ y, int ldy,
                                          int cta) {
  const int lane = threadIdx.x & 31;
  const int row = cta * kGemvWarps + (threadIdx.x >> 5);
  if (row >= rows) return;  // the whole warp: a warp is one row
  const int parts = cols / blocks::kPart;
  const std::uint8_t* w = W + std::size_t(row) * std::size_t(parts / blocks::parts_per_block(kType)) *
                                  std::size_t(blocks::block_bytes(kType));
  float acc[kGemvChunk];
#pragma unroll
  for (int t = 0; t < kGemvChunk; ++t) acc[t] = 0.f;
  for (int p = lane; p < parts; p += 32) {
    float v[blocks::kPart];
    row_part<kType>(w, p, v);
#pragma unroll
    for (int t = 0; t < kGemvChunk; ++t) {
      if (t >= T) break;
      const float* xp = x + std::size_t(t) * std::size_t(cols) + std::size_t(p) * blocks::kPart;
      float s = 0.f;
      if constexpr (kVec) {
#pragma unroll
        for (int j = 0; j < blocks::kPart / 4; ++j) {
          const float4 a = __ldg(reinterpret_cast<const float4*>(xp) + j);
          s = fmaf(v[4 * j], a.x, s);
          s = fmaf(v[4 * j + 1], a.y, s);
          s = fmaf(v[4 * j + 2], a.z, s);
          s = fmaf(v[4 * j + 3], a.w, s);
        }
      } else {
#pragma unroll
        for (int j = 0; j < blocks::kPart; ++j) s = fmaf(v[j], __ldg(xp + j), s);
      }
      acc[t] += s;
    }
  }
#pragma unroll
  for (int t = 0; t < kGemvChunk; ++t) {
    if (t >= T) break;
    const float total = warp_sum(acc[t]);
    if (lane == 0) y[std::size_t(t) * std::size_t(ldy) + std::size_t(row)] = total;
  }
}

template <DType kType, bool kVec>
__global__ __launch_bounds__(32 * kGemvWarps) void gemv_kernel(const std::uint8_t* __restrict__ W, int rows,
                                                                int cols, const float* __restrict__ x, int T,
                                                                float* __restrict__ y, int ldy) {
  gemv_rows<kType, kVec>(W, rows, cols, x, T, y, ldy, int(blockIdx.x));
}

// gemv_blocks_many's weights: job j's CTAs are [first_cta[j], first_cta[j + 1]).
struct GemvTable {
  const std::uint8_t* W[kGemvMaxJobs];
  float* y[kGemvMaxJobs];
  int rows[kGemvMaxJobs];
  DType type[kGemvMaxJobs];
  int first_cta[kGemvMaxJobs + 1];
  int n;
};

template <bool kVec>
__global__ __launch_bounds__(32 * kGemvWarps) void gemv_many_kernel(const GemvTable tab, int cols,
                                                                     const float* __restrict__ x, int T) {
  // This CTA's job, read from the table at constant indices (an index known only at run
  // time would copy the table to local memory).
  const std::uint8_t* W = tab.W[0];
  float* y = tab.y[0];
  int rows = tab.rows[0], first = 0;
  DType type = tab.type[0];
#pragma unroll
  for (int j = 1; j < kGemvMaxJobs; ++j)
    if (j < tab.n && int(blockIdx.x) >= tab.first_cta[j]) {
      W = tab.W[j];
      y = tab.y[j];
      rows = tab.rows[j];
      type = tab.type[j];
      first = tab.first_cta[j];
    }
  const int cta = int(blockIdx.x) - first;
  switch (type) {
    case DType::Q8_0: gemv_rows<DType::Q8_0, kVec>(W, rows, cols, x, T, y, rows, cta); break;
    case DType::Q4_0: gemv_rows<DType::Q4_0, kVec>(W, rows, cols, x, T, y, rows, cta); break;
    case DType::Q4_1: gemv_rows<DType::Q4_1, kVec>(W, rows, cols, x, T, y, rows, cta); break;
    case DType::Q5_0: gemv_rows<DType::Q5_0, kVec>(W, rows, cols, x, T, y, rows, cta); break;
    case DType::Q5_1: gemv_rows<DType::Q5_1, kVec>(W, rows, cols, x, T, y, rows, cta); break;
    case DType::Q4_K: gemv_rows<DType::Q4_K, kVec>(W, rows, cols, x, T, y, rows, cta); break;
    case DType::Q5_K: gemv_rows<DType::Q5_K, kVec>(W, rows, cols, x, T, y, rows, cta); break;
    case DType::Q6_K: gemv_rows<DType::Q6_K, kVec>(W, rows, cols, x, T, y, rows, cta); break;
    default: break;  // the launcher checks every type
  }
}

// out [n, cols] bf16 = rows [row0, row0 + n) of W.
template <DType kType>
__global__ __launch_bounds__(kThreads) void dequantize_bf16_kernel(const std::uint8_t* __restrict__ W,
                                                                    long long row0, int n, int cols,
                                                                    std::uint16_t* __restrict__ out) {
  const int parts = cols / blocks::kPart;
  const std::size_t row_bytes =
      std::size_t(parts / blocks::parts_per_block(kType)) * std::size_t(blocks::block_bytes(kType));
  const long long total = static_cast<long long>(n) * parts;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long r = i / parts;
    const int p = int(i % parts);
    float v[blocks::kPart];
    row_part<kType>(W + std::size_t(row0 + r) * row_bytes, p, v);
    uint4* dst = reinterpret_cast<uint4*>(out + std::size_t(r) * std::size_t(cols) + std::size_t(p) * blocks::kPart);
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const float* u = v + 8 * q;
      dst[q] = make_uint4(bf16_bits(u[0]) | bf16_bits(u[1]) << 16, bf16_bits(u[2]) | bf16_bits(u[3]) << 16,
                          bf16_bits(u[4]) | bf16_bits(u[5]) << 16, bf16_bits(u[6]) | bf16_bits(u[7]) << 16);
    }
  }
}

// out [T, H] = W rows ids, times scale: a CTA per token.
template <DType kType>
__global__ __launch_bounds__(kThreads) void embed_kernel(const std::uint8_t* __restrict__ W, int H,
                                                         const int* __restrict__ ids, float scale,
                                                         float* __restrict__ out) {
  const int parts = H / blocks::kPart;
  const std::size_t row_bytes =
      std::size_t(parts / blocks::parts_per_block(kType)) * std::size_t(blocks::block_bytes(kType));
  const std::uint8_t* row = W + std::size_t(ids[blockIdx.x]) * row_bytes;
  float* o = out + std::size_t(blockIdx.x) * std::size_t(H);
  for (int p = threadIdx.x; p < parts; p += blockDim.x) {
    float v[blocks::kPart];
    row_part<kType>(row, p, v);
#pragma unroll
    for (int j = 0; j < blocks::kPart; ++j) o[p * blocks::kPart + j] = __fmul_rn(v[j], scale);
  }
}

// Calls f.run<type>() for a block type t (a run-time choice of the kernels' compile-time type).
template <class F>
void by_type(DType t, const char* what, const F& f) {
  switch (t) {
    case DType::Q8_0: f.template run<DType::Q8_0>(); return;
    case DType::Q4_0: f.template run<DType::Q4_0>(); return;
    case DType::Q4_1: f.template run<DType::Q4_1>(); return;
    case DType::Q5_0: f.template run<DType::Q5_0>(); return;
    case DType::Q5_1: f.template run<DType::Q5_1>(); return;
    case DType::Q4_K: f.template run<DType::Q4_K>(); return;
    case DType::Q5_K: f.template run<DType::Q5_K>(); return;
    case DType::Q6_K: f.template run<DType::Q6_K>(); return;
    default: throw std::logic_error(std::string("gemma3::cuda::") + what + ": not a block type");  // check_readable first
  }
}

// The launches, one per kernel, for by_type.
struct GemvLaunch {
  const std::uint8_t* W;
  int rows, cols;
  const float* x;
  int T;
  float* y;
  bool vec;
  unsigned grid;
  cudaStream_t stream;
  template <DType kType>
  void run() const {
    if (vec)
      gemv_kernel<kType, true><<<grid, 32 * kGemvWarps, 0, stream>>>(W, rows, cols, x, T, y, rows);
    else
      gemv_kernel<kType, false><<<grid, 32 * kGemvWarps, 0, stream>>>(W, rows, cols, x, T, y, rows);
  }
};
struct DequantizeLaunch {
  const std::uint8_t* W;
  long long row0;
  int n, cols;
  std::uint16_t* out;
  unsigned grid;
  cudaStream_t stream;
  template <DType kType>
  void run() const {
    dequantize_bf16_kernel<kType><<<grid, kThreads, 0, stream>>>(W, row0, n, cols, out);
  }
};
struct EmbedLaunch {
  const std::uint8_t* W;
  int H;
  const int* ids;
  int T;
  float scale;
  float* out;
  cudaStream_t stream;
  template <DType kType>
  void run() const {
    embed_kernel<kType><<<T, kThreads, 0, stream>>>(W, H, ids, scale, out);
  }
};

// t is a block type and rows of `cols` values are whole blocks of it.
void check_readable(DType t, int cols, const char* what) {
  if (!is_block_type(t))
    throw std::invalid_argument(std::string("gemma3::cuda::") + what + ": " + dtype_name(t) +
                                " is not a GGUF block type");
  if (cols <= 0 || cols % blocks::block_values(t) != 0)
    throw std::invalid_argument(std::string("gemma3::cuda::") + what + ": rows of " + std::to_string(cols) +
                                " values are not whole " + dtype_name(t) + " blocks");
}

}  // namespace

bool is_block_type(DType t) { return blocks::block_values(t) > 0; }

void gemv_blocks(DType t, const void* W, int rows, int cols, const float* x, int T, float* y, cudaStream_t stream) {
  check_readable(t, cols, "gemv_blocks");
  if (T < 1 || T > kGemvMaxTokens)
    throw std::invalid_argument("gemma3::cuda::gemv_blocks: " + std::to_string(T) + " tokens (1 to " +
                                std::to_string(kGemvMaxTokens) + ")");
  if (rows <= 0) return;
  // x row t starts 4 cols floats in: 16-byte aligned for every t when x is and cols % 4 == 0
  const bool vec = aligned16(x);
  const unsigned grid = unsigned((rows + kGemvWarps - 1) / kGemvWarps);
  for (int t0 = 0; t0 < T; t0 += kGemvChunk) {
    const int n = T - t0 < kGemvChunk ? T - t0 : kGemvChunk;
    const float* xt = x + std::size_t(t0) * std::size_t(cols);
    float* yt = y + std::size_t(t0) * std::size_t(rows);
    by_type(t, "gemv_blocks", GemvLaunch{static_cast<const std::uint8_t*>(W), rows, cols, xt, n, yt, vec, grid, stream});
    check_launch("gemv_blocks");
  }
}

void gemv_blocks_many(const GemvJob* jobs, int n, int cols, const float* x, int T, cudaStream_t stream) {
  if (n < 1 || n > kGemvMaxJobs)
    throw std::invalid_argument("gemma3::cuda::gemv_blocks_many: " + std::to_string(n) + " weights (1 to " +
                                std::to_string(kGemvMaxJobs) + ")");
  if (T < 1 || T > kGemvMaxTokens)
    throw std::invalid_argument("gemma3::cuda::gemv_blocks_many: " + std::to_string(T) + " tokens (1 to " +
                                std::to_string(kGemvMaxTokens) + ")");
  GemvTable tab{};
  tab.n = n;
  long long ctas = 0;
  for (int j = 0; j < n; ++j) {
    check_readable(jobs[j].type, cols, "gemv_blocks_many");
    if (jobs[j].rows < 0)
      throw std::invalid_argument("gemma3::cuda::gemv_blocks_many: weight " + std::to_string(j) + " has " +
                                  std::to_string(jobs[j].rows) + " rows");
    tab.W[j] = static_cast<const std::uint8_t*>(jobs[j].W);
    tab.y[j] = jobs[j].y;
    tab.rows[j] = jobs[j].rows;
    tab.type[j] = jobs[j].type;
    tab.first_cta[j] = int(ctas);
    ctas += (jobs[j].rows + kGemvWarps - 1) / kGemvWarps;
    if (ctas > 0x7fffffffLL) throw std::invalid_argument("gemma3::cuda::gemv_blocks_many: too many rows");
  }
  tab.first_cta[n] = int(ctas);
  if (ctas == 0) return;
  const bool vec = aligned16(x);
  for (int t0 = 0; t0 < T; t0 += kGemvChunk) {
    const int m = T - t0 < kGemvChunk ? T - t0 : kGemvChunk;
    GemvTable chunk = tab;
    for (int j = 0; j < n; ++j) chunk.y[j] = tab.y[j] + std::size_t(t0) * std::size_t(tab.rows[j]);
    const float* xt = x + std::size_t(t0) * std::size_t(cols);
    if (vec) gemv_many_kernel<true><<<unsigned(ctas), 32 * kGemvWarps, 0, stream>>>(chunk, cols, xt, m);
    else gemv_many_kernel<false><<<unsigned(ctas), 32 * kGemvWarps, 0, stream>>>(chunk, cols, xt, m);
    check_launch("gemv_blocks_many");
  }
}

void dequantize_bf16(DType t, const void* W, std::int64_t row0, int n, int cols, std::uint16_t* out,
                     cudaStream_t stream) {
  check_readable(t, cols, "dequantize_bf16");
  if (n <= 0) return;
  if (!aligned16(out)) throw std::invalid_argument("gemma3::cuda::dequantize_bf16: the output is not 16-byte aligned");
  const long long items = static_cast<long long>(n) * (cols / blocks::kPart);
  const long long want = (items + kThreads - 1) / kThreads;
  const unsigned grid = unsigned(want < 65536 ? want : 65536);
  by_type(t, "dequantize_bf16",
          DequantizeLaunch{static_cast<const std::uint8_t*>(W), row0, n, cols, out, grid, stream});
  check_launch("dequantize_bf16");
}

void embed_blocks(DType t, const void* W, int H, const int* ids, int T, float scale, float* out, cudaStream_t stream) {
  check_readable(t, H, "embed_blocks");
  if (T <= 0) return;
  by_type(t, "embed_blocks", EmbedLaunch{static_cast<const std::uint8_t*>(W), H, ids, T, scale, out, stream});
  check_launch("embed_blocks");
}

}  // namespace cuda
}  // namespace gemma3
