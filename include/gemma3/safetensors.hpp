// gemma3/safetensors.hpp -- read a .safetensors file, validating everything first.
//
//   bytes [0, 8)        : N, little-endian uint64, the header length
//   bytes [8, 8 + N)    : JSON object { name: {"dtype", "shape", "data_offsets": [b, e]}, "__metadata__": {...} }
//   bytes [8 + N, end)  : the data; tensor `name` is bytes [8 + N + b, 8 + N + e)
//
// Before any tensor byte is touched: the header length must fit in the file, the
// JSON must parse, every dtype must be one safetensors defines, every shape entry
// a non-negative integer whose product does not overflow, every data_offsets pair
// ordered, inside the data section, of exactly numel * dtype size bytes, and not
// overlapping another tensor. Each failure throws SafetensorsError naming the
// file, the tensor or field, what was expected and what was found.
// Tensors are views into the mapped file (mapped_file.hpp): nothing is copied.
//
// Format: huggingface/safetensors. Pinned by tests/test_loader_errors.cpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "detail/json.hpp"
#include "mapped_file.hpp"

namespace gemma3 {

struct SafetensorsError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct TensorView {
  std::string name;
  std::string dtype;                // as written: "F32", "BF16", "F16", "I64", ...
  std::vector<std::int64_t> shape;  // [d0, d1, ...]
  const unsigned char* data = nullptr;
  std::size_t nbytes = 0;

  std::int64_t numel() const {
    std::int64_t n = 1;
    for (std::int64_t d : shape) n *= d;
    return n;
  }
};

inline std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Bytes per element of each safetensors dtype; 0 if the name is unknown.
inline std::size_t safetensors_dtype_size(const std::string& dtype) {
  static const std::map<std::string, std::size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
      {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"F64", 8},     {"I64", 8}, {"U64", 8}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

class SafetensorsFile {
 public:
  static constexpr std::uint64_t kMaxHeaderBytes = 100000000;  // the reference reader's limit (100 MB)

  explicit SafetensorsFile(const std::string& path) : SafetensorsFile(MappedFile::open(path)) {}

  explicit SafetensorsFile(std::shared_ptr<const MappedFile> file) : file_(std::move(file)) { parse(); }

  const std::string& path() const { return file_->path(); }
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::shared_ptr<const void> storage() const { return file_; }

  const TensorView* find(const std::string& name) const {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
  }
  const TensorView& at(const std::string& name) const {
    const TensorView* t = find(name);
    if (!t) throw SafetensorsError(path() + ": no tensor named '" + name + "'");
    return *t;
  }

 private:
  [[noreturn]] void fail(const std::string& what, const std::string& expected, const std::string& found) const {
    throw SafetensorsError(path() + ": " + what + ": expected " + expected + ", found " + found);
  }

  void parse() {
    const std::size_t size = file_->size();
    if (size < 8) fail("header length", "at least 8 bytes", "a file of " + std::to_string(size) + " bytes");
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | file_->data()[i];
    if (n > kMaxHeaderBytes)
      fail("header length", "at most " + std::to_string(kMaxHeaderBytes) + " bytes", std::to_string(n));
    if (n > size - 8)
      fail("header length", "at most " + std::to_string(size - 8) + " bytes (the rest of the file)",
           std::to_string(n) + " (the file is truncated or the length is corrupt)");
    const char* header = reinterpret_cast<const char*>(file_->data() + 8);
    const unsigned char* data = file_->data() + 8 + n;
    const std::uint64_t data_size = size - 8 - n;

    detail::Json root;
    try {
      root = detail::parse_json(header, std::size_t(n));
    } catch (const detail::JsonError& e) {
      throw SafetensorsError(path() + ": header: " + e.what());
    }
    if (!root.is_object()) fail("header", "a JSON object", root.kind_name());

    for (const auto& kv : root.object) {
      const std::string& name = kv.first;
      const detail::Json& info = kv.second;
      if (name == "__metadata__") {
        if (!info.is_object()) fail("__metadata__", "an object of strings", info.kind_name());
        for (const auto& m : info.object) {
          if (!m.second.is_string()) fail("__metadata__." + m.first, "a string", m.second.kind_name());
          metadata_[m.first] = m.second.string;
        }
        continue;
      }
      const std::string where = "tensor '" + name + "'";
      if (!info.is_object()) fail(where, "an object", info.kind_name());
      TensorView t;
      t.name = name;

      const detail::Json* dtype = info.find("dtype");
      if (!dtype || !dtype->is_string()) fail(where + " dtype", "a string", dtype ? dtype->kind_name() : "nothing");
      t.dtype = dtype->string;
      const std::size_t esize = safetensors_dtype_size(t.dtype);
      if (esize == 0) fail(where + " dtype", "a safetensors dtype (F32, F16, BF16, I64, ...)", "\"" + t.dtype + "\"");

      const detail::Json* shape = info.find("shape");
      if (!shape || !shape->is_array()) fail(where + " shape", "a list of integers", shape ? shape->kind_name() : "nothing");
      std::uint64_t numel = 1;
      for (const detail::Json& d : shape->array) {
        // range first: converting an out-of-range double (1e3081 parses as inf) is undefined
        if (!d.is_number() || !(d.number >= 0 && d.number <= 9.0e15) || d.number != double(std::int64_t(d.number)))
          fail(where + " shape", "non-negative integers", d.is_number() ? std::to_string(d.number) : d.kind_name());
        const std::uint64_t dim = std::uint64_t(d.number);
        if (dim != 0 && numel > (std::uint64_t(1) << 62) / dim)
          fail(where + " shape", "a product that fits in 62 bits", "a product that overflows at dimension " + std::to_string(dim));
        numel *= dim;
        t.shape.push_back(std::int64_t(dim));
      }

      const detail::Json* off = info.find("data_offsets");
      if (!off || !off->is_array() || off->array.size() != 2)
        fail(where + " data_offsets", "a list [begin, end]", off ? off->kind_name() : "nothing");
      std::uint64_t be[2];
      for (int i = 0; i < 2; ++i) {
        const detail::Json& o = off->array[std::size_t(i)];
        if (!o.is_number() || !(o.number >= 0 && o.number <= 9.0e15) || o.number != double(std::int64_t(o.number)))
          fail(where + " data_offsets", "non-negative integers", o.is_number() ? std::to_string(o.number) : o.kind_name());
        be[i] = std::uint64_t(o.number);
      }
      if (be[0] > be[1])
        fail(where + " data_offsets", "begin <= end", "[" + std::to_string(be[0]) + ", " + std::to_string(be[1]) + "]");
      if (be[1] > data_size)
        fail(where + " data_offsets", "end <= " + std::to_string(data_size) + " (the data section)",
             std::to_string(be[1]) + " (the file is truncated or the offsets are corrupt)");
      if (numel > data_size / esize)  // also keeps numel * esize from wrapping around
        fail(where + " byte size", "at most " + std::to_string(data_size) + " (the data section)",
             std::to_string(numel) + " elements of " + std::to_string(esize) + " bytes, shape " + shape_string(t.shape));
      if (be[1] - be[0] != numel * esize)
        fail(where + " byte size", std::to_string(numel * esize) + " (" + shape_string(t.shape) + " x " +
             std::to_string(esize) + " bytes)", std::to_string(be[1] - be[0]));
      t.data = data + be[0];
      t.nbytes = std::size_t(be[1] - be[0]);
      if (index_.count(name)) fail(where, "a unique name", "a duplicate");
      index_[name] = tensors_.size();
      tensors_.push_back(std::move(t));
    }

    // No two tensors may share bytes.
    std::vector<const TensorView*> by_offset;
    for (const TensorView& t : tensors_)
      if (t.nbytes) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(), [](const TensorView* a, const TensorView* b) { return a->data < b->data; });
    for (std::size_t i = 1; i < by_offset.size(); ++i)
      if (by_offset[i]->data < by_offset[i - 1]->data + by_offset[i - 1]->nbytes)
        fail("tensor '" + by_offset[i]->name + "' data_offsets", "bytes not shared with another tensor",
             "an overlap with tensor '" + by_offset[i - 1]->name + "'");
  }

  std::shared_ptr<const MappedFile> file_;
  std::vector<TensorView> tensors_;
  std::map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace gemma3
