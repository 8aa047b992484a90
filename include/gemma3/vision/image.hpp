// gemma3/vision/image.hpp -- an 8-bit RGB image, and turning any decoded pixels into one.
//
//   Image: width x height pixels, row-major, 3 bytes (R, G, B) each:
//     pixels[(y * width + x) * 3 + c]                                  [height, width, 3] uint8
//
// Converting decoded pixels to RGB follows transformers' convert_to_rgb (the first
// step of Gemma3ImageProcessor): gray is copied to R, G and B; an alpha channel is
// NOT dropped but composited over a WHITE background, with PIL's integer
// Image.alpha_composite arithmetic (7 extra bits, division by 255 rounded):
//
//   out = ((t >> 8) + t) >> 8 >> 7   with   t = 128 (v a + 255 (255 - a)) + (128 << 7)
//
// (alpha_composite(white, src) simplified for an opaque white destination). A fully
// transparent pixel becomes white, not black -- the common wrong way (dropping
// alpha) keeps whatever colour the transparent pixels happened to store.
//
// Every image the library accepts passes check_image_size first, so an absurd
// header (100000 x 100000, or 0 x 0) is refused before a byte is allocated.
//
// Mirrors transformers.image_transforms.convert_to_rgb + PIL.Image.alpha_composite.
// Pinned by tests/test_vision_preprocess.cpp (all 256 x 256 value/alpha pairs
// against PIL, and the gray / gray+alpha / RGBA / palette PNG fixtures).
// Decoding files (PNG, JPEG, BMP, ...) is in image_file.hpp, behind stb_image.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace gemma3 {

struct ImageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Image {
  int width = 0;
  int height = 0;
  std::vector<std::uint8_t> pixels;  // [height, width, 3] RGB, row-major

  std::uint8_t at(int x, int y, int c) const { return pixels[(std::size_t(y) * std::size_t(width) + std::size_t(x)) * 3 + std::size_t(c)]; }
  std::uint8_t& at(int x, int y, int c) { return pixels[(std::size_t(y) * std::size_t(width) + std::size_t(x)) * 3 + std::size_t(c)]; }
};

// Largest image the library will decode or allocate. The model sees 896 x 896 (or
// up to max_num_crops crops of that size), so anything a camera or a scanner makes
// is far larger than it needs; the limits only stop files whose header promises
// absurd sizes (a 58-byte GIF can claim 14344 x 8272).
//   max_pixels     89,478,485: Pillow's Image.MAX_IMAGE_PIXELS, past which the
//                  processor's own Pillow path warns of a decompression bomb
//                  (256 MiB as RGB; a 48-megapixel phone photo fits)
//   max_gif_pixels 16 Mpx: stb_image decodes a GIF into three full-frame buffers
//                  (9 bytes per pixel: 151 MB at the limit) before it reads a pixel
struct ImageLimits {
  int max_width = 16384;
  int max_height = 16384;
  std::int64_t max_pixels = 89478485;
  std::int64_t max_gif_pixels = std::int64_t(4096) * 4096;
};

// Throws ImageError naming `source` unless 1 <= width, height and the limits hold.
inline void check_image_size(std::int64_t width, std::int64_t height, const ImageLimits& limits,
                             const std::string& source) {
  auto bad = [&](const std::string& what) {
    throw ImageError(source + ": image size " + std::to_string(width) + " x " + std::to_string(height) + ": " + what);
  };
  if (width < 1 || height < 1) bad("expected at least 1 x 1 pixels");
  if (width > limits.max_width)
    bad("expected a width of at most " + std::to_string(limits.max_width) + " (ImageLimits::max_width)");
  if (height > limits.max_height)
    bad("expected a height of at most " + std::to_string(limits.max_height) + " (ImageLimits::max_height)");
  if (width * height > limits.max_pixels)
    bad("expected at most " + std::to_string(limits.max_pixels) + " pixels (ImageLimits::max_pixels), found " +
        std::to_string(width * height));
}

// One channel value v with alpha a, composited over white as PIL does.
inline std::uint8_t composite_over_white(std::uint8_t v, std::uint8_t a) {
  if (a == 0) return 255;  // PIL copies the destination: white
  // General PIL formula with the destination (255, alpha 255) substituted:
  //   coef1 = a * 255 * 255 * 128 / (255 * 255) = 128 a,  coef2 = 255 * 128 - coef1
  const std::uint32_t coef1 = std::uint32_t(a) * 128u;
  const std::uint32_t coef2 = 255u * 128u - coef1;
  const std::uint32_t t = std::uint32_t(v) * coef1 + 255u * coef2 + (0x80u << 7);
  return std::uint8_t((((t >> 8) + t) >> 8) >> 7);
}

// Interleaved 8-bit pixels with 1 (gray), 2 (gray, alpha), 3 (RGB) or 4 (RGBA)
// channels -> an RGB Image.
inline Image image_from_pixels(const std::uint8_t* data, int width, int height, int channels,
                               const std::string& source = "image", const ImageLimits& limits = {}) {
  check_image_size(width, height, limits, source);
  if (channels < 1 || channels > 4)
    throw ImageError(source + ": expected 1, 2, 3 or 4 channels, found " + std::to_string(channels));
  Image img;
  img.width = width;
  img.height = height;
  const std::size_t n = std::size_t(width) * std::size_t(height);
  img.pixels.resize(n * 3);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* p = data + i * std::size_t(channels);
    std::uint8_t* o = &img.pixels[i * 3];
    switch (channels) {
      case 1: o[0] = o[1] = o[2] = p[0]; break;
      case 2: o[0] = o[1] = o[2] = composite_over_white(p[0], p[1]); break;
      case 3: o[0] = p[0]; o[1] = p[1]; o[2] = p[2]; break;
      case 4:
        for (int c = 0; c < 3; ++c) o[c] = composite_over_white(p[c], p[3]);
        break;
    }
  }
  return img;
}

// The sub-image [x, x + w) x [y, y + h); the box must lie inside the image.
inline Image crop(const Image& img, int x, int y, int w, int h) {
  if (x < 0 || y < 0 || w < 1 || h < 1 || x + w > img.width || y + h > img.height)
    throw ImageError("crop (" + std::to_string(x) + ", " + std::to_string(y) + ", " + std::to_string(w) + " x " +
                     std::to_string(h) + "): expected a box inside the " + std::to_string(img.width) + " x " +
                     std::to_string(img.height) + " image");
  Image out;
  out.width = w;
  out.height = h;
  out.pixels.resize(std::size_t(w) * std::size_t(h) * 3);
  const std::size_t row_bytes = std::size_t(w) * 3;
  for (int r = 0; r < h; ++r) {
    const std::uint8_t* src = &img.pixels[(std::size_t(y + r) * std::size_t(img.width) + std::size_t(x)) * 3];
    std::copy(src, src + row_bytes, &out.pixels[std::size_t(r) * row_bytes]);
  }
  return out;
}

}  // namespace gemma3
