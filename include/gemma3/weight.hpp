// gemma3/weight.hpp -- a weight matrix as a view over checkpoint bytes.
//
//   W : [rows = out_features, cols = in_features], row-major, HF's nn.Linear layout,
//   element (r, c) at data + (r * cols + c) * dtype_size.
//
//   A GGUF block type stores each row as cols / block_size blocks (quant/), so the
//   row stride is dtype_row_bytes(dtype, cols), not cols * an element size.
//
// A core type: it knows the layout, not the block formats. The model never reads a
// Weight's bytes itself: its backend multiplies by it (backend.hpp), or it asks for
// one row in float32 (the embedding lookup: dequantize_row(W, r, out) in
// quant/quant.hpp). That is where the storage types (f32, bf16, f16, GGUF blocks)
// plug in.
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
};

}  // namespace gemma3
