// cuda/src/quantized.hpp -- GGUF block weights kept on the device as the file stores
// them (Options::keep_quantized; internal to gemma3::cuda). The kernels (quantized.cu)
// read a row 32 values (one "part") at a time with gemma3/cuda/blocks.hpp, whose every
// bit tests/test_cuda_blocks.cpp checks on the CPU.
//
//   gemv_blocks       y [T, rows] = x [T, cols] . W^T, W [rows, cols] of block type t,
//                     x float32; T <= kGemvMaxTokens. A warp per row, a lane per part:
//                     the lane widens its part to 32 floats in registers once and takes
//                     the dot with every token's x (float32 FMAs), then the warp sums.
//                     The weights are read once for up to 4 tokens, at their stored size
//                     (4.5 to 8.5 bits a value instead of bf16's 16).
//   gemv_blocks_many  the same for up to kGemvMaxJobs weights that read one x (q, k and
//                     v; gate and up), each of its own block type, in one launch: each
//                     y the bits gemv_blocks gives it
//   dequantize_bf16   out [n, cols] bf16 = rows [row0, row0 + n) of W, widened exactly
//                     and rounded to bf16 (the bits of f32_to_bf16(dequantize_row)):
//                     for more tokens than the GEMV takes, cuBLAS then multiplies
//                     this scratch copy, a chunk of rows at a time
//   embed_blocks      out [T, H] = W rows ids, widened, times scale (embedding.hpp's
//                     arithmetic: the same bits as the CPU)
//
// Every launcher runs on `stream` and throws std::runtime_error naming the kernel (or
// std::invalid_argument for a type that is not a block type). Held to the CPU by
// cuda/tests/test_blocks.cpp.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "gemma3/dtype.hpp"

namespace gemma3 {
namespace cuda {

// The most tokens gemv_blocks takes; more go through dequantize_bf16 and a GEMM.
constexpr int kGemvMaxTokens = 8;

// A type the kernels here read (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K).
bool is_block_type(DType t);

// y [T, rows] (row-major) = x [T, cols] . W^T; W: rows * (cols / block values) blocks,
// row after row. 1 <= T <= kGemvMaxTokens.
void gemv_blocks(DType t, const void* W, int rows, int cols, const float* x, int T, float* y, cudaStream_t stream);

// y_j [T, rows_j] = x [T, cols] . W_j^T for each of n (1 .. kGemvMaxJobs) jobs, in one
// launch per 4 tokens (as gemv_blocks launches). Every W_j has rows of `cols` values;
// the y_j must not overlap x. 1 <= T <= kGemvMaxTokens.
constexpr int kGemvMaxJobs = 4;
struct GemvJob {
  DType type;
  const void* W;
  int rows;
  float* y;
};
void gemv_blocks_many(const GemvJob* jobs, int n, int cols, const float* x, int T, cudaStream_t stream);

// out [n, cols] bf16 = W's rows [row0, row0 + n) widened and rounded to bf16.
void dequantize_bf16(DType t, const void* W, std::int64_t row0, int n, int cols, std::uint16_t* out,
                     cudaStream_t stream);

// out [T, H] = W rows ids [T] (device) widened, times scale. The ids must lie in
// [0, vocab) (the backend checks them on the host).
void embed_blocks(DType t, const void* W, int H, const int* ids, int T, float scale, float* out, cudaStream_t stream);

}  // namespace cuda
}  // namespace gemma3
