// pan_and_scan_crops -- what Gemma 3 actually sees of an image: the 896 x 896
// squashed full image and, with Pan-and-Scan, each crop, written as PNG files.
//
//   pan_and_scan_crops IMAGE OUT_DIR [--size 896] [--min-crop 256] [--max-crops 4] [--ratio 1.2]
//
// Writes OUT_DIR/full.png (the image squashed to size x size with PIL's bilinear
// resize, exactly the pixels the vision tower gets) and, if Pan-and-Scan applies,
// OUT_DIR/crop_K.png (the crop as cut from the original) and OUT_DIR/crop_K_resized.png
// (what the tower gets for it). Prints the crop boxes.
// Needs stb_image / stb_image_write (Debian: libstb-dev).
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include <gemma3/vision/image_file.hpp>
#include <gemma3/vision/pan_and_scan.hpp>
#include <gemma3/vision/preprocess.hpp>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include <stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace {

void write_png(const std::string& path, const gemma3::Image& img) {
  if (!stbi_write_png(path.c_str(), img.width, img.height, 3, img.pixels.data(), img.width * 3))
    throw std::runtime_error(path + ": cannot write the PNG");
  std::cout << "  wrote " << path << " (" << img.width << " x " << img.height << ")\n";
}

int parse_int(const std::string& flag, const char* s) {
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v < 1 || v > 1 << 16) throw std::invalid_argument(flag + ": '" + s + "' is not a size");
  return int(v);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: pan_and_scan_crops IMAGE OUT_DIR [--size 896] [--min-crop 256] [--max-crops 4] [--ratio 1.2]\n";
    return 2;
  }
  try {
    const std::string image_path = argv[1], out_dir = argv[2];
    int size = 896;
    gemma3::PanAndScanOptions o;
    for (int i = 3; i < argc; ++i) {
      const std::string a = argv[i];
      if (i + 1 >= argc) throw std::invalid_argument(a + ": missing value");
      const char* v = argv[++i];
      if (a == "--size") size = parse_int(a, v);
      else if (a == "--min-crop") o.pan_and_scan_min_crop_size = parse_int(a, v);
      else if (a == "--max-crops") o.pan_and_scan_max_num_crops = parse_int(a, v);
      else if (a == "--ratio") o.pan_and_scan_min_ratio_to_activate = std::atof(v);
      else throw std::invalid_argument("unknown option " + a);
    }
    const gemma3::Image img = gemma3::load_image(image_path);
    std::cout << image_path << ": " << img.width << " x " << img.height << "\n";
    write_png(out_dir + "/full.png", gemma3::resize_bilinear(img, size, size));
    const std::vector<gemma3::CropBox> crops = gemma3::pan_and_scan_crops(img.width, img.height, o);
    if (crops.empty()) std::cout << "no Pan-and-Scan crops (aspect ratio below " << o.pan_and_scan_min_ratio_to_activate
                                 << " or crops would be smaller than " << o.pan_and_scan_min_crop_size << ")\n";
    for (std::size_t k = 0; k < crops.size(); ++k) {
      const gemma3::CropBox& b = crops[k];
      std::cout << "crop " << k + 1 << ": x " << b.x << ", y " << b.y << ", " << b.width << " x " << b.height << "\n";
      const gemma3::Image c = gemma3::crop(img, b.x, b.y, b.width, b.height);
      write_png(out_dir + "/crop_" + std::to_string(k + 1) + ".png", c);
      write_png(out_dir + "/crop_" + std::to_string(k + 1) + "_resized.png", gemma3::resize_bilinear(c, size, size));
    }
    std::cout << "the model sees " << 1 + crops.size() << " image(s) of " << size << " x " << size << " = "
              << 256 * (1 + crops.size()) << " soft tokens (256 each, 4B/12B/27B)\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
