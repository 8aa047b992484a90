// gemma3/vision/image_file.hpp -- decode PNG / JPEG / BMP / GIF / TGA / PNM files into an RGB Image.
//
//   bytes --read_image_header--> format, size, checked against ImageLimits
//         --JPEG: libjpeg (image_jpeg.hpp); others: stb_image--> [height, width, channels]
//         --image_from_pixels--> RGB Image
//
// The optional dependencies of the vision path: libjpeg (Debian: libjpeg-dev; the
// decoder Pillow uses, linked as -ljpeg) and stb_image (public domain, header-only;
// Debian's libstb-dev installs /usr/include/stb/stb_image.h). Only this header needs
// them; the rest of gemma3/vision/ works on Image values and compiles without them.
// CMake: link gemma3::images (gemma3::gemma3 plus libjpeg).
//
// Linking: by default this header compiles stb_image's implementation into every
// translation unit that includes it, with STB_IMAGE_STATIC (internal linkage), so
// nothing else is needed and several TUs can include it. If your program already
// has one stb_image implementation, define GEMMA3_STB_IMAGE_EXTERNAL before
// including this header and only the declarations are used.
//
// Validation, before any pixel is allocated: the file must be non-empty; its header
// (image_header.hpp) must name a known format and be well formed; width, height and
// their product must pass ImageLimits (image.hpp). Decoding failures (truncated or
// corrupt data) throw ImageError with the file name, the format and the decoder's
// reason.
//
// Pixels: every format decodes to the bytes Pillow gives transformers' processor
// (tests/test_vision_image.cpp checks Pillow-written files of each kind): PNG (1/2/4/8-bit
// gray, palette with transparency, RGB, RGBA, 16-bit RGB/RGBA/gray+alpha, and 16-bit
// gray, which Pillow clips to 255 and so does this header), BMP (8 and 24 bits; 32
// bits without bit fields, whose 4th byte Pillow reads as padding and so does this
// header), GIF, PNM, TGA, and JPEG, which goes to the same decoder as in Pillow
// (libjpeg-turbo, image_jpeg.hpp), because stb_image's JPEG decoder rounds differently
// and reads the last column of an odd-width 4:2:2 image up to 96 levels away.
//
// Pinned by tests/test_vision_image.cpp (every fixture image file; corrupt,
// truncated, empty, absurdly large files).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
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
// Only the formats read_image_header() knows are compiled in (the HDR, PSD and PIC
// decoders are where most of stb_image's published crashes were), and stb_image's own
// size check matches ImageLimits.
#define STBI_NO_HDR
#define STBI_NO_PSD
#define STBI_NO_PIC
#define STBI_NO_JPEG  // JPEG goes to libjpeg (image_jpeg.hpp), as in Pillow
#ifndef STBI_MAX_DIMENSIONS
#define STBI_MAX_DIMENSIONS 16384
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
#include "image_header.hpp"
#include "image_jpeg.hpp"

namespace gemma3 {

// Decode an encoded image held in memory; `source` names it in errors.
inline Image decode_image(const std::uint8_t* bytes, std::size_t size, const std::string& source = "image",
                          const ImageLimits& limits = {}) {
  if (size == 0) throw ImageError(source + ": expected an image file, found 0 bytes");
  if (size > std::size_t(0x7fffffff))
    throw ImageError(source + ": expected at most 2 GiB of encoded data, found " + std::to_string(size) + " bytes");
  const ImageHeader hd = read_image_header(bytes, size, source);  // the format and its sizes, checked
  const std::string what = source + " (" + hd.format + ")";
  check_image_size(hd.width, hd.height, limits, what);
  if (hd.format == "GIF" && hd.width * hd.height > limits.max_gif_pixels)
    throw ImageError(what + ": image size " + std::to_string(hd.width) + " x " + std::to_string(hd.height) +
                     ": expected at most " + std::to_string(limits.max_gif_pixels) +
                     " pixels for a GIF (ImageLimits::max_gif_pixels)");
  if (hd.format == "JPEG") return decode_jpeg(bytes, size, what, limits);
  auto stb_reason = [&]() {
    const std::string r = stbi_failure_reason() ? stbi_failure_reason() : "no reason given";
    // a reason from another format's decoder (stb tries each in turn) says nothing here
    return r == "unknown image type" || (hd.format != "PNG" && r.find("png") != std::string::npos)
               ? "stb_image does not take this " + hd.format + " file"
               : "stb_image: " + r;
  };
  // stb_image copies an IDAT chunk of length 0 that comes before any data with
  // memcpy(NULL, p, 0), which is undefined behaviour (found by fuzz_image). An empty
  // IDAT carries no data: such chunks are dropped from a copy before decoding.
  std::vector<std::uint8_t> png_copy;
  if (hd.png_empty_idat) {  // found by the header walk
    // chunks from byte 8: length (u32 BE), type, data, CRC; [i, chunk_end(i)) is one chunk
    const detail::HeaderReader r{bytes, size, source, "PNG"};
    auto chunk_end = [&](std::size_t i) {
      const std::size_t len = r.be32(i);
      return len > size - i - 12 ? size : i + 12 + len;  // past IEND, chunks are not checked
    };
    png_copy.assign(bytes, bytes + 8);
    std::size_t i = 8;
    for (; i + 12 <= size; i = chunk_end(i))
      if (!(chunk_end(i) == i + 12 && std::memcmp(bytes + i + 4, "IDAT", 4) == 0))
        png_copy.insert(png_copy.end(), bytes + i, bytes + chunk_end(i));
    png_copy.insert(png_copy.end(), bytes + i, bytes + size);  // a last partial chunk, as it is
    bytes = png_copy.data();
    size = png_copy.size();
  }
  int w = 0, h = 0, channels = 0;
  if (!stbi_info_from_memory(bytes, int(size), &w, &h, &channels))
    throw ImageError(what + ": not a decodable image (" + stb_reason() + ")");
  if (w != hd.width || h != hd.height)
    throw ImageError(what + ": the header says " + std::to_string(hd.width) + " x " + std::to_string(hd.height) +
                     " but the decoder reads " + std::to_string(w) + " x " + std::to_string(h));

  // Where Pillow (and so transformers) reads the pixels differently from stb_image:
  //  - 16-bit grayscale PNG: Pillow's mode I;16 converts to RGB(A) by clipping each
  //    value to 255; stb_image would keep the high byte.
  //  - 32-bit BMP without bit fields (BI_RGB, as Pillow writes RGBA): Pillow reads the
  //    4th byte as padding (mode RGB, "BGRX"); stb_image would read it as alpha.
  if (hd.format == "PNG" && hd.png_color_type == 0 && hd.bit_depth == 16) {
    std::unique_ptr<stbi_us, void (*)(void*)> data16(stbi_load_16_from_memory(bytes, int(size), &w, &h, &channels, 0),
                                                     stbi_image_free);
    if (!data16) throw ImageError(what + ": cannot decode the image (" + stb_reason() + ")");
    std::vector<std::uint8_t> clipped(std::size_t(w) * std::size_t(h) * std::size_t(channels));
    for (std::size_t i = 0; i < clipped.size(); ++i) {
      const bool alpha = channels == 2 && i % 2 == 1;  // a tRNS colour key: 0 or 65535
      clipped[i] = alpha ? std::uint8_t(data16.get()[i] >> 8) : std::uint8_t(std::min<int>(data16.get()[i], 255));
    }
    return image_from_pixels(clipped.data(), w, h, channels, what, limits);
  }
  const bool bmp_padding = hd.format == "BMP" && hd.bit_depth == 32 && hd.bmp_compression == 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> data(
      stbi_load_from_memory(bytes, int(size), &w, &h, &channels, bmp_padding ? 3 : 0), stbi_image_free);
  if (!data) throw ImageError(what + ": cannot decode the image (" + stb_reason() + ")");
  Image img = image_from_pixels(data.get(), w, h, bmp_padding ? 3 : channels, what, limits);
  //  - 16-bit BMP (5-5-5, or 5-6-5 bit fields): Pillow widens a b-bit value v to
  //    v * 255 / (2^b - 1), rounded down; stb_image repeats its bits, (v << (8 - b)) | ...,
  //    from which v is the top b bits.
  if (hd.format == "BMP" && hd.bit_depth == 16) {
    int bits[3] = {5, 5, 5};
    const std::uint32_t* m = hd.bmp_masks;
    if (hd.bmp_compression == 3 && m[0] == 0xF800 && m[1] == 0x07E0 && m[2] == 0x001F) bits[1] = 6;
    else if (hd.bmp_compression == 3 && !(m[0] == 0x7C00 && m[1] == 0x03E0 && m[2] == 0x001F)) return img;  // Pillow refuses
    for (std::size_t i = 0; i < img.pixels.size(); ++i) {
      const int b = bits[i % 3];
      img.pixels[i] = std::uint8_t((img.pixels[i] >> (8 - b)) * 255 / ((1 << b) - 1));
    }
  }
  return img;
}

// Read and decode an image file.
inline Image load_image(const std::string& path, const ImageLimits& limits = {}) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ImageError(path + ": cannot open the file");
  const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return decode_image(bytes.data(), bytes.size(), path, limits);
}

}  // namespace gemma3
