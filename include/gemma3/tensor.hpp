// gemma3/tensor.hpp -- the handful of Eigen types the model is written in.
//
// Activations are float32 and row-major, one token per row, so a [T, H] matrix
// reads like the reference's hidden_states[0] (batch dropped). Weights are NOT
// Eigen matrices: they are views over the checkpoint file in whatever dtype it
// stores (see weight.hpp); the model only ever multiplies by them through
// kernels/matmul.hpp.
//
// Rule for readers: never capture an Eigen expression in `auto` (it can dangle);
// name the concrete type, as every function here does.
#pragma once

// Before Eigen: when the build enables AVX, Eigen includes <immintrin.h> itself, and
// this include of it is the one that silences GCC 12's false -Wuninitialized there.
#include "detail/immintrin.hpp"

#include <Eigen/Core>

namespace gemma3 {

// [rows, cols], row-major: row t is token t.
using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
// [n]
using Vector = Eigen::Matrix<float, Eigen::Dynamic, 1>;
// [1, n] -- one token's activations when a row view is needed.
using RowVector = Eigen::Matrix<float, 1, Eigen::Dynamic, Eigen::RowMajor>;

using MatrixMap = Eigen::Map<Matrix>;
using ConstMatrixMap = Eigen::Map<const Matrix>;

}  // namespace gemma3
