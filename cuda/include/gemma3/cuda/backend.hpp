// gemma3/cuda/backend.hpp -- the CUDA backend: the whole model on one GPU, through the
// same seam as the CPU backends (include/gemma3/backend.hpp), so the model code is
// the one a learner reads. Link gemma3::cuda (cuda/CMakeLists.txt).
//
//   weights       uploaded once, on first use, as bfloat16 (GGUF block types are
//                 dequantized on the host first, or kept as stored: Options::keep_quantized);
//                 RMSNorm weights and RoPE tables as float32
//   activations   float32 device buffers (Activations::device())
//   linear        cuBLAS, bf16 x bf16 with float32 accumulation and output (or, for
//                 weights kept in blocks, a dequantizing GEMV for up to 8 tokens)
//   attention     cuda/src/attention_prefill.cu (tiled flash attention that visits only
//                 the key tiles inside a sliding layer's window) and attention_decode.cu
//                 (split-K over the keys, the ring read in place)
//   KV cache      on the device, bf16 (or f16), the CPU cache's layout: a ring of W rows on
//                 sliding layers, one row per position on global ones
//   greedy decode one token id in, one id out (lm_head_argmax runs on the device)
//
// Without a CUDA device make_backend throws std::runtime_error; device_count() says 0.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gemma3/backend.hpp"

namespace gemma3 {
namespace cuda {

struct Options {
  int device = 0;                       // CUDA device ordinal
  std::optional<DType> kv_dtype;        // BF16 (default) or F16
  // QK-norm, RoPE and (in decode) the cache write as one kernel: rms_norm_heads and rope
  // on a head_dim the fused kernel takes wait for attention(), which runs them with the
  // cache write; any other use of the buffer runs them first, as the seam's calls came.
  // false: one kernel per call (for comparison; the results are the same bits).
  bool fuse_qk_norm_rope = true;
  // The steps between two GEMMs of a decoder block (the post-norm, the residual add, the
  // next pre-norm) as one kernel: an in-place rms_norm waits, the add that reads it waits,
  // and the rms_norm of the sum runs all three; any other use of either buffer runs what
  // waits on it first, as the seam's calls came. Two launches per layer instead of six.
  // false: one kernel per call (for comparison; the results are the same bits).
  bool fuse_residual_norm = true;
  // Time every call of the seam (profile() below). Costs two events and a clock read per
  // call: for finding where a step's time goes, not for speed runs.
  bool profile = false;
  // Capture each decode step (the embedding of one token, or of a decode batch's tokens
  // from the batch's second step on, up to the LM head's copy back) into a CUDA graph and
  // launch it as one, updating the last step's graph in place: one launch instead of ~10
  // per layer. Off by default until measured on a GPU
  // (cuda/lab/model_decode times both); the results are the same bits either way.
  bool graphs = false;
  // Decode attention as version 3 of the kernel lab (cuda/src/decode_versions.hpp): the
  // split-K partials merged by the last CTA of each kv head instead of a combine kernel,
  // one launch per layer fewer. Off by default until measured on a GPU
  // (cuda/lab/model_decode times both); the results are the same bits either way.
  bool fuse_decode_combine = false;
  // Keep GGUF block weights (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) on the device
  // as the file stores them, not widened to bf16: a Q4_K_M file then takes about its own
  // size on the GPU instead of ~3.5x, and a decode step reads that many bytes of weights.
  // Up to 8 tokens (decode, decode batches, short chunks) multiply them with a
  // dequantizing GEMV on float32 activations (the weights' exact values, X never rounded);
  // more tokens with cuBLAS on a bf16 copy made a chunk of rows at a time. F32, F16 and
  // BF16 weights are uploaded as bf16 either way. Off by default until measured on a GPU
  // (cuda/lab/model_decode times both on a GGUF file).
  bool keep_quantized = false;
};

// One step of the seam in a profile: how many calls, the host time spent inside them
// (the launches: when it is close to the wall time, the host, not the GPU, sets the
// pace), and the GPU time between events recorded before and after each call's work on
// the stream (which includes the GPU waiting for the call's own launches).
struct StepTime {
  std::string step;  // "linear", "attention", ...
  long long calls = 0;
  double host_us = 0;
  double gpu_us = 0;
};

// The profile of a backend made with Options::profile, by step, most GPU time first;
// `reset` starts the next one empty. Throws std::invalid_argument for another backend.
std::vector<StepTime> profile(const Backend& backend, bool reset = true);

// CUDA devices visible to this process; 0 when there is no driver or no device.
int device_count();

// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)", or an error message.
std::string device_description(int device = 0);

// The backend on Options::device. Throws std::runtime_error naming the reason when
// there is no usable device.
std::shared_ptr<const Backend> make_backend(const Options& options = {});

}  // namespace cuda
}  // namespace gemma3
