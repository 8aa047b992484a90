// gemma3/kernels/matmul.hpp -- the one entry point for y = x . W^T.
//
//   matvec:  y[r]    = sum_c W[r, c] * x[c]           W [out, in], x [in],    y [out]
//   matmul:  Y[t, r] = sum_c W[r, c] * X[t, c]        X [T, in],             Y [T, out]
//   linear:  matvec when T == 1 (decode), matmul otherwise (prefill).
//
// float32 weights are used in place through Eigen::Map. bf16/f16 weights are
// widened to float32 a block of rows at a time into a small scratch buffer and
// multiplied there; no full float32 copy of a weight ever exists, so a bf16
// checkpoint costs its file size in memory, not twice that. (The conversion costs
// a little speed; the quantized-kernel work replaces this path with SIMD kernels
// that read the stored format directly.)
//
// matvec_scalar is the plain-loop twin every faster path is tested against.
// Pinned by tests/test_kernels.cpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../tensor.hpp"
#include "weight.hpp"

namespace gemma3 {

// Scalar reference: double accumulation, no Eigen.
inline void matvec_scalar(const Weight& W, const float* x, float* y) {
  std::vector<float> row(std::size_t(W.cols));
  for (std::int64_t r = 0; r < W.rows; ++r) {
    W.row_to_f32(r, row.data());
    double acc = 0.0;
    for (std::int64_t c = 0; c < W.cols; ++c) acc += double(row[std::size_t(c)]) * double(x[c]);
    y[r] = float(acc);
  }
}

namespace detail {
constexpr std::int64_t kRowBlock = 64;  // rows widened per step for bf16/f16 weights

inline ConstMatrixMap f32_view(const Weight& W) {
  return ConstMatrixMap(static_cast<const float*>(W.data), W.rows, W.cols);
}
}  // namespace detail

// Y [T, out] = X [T, in] . W^T
inline void matmul(const Weight& W, const Matrix& X, Matrix& Y) {
  Y.resize(X.rows(), W.rows);
  if (W.dtype == DType::F32) {
    Y.noalias() = X * detail::f32_view(W).transpose();
    return;
  }
  Matrix block;  // [kRowBlock, in] float32 copy of a few weight rows
  for (std::int64_t r0 = 0; r0 < W.rows; r0 += detail::kRowBlock) {
    const std::int64_t n = std::min(detail::kRowBlock, W.rows - r0);
    block.resize(n, W.cols);
    to_f32(W.dtype, W.row_ptr(r0), block.data(), std::size_t(n * W.cols));
    Y.middleCols(r0, n).noalias() = X * block.transpose();
  }
}

// y [out] = W [out, in] . x [in]
inline void matvec(const Weight& W, const float* x, float* y) {
  Eigen::Map<const Vector> xv(x, W.cols);
  Eigen::Map<Vector> yv(y, W.rows);
  if (W.dtype == DType::F32) {
    yv.noalias() = detail::f32_view(W) * xv;
    return;
  }
  Matrix block;
  for (std::int64_t r0 = 0; r0 < W.rows; r0 += detail::kRowBlock) {
    const std::int64_t n = std::min(detail::kRowBlock, W.rows - r0);
    block.resize(n, W.cols);
    to_f32(W.dtype, W.row_ptr(r0), block.data(), std::size_t(n * W.cols));
    yv.segment(r0, n).noalias() = block * xv;
  }
}

// Y [T, out] = X [T, in] . W^T, by matvec for one token and matmul for many.
inline void linear(const Weight& W, const Matrix& X, Matrix& Y) {
  if (X.rows() == 1) {
    Y.resize(1, W.rows);
    matvec(W, X.data(), Y.data());
  } else {
    matmul(W, X, Y);
  }
}

}  // namespace gemma3
