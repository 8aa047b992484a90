// gemma3/vision/image_header.hpp -- what an image file says about itself, read before
// any decoder sees it.
//
//   bytes -> ImageHeader { format, width, height, bit depth, ... }   or an ImageError
//            naming the format and what is wrong with it
//
// Formats, by their first bytes:
//   PNG   89 50 4E 47 0D 0A 1A 0A, then the IHDR chunk: width, height (big-endian u32),
//         bit depth, colour type                              (PNG spec, section 11.2.2);
//         then every chunk (length, type, data, CRC) must fit in the file
//   JPEG  FF D8, then marker segments FF xx + big-endian length; the frame header
//         SOFn holds height and width (u16). Every segment is walked, including the
//         Huffman tables (DHT) between progressive scans: a table's 16 code counts
//         must add up to at most 256 symbols               (ITU T.81, B.2.4.2)
//   GIF   "GIF87a" / "GIF89a", then the logical screen width, height (u16 LE)
//   BMP   "BM", then the DIB header: 12 bytes (OS/2: u16 sizes) or 40+ (i32 sizes,
//         a negative height means top-down), bits per pixel, compression
//   PNM   "P5" / "P6" (binary gray / RGB), then width, height, maxval in ASCII
//   TGA   no signature: an image type of 1-3 or 9-11, sizes at bytes 12 and 14 (u16 LE)
//
// Why read headers here: the decoder (stb_image, image_file.hpp) answers a file it
// does not take with the reason of the last format it tried ("bad png sig" for a
// broken JPEG, "unknown image type" for a PNG too large for it). Reading the header
// first gives an error that names the format and the real problem ("PNG: image size
// 100000 x 100000: expected a width of at most 16384"), and applies ImageLimits
// before a byte of pixels is allocated. The JPEG walk also names, by table and offset,
// what the decoder would refuse with less to go on: a Huffman table of more than 256
// codes, a scan whose component uses a quantization table, or a Huffman table other
// than the standard ones (ids 0 and 1, which libjpeg supplies when a file leaves them
// out, as motion-JPEG frames do), that no segment before it defines (ITU T.81, B.2.3).
//
// Pinned by tests/test_vision_image.cpp (every format's header, truncated and hostile
// headers, an over-full Huffman table, a scan naming an undefined table) and the image fuzz target (fuzz/).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "image.hpp"

namespace gemma3 {

struct ImageHeader {
  std::string format;      // "PNG", "JPEG", "GIF", "BMP", "PNM", "TGA"
  std::int64_t width = 0;
  std::int64_t height = 0;
  int bit_depth = 8;       // PNG: per channel; BMP, TGA: per pixel; PNM: 8 or 16
  int png_color_type = -1;  // PNG: 0 gray, 2 RGB, 3 palette, 4 gray + alpha, 6 RGBA
  bool png_empty_idat = false;  // PNG: an IDAT chunk of length 0 (image_file.hpp drops it)
  int bmp_compression = -1;  // BMP: 0 BI_RGB, 1 RLE8, 2 RLE4, 3 BI_BITFIELDS, ...
  int bmp_header_size = 0;  // BMP: 12, 40, 52, 56, 108, 124
  std::uint32_t bmp_masks[3] = {0, 0, 0};  // BMP with bit fields: the red, green and blue masks
};

namespace detail {

struct HeaderReader {
  const std::uint8_t* p;
  std::size_t n;
  std::string source, format;

  [[noreturn]] void fail(const std::string& what) const { throw ImageError(source + " (" + format + "): " + what); }
  void need(std::size_t end, const char* what) const {
    if (end > n)
      fail("the file ends after " + std::to_string(n) + " bytes, inside " + what + " (which needs " +
           std::to_string(end) + ")");
  }
  std::uint32_t be16(std::size_t i) const { return std::uint32_t(p[i]) << 8 | p[i + 1]; }
  std::uint32_t be32(std::size_t i) const { return be16(i) << 16 | be16(i + 2); }
  std::uint32_t le16(std::size_t i) const { return std::uint32_t(p[i + 1]) << 8 | p[i]; }
  std::uint32_t le32(std::size_t i) const { return le16(i + 2) << 16 | le16(i); }
};

inline std::string hex_bytes(const std::uint8_t* p, std::size_t n) {
  std::string s;
  char buf[4];
  for (std::size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%02X", unsigned(p[i]));
    s += (i ? " " : "") + std::string(buf);
  }
  return s;
}

// A 4-byte chunk or box type as text, with any unprintable byte as \xNN.
inline std::string printable_tag(const std::uint8_t* p) {
  std::string s;
  for (int k = 0; k < 4; ++k) {
    if (p[k] >= 0x20 && p[k] < 0x7F) {
      s += char(p[k]);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", unsigned(p[k]));
      s += buf;
    }
  }
  return s;
}

inline ImageHeader png_header(HeaderReader& r) {
  r.need(33, "the IHDR chunk");
  if (r.be32(8) != 13 || r.p[12] != 'I' || r.p[13] != 'H' || r.p[14] != 'D' || r.p[15] != 'R')
    r.fail("expected the IHDR chunk (13 bytes) first, found " + hex_bytes(r.p + 8, 8));
  ImageHeader h;
  h.format = "PNG";
  h.width = r.be32(16);
  h.height = r.be32(20);
  h.bit_depth = r.p[24];
  h.png_color_type = r.p[25];
  const int d = h.bit_depth, c = h.png_color_type;
  const bool ok = (c == 0 && (d == 1 || d == 2 || d == 4 || d == 8 || d == 16)) ||
                  (c == 3 && (d == 1 || d == 2 || d == 4 || d == 8)) ||
                  ((c == 2 || c == 4 || c == 6) && (d == 8 || d == 16));
  if (!ok)
    r.fail("bit depth " + std::to_string(d) + " with colour type " + std::to_string(c) +
           " is not a PNG pixel format");
  // Every chunk (length u32, type, data, CRC) must fit in the file: stb_image grows its
  // buffer to an IDAT's stated length before it reads the data, so a 200-byte file
  // claiming a 1 GiB chunk would allocate 1-2 GiB (found by fuzz_image).
  std::size_t i = 8;
  while (i + 8 <= r.n) {
    const std::size_t len = r.be32(i);
    const std::string type = printable_tag(r.p + i + 4);
    if (len > 0x7fffffffu)
      r.fail("chunk " + type + " at offset " + std::to_string(i) + " states a length of " + std::to_string(len) +
             " (at most 2^31 - 1)");
    r.need(i + 12 + len, ("chunk " + type + " at offset " + std::to_string(i)).c_str());
    h.png_empty_idat = h.png_empty_idat || (len == 0 && type == "IDAT");
    i += 12 + len;
    if (type == "IEND") break;
  }
  return h;
}

inline bool is_jpeg_sof(unsigned m) {
  return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
}

inline ImageHeader jpeg_header(HeaderReader& r) {
  ImageHeader h;
  h.format = "JPEG";
  bool have_frame = false;
  bool progressive = false;
  // What the scans may use: the tables defined so far (Huffman tables 0 and 1 have
  // standard defaults in libjpeg), and each frame component's quantization table.
  bool huffman_defined[2][4] = {{true, true, false, false}, {true, true, false, false}};  // [0 DC, 1 AC][id]
  bool quant_defined[4] = {};
  struct FrameComponent { unsigned id, quant; };
  FrameComponent components[4];
  std::size_t n_components = 0;
  std::size_t i = 2;
  while (i < r.n) {
    if (r.p[i] != 0xFF)
      r.fail("expected a marker (FF xx) at offset " + std::to_string(i) + ", found " + hex_bytes(r.p + i, 1));
    while (i < r.n && r.p[i] == 0xFF) ++i;  // fill bytes
    if (i >= r.n) break;
    const unsigned m = r.p[i++];
    if (m == 0xD9) break;                               // EOI
    if ((m >= 0xD0 && m <= 0xD7) || m == 0x01) continue;  // RSTn, TEM: no length
    if (m == 0xD8) r.fail("a second start-of-image marker (FF D8) at offset " + std::to_string(i - 2));
    r.need(i + 2, "a marker segment's length");
    const std::size_t len = r.be16(i);
    if (len < 2) r.fail("marker FF " + hex_bytes(r.p + i - 1, 1) + " at offset " + std::to_string(i - 2) +
                        " has a segment length of " + std::to_string(len) + " (at least 2)");
    const std::size_t end = i + len;
    r.need(end, ("the segment of marker FF " + hex_bytes(r.p + i - 1, 1)).c_str());
    if (is_jpeg_sof(m) && !have_frame) {
      if (len < 8) r.fail("a frame header (SOF) of " + std::to_string(len) + " bytes (at least 8)");
      h.bit_depth = r.p[i + 2];
      h.height = r.be16(i + 3);
      h.width = r.be16(i + 5);
      if (h.height == 0)
        r.fail("the frame header gives height 0 (defined later by a DNL marker), which is not supported");
      have_frame = true;
      progressive = (m == 0xC2 || m == 0xC6 || m == 0xCA || m == 0xCE);
      const std::size_t nf = r.p[i + 7];
      if (nf < 1 || nf > 4)
        r.fail("the frame header has " + std::to_string(nf) + " components (1 to 4)");
      if (len < 8 + 3 * nf)
        r.fail("a frame header (SOF) of " + std::to_string(len) + " bytes for " + std::to_string(nf) +
               " components (needs " + std::to_string(8 + 3 * nf) + ")");
      for (std::size_t c = 0; c < nf; ++c) {
        components[c] = {r.p[i + 8 + 3 * c], r.p[i + 10 + 3 * c]};
        if (components[c].quant > 3)
          r.fail("frame component " + std::to_string(components[c].id) + " names quantization table " +
                 std::to_string(components[c].quant) + " (0 to 3)");
      }
      n_components = nf;
    } else if (m == 0xDB) {  // DQT: one or more tables, 64 values of 8 or 16 bits each
      std::size_t t = i + 2;
      while (t < end) {
        const unsigned precision = r.p[t] >> 4, id = r.p[t] & 15;
        if (precision > 1 || id > 3)
          r.fail("a quantization table (DQT) with precision " + std::to_string(precision) + " and id " +
                 std::to_string(id) + " (precision 0 or 1, id 0 to 3)");
        t += 1 + 64 * (precision + 1);
        if (t > end) r.fail("a quantization table (DQT) at offset " + std::to_string(end - len) + " runs past its segment");
        quant_defined[id] = true;
      }
    } else if (m == 0xDA && have_frame) {  // SOS: which components, which tables
      if (len < 3) r.fail("a scan header (SOS) of 2 bytes, without its component count");
      const std::size_t ns = r.p[i + 2];
      if (len < 6 + 2 * ns)
        r.fail("a scan header (SOS) of " + std::to_string(len) + " bytes for " + std::to_string(ns) +
               " components (needs " + std::to_string(6 + 2 * ns) + ")");
      const unsigned ss = r.p[i + 3 + 2 * ns], ah = r.p[i + 5 + 2 * ns] >> 4;
      const bool uses_dc = !progressive || (ss == 0 && ah == 0);  // a DC refinement reads raw bits
      const bool uses_ac = !progressive || ss > 0;
      for (std::size_t c = 0; c < ns; ++c) {
        const unsigned id = r.p[i + 3 + 2 * c], dc = r.p[i + 4 + 2 * c] >> 4, ac = r.p[i + 4 + 2 * c] & 15;
        const std::string where = "the scan at offset " + std::to_string(i - 2) + ": component " + std::to_string(id);
        std::size_t k = 0;
        while (k < n_components && components[k].id != id) ++k;
        if (k == n_components) r.fail(where + " is not in the frame header");
        if (!quant_defined[components[k].quant])
          r.fail(where + " uses quantization table " + std::to_string(components[k].quant) +
                 ", which no DQT segment before the scan defines");
        for (int cls = 0; cls < 2; ++cls) {
          const unsigned t = cls == 0 ? dc : ac;
          if (!(cls == 0 ? uses_dc : uses_ac)) continue;
          if (t > 3 || !huffman_defined[cls][t])
            r.fail(where + " uses " + (cls == 0 ? "DC" : "AC") + " Huffman table " + std::to_string(t) +
                   ", which no DHT segment before the scan defines");
        }
      }
    } else if (m == 0xC4) {  // DHT: one or more tables
      std::size_t t = i + 2;
      while (t < end) {
        if (t + 17 > end) r.fail("a Huffman table (DHT) at offset " + std::to_string(t) + " is cut short by its segment");
        const unsigned cls = r.p[t] >> 4, id = r.p[t] & 15;
        if (cls > 1 || id > 3)
          r.fail("a Huffman table (DHT) with class " + std::to_string(cls) + " and id " + std::to_string(id) +
                 " (class 0 or 1, id 0 to 3)");
        std::size_t codes = 0;
        for (int k = 1; k <= 16; ++k) codes += r.p[t + std::size_t(k)];
        if (codes > 256)
          r.fail("Huffman table (DHT) class " + std::to_string(cls) + " id " + std::to_string(id) + " at offset " +
                 std::to_string(t) + " defines " + std::to_string(codes) + " codes; a table holds at most 256");
        t += 17 + codes;
        if (t > end) r.fail("a Huffman table (DHT) at offset " + std::to_string(end - len) + " runs past its segment");
        huffman_defined[cls][id] = true;
      }
    }
    i = end;
    if (m == 0xDA) {  // SOS: entropy-coded data up to the next marker that is not RSTn or a stuffed FF 00
      while (i + 1 < r.n && !(r.p[i] == 0xFF && r.p[i + 1] != 0x00 && !(r.p[i + 1] >= 0xD0 && r.p[i + 1] <= 0xD7))) ++i;
      if (i + 1 >= r.n) break;  // the data runs to the end of the file (a truncated scan)
    }
  }
  if (!have_frame) r.fail("no frame header (SOF marker) before the end of the image");
  return h;
}

inline ImageHeader gif_header(HeaderReader& r) {
  r.need(10, "the logical screen descriptor");
  ImageHeader h;
  h.format = "GIF";
  h.width = r.le16(6);
  h.height = r.le16(8);
  return h;
}

inline ImageHeader bmp_header(HeaderReader& r) {
  r.need(18, "the DIB header's size");
  ImageHeader h;
  h.format = "BMP";
  h.bmp_header_size = int(r.le32(14));
  if (h.bmp_header_size == 12) {  // OS/2 BITMAPCOREHEADER
    r.need(26, "the DIB header");
    h.width = r.le16(18);
    h.height = r.le16(22);
    h.bit_depth = int(r.le16(24));
    h.bmp_compression = 0;
    return h;
  }
  if (h.bmp_header_size != 40 && h.bmp_header_size != 52 && h.bmp_header_size != 56 && h.bmp_header_size != 64 &&
      h.bmp_header_size != 108 && h.bmp_header_size != 124)
    r.fail("a DIB header of " + std::to_string(h.bmp_header_size) + " bytes (12, 40, 52, 56, 64, 108 or 124)");
  r.need(34, "the DIB header");
  h.width = std::int32_t(r.le32(18));
  const std::int64_t height = std::int32_t(r.le32(22));
  h.height = height < 0 ? -height : height;  // negative: rows stored top-down
  h.bit_depth = int(r.le16(28));
  h.bmp_compression = int(r.le32(30));
  if (h.bmp_compression == 3) {  // BI_BITFIELDS: the masks follow a 40-byte header, or are in a longer one
    r.need(66, "the BMP bit-field masks");
    for (int c = 0; c < 3; ++c) h.bmp_masks[c] = r.le32(54 + 4 * std::size_t(c));
  }
  return h;
}

inline ImageHeader pnm_header(HeaderReader& r) {
  ImageHeader h;
  h.format = "PNM";
  std::size_t i = 2;
  auto number = [&](const char* what) -> std::int64_t {
    while (i < r.n && (r.p[i] == ' ' || r.p[i] == '\t' || r.p[i] == '\n' || r.p[i] == '\r' || r.p[i] == '#')) {
      if (r.p[i] == '#')
        while (i < r.n && r.p[i] != '\n' && r.p[i] != '\r') ++i;
      else
        ++i;
    }
    if (i >= r.n || r.p[i] < '0' || r.p[i] > '9') r.fail(std::string("expected the ") + what + " as a decimal number");
    std::int64_t v = 0;
    while (i < r.n && r.p[i] >= '0' && r.p[i] <= '9') {
      v = v * 10 + (r.p[i++] - '0');
      if (v > (std::int64_t(1) << 31)) r.fail(std::string("the ") + what + " is over 2^31");
    }
    return v;
  };
  h.width = number("width");
  h.height = number("height");
  const std::int64_t maxval = number("maxval");
  if (maxval < 1 || maxval > 65535) r.fail("maxval " + std::to_string(maxval) + " (1 to 65535)");
  h.bit_depth = maxval > 255 ? 16 : 8;
  return h;
}

// TGA has no signature: the checks stb_image's own TGA test makes.
inline bool looks_like_tga(const std::uint8_t* p, std::size_t n) {
  if (n < 18) return false;
  const unsigned cmap = p[1], type = p[2], bpp = p[16];
  if (cmap > 1) return false;
  if (cmap == 1 && type != 1 && type != 9) return false;
  if (!(type == 1 || type == 2 || type == 3 || type == 9 || type == 10 || type == 11)) return false;
  if (type == 1 || type == 9) return bpp == 8 || bpp == 15 || bpp == 16 || bpp == 24 || bpp == 32;
  return bpp == 8 || bpp == 15 || bpp == 16 || bpp == 24 || bpp == 32;
}

}  // namespace detail

// The header of an encoded image; `source` names it in errors.
inline ImageHeader read_image_header(const std::uint8_t* bytes, std::size_t size, const std::string& source = "image") {
  detail::HeaderReader r{bytes, size, source, "image"};
  auto starts = [&](const char* sig, std::size_t len) {
    if (size < len) return false;
    for (std::size_t i = 0; i < len; ++i)
      if (bytes[i] != std::uint8_t(sig[i])) return false;
    return true;
  };
  if (starts("\x89PNG\r\n\x1a\n", 8)) { r.format = "PNG"; return detail::png_header(r); }
  if (starts("\xFF\xD8", 2)) { r.format = "JPEG"; return detail::jpeg_header(r); }
  if (starts("GIF87a", 6) || starts("GIF89a", 6)) { r.format = "GIF"; return detail::gif_header(r); }
  if (starts("BM", 2)) { r.format = "BMP"; return detail::bmp_header(r); }
  if (starts("P5", 2) || starts("P6", 2)) { r.format = "PNM"; return detail::pnm_header(r); }
  if (detail::looks_like_tga(bytes, size)) {
    ImageHeader h;
    h.format = "TGA";
    h.width = r.le16(12);
    h.height = r.le16(14);
    h.bit_depth = bytes[16];
    return h;
  }
  throw ImageError(source + ": not a PNG, JPEG, GIF, BMP, PNM (P5/P6) or TGA file (it starts with " +
                   detail::hex_bytes(bytes, size < 8 ? size : 8) + ")");
}

}  // namespace gemma3
