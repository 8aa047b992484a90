// gemma3/vision/image_file.hpp -- decode PNG / JPEG / BMP / GIF / TGA / PNM files into an RGB Image.
//
//   bytes --stb_image--> [height, width, channels] uint8 --image_from_pixels--> RGB Image
//
// The one optional dependency of the vision path: stb_image (public domain; Debian's
// libstb-dev installs /usr/include/stb/stb_image.h). Only this header needs it; the
// rest of gemma3/vision/ works on Image values and compiles without it.
//
// Linking: by default this header compiles stb_image's implementation into every
// translation unit that includes it, with STB_IMAGE_STATIC (internal linkage), so
// nothing else is needed and several TUs can include it. If your program already
// has one stb_image implementation, define GEMMA3_STB_IMAGE_EXTERNAL before
// including this header and only the declarations are used.
//
// Validation, before any pixel is allocated: the file must exist and be non-empty;
// stbi_info must recognise its header; width, height and their product must pass
// ImageLimits (image.hpp). Decoding failures (truncated or corrupt data) throw
// ImageError with the file name and stb_image's reason.
//
// Decoder differences from the reference (PIL): PNG, BMP, GIF, TGA and PNM decode to
// the same bytes. JPEG does not necessarily: stb_image and libjpeg use different
// IDCT and chroma-upsampling arithmetic, so a few pixel values may differ by small
// amounts (tests/test_vision_image.cpp reports how many on its JPEG fixture).
// 16-bit PNGs are reduced to 8 bits by stb_image (high byte).
//
// Pinned by tests/test_vision_image.cpp (every fixture image file; corrupt,
// truncated, empty, absurdly large files).
#pragma once

#include <cstdint>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#ifndef GEMMA3_STB_IMAGE_EXTERNAL
#ifndef STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_IMPLEMENTATION
#define GEMMA3_DEFINED_STB_IMAGE_IMPLEMENTATION
#endif
#ifndef STB_IMAGE_STATIC
#define STB_IMAGE_STATIC
#endif
#endif

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#endif
#if __has_include(<stb_image.h>)
#include <stb_image.h>
#else
#include <stb/stb_image.h>
#endif
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#ifdef GEMMA3_DEFINED_STB_IMAGE_IMPLEMENTATION
#undef STB_IMAGE_IMPLEMENTATION
#undef GEMMA3_DEFINED_STB_IMAGE_IMPLEMENTATION
#endif

#include "image.hpp"

namespace gemma3 {

// Decode an encoded image held in memory; `source` names it in errors.
inline Image decode_image(const std::uint8_t* bytes, std::size_t size, const std::string& source = "image",
                          const ImageLimits& limits = {}) {
  if (size == 0) throw ImageError(source + ": expected an image file, found 0 bytes");
  if (size > std::size_t(0x7fffffff))
    throw ImageError(source + ": expected at most 2 GiB of encoded data, found " + std::to_string(size) + " bytes");
  int w = 0, h = 0, channels = 0;
  if (!stbi_info_from_memory(bytes, int(size), &w, &h, &channels))
    throw ImageError(source + ": not a decodable image (stb_image: " + stbi_failure_reason() + ")");
  check_image_size(w, h, limits, source);
  std::unique_ptr<stbi_uc, void (*)(void*)> data(stbi_load_from_memory(bytes, int(size), &w, &h, &channels, 0),
                                                 stbi_image_free);
  if (!data) throw ImageError(source + ": cannot decode the image (stb_image: " + stbi_failure_reason() + ")");
  return image_from_pixels(data.get(), w, h, channels, source, limits);
}

// Read and decode an image file.
inline Image load_image(const std::string& path, const ImageLimits& limits = {}) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ImageError(path + ": cannot open the file");
  const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return decode_image(bytes.data(), bytes.size(), path, limits);
}

}  // namespace gemma3
