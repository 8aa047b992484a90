// gemma3/kernels/matmul.hpp -- the CPU kernels for y = x . W^T.
//
//   matvec:  y[r]    = sum_c W[r, c] * x[c]           W [out, in], x [in],    y [out]
//   matmul:  Y[t, r] = sum_c W[r, c] * X[t, c]        X [T, in],             Y [T, out]
//   linear:  matvec when T == 1 (decode), matmul otherwise (prefill).
//
// W is a Weight in any DType (f32, bf16, f16 or a GGUF block type); no full float32
// copy of a weight ever exists. Each call takes the instruction set, the thread pool
// and the activation rounding explicitly (CpuBackend, backends/cpu.hpp, holds them);
// the overloads without them use best_isa() and default_pool().
//
// matvec (decode) reads every weight byte once:
//   f32 / bf16 / f16: row . x with SIMD (kernels/dot.hpp), bf16 and f16 widened in
//     registers;
//   GGUF blocks, int16 activations (Isa::avx512 or Isa::wasm_simd128, and int16 =
//     true, the default): x is quantized once to int16 blocks (quant/q16.hpp, 3.1e-5
//     of each block's max), on avx512 also split into two bytes per value for the byte
//     kernels (kernels/dot_q16.hpp); each row is an exact int32-per-block dot (avx512:
//     vpdpbusd on byte weights for Q5_0 and the K-quants, vpmaddwd on int16-widened
//     weights for the others; wasm: i32x4.dot_i16x8_s on int16-widened weights);
//   GGUF blocks, float activations (other Isas, or int16 = false): each row is a
//     fused dequantize-and-FMA dot against float32 x (kernels/fdot.hpp, AVX2), with the
//     per-32 sums of x computed once per matvec for the types with a minimum; on
//     scalar and wasm each row is dequantized to a float32 scratch row and dotted.
//   Rows are split over the pool; every row is computed the same way whatever the
//   split, so results do not depend on the thread count.
//
// matmul (prefill, T > 1) on bf16 / f16 / quantized weights:
//   2 to 8 tokens (a small decode batch; 2 to 4 with int16 activations on AVX-512):
//     matvec's dot of each row for each token, the row read from memory once; on AVX2
//     the quantized types widen each block once for 4 tokens at a time
//     (kernels/fdot.hpp's fdot_many), and with int16 activations on AVX-512 each token
//     takes matvec's VNNI dots over 8 rows at a time. Bit for bit matvec's result for
//     each token. The GEMMs below widen whole rows to float32, or pack 16-row tiles,
//     first, which so few tokens do not repay (docs/performance.md);
//   int16 GEMM (Isa::avx512 or Isa::wasm_simd128, int16): X is quantized once to int16
//     blocks and multiplied by 16-row tiles of W packed to int16 pairs (VNNI's
//     vpdpwssd, or SIMD128's i32x4.dot_i16x8_s; kernels/gemm_q16.hpp); threads split
//     W's rows in whole tiles (SIMD128: X's tokens are interleaved by fours once, before
//     the split);
//   otherwise 64 rows at a time are dequantized to a float32 scratch block
//     (quant::dequantize_fn, kernels/dequantize_simd.hpp: AVX2 twins of the scalar
//     dequantizers, bit for bit) and multiplied by Eigen's GEMM.
// The measurements behind these choices are in docs/kernels.md.
//
// matvec_scalar is the plain-loop twin every faster path is tested against.
// Pinned by tests/test_kernels.cpp, tests/test_quant.cpp and tests/test_q16.cpp
// (tests/wasm/test_wasm_kernels.cpp for the wasm paths).
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "../quant/quant.hpp"
#include "../tensor.hpp"
#include "../weight.hpp"
#include "dot.hpp"
#include "dot_q16.hpp"
#include "gemm_q16.hpp"
#include "isa.hpp"
#include "row_kernels.hpp"
#include "thread_pool.hpp"

namespace gemma3 {

// Scalar reference: dequantize each row exactly, accumulate in double, no Eigen.
inline void matvec_scalar(const Weight& W, const float* x, float* y) {
  std::vector<float> row(std::size_t(W.cols));
  for (std::int64_t r = 0; r < W.rows; ++r) {
    dequantize_row(W, r, row.data());
    double acc = 0.0;
    for (std::int64_t c = 0; c < W.cols; ++c) acc += double(row[std::size_t(c)]) * double(x[c]);
    y[r] = float(acc);
  }
}

namespace detail {
constexpr std::int64_t kRowBlock = 64;               // rows widened per step for the GEMM paths
constexpr std::int64_t kFewTokens = 8;               // up to this many tokens matmul runs matvec's dots
constexpr std::int64_t kFewTokensQ16 = 4;  // the same on AVX-512 int16 activations (past it the int16 GEMM wins)
constexpr std::int64_t kFewRows = 8;       // rows dotted with every token of a small batch in turn
constexpr std::size_t kParallelMinBytes = 64 << 10;  // smaller weights: one thread (waking costs more)
constexpr std::size_t kChunkMinBytes = 16 << 10;     // a chunk of rows reads at least this much

inline ConstMatrixMap f32_view(const Weight& W) {
  return ConstMatrixMap(static_cast<const float*>(W.data), W.rows, W.cols);
}

inline void check_weight(const Weight& W, const char* who) {
  if (W.cols % std::int64_t(dtype_block_size(W.dtype)) != 0)
    throw std::invalid_argument(std::string(who) + ": a " + dtype_name(W.dtype) + " weight needs cols (" +
                                std::to_string(W.cols) + ") to be a multiple of " +
                                std::to_string(dtype_block_size(W.dtype)));
}

// Rows per parallel chunk when each weight row is used by T tokens (matvec: T = 1);
// everything on the calling thread when the whole job is small.
inline std::int64_t rows_per_chunk(const Weight& W, std::int64_t T = 1) {
  const std::size_t work = std::max<std::size_t>(1, W.row_bytes()) * std::size_t(std::max<std::int64_t>(1, T));
  if (work * std::size_t(W.rows) < kParallelMinBytes) return std::max<std::int64_t>(1, W.rows);
  return std::max<std::int64_t>(1, std::int64_t(kChunkMinBytes / work));
}

// Per-thread scratch buffers (reused across calls: no allocation per matvec).
inline std::vector<float>& scratch_floats() {
  thread_local std::vector<float> b;
  return b;
}
inline std::vector<float>& scratch_xsum() {
  thread_local std::vector<float> b;
  return b;
}
inline Matrix& scratch_matrix() {
  thread_local Matrix m;
  return m;
}

// int16 activations of T rows of n values (quant/q16.hpp), reused across calls.
struct Q16Scratch {
  std::vector<std::int16_t> q;  // [T, n]
  std::vector<float> d, s;      // [T, n / 32]
  std::vector<std::int8_t> hi, lo;  // [T, n]  the byte split (matvec and small batches only)
  std::vector<float> dX;            // [T, n / 32]
  std::vector<float> sum16;         // [T, n / 16]
  quant::Q16Row row(std::int64_t t, std::int64_t n) const {
    quant::Q16Row r{q.data() + t * n, d.data() + t * (n / quant::QK), s.data() + t * (n / quant::QK)};
    if (!hi.empty()) {
      r.hi = hi.data() + t * n;
      r.lo = lo.data() + t * n;
      r.dX = dX.data() + t * (n / quant::QK);
      r.sum16 = sum16.data() + t * (n / 16);
    }
    return r;
  }
};
inline Q16Scratch& scratch_q16() {
  thread_local Q16Scratch b;
  return b;
}
// X [T, n] -> int16 activations in the calling thread's scratch; with `split` (matvec
// and small batches) also each row's byte split (quant::split_q16_bytes) for the byte
// kernels. Many rows (prefill) are split over `pool` (the default pool when null).
inline const Q16Scratch& quantize_q16(const float* X, std::int64_t T, std::int64_t n, Isa isa, bool split = false,
                                      ThreadPool* pool = nullptr) {
  Q16Scratch& b = scratch_q16();
  b.q.resize(std::size_t(T * n));
  b.d.resize(std::size_t(T * (n / quant::QK)));
  b.s.resize(b.d.size());
  std::int16_t* q = b.q.data();
  float* d = b.d.data();
  float* s = b.s.data();
  auto rows = [&](std::int64_t t0, std::int64_t t1) {  // the rows are independent: split over the pool
    for (std::int64_t t = t0; t < t1; ++t)
      quant::quantize_row_q16(X + t * n, q + t * n, d + t * (n / quant::QK), s + t * (n / quant::QK), n, isa);
  };
  if (T >= 32) (pool ? *pool : default_pool()).parallel_for(0, T, rows, 16);
  else rows(0, T);
  b.hi.clear();
  if (split) {
    b.hi.resize(std::size_t(T * n));
    b.lo.resize(std::size_t(T * n));
    b.dX.resize(std::size_t(T * (n / quant::QK)));
    b.sum16.resize(std::size_t(T * (n / 16)));
    for (std::int64_t t = 0; t < T; ++t)
      quant::split_q16_bytes(q + t * n, d + t * (n / quant::QK), n, b.hi.data() + t * n, b.lo.data() + t * n,
                             b.dX.data() + t * (n / quant::QK), b.sum16.data() + t * (n / 16), isa);
  }
  return b;
}

// Rows of W per parallel chunk in matmul (T tokens).
inline std::int64_t matmul_grain(const Weight& W, std::int64_t T) { return std::max(rows_per_chunk(W, T), kRowBlock); }

// Y [T, W.rows] = Xq . W^T on the int16 GEMM of `isa` (matmul_q16_wasm under
// Isa::wasm_simd128, matmul_q16_avx512 otherwise), the pool splitting W's rows in whole
// 16-row tiles.
inline void matmul_q16(const Weight& W, const Q16Matrix& Xq, float* Y, std::int64_t grain, ThreadPool& pool, Isa isa) {
  const std::int64_t tiles = (W.rows + 15) / 16;
#if GEMMA3_HAVE_WASM_SIMD
  if (isa == Isa::wasm_simd128 && Xq.T > 0) {  // the tokens interleaved once, not once per chunk (gemm_q16.hpp)
    q16gemm::check(W, Xq, 0, W.rows, "matmul_q16");
    static thread_local q16gemm::wasm::TokenBuffers buffers;
    const q16gemm::wasm::Tokens x = q16gemm::wasm::pack_tokens(Xq, buffers);
    pool.parallel_for(0, tiles, [&](std::int64_t t0, std::int64_t t1) {
      q16gemm::wasm::matmul_tokens(W, x, Xq.T, Y, W.rows, t0 * 16, std::min(W.rows, t1 * 16));
    }, std::max<std::int64_t>(1, grain / 16));
    return;
  }
#endif
  const auto gemm = isa == Isa::wasm_simd128 ? matmul_q16_wasm : matmul_q16_avx512;
  pool.parallel_for(0, tiles, [&](std::int64_t t0, std::int64_t t1) {
    gemm(W, Xq, Y, W.rows, t0 * 16, std::min(W.rows, t1 * 16));
  }, std::max<std::int64_t>(1, grain / 16));
}

// Whether quantized weights take the int16-activation kernels (kernels/dot_q16.hpp):
// with int16 on Isa::avx512 and Isa::wasm_simd128.
inline bool use_q16(const Weight& W, Isa isa, bool int16) {
  return int16 && (isa == Isa::avx512 || isa == Isa::wasm_simd128) && dtype_is_quantized(W.dtype);
}

// Whether x is split into bytes for the dot of dtype t: the avx512 byte kernels only.
inline bool q16_split(DType t, Isa isa) { return isa == Isa::avx512 && quant::q16_uses_bytes(t); }

// Whether T tokens on W take matmul_q16_few: a small decode batch (2 to kFewTokensQ16
// tokens) on int16 activations on AVX-512. Each token costs matvec's arithmetic there,
// so past a few tokens the GEMM, which unpacks each weight tile once for all tokens,
// wins (docs/performance.md); SIMD128 keeps its GEMM, which interleaves tokens by fours.
inline bool q16_few(const Weight& W, Isa isa, bool int16, std::int64_t T) {
  return use_q16(W, isa, int16) && isa == Isa::avx512 && T > 1 && T <= kFewTokensQ16;
}

// Y [T, W.rows] (row-major) for the T int16 tokens of xq: matvec's dots of every row
// for each token, kFewRows rows at a time, so each row is read from memory once and
// dotted with the T tokens while in L1. Row t of Y is matvec's result for token t, bit
// for bit (the rows' dots do not depend on how the rows are grouped).
inline void matmul_q16_few(const Weight& W, const Q16Scratch& xq, std::int64_t T, float* Y, ThreadPool& pool,
                           Isa isa) {
  const quant::Q16RowsFn dot_rows = quant::q16_dot_rows(W.dtype, isa);
  const std::size_t row_bytes = W.row_bytes();
  const std::int64_t cols = W.cols;
  pool.parallel_for(0, W.rows, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; r += kFewRows) {
      const std::int64_t n = std::min(kFewRows, r1 - r);
      for (std::int64_t t = 0; t < T; ++t) dot_rows(W.row_ptr(r), row_bytes, n, xq.row(t, cols), cols, Y + t * W.rows + r);
    }
  }, rows_per_chunk(W, T));
}

// n rows of W starting at r0 -> float32 dst [n, cols] (exact), SIMD for bf16/f16.
inline void widen_rows(const Weight& W, std::int64_t r0, std::int64_t n, float* dst, Isa isa) {
  const void* src = W.row_ptr(r0);
  const std::int64_t count = n * W.cols;
  if (W.dtype == DType::F16) return kernels::widen_f16(isa, src, dst, count);  // kernels/dot.hpp
#if GEMMA3_HAVE_X86_SIMD
  if (isa_has_avx2(isa) && W.dtype == DType::BF16) return kernels::widen_bf16_avx2(src, dst, count);
#endif
#if GEMMA3_HAVE_WASM_SIMD
  if (isa == Isa::wasm_simd128 && W.dtype == DType::BF16) return kernels::widen_bf16_wasm(src, dst, count);
#endif
  quant::dequantize_fn(W.dtype, isa)(src, dst, count);  // AVX2 twins for Q8_0/Q5_0/Q4_K/Q6_K
}
}  // namespace detail

// y [out] = W [out, in] . x [in], with an explicit instruction set, pool and
// activation rounding (int16: int16 activations for quantized W on Isa::avx512 and
// Isa::wasm_simd128).
inline void matvec(const Weight& W, const float* x, float* y, Isa isa, ThreadPool& pool, bool int16 = true) {
  detail::check_weight(W, "matvec");
  const quant::RowKernels& k = quant::row_kernels(W.dtype);
  const std::int64_t cols = W.cols, grain = detail::rows_per_chunk(W);

  if (detail::use_q16(W, isa, int16)) {  // int16 activations, VNNI dots (kernels/dot_q16.hpp)
    const quant::Q16Row xq = detail::quantize_q16(x, 1, cols, isa, detail::q16_split(W.dtype, isa)).row(0, cols);
    const quant::Q16RowsFn dot_rows = quant::q16_dot_rows(W.dtype, isa);
    const std::size_t row_bytes = W.row_bytes();
    pool.parallel_for(0, W.rows, [&](std::int64_t r0, std::int64_t r1) {
      dot_rows(W.row_ptr(r0), row_bytes, r1 - r0, xq, cols, y + r0);
    }, grain);
    return;
  }

  if (dtype_is_quantized(W.dtype)) {  // float activations
    const quant::FusedDotFn fused = isa == Isa::scalar ? nullptr : quant::fused_dot(W.dtype, isa);
    if (fused) {  // fused dequantize-and-FMA per block (kernels/fdot.hpp)
      std::vector<float>& xs = detail::scratch_xsum();
      xs.resize(std::size_t(cols / quant::QK));
      quant::block_sums_32(x, xs.data(), cols, isa);
      const float* xsum = xs.data();
      pool.parallel_for(0, W.rows, [&](std::int64_t r0, std::int64_t r1) {
        for (std::int64_t r = r0; r < r1; ++r) y[r] = fused(W.row_ptr(r), x, xsum, cols);
      }, grain);
      return;
    }
    // no fused kernel for this Isa (scalar, wasm): dequantize a row, f32 dot
    const quant::RowDotFn dot = quant::row_kernels(DType::F32).for_isa(isa);
    pool.parallel_for(0, W.rows, [&](std::int64_t r0, std::int64_t r1) {
      std::vector<float>& row = detail::scratch_floats();
      row.resize(std::size_t(cols));
      for (std::int64_t r = r0; r < r1; ++r) {
        k.dequantize(W.row_ptr(r), row.data(), cols);
        y[r] = dot(row.data(), x, cols);
      }
    }, grain);
    return;
  }

  const quant::RowDotFn dot = k.for_isa(isa);  // f32 / bf16 / f16 rows against float32 x
  pool.parallel_for(0, W.rows, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) y[r] = dot(W.row_ptr(r), x, cols);
  }, grain);
}

// y [out] = W [out, in] . x [in]
inline void matvec(const Weight& W, const float* x, float* y) { matvec(W, x, y, best_isa(), default_pool()); }

// Y [T, out] = X [T, in] . W^T, with an explicit instruction set, pool and activation rounding.
inline void matmul(const Weight& W, const Matrix& X, Matrix& Y, Isa isa, ThreadPool& pool, bool int16 = true) {
  detail::check_weight(W, "matmul");
  if (X.cols() != W.cols)
    throw std::invalid_argument("matmul: X has " + std::to_string(X.cols()) + " columns, W has " +
                                std::to_string(W.cols));
  const std::int64_t T = X.rows(), cols = W.cols;
  Y.resize(T, W.rows);
  if (T == 0) return;
  const std::int64_t grain = detail::matmul_grain(W, T);

  if (W.dtype == DType::F32) {  // Eigen GEMM on column slices of Y
    pool.parallel_for(0, W.rows, [&](std::int64_t r0, std::int64_t r1) {
      Y.middleCols(r0, r1 - r0).noalias() = X * detail::f32_view(W).middleRows(r0, r1 - r0).transpose();
    }, grain);
    return;
  }

  if (detail::q16_few(W, isa, int16, T)) {  // a small decode batch: matvec's int16 dots for each token
    const detail::Q16Scratch& xq = detail::quantize_q16(X.data(), T, cols, isa, detail::q16_split(W.dtype, isa));
    detail::matmul_q16_few(W, xq, T, Y.data(), pool, isa);
    return;
  }

  if (detail::use_q16(W, isa, int16)) {  // int16 activations, VNNI GEMM on packed tiles (kernels/gemm_q16.hpp)
    const detail::Q16Scratch& xq = detail::quantize_q16(X.data(), T, cols, isa, false, &pool);
    detail::matmul_q16(W, Q16Matrix{xq.q.data(), xq.d.data(), xq.s.data(), T, cols}, Y.data(), grain, pool, isa);
    return;
  }

  if (T <= detail::kFewTokens) {  // a small decode batch: matvec's dot for each token
    // Each weight row is read from memory once and dotted with the T tokens while it
    // is in cache, by the dot matvec uses (or its many-token twin, which runs the same
    // operations per token), so row t of Y is matvec(W, X.row(t)) bit for bit.
    const quant::FusedDotFn fused =
        dtype_is_quantized(W.dtype) && isa != Isa::scalar ? quant::fused_dot(W.dtype, isa) : nullptr;
    const std::int64_t nb = cols / quant::QK;
    std::vector<float> xs;  // [T, nb]: the per-32 sums the fused dots take
    if (fused) {
      xs.resize(std::size_t(T * nb));
      for (std::int64_t t = 0; t < T; ++t) quant::block_sums_32(X.row(t).data(), xs.data() + t * nb, cols, isa);
    }
    const quant::FusedDotManyFn many = fused ? quant::fused_dot_many(W.dtype, isa) : nullptr;
    if (many) {  // each block of a row widened once for 4 tokens at a time (kernels/fdot.hpp)
      pool.parallel_for(0, W.rows, [&](std::int64_t r0, std::int64_t r1) {
        float y[4];
        for (std::int64_t r = r0; r < r1; ++r)
          for (std::int64_t t0 = 0; t0 < T; t0 += 4) {
            const int nt = int(std::min<std::int64_t>(4, T - t0));
            many(W.row_ptr(r), X.row(t0).data(), cols, xs.data() + t0 * nb, nb, nt, y, cols);
            for (int t = 0; t < nt; ++t) Y(t0 + t, r) = y[t];
          }
      }, detail::rows_per_chunk(W, T));
      return;
    }
    const bool widen = !fused && dtype_is_quantized(W.dtype);  // matvec dequantizes a row, then an f32 dot
    const quant::RowDotFn dot = quant::row_kernels(widen ? DType::F32 : W.dtype).for_isa(isa);
    const quant::RowKernels& k = quant::row_kernels(W.dtype);
    pool.parallel_for(0, W.rows, [&](std::int64_t r0, std::int64_t r1) {
      std::vector<float>& row = detail::scratch_floats();
      if (widen) row.resize(std::size_t(cols));
      for (std::int64_t r = r0; r < r1; ++r) {
        const void* w = W.row_ptr(r);
        if (widen) k.dequantize(w, row.data(), cols);
        for (std::int64_t t = 0; t < T; ++t) {
          const float* x = X.row(t).data();
          Y(t, r) = fused ? fused(w, x, xs.data() + t * nb, cols) : dot(widen ? row.data() : w, x, cols);
        }
      }
    }, detail::rows_per_chunk(W, T));
    return;
  }

  // bf16 / f16, and quantized weights on the GEMM path: widen kRowBlock rows to a
  // float32 scratch block (exact), then GEMM.
  pool.parallel_for(0, W.rows, [&](std::int64_t r0, std::int64_t r1) {
    Matrix& block = detail::scratch_matrix();  // [<= kRowBlock, in]
    for (std::int64_t b0 = r0; b0 < r1; b0 += detail::kRowBlock) {
      const std::int64_t n = std::min(detail::kRowBlock, r1 - b0);
      block.resize(n, cols);
      detail::widen_rows(W, b0, n, block.data(), isa);
      Y.middleCols(b0, n).noalias() = X * block.transpose();
    }
  }, grain);
}

// Y [T, out] = X [T, in] . W^T
inline void matmul(const Weight& W, const Matrix& X, Matrix& Y) { matmul(W, X, Y, best_isa(), default_pool()); }

// Y [T, out] = X [T, in] . W^T, by matvec for one token and matmul for many.
inline void linear(const Weight& W, const Matrix& X, Matrix& Y, Isa isa, ThreadPool& pool, bool int16 = true) {
  if (X.rows() == 1) {
    Y.resize(1, W.rows);
    matvec(W, X.data(), Y.data(), isa, pool, int16);
  } else {
    matmul(W, X, Y, isa, pool, int16);
  }
}
inline void linear(const Weight& W, const Matrix& X, Matrix& Y) { linear(W, X, Y, best_isa(), default_pool()); }

// Several weights that read the same input: (*Y_i) = X . W_i^T for each pair
// (W_i, Y_i), as linear() does one by one. On the int16 path (quantized weights,
// Isa::avx512 or Isa::wasm_simd128) X is quantized once for all of them; for one token the rows of all the
// weights are also one parallel job: one wake-up of the pool instead of one per weight
// (decode: q/k/v, gate/up). Every output is computed as linear() computes it, so the
// results are bit for bit linear()'s.
inline void linear_many(const Matrix& X, const std::vector<std::pair<const Weight*, Matrix*>>& jobs, Isa isa,
                        ThreadPool& pool, bool int16 = true) {
  bool fused = jobs.size() > 1 && X.rows() > 0;
  for (const auto& j : jobs) fused = fused && detail::use_q16(*j.first, isa, int16) && j.first->cols == X.cols();
  if (!fused) {
    for (const auto& j : jobs) linear(*j.first, X, *j.second, isa, pool, int16);
    return;
  }
  if (detail::q16_few(*jobs.front().first, isa, int16, X.rows())) {  // a small decode batch, as matmul
    const std::int64_t T = X.rows();
    bool split = false;
    for (const auto& j : jobs) split = split || detail::q16_split(j.first->dtype, isa);
    const detail::Q16Scratch& xq = detail::quantize_q16(X.data(), T, X.cols(), isa, split);
    for (const auto& j : jobs) {
      detail::check_weight(*j.first, "linear_many");
      j.second->resize(T, j.first->rows);
      detail::matmul_q16_few(*j.first, xq, T, j.second->data(), pool, isa);
    }
    return;
  }
  if (X.rows() > 1) {  // many tokens: X quantized once, then each weight's int16 GEMM (as matmul)
    const std::int64_t T = X.rows();
    const detail::Q16Scratch& xq = detail::quantize_q16(X.data(), T, X.cols(), isa, false, &pool);
    const Q16Matrix Xq{xq.q.data(), xq.d.data(), xq.s.data(), T, X.cols()};
    for (const auto& j : jobs) {
      detail::check_weight(*j.first, "linear_many");
      j.second->resize(T, j.first->rows);
      detail::matmul_q16(*j.first, Xq, j.second->data(), detail::matmul_grain(*j.first, T), pool, isa);
    }
    return;
  }
  struct Part {
    const Weight* W;
    float* y;
    quant::Q16RowsFn dot_rows;
    std::int64_t first;  // its rows are first .. first + W->rows - 1 of the joint row range
  };
  std::vector<Part> parts;
  std::int64_t rows = 0, bytes = 0;
  bool split = false;
  for (const auto& j : jobs) {
    split = split || detail::q16_split(j.first->dtype, isa);
    detail::check_weight(*j.first, "linear_many");
    j.second->resize(1, j.first->rows);
    parts.push_back({j.first, j.second->data(), quant::q16_dot_rows(j.first->dtype, isa), rows});
    rows += j.first->rows;
    bytes += std::int64_t(j.first->row_bytes()) * j.first->rows;
  }
  const std::int64_t cols = X.cols();
  const quant::Q16Row xq = detail::quantize_q16(X.data(), 1, cols, isa, split).row(0, cols);
  // rows per chunk as rows_per_chunk() would pick for one weight of the average row size
  const std::int64_t avg_row = std::max<std::int64_t>(1, bytes / std::max<std::int64_t>(1, rows));
  const std::int64_t grain = std::int64_t(bytes) < std::int64_t(detail::kParallelMinBytes)
                                 ? rows
                                 : std::max<std::int64_t>(1, std::int64_t(detail::kChunkMinBytes) / avg_row);
  pool.parallel_for(0, rows, [&](std::int64_t r0, std::int64_t r1) {
    for (const Part& p : parts) {  // the piece of [r0, r1) that falls in each weight
      const std::int64_t a = std::max(r0, p.first), b = std::min(r1, p.first + p.W->rows);
      if (a < b) p.dot_rows(p.W->row_ptr(a - p.first), p.W->row_bytes(), b - a, xq, cols, p.y + (a - p.first));
    }
  }, grain);
}

inline void linear_many(const Matrix& X, const std::vector<std::pair<const Weight*, Matrix*>>& jobs) {
  linear_many(X, jobs, best_isa(), default_pool());
}

}  // namespace gemma3
