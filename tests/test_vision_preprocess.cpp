// Image preprocessing against transformers' Gemma3ImageProcessorPil (PIL path):
// RGB conversion (alpha over white), PIL's antialiased bilinear resize to uint8,
// rescale + normalise, Pan-and-Scan crop boxes and crops.
// Fixtures: tests/fixtures/vision_pixels (make_vision_fixtures.py).
#include <algorithm>
#include <cmath>
#include <map>

#include "catch.hpp"
#include "test_vision_helpers.hpp"

#include "gemma3/vision/pan_and_scan.hpp"
#include "gemma3/vision/preprocess.hpp"
#ifdef GEMMA3_HAVE_IMAGE_DECODERS
#include "gemma3/vision/image_file.hpp"
#endif

using gemma3::Image;
using gemma3::Matrix;

namespace {

const gemma3::SafetensorsFile& pixels() {
  static const gemma3::SafetensorsFile f(fixtures::path("vision_pixels") + "/expected.safetensors");
  return f;
}

struct PixelDiff {
  long long values = 0;
  long long off_by_one = 0;  // uint8 differs by exactly 1
  long long worse = 0;       // uint8 differs by more
  double max_float_diff = 0;
};

// Our pixel values for `views` (full image + crops) at `size` against the fixture's.
PixelDiff compare_pixels(const std::vector<Image>& views, const std::string& tag, int size) {
  const gemma3::TensorView& t = pixels().at(tag + ".pixel_values");
  REQUIRE(t.shape.at(0) == std::int64_t(views.size()));
  gemma3::Gemma3ImageProcessorConfig cfg;
  cfg.size = size;
  PixelDiff d;
  for (std::size_t i = 0; i < views.size(); ++i) {
    const Matrix ours = gemma3::preprocess_image(views[i], cfg);  // [3, S * S]
    const Matrix ref = vision_fixtures::f32_slice(pixels(), tag + ".pixel_values", std::int64_t(i), 3);
    REQUIRE(ref.cols() == ours.cols());
    for (Eigen::Index r = 0; r < 3; ++r)
      for (Eigen::Index c = 0; c < ref.cols(); ++c) {
        ++d.values;
        const int a = vision_fixtures::to_u8(ours(r, c)), b = vision_fixtures::to_u8(ref(r, c));
        if (std::abs(a - b) == 1) ++d.off_by_one;
        if (std::abs(a - b) > 1) ++d.worse;
        d.max_float_diff = std::max(d.max_float_diff, std::fabs(double(ours(r, c)) - double(ref(r, c))));
      }
  }
  return d;
}

std::vector<Image> views_of(const Image& img, bool pas) {
  return pas ? gemma3::pan_and_scan(img) : std::vector<Image>{img};
}

}  // namespace

TEST_CASE("RGBA -> RGB composites over white exactly like PIL (all 65536 value/alpha pairs)", "[vision]") {
  const std::vector<std::uint8_t> ref = vision_fixtures::u8(pixels(), "alpha_composite_over_white");  // [value, alpha]
  REQUIRE(ref.size() == 256 * 256);
  int mismatches = 0;
  for (int v = 0; v < 256; ++v)
    for (int a = 0; a < 256; ++a)
      mismatches += gemma3::composite_over_white(std::uint8_t(v), std::uint8_t(a)) != ref[std::size_t(v * 256 + a)];
  CHECK(mismatches == 0);
  // The common wrong way, dropping alpha, keeps the stored colour of transparent pixels.
  CHECK(int(gemma3::composite_over_white(0, 0)) == 255);
  CHECK(int(gemma3::composite_over_white(0, 128)) == int(ref[0 * 256 + 128]));
  CHECK(int(ref[0 * 256 + 128]) != 0);
}

TEST_CASE("Pan-and-Scan crop boxes equal HF's for every fixture case", "[vision]") {
  const std::int64_t n = vision_fixtures::i64(pixels(), "crops.count").at(0);
  REQUIRE(n >= 20);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::string p = "crops." + std::to_string(i);
    const std::vector<std::int64_t> c = vision_fixtures::i64(pixels(), p + ".case");  // w, h, min crop, max crops
    const float ratio = fixtures::matrix(pixels(), p + ".ratio")(0, 0);
    gemma3::PanAndScanOptions o;
    o.pan_and_scan_min_crop_size = int(c[2]);
    o.pan_and_scan_max_num_crops = int(c[3]);
    o.pan_and_scan_min_ratio_to_activate = double(ratio) == 1.2f ? 1.2 : double(ratio) == 1.5f ? 1.5 : double(ratio);
    const std::vector<gemma3::CropBox> ours = gemma3::pan_and_scan_crops(int(c[0]), int(c[1]), o);
    const std::vector<std::int64_t> ref = vision_fixtures::i64(pixels(), p + ".boxes");  // [n, 4] x, y, w, h
    INFO(c[0] << " x " << c[1] << ", min crop " << c[2] << ", max " << c[3] << ", ratio " << o.pan_and_scan_min_ratio_to_activate);
    REQUIRE(ours.size() * 4 == ref.size());
    for (std::size_t k = 0; k < ours.size(); ++k) {
      CHECK(ours[k].x == ref[4 * k + 0]);
      CHECK(ours[k].y == ref[4 * k + 1]);
      CHECK(ours[k].width == ref[4 * k + 2]);
      CHECK(ours[k].height == ref[4 * k + 3]);
    }
  }
}

TEST_CASE("Pan-and-Scan worked examples (transformers' Gemma3ImageProcessor rules)", "[vision]") {
  using gemma3::CropBox;
  using V = std::vector<CropBox>;
  CHECK(gemma3::pan_and_scan_crops(1000, 800) == V{{0, 0, 500, 800}, {500, 0, 500, 800}});
  CHECK(gemma3::pan_and_scan_crops(5000, 1000).size() == 4);
  CHECK(gemma3::pan_and_scan_crops(720, 1280) == V{{0, 0, 720, 640}, {0, 640, 720, 640}});
  CHECK(gemma3::pan_and_scan_crops(500, 300).empty());  // crops would be 250 < 256 wide
  // HF truncates the last crop at the edge (gemma_pytorch pads it with black).
  CHECK(gemma3::pan_and_scan_crops(1001, 300).back() == CropBox{668, 0, 333, 300});
  // gemma_pytorch's threshold 1.5 instead of HF's 1.2
  gemma3::PanAndScanOptions pt;
  pt.pan_and_scan_min_ratio_to_activate = 1.5;
  CHECK(gemma3::pan_and_scan_crops(1000, 800, pt).empty());
  // Order: the full image, then the crops left to right.
  const std::vector<Image> views = gemma3::pan_and_scan(vision_fixtures::formula_image(1001, 300, 2));
  REQUIRE(views.size() == 4);
  CHECK(views[0].width == 1001);
  CHECK(views[1].width == 334);
  CHECK(views[3].width == 333);
  CHECK(views[2].at(0, 0, 0) == vision_fixtures::formula_image(1001, 300, 2).at(334, 0, 0));
}

TEST_CASE("Pan-and-Scan prompt text is HF's", "[vision]") {
  const std::string seq = gemma3::full_image_sequence_text(2);
  CHECK(seq == "\n\n<start_of_image><image_soft_token><image_soft_token><end_of_image>\n\n");
  CHECK(gemma3::pan_and_scan_prompt_text(0, 2) == seq);
  CHECK(gemma3::pan_and_scan_prompt_text(2, 2) == "Here is the original image " + seq +
                                                      " and here are some crops to help you see better " + seq + " " +
                                                      seq);
}

TEST_CASE("pixel values at 56 x 56 equal the PIL processor's, every pixel (formula images)", "[vision]") {
  for (const vision_fixtures::FormulaImage& fi : vision_fixtures::formula_images())
    for (const bool pas : {false, true}) {
      const std::string tag = std::string(fi.name) + (pas ? ".pas" : ".plain");
      const Image img = vision_fixtures::formula_image(fi.w, fi.h, fi.seed);
      const std::vector<Image> views = views_of(img, pas);
      CHECK(std::int64_t(views.size()) - 1 == vision_fixtures::i64(pixels(), tag + ".num_crops").at(0));
      const PixelDiff d = compare_pixels(views, tag, 56);
      INFO(tag << ": " << d.values << " values, " << d.off_by_one << " off by one, " << d.worse
               << " off by more; max |float diff| " << d.max_float_diff);
      CHECK(d.off_by_one == 0);
      CHECK(d.worse == 0);
      CHECK(d.max_float_diff == 0.0);  // the same uint8 and the same float32 arithmetic: bit-identical
    }
}

TEST_CASE("resized 896 x 896 images hash equal to the PIL processor's", "[vision]") {
  std::map<std::string, Image> sources = {
      {"square", vision_fixtures::formula_image(40, 40, 1)},
      {"wide", vision_fixtures::formula_image(1001, 300, 2)},
      {"tall", vision_fixtures::formula_image(300, 800, 3)},
      {"tiny", vision_fixtures::formula_image(3, 2, 4)}};
#ifdef GEMMA3_HAVE_IMAGE_DECODERS
  sources["file_rgba_png"] = gemma3::load_image(fixtures::path("vision_images") + "/rgba.png");
#endif
  int checked = 0;
  const int rows[] = {0, 447, 895};
  for (const auto& [name, img] : sources)
    for (const bool pas : {false, true}) {
      const std::string tag = name + (pas ? ".pas" : ".plain");
      if (!pixels().find(tag + ".big_hash")) continue;
      const std::vector<Image> views = views_of(img, pas);
      const std::vector<std::int64_t> hashes = vision_fixtures::i64(pixels(), tag + ".big_hash");
      const std::vector<std::uint8_t> ref_rows = vision_fixtures::u8(pixels(), tag + ".big_rows");
      REQUIRE(hashes.size() == views.size() * 2);
      for (std::size_t i = 0; i < views.size(); ++i) {
        const Image r = gemma3::resize_bilinear(views[i], 896, 896);
        std::vector<std::uint8_t> chw(3 * 896 * 896);  // HF's layout [3, 896, 896]
        for (int c = 0; c < 3; ++c)
          for (int y = 0; y < 896; ++y)
            for (int x = 0; x < 896; ++x) chw[(std::size_t(c) * 896 + std::size_t(y)) * 896 + std::size_t(x)] = r.at(x, y, c);
        const std::uint64_t h = vision_fixtures::fnv1a64(chw.data(), chw.size());
        INFO(tag << " view " << i);
        CHECK(std::int64_t(h >> 32) == hashes[2 * i]);
        CHECK(std::int64_t(h & 0xffffffffu) == hashes[2 * i + 1]);
        long long row_mismatches = 0;
        for (int c = 0; c < 3; ++c)
          for (int k = 0; k < 3; ++k)
            for (int x = 0; x < 896; ++x)
              row_mismatches += r.at(x, rows[k], c) != ref_rows[((i * 3 + std::size_t(c)) * 3 + std::size_t(k)) * 896 + std::size_t(x)];
        CHECK(row_mismatches == 0);
        ++checked;
      }
    }
  CHECK(checked >= 12);
}

TEST_CASE("preprocess: shapes and the value formula k / 127.5 - 1", "[vision]") {
  const Image img = vision_fixtures::formula_image(5, 3, 9);
  gemma3::Gemma3ImageProcessorConfig cfg;
  cfg.size = 5;  // no resize along x; y upscaled
  const Matrix pv = gemma3::preprocess_image(img, cfg);
  CHECK(pv.rows() == 3);
  CHECK(pv.cols() == 25);
  const Image same = gemma3::resize_bilinear(img, 5, 3);  // same size: a copy
  CHECK(same.pixels == img.pixels);
  for (int k : {0, 1, 127, 128, 255}) {
    Image one;
    one.width = one.height = 1;
    one.pixels = {std::uint8_t(k), std::uint8_t(k), std::uint8_t(k)};
    cfg.size = 1;
    CHECK(gemma3::preprocess_image(one, cfg)(0, 0) == float((float(k / 255.0) - 0.5f) / 0.5f));
  }
  CHECK(gemma3::preprocess_image(Image{1, 1, {255, 0, 0}}, cfg)(0, 0) == 1.0f);
  CHECK(gemma3::preprocess_image(Image{1, 1, {255, 0, 0}}, cfg)(1, 0) == -1.0f);
}

#ifdef GEMMA3_HAVE_IMAGE_DECODERS
TEST_CASE("image files -> pixel values equal the PIL processor's (PNG gray, gray+alpha, RGB, RGBA, palette, BMP, JPEG)",
          "[vision]") {
  const std::string dir = fixtures::path("vision_images");
  for (const char* file : {"rgb.png", "gray.png", "gray_alpha.png", "rgba.png", "palette.png", "rgb.bmp", "photo.jpg"}) {
    std::string key = std::string("file_") + file;
    std::replace(key.begin(), key.end(), '.', '_');
    const Image img = gemma3::load_image(dir + "/" + file);
    for (const bool pas : {false, true}) {
      const std::string tag = key + (pas ? ".pas" : ".plain");
      const PixelDiff d = compare_pixels(views_of(img, pas), tag, 56);
      INFO(tag << ": " << d.values << " values, " << d.off_by_one << " off by one, " << d.worse
               << " off by more; max |float diff| " << d.max_float_diff);
      CHECK(d.off_by_one == 0);
      CHECK(d.worse == 0);
      CHECK(d.max_float_diff == 0.0);
    }
  }
}

TEST_CASE("JPEG: decoded to the bytes PIL (libjpeg-turbo) decodes", "[vision]") {
  const Image img = gemma3::load_image(fixtures::path("vision_images") + "/photo.jpg");
  const std::vector<std::uint8_t> ref = vision_fixtures::u8(pixels(), "jpeg_pil_decode");  // [24, 32, 3]
  REQUIRE(img.width == 32);
  REQUIRE(img.height == 24);
  REQUIRE(ref.size() == img.pixels.size());
  long long differ = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) differ += img.pixels[i] != ref[i];
  CHECK(differ == 0);
}
#endif
