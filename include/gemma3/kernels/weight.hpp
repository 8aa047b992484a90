// gemma3/kernels/weight.hpp -- a weight matrix as a view over checkpoint bytes.
//
//   W : [rows = out_features, cols = in_features], row-major, HF's nn.Linear layout,
//   element (r, c) at data + (r * cols + c) * dtype_size.
//
// The model never reads a Weight's bytes itself: it hands the Weight to matvec /
// matmul (kernels/matmul.hpp) or asks for one row (the embedding lookup). That is
// the seam where later storage types (GGUF blocks) plug in.
// Pinned by tests/test_kernels.cpp.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dtype.hpp"

namespace gemma3 {

struct Weight {
  DType dtype = DType::F32;
  const void* data = nullptr;  // not owned: points into a mapped file or a loader-owned buffer
  std::int64_t rows = 0;       // out_features
  std::int64_t cols = 0;       // in_features

  std::size_t row_bytes() const { return dtype_row_bytes(dtype, std::size_t(cols)); }
  const void* row_ptr(std::int64_t r) const {
    return static_cast<const unsigned char*>(data) + std::size_t(r) * row_bytes();
  }
  // Widen row r ([cols]) to float32.
  void row_to_f32(std::int64_t r, float* out) const { to_f32(dtype, row_ptr(r), out, std::size_t(cols)); }
};

}  // namespace gemma3
