// tests/fixture_helpers.hpp -- reading the reference fixtures and comparing tensors.
//
// Fixtures (tests/fixtures/NAME/) are written by tests/reference/make_fixtures.py
// from transformers in float32 with eager attention: a checkpoint folder plus
// expected.safetensors (input_ids, embeddings, layer_outputs, final_hidden, logits,
// greedy_continuation, greedy_logits).
//
// Error metric used throughout: relative error = max|ours - ref| / max|ref| over
// the whole tensor (a norm-wise relative error; element-wise ratios are
// meaningless near zero). The bound is 1e-4.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <sstream>
#include <string>
#include <vector>

#include "gemma3/safetensors.hpp"
#include "gemma3/tensor.hpp"

namespace fixtures {

inline std::string dir() { return GEMMA3_FIXTURES_DIR; }
inline std::string path(const std::string& name) { return dir() + "/" + name; }

// A float32 tensor as [shape[0], rest] (or [1, n] for a vector).
inline gemma3::Matrix matrix(const gemma3::SafetensorsFile& f, const std::string& name) {
  const gemma3::TensorView& t = f.at(name);
  if (t.dtype != "F32") throw std::runtime_error(name + " is not F32");
  const std::int64_t rows = t.shape.size() > 1 ? t.shape[0] : 1;
  const std::int64_t cols = t.numel() / std::max<std::int64_t>(rows, 1);
  gemma3::Matrix m(rows, cols);
  std::memcpy(m.data(), t.data, t.nbytes);
  return m;
}

// Slice i of a [n, rows, cols] float32 tensor.
inline gemma3::Matrix slice(const gemma3::SafetensorsFile& f, const std::string& name, std::int64_t i) {
  const gemma3::TensorView& t = f.at(name);
  const std::int64_t rows = t.shape.at(1), cols = t.numel() / (t.shape[0] * t.shape[1]);
  gemma3::Matrix m(rows, cols);
  std::memcpy(m.data(), t.data + std::size_t(i * rows * cols) * 4, std::size_t(rows * cols) * 4);
  return m;
}

inline std::vector<int> ids(const gemma3::SafetensorsFile& f, const std::string& name) {
  const gemma3::TensorView& t = f.at(name);
  if (t.dtype != "I64") throw std::runtime_error(name + " is not I64");
  std::vector<int> out(std::size_t(t.numel()));
  for (std::size_t i = 0; i < out.size(); ++i) {
    std::int64_t v;
    std::memcpy(&v, t.data + 8 * i, 8);
    out[i] = int(v);
  }
  return out;
}

struct Diff {
  double max_abs = 0;      // max |ours - ref|
  double max_ref = 0;      // max |ref|
  double rel = 0;          // max_abs / max_ref
  Eigen::Index row = -1, col = -1;
  std::string str() const {
    std::ostringstream os;
    os << "max|diff| = " << max_abs << " at (" << row << ", " << col << "), max|ref| = " << max_ref
       << ", relative error = " << rel;
    return os.str();
  }
};

inline Diff compare(const gemma3::Matrix& ours, const gemma3::Matrix& ref) {
  Diff d;
  if (ours.rows() != ref.rows() || ours.cols() != ref.cols()) {
    d.rel = d.max_abs = INFINITY;
    return d;
  }
  for (Eigen::Index r = 0; r < ref.rows(); ++r)
    for (Eigen::Index c = 0; c < ref.cols(); ++c) {
      const double a = std::fabs(double(ours(r, c)) - double(ref(r, c)));
      if (!(a <= d.max_abs)) { d.max_abs = a; d.row = r; d.col = c; }  // NaN counts as worst
      d.max_ref = std::max(d.max_ref, std::fabs(double(ref(r, c))));
    }
  d.rel = d.max_ref > 0 ? d.max_abs / d.max_ref : d.max_abs;
  return d;
}

inline int argmax(const gemma3::Matrix& logits, Eigen::Index row) {
  Eigen::Index best;
  logits.row(row).maxCoeff(&best);
  return int(best);
}

}  // namespace fixtures
