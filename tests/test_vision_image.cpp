// Image files and the Image type: decoding (stb_image), RGB conversion, limits,
// and bad input -- missing, empty, truncated, corrupt files and absurd sizes.
// Pixel-level agreement with the reference processor is in test_vision_preprocess.cpp.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <iterator>

#include "catch.hpp"
#include "loader_error_helpers.hpp"
#include "test_vision_helpers.hpp"

#include "gemma3/vision/image.hpp"
#include "gemma3/vision/pan_and_scan.hpp"
#include "gemma3/vision/preprocess.hpp"
#ifdef GEMMA3_HAVE_IMAGE_DECODERS
#include "gemma3/vision/image_file.hpp"
#endif

using gemma3::Image;

TEST_CASE("image_from_pixels: gray, gray+alpha, RGB, RGBA to RGB", "[vision]") {
  const std::uint8_t gray[] = {0, 100, 255};
  const Image g = gemma3::image_from_pixels(gray, 3, 1, 1);
  CHECK(g.pixels == std::vector<std::uint8_t>{0, 0, 0, 100, 100, 100, 255, 255, 255});
  const std::uint8_t ga[] = {0, 0, 0, 255, 200, 128};  // transparent black, opaque black, half 200
  const Image a = gemma3::image_from_pixels(ga, 3, 1, 2);
  CHECK(int(a.at(0, 0, 0)) == 255);  // transparent -> the white background, not the stored black
  CHECK(int(a.at(1, 0, 0)) == 0);
  CHECK(int(a.at(2, 0, 1)) == int(gemma3::composite_over_white(200, 128)));
  const std::uint8_t rgba[] = {10, 20, 30, 255};
  CHECK(gemma3::image_from_pixels(rgba, 1, 1, 4).pixels == std::vector<std::uint8_t>{10, 20, 30});
  REQUIRE_THROWS_NAMING(gemma3::ImageError, gemma3::image_from_pixels(rgba, 1, 1, 5, "x.raw"), "x.raw", "channels");
}

TEST_CASE("image limits: zero and absurd sizes are refused before allocating", "[vision]") {
  const gemma3::ImageLimits limits;
  REQUIRE_THROWS_NAMING(gemma3::ImageError, gemma3::check_image_size(0, 10, limits, "a.png"), "a.png", "0 x 10",
                        "at least 1 x 1");
  REQUIRE_THROWS_NAMING(gemma3::ImageError, gemma3::check_image_size(100000, 10, limits, "b.png"), "100000 x 10",
                        "max_width");
  REQUIRE_THROWS_NAMING(gemma3::ImageError, gemma3::check_image_size(10, 1 << 20, limits, "c.png"), "max_height");
  REQUIRE_THROWS_NAMING(gemma3::ImageError, gemma3::check_image_size(16000, 16000, limits, "d.png"), "max_pixels");
  CHECK_NOTHROW(gemma3::check_image_size(896, 896, limits, "e.png"));
  REQUIRE_THROWS_AS(gemma3::crop(vision_fixtures::formula_image(10, 10, 1), 5, 0, 6, 10), gemma3::ImageError);
  REQUIRE_THROWS_AS(gemma3::resize_bilinear(vision_fixtures::formula_image(10, 10, 1), 0, 5), gemma3::ImageError);
  REQUIRE_THROWS_AS(gemma3::pan_and_scan_crops(0, 5), gemma3::ImageError);
}

#ifdef GEMMA3_HAVE_IMAGE_DECODERS
namespace {

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<std::uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::string images_dir() { return fixtures::path("vision_images"); }

}  // namespace

TEST_CASE("image files decode to the expected sizes, all converted to RGB", "[vision]") {
  struct Case {
    const char* file;
    int w, h;
  };
  for (const Case& c : {Case{"rgb.png", 24, 16}, Case{"gray.png", 20, 13}, Case{"gray_alpha.png", 20, 13},
                        Case{"rgba.png", 24, 16}, Case{"palette.png", 24, 16}, Case{"photo.jpg", 32, 24},
                        Case{"rgb.bmp", 9, 7}}) {
    const Image img = gemma3::load_image(images_dir() + "/" + c.file);
    INFO(c.file);
    CHECK(img.width == c.w);
    CHECK(img.height == c.h);
    CHECK(img.pixels.size() == std::size_t(c.w * c.h * 3));
  }
  // The RGB PNG holds the formula image exactly; the gray PNG has R == G == B.
  CHECK(gemma3::load_image(images_dir() + "/rgb.png").pixels == vision_fixtures::formula_image(24, 16, 6).pixels);
  const Image gray = gemma3::load_image(images_dir() + "/gray.png");
  for (std::size_t i = 0; i < gray.pixels.size(); i += 3) {
    CHECK(gray.pixels[i] == gray.pixels[i + 1]);
    CHECK(gray.pixels[i] == gray.pixels[i + 2]);
  }
  // RGBA: its first row starts with 4 fully transparent pixels -> white.
  const Image rgba = gemma3::load_image(images_dir() + "/rgba.png");
  CHECK(int(rgba.at(0, 0, 0)) == 255);
  CHECK(int(rgba.at(3, 0, 2)) == 255);
  CHECK(rgba.at(0, 1, 0) == vision_fixtures::formula_image(24, 16, 6).at(0, 1, 0));  // opaque row 1
}

TEST_CASE("bad image files: missing, empty, truncated, corrupt, absurd header", "[vision]") {
  loader_errors::TempDir dir;
  REQUIRE_THROWS_NAMING(gemma3::ImageError, gemma3::load_image((dir / "nope.png").string()), "nope.png", "cannot open");

  loader_errors::write_file(dir / "empty.png", loader_errors::Bytes{});
  REQUIRE_THROWS_NAMING(gemma3::ImageError, gemma3::load_image((dir / "empty.png").string()), "empty.png", "0 bytes");

  const std::vector<std::uint8_t> png = read_bytes(images_dir() + "/rgb.png");
  REQUIRE(png.size() > 100);
  for (const std::size_t keep : {std::size_t(8), std::size_t(30), png.size() / 2, png.size() - 20}) {
    loader_errors::write_file(dir / "cut.png", loader_errors::Bytes(png.begin(), png.begin() + std::ptrdiff_t(keep)));
    INFO("PNG truncated to " << keep << " of " << png.size() << " bytes");
    // inside IHDR or a later chunk: named by the header walk, with the chunk
    REQUIRE_THROWS_NAMING(gemma3::ImageError, gemma3::load_image((dir / "cut.png").string()), "cut.png (PNG)",
                          "the file ends after " + std::to_string(keep) + " bytes",
                          keep < 33 ? "IHDR" : "inside chunk");
  }
  // A chunk stating more bytes than the file holds: stb_image would grow its buffer to the
  // stated length (1 GiB here) before finding the data missing (found by fuzz_image).
  {
    loader_errors::Bytes b(png.begin(), png.end());
    std::size_t idat = 8;
    while (idat + 8 <= b.size() && std::memcmp(&b[idat + 4], "IDAT", 4) != 0)
      idat += 12 + (std::size_t(b[idat]) << 24 | std::size_t(b[idat + 1]) << 16 | std::size_t(b[idat + 2]) << 8 | b[idat + 3]);
    REQUIRE(idat + 8 <= b.size());
    b[idat] = 0x40;  // 0x40xxxxxx: over 1 GiB
    loader_errors::write_file(dir / "long_chunk.png", b);
    REQUIRE_THROWS_NAMING(gemma3::ImageError, gemma3::load_image((dir / "long_chunk.png").string()),
                          "long_chunk.png (PNG)", "inside chunk IDAT at offset " + std::to_string(idat));
  }

  // A JPEG cut inside its compressed data: libjpeg would fill the rest with grey and warn;
  // Pillow refuses it ("image file is truncated"), and so does decode_image. Cut inside
  // the header segments, the header walk names the segment.
  const std::vector<std::uint8_t> jpg = read_bytes(images_dir() + "/pillow/baseline_444.jpg");  // one scan
  std::size_t first_scan = 0;
  for (std::size_t i = 2; i + 1 < jpg.size() && !first_scan; ++i)
    if (jpg[i] == 0xFF && jpg[i + 1] == 0xDA) first_scan = i;
  REQUIRE(first_scan > 0);
  for (const std::size_t keep : {std::size_t(30), first_scan + 20, (first_scan + jpg.size()) / 2, jpg.size() - 2}) {
    loader_errors::write_file(dir / "cut.jpg", loader_errors::Bytes(jpg.begin(), jpg.begin() + std::ptrdiff_t(keep)));
    INFO("JPEG truncated to " << keep << " of " << jpg.size() << " bytes");
    REQUIRE_THROWS_NAMING(gemma3::ImageError, gemma3::load_image((dir / "cut.jpg").string()), "cut.jpg (JPEG)",
                          keep < first_scan ? "the file ends after" : "ends inside the compressed image data");
  }

  loader_errors::Bytes noise(4096);
  for (std::size_t i = 0; i < noise.size(); ++i) noise[i] = std::uint8_t((i * 2654435761u) >> 13);
  loader_errors::write_file(dir / "noise.jpg", noise);
  REQUIRE_THROWS_NAMING(gemma3::ImageError, gemma3::load_image((dir / "noise.jpg").string()), "noise.jpg",
                        "not a PNG, JPEG, GIF, BMP, PNM (P5/P6) or TGA file");

  loader_errors::write_file(dir / "text.png", std::string("this is not an image"));
  REQUIRE_THROWS_AS(gemma3::load_image((dir / "text.png").string()), gemma3::ImageError);

  // PNG headers claiming absurd sizes: refused from the header alone, before any
  // pixel is allocated, by our limits, with the size named.
  auto with_size = [&](std::uint32_t w, std::uint32_t h) {
    loader_errors::Bytes b(png.begin(), png.end());
    for (int i = 0; i < 4; ++i) {
      b[16 + std::size_t(i)] = std::uint8_t(w >> (24 - 8 * i));  // IHDR width
      b[20 + std::size_t(i)] = std::uint8_t(h >> (24 - 8 * i));  // IHDR height
    }
    return b;
  };
  loader_errors::write_file(dir / "wide.png", with_size(20000, 10));
  REQUIRE_THROWS_NAMING(gemma3::ImageError, gemma3::load_image((dir / "wide.png").string()), "wide.png", "20000 x 10",
                        "max_width");
  loader_errors::write_file(dir / "huge.png", with_size(100000, 100000));
  REQUIRE_THROWS_NAMING(gemma3::ImageError, gemma3::load_image((dir / "huge.png").string()), "huge.png (PNG)",
                        "100000 x 100000", "max_width");
  loader_errors::write_file(dir / "big.png", with_size(20000, 20000));
  REQUIRE_THROWS_NAMING(gemma3::ImageError, gemma3::load_image((dir / "big.png").string()), "big.png (PNG)",
                        "20000 x 20000", "max_width");

  // Custom limits apply to real files too.
  gemma3::ImageLimits tight;
  tight.max_width = 10;
  REQUIRE_THROWS_NAMING(gemma3::ImageError, gemma3::load_image(images_dir() + "/rgb.png", tight), "rgb.png", "24 x 16",
                        "max_width");
}

namespace {

// The bytes of a GIF89a header claiming w x h, with a minimal (empty) image after it.
std::vector<std::uint8_t> gif_claiming(int w, int h) {
  return {'G', 'I', 'F', '8', '9', 'a', std::uint8_t(w), std::uint8_t(w >> 8), std::uint8_t(h), std::uint8_t(h >> 8),
          0x80, 0, 0, 0, 0, 0, 255, 255, 255,                 // a 2-colour table
          0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 0x01, 0,  // one 1 x 1 image: LZW clear, 0, end
          0x3B};
}

}  // namespace

namespace {

// Decode every file listed in tests/fixtures/vision_images/pillow/<index> ("NAME WIDTH
// HEIGHT what") and compare with NAME.rgb, the RGB bytes Pillow decodes (written by
// tests/reference/make_pillow_image_fixtures.py). Returns the number of files.
int check_against_pillow(const std::string& index_name) {
  const std::string dir = images_dir() + "/pillow";
  std::ifstream index(dir + "/" + index_name);
  REQUIRE(index.good());
  std::string line;
  int files = 0;
  while (std::getline(index, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ss(line);
    std::string name;
    int w = 0, h = 0;
    ss >> name >> w >> h;
    INFO(line);
    const Image img = gemma3::load_image(dir + "/" + name);
    const std::vector<std::uint8_t> want = read_bytes(dir + "/" + name + ".rgb");
    REQUIRE(img.width == w);
    REQUIRE(img.height == h);
    REQUIRE(want.size() == img.pixels.size());
    std::size_t differ = 0;
    int max_diff = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
      const int d = std::abs(int(want[i]) - int(img.pixels[i]));
      differ += d != 0;
      max_diff = std::max(max_diff, d);
    }
    INFO(differ << " of " << want.size() << " values differ from Pillow's, max " << max_diff);
    CHECK(differ == 0);
    ++files;
  }
  return files;
}

}  // namespace

TEST_CASE("image files decode to the pixels Pillow gives transformers (16-bit gray PNG, BMP variants)", "[vision]") {
  CHECK(check_against_pillow("index.txt") == 11);
}

TEST_CASE("JPEG files of each scan layout decode to Pillow's pixels", "[vision]") {
  // Progressive (DC first and refinement scans, AC bands), grayscale, 4:4:4, 4:2:2 at an
  // odd width (where stb_image's JPEG decoder was up to 96 levels off in the last column),
  // restart markers, CMYK. Each file must pass the header walk (every scan's tables) and
  // decode to Pillow's bytes exactly.
  CHECK(check_against_pillow("jpeg.txt") == 6);
}

TEST_CASE("hostile image headers: named by format, refused before the decoder allocates or overruns", "[vision]") {
  loader_errors::TempDir dir;
  // A JPEG whose Huffman table claims more than 256 codes: stb_image 2.27 would write
  // past its 257-entry size array (UBSan: index 257 in stbi__build_huffman).
  std::vector<std::uint8_t> jpg = read_bytes(images_dir() + "/photo.jpg");
  std::size_t dht = 0;
  for (std::size_t i = 2; i + 1 < jpg.size(); ++i)
    if (jpg[i] == 0xFF && jpg[i + 1] == 0xC4) { dht = i; break; }
  REQUIRE(dht > 0);
  for (int k = 0; k < 16; ++k) jpg[dht + 5 + std::size_t(k)] = 20;  // 16 x 20 = 320 codes
  loader_errors::write_file(dir / "huffman.jpg", loader_errors::Bytes(jpg.begin(), jpg.end()));
  REQUIRE_THROWS_NAMING(gemma3::ImageError, gemma3::load_image((dir / "huffman.jpg").string()), "huffman.jpg (JPEG)",
                        "defines 320 codes", "at most 256");

  // A scan that names a Huffman table no DHT segment defined: stb_image 2.27 decodes it with
  // whatever its uninitialised table memory holds (UBSan: a negative shift and a read past
  // the table in stbi__jpeg_huff_decode). photo.jpg's scan names DC/AC tables 0 and 1;
  // point the last component at DC table 3.
  std::vector<std::uint8_t> no_table = read_bytes(images_dir() + "/photo.jpg");
  std::size_t sos = 0;
  for (std::size_t i = 2; i + 1 < no_table.size(); ++i)
    if (no_table[i] == 0xFF && no_table[i + 1] == 0xDA) { sos = i; break; }
  REQUIRE(sos > 0);
  const std::size_t ns = no_table[sos + 4];
  REQUIRE(ns == 3);
  no_table[sos + 4 + 2 * ns] = std::uint8_t(0x30 | (no_table[sos + 4 + 2 * ns] & 15));
  loader_errors::write_file(dir / "no_table.jpg", loader_errors::Bytes(no_table.begin(), no_table.end()));
  REQUIRE_THROWS_NAMING(gemma3::ImageError, gemma3::load_image((dir / "no_table.jpg").string()),
                        "no_table.jpg (JPEG)", "component 3 uses DC Huffman table 3",
                        "no DHT segment before the scan defines");
  // The same for a quantization table: the frame's first component names table 2.
  std::vector<std::uint8_t> no_quant = read_bytes(images_dir() + "/photo.jpg");
  std::size_t sof = 0;
  for (std::size_t i = 2; i + 1 < no_quant.size(); ++i)
    if (no_quant[i] == 0xFF && no_quant[i + 1] == 0xC0) { sof = i; break; }
  REQUIRE(sof > 0);
  no_quant[sof + 12] = 2;  // FF C0, length (2), precision, height (2), width (2), Nf, then C1 H/V Tq1
  loader_errors::write_file(dir / "no_quant.jpg", loader_errors::Bytes(no_quant.begin(), no_quant.end()));
  REQUIRE_THROWS_NAMING(gemma3::ImageError, gemma3::load_image((dir / "no_quant.jpg").string()),
                        "no_quant.jpg (JPEG)", "uses quantization table 2", "no DQT segment");

  // A corrupt JPEG (a valid start, then noise) is named as a JPEG, not with a PNG reason.
  std::vector<std::uint8_t> bad = read_bytes(images_dir() + "/photo.jpg");
  for (std::size_t i = 20; i < 60; ++i) bad[i] = std::uint8_t(i * 37);
  loader_errors::write_file(dir / "corrupt.jpg", loader_errors::Bytes(bad.begin(), bad.end()));
  try {
    (void)gemma3::load_image((dir / "corrupt.jpg").string());
    FAIL("corrupt.jpg decoded");
  } catch (const gemma3::ImageError& e) {
    const std::string m = e.what();
    INFO(m);
    CHECK(m.find("corrupt.jpg (JPEG)") != std::string::npos);
    CHECK(m.find("png") == std::string::npos);
  }

  // A 35-byte GIF claiming 14344 x 8272 (118.7 Mpx): over max_pixels, refused before
  // stb_image allocates ~1.1 GB for it; 5000 x 4000 is under max_pixels but over the
  // GIF limit (stb_image holds 9 bytes per pixel for a GIF).
  const std::vector<std::uint8_t> bomb = gif_claiming(14344, 8272);
  loader_errors::write_file(dir / "bomb.gif", loader_errors::Bytes(bomb.begin(), bomb.end()));
  REQUIRE_THROWS_NAMING(gemma3::ImageError, gemma3::load_image((dir / "bomb.gif").string()), "bomb.gif (GIF)",
                        "14344 x 8272", "max_pixels");
  const std::vector<std::uint8_t> wide = gif_claiming(5000, 4000);
  loader_errors::write_file(dir / "wide.gif", loader_errors::Bytes(wide.begin(), wide.end()));
  REQUIRE_THROWS_NAMING(gemma3::ImageError, gemma3::load_image((dir / "wide.gif").string()), "wide.gif (GIF)",
                        "5000 x 4000", "max_gif_pixels");
  // ... and the same header at a sane size decodes (1 x 1 image in a 2 x 2 screen).
  const std::vector<std::uint8_t> small = gif_claiming(2, 2);
  CHECK(gemma3::decode_image(small.data(), small.size(), "small.gif").width == 2);

  // An empty IDAT chunk before the data (stb_image would memcpy from NULL; found by
  // fuzz_image) decodes to the same pixels as the file without it.
  const std::vector<std::uint8_t> rgb = read_bytes(images_dir() + "/rgb.png");
  std::size_t idat = 8;
  while (std::memcmp(rgb.data() + idat + 4, "IDAT", 4) != 0)
    idat += 12 + (std::size_t(rgb[idat]) << 24 | std::size_t(rgb[idat + 1]) << 16 | std::size_t(rgb[idat + 2]) << 8 | rgb[idat + 3]);
  std::vector<std::uint8_t> with_empty(rgb.begin(), rgb.begin() + std::ptrdiff_t(idat));
  const std::uint8_t empty_idat[] = {0, 0, 0, 0, 'I', 'D', 'A', 'T', 0x35, 0xAF, 0x06, 0x1E};
  with_empty.insert(with_empty.end(), std::begin(empty_idat), std::end(empty_idat));
  with_empty.insert(with_empty.end(), rgb.begin() + std::ptrdiff_t(idat), rgb.end());
  CHECK(gemma3::decode_image(with_empty.data(), with_empty.size(), "empty_idat.png").pixels ==
        gemma3::decode_image(rgb.data(), rgb.size(), "rgb.png").pixels);

  // Headers cut short, named by format.
  const std::uint8_t bmp[] = {'B', 'M', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 40, 0};
  REQUIRE_THROWS_NAMING(gemma3::ImageError, gemma3::decode_image(bmp, sizeof bmp, "x.bmp"), "x.bmp (BMP)",
                        "the file ends after 16 bytes");
  const std::uint8_t pnm[] = {'P', '6', ' ', '4', ' ', 'x'};
  REQUIRE_THROWS_NAMING(gemma3::ImageError, gemma3::decode_image(pnm, sizeof pnm, "x.ppm"), "x.ppm (PNM)", "height");
  const std::uint8_t jpeg_no_frame[] = {0xFF, 0xD8, 0xFF, 0xD9};
  REQUIRE_THROWS_NAMING(gemma3::ImageError, gemma3::decode_image(jpeg_no_frame, sizeof jpeg_no_frame, "x.jpg"),
                        "x.jpg (JPEG)", "no frame header");
}
#endif
