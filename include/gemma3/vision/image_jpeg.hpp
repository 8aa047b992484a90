// gemma3/vision/image_jpeg.hpp -- decode a JPEG file with libjpeg(-turbo), the decoder
// Pillow uses, so the pixels are the ones transformers' processor sees.
//
//   JPEG bytes -> libjpeg (islow IDCT, fancy upsampling: Pillow's defaults)
//              -> RGB                          (YCbCr, RGB, grayscale: libjpeg converts)
//              -> or CMYK, then RGB as Pillow converts it:
//                   Pillow reads every CMYK JPEG as Adobe-inverted ("CMYK;I"), so the
//                   stored bytes are 255 - C, 255 - M, 255 - Y, 255 - K; then
//                   R = nk - nk * c / 255  (nk = 255 - k, rounded as Pillow's MULDIV255)
//
// Same output as Pillow, byte for byte: libjpeg-turbo 2.1 (Debian 12) and 3.x give the
// same pixels with the default (islow) IDCT and fancy upsampling, and Pillow's wheels
// ship libjpeg-turbo. tests/test_vision_image.cpp checks Pillow-written files of each
// scan layout (progressive, grayscale, 4:4:4, 4:2:2 at an odd width, restart markers,
// CMYK).
//
// Errors: libjpeg's fatal errors become an ImageError with its message. A file that
// ends inside the compressed data is an error too (libjpeg would fill the rest with
// grey and warn; Pillow refuses it as "image file is truncated"). Other warnings
// (e.g. extraneous bytes before a marker) are ignored, as Pillow ignores them.
//
// Needs libjpeg at link time (Debian: libjpeg-dev; CMake: the gemma3::images target,
// or JPEG::JPEG, or -ljpeg). Called by decode_image() in image_file.hpp, after the
// header walk of image_header.hpp has checked the file and the size limits.
#pragma once

#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#if !__has_include(<jpeglib.h>)
#error "gemma3/vision/image_jpeg.hpp needs libjpeg (Debian: apt install libjpeg-dev) and -ljpeg at link time"
#endif
#include <jpeglib.h>
#include <jerror.h>  // JWRN_JPEG_EOF

#include "image.hpp"

namespace gemma3 {
namespace detail {

// libjpeg reports a fatal error through error_exit, which must not return: it jumps
// back to the setjmp in jpeg_step(). Only plain C data lives across that jump.
struct JpegErrors {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool truncated;  // libjpeg hit the end of the data and warned (JWRN_JPEG_EOF)
};

extern "C" inline void gemma3_jpeg_error_exit(j_common_ptr ci) {
  JpegErrors* e = reinterpret_cast<JpegErrors*>(ci->err);
  e->mgr.format_message(ci, e->message);
  std::longjmp(e->jump, 1);
}

extern "C" inline void gemma3_jpeg_emit_message(j_common_ptr ci, int level) {
  JpegErrors* e = reinterpret_cast<JpegErrors*>(ci->err);
  if (level < 0 && e->mgr.msg_code == JWRN_JPEG_EOF) e->truncated = true;  // a warning, not a trace
}

struct JpegStep {
  jpeg_decompress_struct* ci;
  std::uint8_t* out;   // decode: height * width * out_color_components bytes
  std::size_t row_bytes;
};

// One step under libjpeg's error handling: 0 reads the header and picks the output
// colour space, 1 decodes every row into `out`. Returns false (message in e) on error.
inline bool jpeg_step(JpegStep s, int step, JpegErrors* e) {
  if (setjmp(e->jump)) return false;
  jpeg_decompress_struct* ci = s.ci;
  if (step == 0) {
    jpeg_read_header(ci, TRUE);
    // Pillow: L (1 component), RGB (3), CMYK (4); the same libjpeg conversions.
    if (ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK)
      ci->out_color_space = JCS_CMYK;
    else if (ci->num_components == 1 || ci->num_components == 3)
      ci->out_color_space = JCS_RGB;
    ci->dct_method = JDCT_ISLOW;
    ci->do_fancy_upsampling = TRUE;
    return true;
  }
  jpeg_start_decompress(ci);
  while (ci->output_scanline < ci->output_height) {
    JSAMPROW row = s.out + std::size_t(ci->output_scanline) * s.row_bytes;
    if (jpeg_read_scanlines(ci, &row, 1) != 1) break;
    if (e->truncated) return true;
  }
  if (!e->truncated) jpeg_finish_decompress(ci);
  return true;
}

// Pillow's MULDIV255(a, b): a * b / 255, rounded, in integers.
inline int muldiv255(int a, int b) {
  const int t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

}  // namespace detail

// Decode JPEG bytes (already checked by read_image_header) to RGB; `what` names the
// file and format in errors.
inline Image decode_jpeg(const std::uint8_t* bytes, std::size_t size, const std::string& what,
                         const ImageLimits& limits) {
  jpeg_decompress_struct ci;
  detail::JpegErrors errors{};
  ci.err = jpeg_std_error(&errors.mgr);
  errors.mgr.error_exit = detail::gemma3_jpeg_error_exit;
  errors.mgr.emit_message = detail::gemma3_jpeg_emit_message;
  jpeg_create_decompress(&ci);
  struct Destroy {
    jpeg_decompress_struct* ci;
    ~Destroy() { jpeg_destroy_decompress(ci); }
  } destroy{&ci};
  jpeg_mem_src(&ci, const_cast<unsigned char*>(bytes), static_cast<unsigned long>(size));  // const in libjpeg-turbo, not in libjpeg 8

  auto fail = [&](const std::string& why) -> Image { throw ImageError(what + ": " + why); };
  if (!detail::jpeg_step({&ci, nullptr, 0}, 0, &errors))
    return fail("cannot decode the image (libjpeg: " + std::string(errors.message) + ")");
  if (ci.out_color_space != JCS_RGB && ci.out_color_space != JCS_CMYK)
    return fail(std::to_string(ci.num_components) + " colour components are not supported (1, 3 or 4)");
  check_image_size(ci.image_width, ci.image_height, limits, what);

  const int channels = ci.out_color_space == JCS_CMYK ? 4 : 3;
  const std::size_t w = ci.image_width, h = ci.image_height;
  std::vector<std::uint8_t> decoded(w * h * std::size_t(channels));
  if (!detail::jpeg_step({&ci, decoded.data(), w * std::size_t(channels)}, 1, &errors))
    return fail("cannot decode the image (libjpeg: " + std::string(errors.message) + ")");
  if (errors.truncated)
    return fail("the file ends inside the compressed image data after " + std::to_string(size) +
                " bytes (truncated?)");
  if (ci.output_width != w || ci.output_height != h)
    return fail("libjpeg decoded " + std::to_string(ci.output_width) + " x " + std::to_string(ci.output_height) +
                " for a frame of " + std::to_string(w) + " x " + std::to_string(h));
  if (channels == 3) return image_from_pixels(decoded.data(), int(w), int(h), 3, what, limits);

  std::vector<std::uint8_t> rgb(w * h * 3);
  for (std::size_t i = 0; i < w * h; ++i) {
    const std::uint8_t* cmyk = &decoded[4 * i];
    const int nk = cmyk[3];  // stored inverted: 255 - K
    for (int c = 0; c < 3; ++c) rgb[3 * i + std::size_t(c)] = std::uint8_t(nk - detail::muldiv255(255 - cmyk[c], nk));
  }
  return image_from_pixels(rgb.data(), int(w), int(h), 3, what, limits);
}

}  // namespace gemma3
