// gemma3/gguf.hpp -- read a GGUF file (llama.cpp's model format), validating everything first.
//
//   magic "GGUF" | version u32 (2 or 3) | tensor_count u64 | kv_count u64
//   kv_count  x  { key: string, value_type: u32, value }
//   tensor_count x { name: string, n_dims: u32, dims: n_dims x u64 (ne0 first), ggml_type: u32, offset: u64 }
//   zero padding up to a multiple of ALIGNMENT (general.alignment, default 32)
//   tensor data: tensor i at data_offset + offset_i, each offset a multiple of ALIGNMENT
//
//   string = u64 byte length + UTF-8 bytes (no NUL); array = element type u32 + count u64 +
//   the elements (arrays of arrays are allowed by the spec); all numbers little-endian.
//
// Before any tensor byte is touched: the magic, a supported version (v1 is rejected;
// a byte-swapped version means a big-endian file), counts, every string and array
// length against the bytes left (and against absurd sizes), value types, bool bytes,
// unique non-empty keys, general.alignment (a u32 power of two), and for each tensor a
// unique name of 1..63 bytes, 1..4 dimensions each >= 1 whose product fits int64, a
// ggml type whose block layout is known, ne0 a multiple of its block size, an aligned
// offset, and its bytes (by block type) inside the file and not shared with another
// tensor. Each failure throws GgufError naming the file, the field or tensor, what was
// expected and what was found. Tensors are views into the mapped file: nothing is copied.
//
// Format and rules: the GGUF spec (docs/gguf.md in the ggml repository) and ggml's own
// reader, src/gguf.cpp. Block sizes: ggml's type_traits (src/ggml.c; llama.cpp's
// gguf-py/gguf/constants.py GGML_QUANT_SIZES). Pinned by tests/test_gguf.cpp,
// tests/test_gguf_errors.cpp and the fuzz target fuzz/fuzz_gguf.cpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "dtype.hpp"
#include "mapped_file.hpp"

namespace gemma3 {

struct GgufError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Metadata value types (the GGUF spec's gguf_metadata_value_type).
enum class GgufType : std::uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12
};

inline const char* gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::UINT8: return "UINT8";
    case GgufType::INT8: return "INT8";
    case GgufType::UINT16: return "UINT16";
    case GgufType::INT16: return "INT16";
    case GgufType::UINT32: return "UINT32";
    case GgufType::INT32: return "INT32";
    case GgufType::FLOAT32: return "FLOAT32";
    case GgufType::BOOL: return "BOOL";
    case GgufType::STRING: return "STRING";
    case GgufType::ARRAY: return "ARRAY";
    case GgufType::UINT64: return "UINT64";
    case GgufType::INT64: return "INT64";
    case GgufType::FLOAT64: return "FLOAT64";
  }
  return "?";
}

// Bytes of a fixed-size value type; 0 for STRING and ARRAY.
inline std::size_t gguf_scalar_size(GgufType t) {
  switch (t) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::BOOL: return 1;
    case GgufType::UINT16: case GgufType::INT16: return 2;
    case GgufType::UINT32: case GgufType::INT32: case GgufType::FLOAT32: return 4;
    case GgufType::UINT64: case GgufType::INT64: case GgufType::FLOAT64: return 8;
    case GgufType::STRING: case GgufType::ARRAY: return 0;
  }
  return 0;
}

inline bool gguf_type_is_integer(GgufType t) {
  switch (t) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::UINT16: case GgufType::INT16:
    case GgufType::UINT32: case GgufType::INT32: case GgufType::UINT64: case GgufType::INT64: return true;
    default: return false;
  }
}
inline bool gguf_type_is_float(GgufType t) { return t == GgufType::FLOAT32 || t == GgufType::FLOAT64; }

namespace detail {
inline std::uint64_t load_le(const unsigned char* p, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = n; i-- > 0;) v = (v << 8) | p[i];
  return v;
}
inline std::int64_t sign_extend(std::uint64_t bits, std::size_t bytes) {
  if (bytes >= 8) return std::int64_t(bits);
  const std::uint64_t sign = std::uint64_t(1) << (8 * bytes - 1);
  return std::int64_t((bits ^ sign) - sign);  // two's complement, no implementation-defined shifts
}
}  // namespace detail

// One metadata value. Numbers and bools keep their raw little-endian bits; read them
// with as_int / as_double / as_bool. Arrays of numbers or bools stay in the file
// (`raw`, count elements back to back); arrays of strings and of arrays are unpacked.
// `raw` points into the file: a GgufValue is valid while its GgufFile (or storage()) lives.
struct GgufValue {
  GgufType type = GgufType::UINT8;
  std::uint64_t bits = 0;              // scalar number / bool: its bytes, zero-extended
  std::string string;                  // STRING
  GgufType element_type = GgufType::UINT8;  // ARRAY
  std::uint64_t count = 0;                  // ARRAY: number of elements
  const unsigned char* raw = nullptr;       // ARRAY of numbers / bools: count * size bytes
  std::vector<std::string> strings;         // ARRAY of STRING
  std::vector<GgufValue> arrays;            // ARRAY of ARRAY

  bool is_array() const { return type == GgufType::ARRAY; }
  bool is_integer() const { return gguf_type_is_integer(type); }
  bool is_float() const { return gguf_type_is_float(type); }

  // "UINT32", "ARRAY[STRING]", "ARRAY[ARRAY[INT8]]" (an empty nested array shows its declared type).
  std::string type_string() const {
    if (type != GgufType::ARRAY) return gguf_type_name(type);
    if (element_type == GgufType::ARRAY && !arrays.empty()) return "ARRAY[" + arrays.front().type_string() + "]";
    return std::string("ARRAY[") + gguf_type_name(element_type) + "]";
  }

  // An integer scalar that fits int64 (UINT64 above INT64_MAX does not).
  std::optional<std::int64_t> as_int() const {
    if (!is_integer()) return std::nullopt;
    if (type == GgufType::UINT64) {
      if (bits > std::uint64_t(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
      return std::int64_t(bits);
    }
    if (type == GgufType::INT8 || type == GgufType::INT16 || type == GgufType::INT32 || type == GgufType::INT64)
      return detail::sign_extend(bits, gguf_scalar_size(type));
    return std::int64_t(bits);
  }
  // A float scalar, or an integer one as a double.
  std::optional<double> as_double() const {
    if (type == GgufType::FLOAT32) {
      const std::uint32_t b = std::uint32_t(bits);
      float f;
      std::memcpy(&f, &b, 4);
      return double(f);
    }
    if (type == GgufType::FLOAT64) {
      double d;
      std::memcpy(&d, &bits, 8);
      return d;
    }
    if (type == GgufType::UINT64) return double(bits);
    if (const auto i = as_int()) return double(*i);
    return std::nullopt;
  }
  std::optional<bool> as_bool() const {
    if (type != GgufType::BOOL) return std::nullopt;
    return bits != 0;
  }

  // Element i of an array as a value of its own (a copy). Requires i < count.
  GgufValue element(std::uint64_t i) const {
    if (!is_array() || i >= count) throw std::out_of_range("GgufValue::element: index out of range");
    if (element_type == GgufType::ARRAY) return arrays[std::size_t(i)];
    if (element_type != GgufType::STRING) return number_at(i);
    GgufValue v;
    v.type = GgufType::STRING;
    v.string = strings[std::size_t(i)];
    return v;
  }

  // Element i (< count) of an array of numbers or bools: element() without its checks,
  // for loops over every element (262144 token scores and types).
  GgufValue number_at(std::uint64_t i) const noexcept {
    GgufValue v;
    v.type = element_type;
    const std::size_t n = gguf_scalar_size(element_type);
    v.bits = detail::load_le(raw + std::size_t(i) * n, n);
    return v;
  }

  // A short printable form: 32768, 1e-06, "llama", true, ["a", "b", ... (262144 in all)].
  std::string summary(std::size_t max_elements = 8, std::size_t max_string = 64) const {
    auto quote = [max_string](const std::string& s) {
      std::string out = "\"";
      for (std::size_t i = 0; i < s.size() && i < max_string; ++i) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c == '"' || c == '\\') { out += '\\'; out += char(c); }
        else if (c == '\n') out += "\\n";
        else if (c < 0x20 || c == 0x7f) { char buf[8]; std::snprintf(buf, sizeof buf, "\\x%02x", c); out += buf; }
        else out += char(c);
      }
      if (s.size() > max_string) out += "...";
      return out + "\"";
    };
    if (type == GgufType::STRING) return quote(string);
    if (type == GgufType::BOOL) return bits ? "true" : "false";
    if (is_float()) {
      std::ostringstream os;
      os.precision(type == GgufType::FLOAT32 ? 9 : 17);
      os << *as_double();
      return os.str();
    }
    if (type == GgufType::UINT64) return std::to_string(bits);
    if (is_integer()) return std::to_string(*as_int());
    std::string s = "[";
    for (std::uint64_t i = 0; i < count && i < max_elements; ++i)
      s += (i ? ", " : "") + element(i).summary(max_elements, max_string);
    if (count > max_elements) s += ", ... (" + std::to_string(count) + " in all)";
    return s + "]";
  }
};

// One tensor's info record and its bytes.
struct GgufTensorInfo {
  std::string name;
  std::uint32_t ggml_type = 0;
  std::vector<std::uint64_t> dims;  // ne0 first (ne0 = row length: in_features of a weight)
  std::uint64_t offset = 0;         // relative to the data section
  const unsigned char* data = nullptr;
  std::size_t nbytes = 0;

  std::uint64_t n_elements() const {
    std::uint64_t n = 1;
    for (std::uint64_t d : dims) n *= d;
    return n;
  }
};

// ggml's storage types: elements per block and bytes per block (the GGUF spec's ggml_type
// ids; llama.cpp's gguf-py/gguf/constants.py GGML_QUANT_SIZES; Q8_1 as in ggml's
// src/ggml-common.h, 2 x f16 + 32).
// Ids 4, 5, 31-33, 36-38 were removed from ggml; newer ids this table does not know
// are rejected as unknown.
struct GgmlTypeInfo {
  const char* name;
  std::uint32_t block_size;  // elements per block (1 for plain types)
  std::uint32_t type_size;   // bytes per block
};

inline const GgmlTypeInfo* ggml_type_info(std::uint32_t type) {
  static const GgmlTypeInfo kTable[] = {
      {"F32", 1, 4},        {"F16", 1, 2},       {"Q4_0", 32, 18},    {"Q4_1", 32, 20},   {nullptr, 0, 0},
      {nullptr, 0, 0},      {"Q5_0", 32, 22},    {"Q5_1", 32, 24},    {"Q8_0", 32, 34},   {"Q8_1", 32, 36},
      {"Q2_K", 256, 84},    {"Q3_K", 256, 110},  {"Q4_K", 256, 144},  {"Q5_K", 256, 176}, {"Q6_K", 256, 210},
      {"Q8_K", 256, 292},   {"IQ2_XXS", 256, 66}, {"IQ2_XS", 256, 74}, {"IQ3_XXS", 256, 98}, {"IQ1_S", 256, 50},
      {"IQ4_NL", 32, 18},   {"IQ3_S", 256, 110}, {"IQ2_S", 256, 82},  {"IQ4_XS", 256, 136}, {"I8", 1, 1},
      {"I16", 1, 2},        {"I32", 1, 4},       {"I64", 1, 8},       {"F64", 1, 8},      {"IQ1_M", 256, 56},
      {"BF16", 1, 2},       {nullptr, 0, 0},     {nullptr, 0, 0},     {nullptr, 0, 0},    {"TQ1_0", 256, 54},
      {"TQ2_0", 256, 66},   {nullptr, 0, 0},     {nullptr, 0, 0},     {nullptr, 0, 0},    {"MXFP4", 32, 17},
      {"NVFP4", 64, 36},    {"Q1_0", 128, 18},
  };
  if (type >= sizeof(kTable) / sizeof(kTable[0]) || kTable[type].name == nullptr) return nullptr;
  return &kTable[type];
}

inline std::string ggml_type_name(std::uint32_t type) {
  const GgmlTypeInfo* t = ggml_type_info(type);
  return t ? std::string(t->name) : "type id " + std::to_string(type);
}

// The library's DType for a ggml type id, or nullopt for types it cannot multiply.
inline std::optional<DType> dtype_from_ggml(std::uint32_t ggml_type) {
  switch (ggml_type) {
    case 0: return DType::F32;
    case 1: return DType::F16;
    case 2: return DType::Q4_0;
    case 3: return DType::Q4_1;
    case 6: return DType::Q5_0;
    case 7: return DType::Q5_1;
    case 8: return DType::Q8_0;
    case 12: return DType::Q4_K;
    case 13: return DType::Q5_K;
    case 14: return DType::Q6_K;
    case 30: return DType::BF16;
    default: return std::nullopt;
  }
}

inline std::string gguf_dims_string(const std::vector<std::uint64_t>& dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

class GgufFile {
 public:
  static constexpr std::uint32_t kDefaultAlignment = 32;          // GGUF_DEFAULT_ALIGNMENT
  static constexpr std::uint64_t kMaxStringBytes = 1ull << 30;    // ggml's cap on one string (1 GiB)
  static constexpr std::uint64_t kMaxArrayElements = 1ull << 30;  // ggml's cap on one array's count
  static constexpr int kMaxArrayDepth = 16;                       // arrays of arrays, nested at most this deep
  static constexpr std::size_t kMaxTensorName = 63;               // GGML_MAX_NAME - 1
  static constexpr std::uint32_t kMaxDims = 4;                    // GGML_MAX_DIMS

  explicit GgufFile(const std::string& path) : GgufFile(MappedFile::open(path)) {}
  explicit GgufFile(std::shared_ptr<const MappedFile> file) : file_(std::move(file)) { parse(); }

  std::uint32_t version() const { return version_; }
  std::size_t alignment() const { return alignment_; }
  const std::string& path() const { return file_->path(); }
  std::size_t data_offset() const { return data_offset_; }  // start of the tensor data section
  std::shared_ptr<const void> storage() const { return file_; }
  const MappedFile& file() const { return *file_; }

  // Every key and value, in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }

  const GgufValue* find(const std::string& key) const {
    const auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
  }

  // Typed getters: each throws GgufError naming the file, the key, the expected type
  // and what was found (the type, a value out of range, or "nothing").
  std::string get_string(const std::string& key) const {
    const GgufValue& v = need(key, "a STRING");
    if (v.type != GgufType::STRING) bad_key(key, "a STRING", v.type_string());
    return v.string;
  }
  // Any integer type; UINT64 values above INT64_MAX are refused.
  std::int64_t get_int(const std::string& key) const {
    const GgufValue& v = need(key, "an integer");
    if (!v.is_integer()) bad_key(key, "an integer", v.type_string());
    const auto i = v.as_int();
    if (!i) bad_key(key, "an integer that fits int64", std::to_string(v.bits));
    return *i;
  }
  // FLOAT32 / FLOAT64, or an integer.
  double get_float(const std::string& key) const {
    const GgufValue& v = need(key, "a number");
    const auto d = v.as_double();
    if (!d) bad_key(key, "a number (FLOAT32, FLOAT64 or an integer)", v.type_string());
    return *d;
  }
  bool get_bool(const std::string& key) const {
    const GgufValue& v = need(key, "a BOOL");
    if (v.type != GgufType::BOOL) bad_key(key, "a BOOL", v.type_string());
    return v.bits != 0;
  }
  std::vector<std::string> get_string_array(const std::string& key) const {
    const GgufValue& v = need(key, "an ARRAY[STRING]");
    if (!v.is_array() || v.element_type != GgufType::STRING) bad_key(key, "an ARRAY[STRING]", v.type_string());
    return v.strings;
  }
  // Elements of FLOAT32 / FLOAT64 (or integer) arrays, as float.
  std::vector<float> get_float_array(const std::string& key) const {
    const GgufValue& v = need(key, "an ARRAY[FLOAT32]");
    if (!v.is_array() || !(gguf_type_is_float(v.element_type) || gguf_type_is_integer(v.element_type)))
      bad_key(key, "an ARRAY[FLOAT32] (or another array of numbers)", v.type_string());
    std::vector<float> out(std::size_t(v.count));
    for (std::uint64_t i = 0; i < v.count; ++i) out[std::size_t(i)] = float(*v.number_at(i).as_double());
    return out;
  }
  // Elements of an integer array, each of which must fit int32.
  std::vector<std::int32_t> get_int_array(const std::string& key) const {
    const GgufValue& v = need(key, "an ARRAY[INT32]");
    if (!v.is_array() || !gguf_type_is_integer(v.element_type))
      bad_key(key, "an ARRAY[INT32] (or another array of integers)", v.type_string());
    std::vector<std::int32_t> out(std::size_t(v.count));
    for (std::uint64_t i = 0; i < v.count; ++i) {
      const GgufValue e = v.number_at(i);
      const auto x = e.as_int();
      if (!x || *x < std::numeric_limits<std::int32_t>::min() || *x > std::numeric_limits<std::int32_t>::max())
        bad_key(key + "[" + std::to_string(i) + "]", "an integer that fits int32", e.summary());
      out[std::size_t(i)] = std::int32_t(*x);
    }
    return out;
  }

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const {
    const auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
  }

 private:
  // ---- errors -----------------------------------------------------------------
  [[noreturn]] void fail(const std::string& what, const std::string& expected, const std::string& found) const {
    throw GgufError(path() + ": " + what + ": expected " + expected + ", found " + found);
  }
  [[noreturn]] void bad_key(const std::string& key, const std::string& expected, const std::string& found) const {
    fail("metadata '" + key + "'", expected, found);
  }
  const GgufValue& need(const std::string& key, const char* expected) const {
    const GgufValue* v = find(key);
    if (!v) bad_key(key, expected, "nothing (the key is missing)");
    return *v;
  }

  // ---- a bounds-checked cursor ------------------------------------------------
  std::size_t left() const { return file_->size() - pos_; }
  void need_bytes(std::uint64_t n, const std::string& what) const {
    if (n > left())
      fail(what + " at byte " + std::to_string(pos_), std::to_string(n) + " bytes",
           std::to_string(left()) + " (the file is truncated)");
  }
  std::uint64_t read_uint(std::size_t n, const std::string& what) {
    need_bytes(n, what);
    const std::uint64_t v = detail::load_le(file_->data() + pos_, n);
    pos_ += n;
    return v;
  }
  std::uint32_t u32(const std::string& what) { return std::uint32_t(read_uint(4, what)); }
  std::uint64_t u64(const std::string& what) { return read_uint(8, what); }

  // "metadata 'key'" + element i -> "metadata 'key[i]'".
  static std::string indexed(const std::string& what, std::uint64_t i) {
    const std::string idx = "[" + std::to_string(i) + "]";
    if (!what.empty() && what.back() == '\'') return what.substr(0, what.size() - 1) + idx + "'";
    return what + idx;
  }

  // A GGUF string at the cursor. `what` (with "[index]" when index >= 0) names it in
  // errors; the label is only built when something is wrong.
  std::string read_string(const std::string& what, std::int64_t index = -1) {
    auto label = [&] { return index < 0 ? what : indexed(what, std::uint64_t(index)); };
    const std::size_t at = pos_;
    if (left() < 8) need_bytes(8, label() + " length");
    const std::uint64_t n = detail::load_le(file_->data() + pos_, 8);
    pos_ += 8;
    if (n > kMaxStringBytes)
      fail(label() + " length at byte " + std::to_string(at), "at most " + std::to_string(kMaxStringBytes) + " bytes",
           std::to_string(n) + " (absurd)");
    if (n > left())
      fail(label() + " length at byte " + std::to_string(at),
           "at most " + std::to_string(left()) + " bytes (the rest of the file)",
           std::to_string(n) + " (the string runs past the end of the file)");
    std::string s(reinterpret_cast<const char*>(file_->data() + pos_), std::size_t(n));
    pos_ += std::size_t(n);
    return s;
  }

  GgufType read_type(const std::string& what) {
    const std::uint32_t t = u32(what);
    if (t > std::uint32_t(GgufType::FLOAT64))
      fail(what, "a GGUF value type 0..12", std::to_string(t) + " (unknown)");
    return GgufType(t);
  }

  // The value of `type` at the cursor; `what` names it in errors ("metadata 'key'").
  GgufValue read_value(GgufType type, const std::string& what, int depth) {
    GgufValue v;
    v.type = type;
    if (type == GgufType::STRING) {
      v.string = read_string(what);
      return v;
    }
    if (type != GgufType::ARRAY) {
      const std::size_t n = gguf_scalar_size(type);
      v.bits = read_uint(n, what);
      if (type == GgufType::BOOL && v.bits > 1) fail(what, "a BOOL byte 0 or 1", std::to_string(v.bits));
      return v;
    }
    if (depth >= kMaxArrayDepth)
      fail(what, "arrays nested at most " + std::to_string(kMaxArrayDepth) + " deep", "deeper nesting");
    v.element_type = read_type(what + " element type");
    const std::size_t at = pos_;
    v.count = u64(what + " element count");
    const std::uint64_t min_size = v.element_type == GgufType::STRING  ? 8
                                   : v.element_type == GgufType::ARRAY ? 12
                                                                        : gguf_scalar_size(v.element_type);
    const std::string where = what + " element count at byte " + std::to_string(at);
    if (v.count > kMaxArrayElements)
      fail(where, "at most " + std::to_string(kMaxArrayElements) + " elements", std::to_string(v.count) + " (absurd)");
    if (v.count > left() / min_size)
      fail(where, "at most " + std::to_string(left() / min_size) + " elements of " + gguf_type_name(v.element_type) +
                      " (the rest of the file)",
           std::to_string(v.count) + " (the array runs past the end of the file)");
    const std::size_t n = std::size_t(v.count);
    if (v.element_type == GgufType::STRING) {
      v.strings.reserve(n);
      for (std::size_t i = 0; i < n; ++i) v.strings.push_back(read_string(what, std::int64_t(i)));
    } else if (v.element_type == GgufType::ARRAY) {
      v.arrays.reserve(n);
      for (std::size_t i = 0; i < n; ++i)
        v.arrays.push_back(read_value(GgufType::ARRAY, indexed(what, i), depth + 1));
    } else {
      v.raw = file_->data() + pos_;
      pos_ += n * min_size;  // fits: checked against left() above
      if (v.element_type == GgufType::BOOL)
        for (std::size_t i = 0; i < n; ++i)
          if (v.raw[i] > 1) fail(indexed(what, i), "a BOOL byte 0 or 1", std::to_string(v.raw[i]));
    }
    return v;
  }

  // ---- the whole file -----------------------------------------------------------
  void parse() {
    const std::size_t size = file_->size();
    const unsigned char* d = file_->data();
    if (size < 4) fail("magic", "the 4 bytes \"GGUF\"", "a file of " + std::to_string(size) + " bytes");
    if (std::memcmp(d, "GGUF", 4) != 0) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "bytes %02x %02x %02x %02x", d[0], d[1], d[2], d[3]);
      fail("magic", "the 4 bytes \"GGUF\" (47 47 55 46)", std::string(buf) + " (not a GGUF file)");
    }
    if (size < 24)
      fail("header", "at least 24 bytes (magic, version, tensor count, metadata count)",
           "a file of " + std::to_string(size) + " bytes (the file is truncated)");
    pos_ = 4;
    version_ = u32("version");
    if ((version_ & 0xffffu) == 0 && version_ != 0)
      fail("version", "2 or 3 in little-endian byte order",
           std::to_string(version_) + " (a byte-swapped version: a big-endian file, which this reader does not read)");
    if (version_ == 1)
      fail("version", "2 or 3", "1 (GGUF v1, with 32-bit counts and lengths, is no longer supported; re-convert the model)");
    if (version_ != 2 && version_ != 3) fail("version", "2 or 3", std::to_string(version_) + " (unknown)");

    const std::uint64_t n_tensors = u64("tensor count");
    const std::uint64_t n_kv = u64("metadata count");
    // Bound the counts by the smallest possible record (a kv: 8 + 1 + 4 + 1 bytes;
    // a tensor info: 8 + 1 + 4 + 8 + 4 + 8 bytes) before reserving anything.
    if (n_kv > left() / 14)
      fail("metadata count", "at most " + std::to_string(left() / 14) + " (what the file size allows)",
           std::to_string(n_kv) + (n_kv > std::uint64_t(std::numeric_limits<std::int64_t>::max()) ? " (negative as int64)" : ""));
    if (n_tensors > left() / 33)
      fail("tensor count", "at most " + std::to_string(left() / 33) + " (what the file size allows)",
           std::to_string(n_tensors) +
               (n_tensors > std::uint64_t(std::numeric_limits<std::int64_t>::max()) ? " (negative as int64)" : ""));

    kv_.reserve(std::size_t(n_kv));
    for (std::uint64_t i = 0; i < n_kv; ++i) {
      const std::string key = read_string("metadata key #" + std::to_string(i));
      if (key.empty()) fail("metadata key #" + std::to_string(i), "a non-empty key", "an empty string");
      const std::string what = "metadata '" + key + "'";
      if (kv_index_.count(key)) fail(what, "a unique key", "a duplicate (key #" + std::to_string(i) + ")");
      const GgufType type = read_type(what + " value type");
      GgufValue value = read_value(type, what, 0);
      kv_index_[key] = kv_.size();
      kv_.emplace_back(key, std::move(value));
    }

    alignment_ = kDefaultAlignment;
    if (const GgufValue* a = find("general.alignment")) {
      if (a->type != GgufType::UINT32) bad_key("general.alignment", "a UINT32", a->type_string());
      if (a->bits == 0 || (a->bits & (a->bits - 1)) != 0)
        bad_key("general.alignment", "a non-zero power of two", std::to_string(a->bits));
      alignment_ = std::size_t(a->bits);
    }

    tensors_.reserve(std::size_t(n_tensors));
    for (std::uint64_t i = 0; i < n_tensors; ++i) tensors_.push_back(read_tensor_info(i));

    // Data section: aligned start, then every tensor inside the file and disjoint.
    const std::size_t pad = (alignment_ - pos_ % alignment_) % alignment_;
    data_offset_ = pos_ + pad;
    if (n_tensors == 0) return;
    if (pad > left() || data_offset_ > size)
      fail("tensor data section", "to start at byte " + std::to_string(data_offset_),
           "a file of " + std::to_string(size) + " bytes (the file is truncated)");
    const std::uint64_t data_size = size - data_offset_;
    for (GgufTensorInfo& t : tensors_) {
      const std::string where = "tensor '" + t.name + "' data";
      if (t.offset > data_size || t.nbytes > data_size - t.offset)
        fail(where, std::to_string(t.nbytes) + " bytes (" + ggml_type_name(t.ggml_type) + " " +
                        gguf_dims_string(t.dims) + ") at offset " + std::to_string(t.offset) +
                        " inside the data section of " + std::to_string(data_size) + " bytes",
             "they end at " + std::to_string(t.offset) + " + " + std::to_string(t.nbytes) +
                 " (the file is truncated or the offset is corrupt)");
      t.data = d + data_offset_ + std::size_t(t.offset);
    }
    std::vector<const GgufTensorInfo*> by_offset;
    for (const GgufTensorInfo& t : tensors_) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
    for (std::size_t i = 1; i < by_offset.size(); ++i) {
      const GgufTensorInfo& a = *by_offset[i - 1];
      const GgufTensorInfo& b = *by_offset[i];
      if (b.offset < a.offset + a.nbytes)
        fail("tensor '" + b.name + "' offset", "bytes not shared with another tensor (at least " +
                                                   std::to_string(a.offset + a.nbytes) + ")",
             std::to_string(b.offset) + ", inside tensor '" + a.name + "' [" + std::to_string(a.offset) + ", " +
                 std::to_string(a.offset + a.nbytes) + ")");
    }
  }

  GgufTensorInfo read_tensor_info(std::uint64_t i) {
    GgufTensorInfo t;
    t.name = read_string("tensor #" + std::to_string(i) + " name");
    if (t.name.empty()) fail("tensor #" + std::to_string(i) + " name", "a non-empty name", "an empty string");
    const std::string where = "tensor '" + t.name + "'";
    if (t.name.size() > kMaxTensorName)
      fail(where + " name", "at most " + std::to_string(kMaxTensorName) + " bytes (GGML_MAX_NAME - 1)",
           std::to_string(t.name.size()) + " bytes");
    if (tensor_index_.count(t.name)) fail(where, "a unique name", "a duplicate (tensor #" + std::to_string(i) + ")");

    const std::uint32_t n_dims = u32(where + " n_dims");
    if (n_dims == 0 || n_dims > kMaxDims)
      fail(where + " n_dims", "1 to " + std::to_string(kMaxDims), std::to_string(n_dims));
    std::uint64_t n_elements = 1;
    for (std::uint32_t k = 0; k < n_dims; ++k) {
      const std::string dim_name = where + " dims[" + std::to_string(k) + "]";
      const std::uint64_t dim = u64(dim_name);
      if (dim > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
        fail(dim_name, "a non-negative int64", std::to_string(std::int64_t(dim)) + " (negative as int64)");
      if (dim == 0) fail(dim_name, "at least 1", "0 (a tensor with no elements)");
      if (n_elements > std::uint64_t(std::numeric_limits<std::int64_t>::max()) / dim)
        fail(where + " dims", "an element count that fits int64",
             "an overflow at dims[" + std::to_string(k) + "] = " + std::to_string(dim));
      n_elements *= dim;
      t.dims.push_back(dim);
    }

    t.ggml_type = u32(where + " type");
    const GgmlTypeInfo* info = ggml_type_info(t.ggml_type);
    if (!info)
      fail(where + " type", "a ggml type id this reader knows (F32 0, F16 1, Q4_0 2, ..., Q8_0 8, Q4_K 12, Q6_K 14, BF16 30, ...)",
           std::to_string(t.ggml_type) + " (unknown or removed from ggml)");
    if (t.dims[0] % info->block_size != 0)
      fail(where + " dims[0]", "a multiple of " + std::to_string(info->block_size) + " (the " + info->name + " block size)",
           std::to_string(t.dims[0]));
    const std::uint64_t blocks = n_elements / info->block_size;
    if (blocks > std::uint64_t(std::numeric_limits<std::size_t>::max()) / info->type_size)
      fail(where + " byte size", "a size that fits size_t",
           std::to_string(blocks) + " blocks of " + std::to_string(info->type_size) + " bytes");
    t.nbytes = std::size_t(blocks * info->type_size);

    t.offset = u64(where + " offset");
    if (t.offset % alignment_ != 0)
      fail(where + " offset", "a multiple of " + std::to_string(alignment_) + " (the alignment)",
           std::to_string(t.offset));
    tensor_index_[t.name] = std::size_t(i);
    return t;
  }

  std::shared_ptr<const MappedFile> file_;
  std::size_t pos_ = 0;
  std::uint32_t version_ = 0;
  std::size_t alignment_ = kDefaultAlignment;
  std::size_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, std::size_t> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, std::size_t> tensor_index_;
};

namespace detail {

// An integer key narrowed to int, range-checked. Missing: `fallback` if given, else an error.
inline int gguf_int_key(const GgufFile& f, const std::string& key, long long lo, long long hi,
                        std::optional<long long> fallback = std::nullopt) {
  if (!f.find(key) && fallback) return int(*fallback);
  const std::int64_t v = f.get_int(key);
  if (v < lo || v > hi)
    throw GgufError(f.path() + ": metadata '" + key + "': expected an integer in [" + std::to_string(lo) + ", " +
                    std::to_string(hi) + "], found " + std::to_string(v));
  return int(v);
}

}  // namespace detail

}  // namespace gemma3
