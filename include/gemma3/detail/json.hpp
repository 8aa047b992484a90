// gemma3/detail/json.hpp -- a small, strict JSON reader for config.json and the
// safetensors header (RFC 8259: objects, arrays, strings with escapes and
// surrogate pairs, numbers, true/false/null).
//
// Hostile input: nesting is capped (kMaxDepth), every read is bounds-checked, and
// each error names the byte offset and what was expected. The caller adds the file
// name. Numbers are kept as double plus the original text, so integers up to 2^53
// (file offsets, sizes) are exact and an integer check can be made.
// Pinned by tests/test_loader_errors.cpp.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace gemma3 {
namespace detail {

struct JsonError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Json {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0.0;
  bool number_is_integer = false;  // written without '.', 'e' or 'E'
  std::string string;
  std::vector<Json> array;
  std::vector<std::pair<std::string, Json>> object;  // in file order

  bool is_null() const { return kind == Kind::Null; }
  bool is_number() const { return kind == Kind::Number; }
  bool is_string() const { return kind == Kind::String; }
  bool is_array() const { return kind == Kind::Array; }
  bool is_object() const { return kind == Kind::Object; }
  bool is_bool() const { return kind == Kind::Bool; }

  const Json* find(const std::string& key) const {
    for (const auto& kv : object)
      if (kv.first == key) return &kv.second;
    return nullptr;
  }

  static const char* kind_name(Kind k) {
    switch (k) {
      case Kind::Null: return "null";
      case Kind::Bool: return "a boolean";
      case Kind::Number: return "a number";
      case Kind::String: return "a string";
      case Kind::Array: return "an array";
      case Kind::Object: return "an object";
    }
    return "?";
  }
  const char* kind_name() const { return kind_name(kind); }
};

class JsonParser {
 public:
  static constexpr int kMaxDepth = 64;

  JsonParser(const char* data, std::size_t size) : p_(data), begin_(data), end_(data + size) {}

  Json parse_document() {
    Json v = parse_value(0);
    skip_ws();
    if (p_ != end_) fail("end of input", describe_here());
    return v;
  }

 private:
  const char* p_;
  const char* begin_;
  const char* end_;

  [[noreturn]] void fail(const std::string& expected, const std::string& found) const {
    throw JsonError("invalid JSON at byte " + std::to_string(p_ - begin_) + ": expected " + expected +
                    ", found " + found);
  }
  std::string describe_here() const {
    if (p_ >= end_) return "end of input";
    const unsigned char c = static_cast<unsigned char>(*p_);
    if (c >= 0x20 && c < 0x7f) return std::string("'") + char(c) + "'";
    return "byte 0x" + std::string(1, "0123456789abcdef"[c >> 4]) + "0123456789abcdef"[c & 15];
  }
  void skip_ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  bool consume(char c) {
    if (p_ < end_ && *p_ == c) { ++p_; return true; }
    return false;
  }
  void expect_literal(const char* lit) {
    for (const char* q = lit; *q; ++q) {
      if (p_ >= end_ || *p_ != *q) fail(std::string("'") + lit + "'", describe_here());
      ++p_;
    }
  }

  Json parse_value(int depth) {
    if (depth > kMaxDepth) fail("nesting depth <= " + std::to_string(kMaxDepth), "deeper nesting");
    skip_ws();
    if (p_ >= end_) fail("a value", "end of input");
    Json v;
    switch (*p_) {
      case '{': {
        ++p_;
        v.kind = Json::Kind::Object;
        skip_ws();
        if (consume('}')) return v;
        for (;;) {
          skip_ws();
          if (p_ >= end_ || *p_ != '"') fail("a string key", describe_here());
          std::string key = parse_string();
          skip_ws();
          if (!consume(':')) fail("':'", describe_here());
          v.object.emplace_back(std::move(key), parse_value(depth + 1));
          skip_ws();
          if (consume(',')) continue;
          if (consume('}')) return v;
          fail("',' or '}'", describe_here());
        }
      }
      case '[': {
        ++p_;
        v.kind = Json::Kind::Array;
        skip_ws();
        if (consume(']')) return v;
        for (;;) {
          v.array.push_back(parse_value(depth + 1));
          skip_ws();
          if (consume(',')) continue;
          if (consume(']')) return v;
          fail("',' or ']'", describe_here());
        }
      }
      case '"':
        v.kind = Json::Kind::String;
        v.string = parse_string();
        return v;
      case 't': expect_literal("true"); v.kind = Json::Kind::Bool; v.boolean = true; return v;
      case 'f': expect_literal("false"); v.kind = Json::Kind::Bool; v.boolean = false; return v;
      case 'n': expect_literal("null"); return v;
      default:
        if (*p_ == '-' || (*p_ >= '0' && *p_ <= '9')) return parse_number();
        fail("a value", describe_here());
    }
  }

  Json parse_number() {
    const char* start = p_;
    bool integer = true;
    consume('-');
    if (p_ < end_ && *p_ == '0') {
      ++p_;
    } else {
      if (p_ >= end_ || *p_ < '1' || *p_ > '9') fail("a digit", describe_here());
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (p_ < end_ && *p_ == '.') {
      integer = false;
      ++p_;
      if (p_ >= end_ || *p_ < '0' || *p_ > '9') fail("a digit after '.'", describe_here());
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      integer = false;
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ >= end_ || *p_ < '0' || *p_ > '9') fail("a digit in the exponent", describe_here());
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    Json v;
    v.kind = Json::Kind::Number;
    v.number = std::strtod(std::string(start, p_).c_str(), nullptr);
    v.number_is_integer = integer;
    return v;
  }

  unsigned parse_hex4() {
    unsigned u = 0;
    for (int i = 0; i < 4; ++i) {
      if (p_ >= end_) fail("4 hex digits after \\u", "end of input");
      const char c = *p_++;
      u <<= 4;
      if (c >= '0' && c <= '9') u |= unsigned(c - '0');
      else if (c >= 'a' && c <= 'f') u |= unsigned(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') u |= unsigned(c - 'A' + 10);
      else { --p_; fail("a hex digit", describe_here()); }
    }
    return u;
  }

  static void append_utf8(std::string& s, unsigned cp) {
    if (cp < 0x80) {
      s += char(cp);
    } else if (cp < 0x800) {
      s += char(0xc0 | (cp >> 6));
      s += char(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      s += char(0xe0 | (cp >> 12));
      s += char(0x80 | ((cp >> 6) & 0x3f));
      s += char(0x80 | (cp & 0x3f));
    } else {
      s += char(0xf0 | (cp >> 18));
      s += char(0x80 | ((cp >> 12) & 0x3f));
      s += char(0x80 | ((cp >> 6) & 0x3f));
      s += char(0x80 | (cp & 0x3f));
    }
  }

  std::string parse_string() {
    ++p_;  // opening quote
    std::string s;
    for (;;) {
      if (p_ >= end_) fail("closing '\"'", "end of input");
      const char c = *p_++;
      if (c == '"') return s;
      if (static_cast<unsigned char>(c) < 0x20) { --p_; fail("no raw control character in a string", describe_here()); }
      if (c != '\\') { s += c; continue; }
      if (p_ >= end_) fail("an escape", "end of input");
      const char e = *p_++;
      switch (e) {
        case '"': s += '"'; break;
        case '\\': s += '\\'; break;
        case '/': s += '/'; break;
        case 'b': s += '\b'; break;
        case 'f': s += '\f'; break;
        case 'n': s += '\n'; break;
        case 'r': s += '\r'; break;
        case 't': s += '\t'; break;
        case 'u': {
          unsigned cp = parse_hex4();
          if (cp >= 0xd800 && cp < 0xdc00) {  // high surrogate: a low one must follow
            if (!(consume('\\') && consume('u'))) fail("a low surrogate \\uDC00-\\uDFFF", describe_here());
            const unsigned lo = parse_hex4();
            if (lo < 0xdc00 || lo >= 0xe000) fail("a low surrogate \\uDC00-\\uDFFF", "another code unit");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          } else if (cp >= 0xdc00 && cp < 0xe000) {
            fail("a high surrogate before a low one", "a lone low surrogate");
          }
          append_utf8(s, cp);
          break;
        }
        default: --p_; fail("a valid escape", describe_here());
      }
    }
  }
};

inline Json parse_json(const std::string& text) { return JsonParser(text.data(), text.size()).parse_document(); }
inline Json parse_json(const char* data, std::size_t size) { return JsonParser(data, size).parse_document(); }

}  // namespace detail
}  // namespace gemma3
