// tests/test_vision_helpers.hpp -- shared by tests/test_vision_*.cpp.
//
// The vision fixtures (tests/reference/make_vision_fixtures.py):
//   fixtures/vision_images/   small image files (PNG gray / gray+alpha / RGB / RGBA / palette, BMP, JPEG)
//   fixtures/vision_pixels/   processor outputs, crop boxes, alpha compositing table
//   fixtures/vision_tiny/     a tiny Gemma3ForConditionalGeneration + expected tensors
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "fixture_helpers.hpp"
#include "gemma3/vision/image.hpp"

namespace vision_fixtures {

// make_vision_fixtures.py formula_image: R horizontal gradient, G vertical gradient
// + 4x4 checker, B texture. Integer arithmetic, so both sides agree exactly.
inline gemma3::Image formula_image(int w, int h, int seed) {
  gemma3::Image img;
  img.width = w;
  img.height = h;
  img.pixels.resize(std::size_t(w) * std::size_t(h) * 3);
  for (std::int64_t y = 0; y < h; ++y)
    for (std::int64_t x = 0; x < w; ++x) {
      img.at(int(x), int(y), 0) = std::uint8_t((x * 255 / std::max<std::int64_t>(w - 1, 1) + seed * 37) % 256);
      img.at(int(x), int(y), 1) =
          std::uint8_t((y * 255 / std::max<std::int64_t>(h - 1, 1) + ((x / 4 + y / 4) % 2) * 64) % 256);
      img.at(int(x), int(y), 2) = std::uint8_t((x * 7 + y * 13 + (x * y) / 3 + seed * 11) % 256);
    }
  return img;
}

struct FormulaImage {
  const char* name;
  int w, h, seed;
};
// make_vision_fixtures.py FORMULA_IMAGES
inline const std::vector<FormulaImage>& formula_images() {
  static const std::vector<FormulaImage> v = {
      {"square", 40, 40, 1}, {"wide", 1001, 300, 2}, {"tall", 300, 800, 3}, {"tiny", 3, 2, 4}, {"odd", 97, 61, 5}};
  return v;
}

inline std::vector<std::uint8_t> u8(const gemma3::SafetensorsFile& f, const std::string& name) {
  const gemma3::TensorView& t = f.at(name);
  if (t.dtype != "U8") throw std::runtime_error(name + " is not U8");
  return std::vector<std::uint8_t>(t.data, t.data + t.nbytes);
}

inline std::vector<std::int64_t> i64(const gemma3::SafetensorsFile& f, const std::string& name) {
  const gemma3::TensorView& t = f.at(name);
  if (t.dtype != "I64") throw std::runtime_error(name + " is not I64");
  std::vector<std::int64_t> v(std::size_t(t.numel()));
  if (!v.empty()) std::memcpy(v.data(), t.data, t.nbytes);
  return v;
}

// Slice i of a float32 tensor [n, a, b, ...] as a matrix [rows, rest]: rows = shape[1]
// (or, with rows_dims = 2, shape[1] * shape[2]).
inline gemma3::Matrix f32_slice(const gemma3::SafetensorsFile& f, const std::string& name, std::int64_t i,
                                std::int64_t rows) {
  const gemma3::TensorView& t = f.at(name);
  if (t.dtype != "F32") throw std::runtime_error(name + " is not F32");
  const std::int64_t per = t.numel() / t.shape.at(0);
  gemma3::Matrix m(rows, per / rows);
  std::memcpy(m.data(), t.data + std::size_t(i * per) * 4, std::size_t(per) * 4);
  return m;
}

inline std::uint64_t fnv1a64(const std::uint8_t* data, std::size_t n) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i < n; ++i) {
    h ^= data[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

// The uint8 a pixel value came from: round((v + 1) * 127.5).
inline int to_u8(float v) { return int(std::lround((double(v) + 1.0) * 127.5)); }

}  // namespace vision_fixtures
