// cuda/src/ops.hpp -- the small steps of the model on the GPU (internal to gemma3::cuda):
// everything around the GEMMs and attention, one kernel each (ops.cu).
//
//   embed           out [T, H] = table[ids] * scale          table bf16 [vocab, H]
//   set_rows        h[rows[i]] = values[i]                     (image soft tokens)
//   rms_norm        out = x / sqrt(mean(x^2) + eps) * (1 + w)  per row; out may be x
//   rms_norm_heads  the same over each head_dim slice, in place (QK-norm)
//   rope            out[i]     = x[i] cos(a_i) - x[i + D/2] sin(a_i)      a_i = p * inv_freq[i]
//                   out[i+D/2] = x[i + D/2] cos(a_i) + x[i] sin(a_i)      (rotate-half pairs)
//   add             h += x
//   residual_rms_norm   h += rms_norm(x; wx), then out = rms_norm(h; w): the post-norm,
//                   the residual add and the next pre-norm as one kernel, the same bits
//   gelu_tanh_mul   gate = 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))) * up
//   to_bf16         y = x rounded to bfloat16, nearest even (the GEMMs' inputs)
//   argmax          the first index of the largest value; NaN never wins
//
// Float32 throughout (norm sums, the angles, the GELU); bfloat16 values are passed as
// their 16-bit patterns (std::uint16_t) so that this header stays plain C++.
// Every launcher runs on `stream` and throws std::runtime_error naming the kernel when
// the launch fails. Held to the library's CPU functions by cuda/tests/test_ops.cpp.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

namespace gemma3 {
namespace cuda {

// out [T, H] = bf16 table [vocab, H] rows ids [T] (device), widened, times scale.
// An id outside [0, vocab) gives a row of NaN (the backend checks the ids on the host).
void embed(const std::uint16_t* table, int vocab, int H, const int* ids, int T, float scale, float* out,
           cudaStream_t stream);

// h [*, cols]: row rows[i] (device [n]) = values row i (device [n, cols]).
void set_rows(float* h, int cols, const int* rows, int n, const float* values, cudaStream_t stream);

// out [rows, n] = RMSNorm of each row of x [rows, n] with weight w [n] and the (1 + w)
// scale; out may be x. One block per row. With out_bf16 [rows, n], also out rounded to
// bf16 there (to_bf16's bits).
void rms_norm(const float* x, const float* w, float eps, float* out, int rows, int n, cudaStream_t stream,
              std::uint16_t* out_bf16 = nullptr);

// x [rows, n_heads * head_dim]: each head_dim slice normalised in place with w [head_dim].
void rms_norm_heads(float* x, int rows, int n_heads, int head_dim, const float* w, float eps, cudaStream_t stream);

// x [rows, n_heads * head_dim]: RoPE in place, row t at position pos0 + t, or at
// positions[t] when given (device [rows]: a decode batch); inv_freq [head_dim / 2]
// (RotaryEmbedding::inv_freq()).
void rope(float* x, int rows, int n_heads, int head_dim, const float* inv_freq, int pos0, cudaStream_t stream,
          const int* positions = nullptr);

// h [n] += x [n].
void add(float* h, const float* x, std::size_t n, cudaStream_t stream);

// h [rows, n] += RMSNorm(x [rows, n]) * (1 + wx) row by row (x only read), and with w
// (and out), then out [rows, n] = RMSNorm(h) * (1 + w) (+ out_bf16, its bf16); out may
// be h. The same bits as rms_norm(x -> tmp), add(h, tmp), rms_norm(h -> out) when those
// take their 16-byte paths, which residual_rms_norm_fits says (n % 4 == 0, every
// pointer given 16-byte aligned, out_bf16 8-byte); it throws std::invalid_argument
// otherwise. Null w and out: the add only.
bool residual_rms_norm_fits(const float* x, const float* wx, float* h, const float* w, float* out,
                            const std::uint16_t* out_bf16, int n);
void residual_rms_norm(const float* x, const float* wx, float eps_x, float* h, int rows, int n, cudaStream_t stream,
                       const float* w = nullptr, float eps = 0.f, float* out = nullptr,
                       std::uint16_t* out_bf16 = nullptr);

// gate [n] = gelu_tanh(gate) * up [n]; with gate_bf16 [n], also the result rounded to bf16.
void gelu_tanh_mul(float* gate, const float* up, std::size_t n, cudaStream_t stream,
                   std::uint16_t* gate_bf16 = nullptr);

// y [n] = bf16(x [n]): gemma3::f32_to_bf16's bits (nearest even; NaN stays NaN).
void to_bf16(const float* x, std::uint16_t* y, std::size_t n, cudaStream_t stream);

// Scratch bytes argmax of `rows` rows needs (for any n).
std::size_t argmax_workspace_bytes(int rows = 1);

// *out (device) = the first index of the largest of x [n] (device); NaN never wins; 0
// when every value is NaN (ReferenceBackend::argmax's rule). n >= 1.
void argmax(const float* x, int n, int* out, void* workspace, cudaStream_t stream);

// The same for each row of x [rows, n]: out [rows], in one pair of launches.
void argmax_rows(const float* x, int rows, int n, int* out, void* workspace, cudaStream_t stream);

}  // namespace cuda
}  // namespace gemma3
