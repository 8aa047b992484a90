// gemma3/vision/pan_and_scan.hpp -- Pan-and-Scan: extra crops for images far from square.
//
// Every image is squashed to 896 x 896, so a long thin image loses detail along its
// long side. Pan-and-Scan (off by default; HF's do_pan_and_scan) cuts the ORIGINAL
// image into n equal crops along that side and gives the model the full image
// followed by each crop, each squashed to 896 x 896 on its own.
//
// On a w x h image, with the options below (HF names, defaults 256 / 4 / 1.2):
//   landscape or square (w >= h):
//     w / h < min_ratio_to_activate            -> no crops
//     n = floor(w / h + 0.5)                   (the aspect ratio, rounded half up)
//     n = min(n, floor(w / min_crop_size)), then clamp to [2, max_num_crops]
//     grid n x 1;   portrait (h > w): the same with h / w and floor(h / min_crop_size), grid 1 x n
//   crop_w = ceil(w / n_w), crop_h = ceil(h / n_h); if min(crop_w, crop_h) < min_crop_size -> no crops
//   crop i at (i * crop_w, 0) (or (0, i * crop_h)); the LAST crop is cut off at the image edge
//     (HF slices arrays; gemma_pytorch's PIL crop pads with black instead)
// Worked examples (ratio 1.2): 1000 x 800 -> 2 crops 500 x 800; 3000 x 1000 -> 3 of 1000 x 1000;
// 5000 x 1000 -> 4 of 1250 x 1000; 1001 x 300 -> 334, 334, 333 wide; 500 x 300 -> none (250 < 256).
//
// Order in pixel_values: [full image, crop 1, ..., crop n] for each image in turn.
// Prompt text: HF replaces the image's <start_of_image> by
//   "Here is the original image " + SEQ + " and here are some crops to help you see better "
//   + SEQ joined by " " for each crop
// where SEQ = "\n\n<start_of_image>" + <image_soft_token> x 256 + "<end_of_image>\n\n";
// without crops it is just SEQ (multimodal.hpp has the id-level version).
//
// Mirrors Gemma3ImageProcessorPil.pan_and_scan and Gemma3Processor.replace_image_token
// (transformers 5.24). Pinned by tests/test_vision_preprocess.cpp: the crop boxes of
// 23 image sizes / option sets straight from HF, and crop pixels through the processor.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "image.hpp"

namespace gemma3 {

struct PanAndScanOptions {
  int pan_and_scan_min_crop_size = 256;
  int pan_and_scan_max_num_crops = 4;
  double pan_and_scan_min_ratio_to_activate = 1.2;  // gemma_pytorch hard-codes 1.5
};

struct CropBox {
  int x = 0, y = 0, width = 0, height = 0;
  bool operator==(const CropBox& o) const { return x == o.x && y == o.y && width == o.width && height == o.height; }
};

// The crops of a width x height image (empty: no Pan-and-Scan for this image).
inline std::vector<CropBox> pan_and_scan_crops(int width, int height, const PanAndScanOptions& o = {}) {
  if (width < 1 || height < 1 || o.pan_and_scan_min_crop_size < 1 || o.pan_and_scan_max_num_crops < 1)
    throw ImageError("pan_and_scan_crops: expected a non-empty image, min_crop_size >= 1 and max_num_crops >= 1");
  const bool landscape = width >= height;
  const int long_side = landscape ? width : height, short_side = landscape ? height : width;
  const double ratio = double(long_side) / double(short_side);
  if (ratio < o.pan_and_scan_min_ratio_to_activate) return {};

  int n = int(std::floor(ratio + 0.5));                                           // half rounds up
  n = std::min(n, int(std::floor(double(long_side) / o.pan_and_scan_min_crop_size)));  // crops >= min size
  n = std::min(std::max(n, 2), o.pan_and_scan_max_num_crops);

  const int n_w = landscape ? n : 1, n_h = landscape ? 1 : n;
  const int crop_w = int(std::ceil(double(width) / n_w));
  const int crop_h = int(std::ceil(double(height) / n_h));
  if (std::min(crop_w, crop_h) < o.pan_and_scan_min_crop_size) return {};

  std::vector<CropBox> crops;
  for (int j = 0; j < n_h; ++j)    // rows outer,
    for (int i = 0; i < n_w; ++i) {  // columns inner
      CropBox b{i * crop_w, j * crop_h, 0, 0};
      b.width = std::min(crop_w, width - b.x);  // truncated at the edge
      b.height = std::min(crop_h, height - b.y);
      if (b.width < 1 || b.height < 1)
        throw ImageError("pan_and_scan_crops: crop " + std::to_string(crops.size()) + " of a " + std::to_string(width) +
                         " x " + std::to_string(height) + " image would be empty (options too small)");
      crops.push_back(b);
    }
  return crops;
}

// The images the tower sees for one input image: the full image, then its crops.
inline std::vector<Image> pan_and_scan(const Image& img, const PanAndScanOptions& o = {}) {
  std::vector<Image> out{img};
  for (const CropBox& b : pan_and_scan_crops(img.width, img.height, o)) out.push_back(crop(img, b.x, b.y, b.width, b.height));
  return out;
}

// HF's text for one image (Gemma3Processor.full_image_sequence / replace_image_token).
inline std::string full_image_sequence_text(int mm_tokens_per_image = 256) {
  std::string s = "\n\n<start_of_image>";
  for (int i = 0; i < mm_tokens_per_image; ++i) s += "<image_soft_token>";
  return s + "<end_of_image>\n\n";
}

inline std::string pan_and_scan_prompt_text(int num_crops, int mm_tokens_per_image = 256) {
  const std::string seq = full_image_sequence_text(mm_tokens_per_image);
  if (num_crops == 0) return seq;
  std::string s = "Here is the original image " + seq + " and here are some crops to help you see better ";
  for (int i = 0; i < num_crops; ++i) s += (i ? " " : "") + seq;
  return s;
}

}  // namespace gemma3
