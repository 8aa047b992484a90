// gemma3/vision/preprocess.hpp -- an RGB image to the SigLIP tower's pixel values.
//
//   image [h, w, 3] uint8
//     -> resize to image_size x image_size, PIL BILINEAR (antialiased), uint8   [S, S, 3]
//        (aspect ratio NOT kept: the image is squashed; Pan-and-Scan is the remedy)
//     -> v = (k * rescale_factor - image_mean[c]) / image_std[c]               = k / 127.5 - 1
//     -> channels first                                                        [3, S * S] float32
//
// The resize is Pillow's ImagingResample, written out because Gemma was trained
// on -- and transformers' reference processor produces -- exactly its integers:
//   * separable: a horizontal and a vertical pass, each to uint8; a pass is
//     skipped when that dimension does not change; the vertical pass goes first
//     when the height shrinks by more than twice as many pixels as the width;
//   * for each output pixel i: center = (i + 0.5) * scale, scale = in / out;
//     when shrinking the triangle filter is stretched by `scale` (support =
//     scale, the antialias), otherwise support = 1; taps xmin..xmax are
//     int(center -/+ support + 0.5) clamped to the image, weights
//     tri((x - center + 0.5) / max(scale, 1)) normalised to sum 1 (double);
//   * weights to fixed point with 22 fractional bits, rounded half away from 0;
//   * out = clamp((sum_x k[x] * in[x] + 2^21) >> 22, 0, 255).
// Then transformers' rescale (float64 product, cast to float32) and normalize
// (float32), so each value is bit-identical to the reference's.
//
// Mirrors Gemma3ImageProcessorPil (transformers 5.24; PilBackend.resize ->
// image_transforms.resize -> PIL.Image.resize(BILINEAR, reducing_gap=None)), with
// the released preprocessor_config.json (size 896, resample 2, rescale 1/255,
// mean = std = 0.5). NOT the torchvision class Gemma3ImageProcessor that
// AutoImageProcessor picks when torchvision is installed (different resampler).
// Pinned by tests/test_vision_preprocess.cpp: every pixel of 11 images at 56 x 56,
// and a hash + rows of 14 resized views of 5 images at 896 x 896, against that processor.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../tensor.hpp"
#include "image.hpp"

namespace gemma3 {

// The fields of the released preprocessor_config.json that matter (names as there).
struct Gemma3ImageProcessorConfig {
  int size = 896;                          // size.height == size.width == vision_config.image_size
  double rescale_factor = 1.0 / 255.0;     // do_rescale
  float image_mean[3] = {0.5f, 0.5f, 0.5f};  // do_normalize
  float image_std[3] = {0.5f, 0.5f, 0.5f};
};

namespace detail {

// PIL's precompute_coeffs + normalize_coeffs_8bpc for the BILINEAR filter.
struct ResampleTaps {
  int ksize = 0;                     // taps reserved per output pixel
  std::vector<int> first;            // [out]: first input pixel used
  std::vector<int> count;            // [out]: how many input pixels are used
  std::vector<std::int32_t> weight;  // [out, ksize]: fixed point, 22 fractional bits
};

constexpr int kResamplePrecisionBits = 22;  // PIL: 32 - 8 (output) - 2 (headroom)

inline ResampleTaps bilinear_taps(int in_size, int out_size) {
  const double scale = double(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);  // stretch the filter only when shrinking
  const double support = 1.0 * filterscale;          // the triangle's support is 1
  ResampleTaps t;
  t.ksize = int(std::ceil(support)) * 2 + 1;
  t.first.resize(std::size_t(out_size));
  t.count.resize(std::size_t(out_size));
  t.weight.assign(std::size_t(out_size) * std::size_t(t.ksize), 0);
  std::vector<double> w(std::size_t(t.ksize));
  const double ss = 1.0 / filterscale;  // PIL multiplies by the reciprocal (bit-exactness)
  for (int i = 0; i < out_size; ++i) {
    const double center = (i + 0.5) * scale;
    const int xmin = std::max(0, int(center - support + 0.5));
    const int xmax = std::min(in_size, int(center + support + 0.5)) - xmin;
    double sum = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double d = std::fabs((x + xmin - center + 0.5) * ss);
      w[std::size_t(x)] = d < 1.0 ? 1.0 - d : 0.0;
      sum += w[std::size_t(x)];
    }
    for (int x = 0; x < xmax; ++x) {
      const double k = sum != 0.0 ? w[std::size_t(x)] / sum : w[std::size_t(x)];
      const double fixed = k * double(1 << kResamplePrecisionBits);
      t.weight[std::size_t(i) * std::size_t(t.ksize) + std::size_t(x)] =
          std::int32_t(k < 0 ? -0.5 + fixed : 0.5 + fixed);
    }
    t.first[std::size_t(i)] = xmin;
    t.count[std::size_t(i)] = xmax;
  }
  return t;
}

inline std::uint8_t clip8(std::int64_t acc) {
  const std::int64_t v = acc >> kResamplePrecisionBits;
  return std::uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}

}  // namespace detail

namespace detail {

// One separable pass along x (horizontal) or y (vertical) to `out_size` pixels, uint8 -> uint8.
inline Image resample_pass(const Image& in, int out_size, bool horizontal) {
  const int in_size = horizontal ? in.width : in.height;
  const ResampleTaps t = bilinear_taps(in_size, out_size);
  Image out;
  out.width = horizontal ? out_size : in.width;
  out.height = horizontal ? in.height : out_size;
  out.pixels.resize(std::size_t(out.width) * std::size_t(out.height) * 3);
  for (int y = 0; y < out.height; ++y)
    for (int x = 0; x < out.width; ++x) {
      const int i = horizontal ? x : y;  // output index along the resampled axis
      const std::int32_t* k = &t.weight[std::size_t(i) * std::size_t(t.ksize)];
      for (int c = 0; c < 3; ++c) {
        std::int64_t acc = std::int64_t(1) << (kResamplePrecisionBits - 1);  // rounds the final shift
        for (int j = 0; j < t.count[std::size_t(i)]; ++j) {
          const int src = t.first[std::size_t(i)] + j;
          acc += std::int64_t(horizontal ? in.at(src, y, c) : in.at(x, src, c)) * k[j];
        }
        out.at(x, y, c) = clip8(acc);
      }
    }
  return out;
}

}  // namespace detail

// PIL's Image.resize((out_w, out_h), BILINEAR) of an RGB image. Pillow 13 (the
// version the fixtures pin) runs the vertical pass first when the height shrinks by
// more than twice as many pixels as the width does, else horizontal first; since
// each pass rounds to uint8, the order changes some values by 1.
inline Image resize_bilinear(const Image& in, int out_w, int out_h) {
  check_image_size(out_w, out_h, ImageLimits{}, "resize_bilinear target");
  const bool need_horizontal = out_w != in.width, need_vertical = out_h != in.height;
  const int shrink_h = in.height - out_h, shrink_w = in.width - out_w;
  const bool horizontal_first = !(shrink_h > 0 && shrink_h > shrink_w * 2);
  Image cur = in;
  if (horizontal_first && need_horizontal) cur = detail::resample_pass(cur, out_w, true);
  if (need_vertical) cur = detail::resample_pass(cur, out_h, false);
  if (!horizontal_first && need_horizontal) cur = detail::resample_pass(cur, out_w, true);
  return cur;
}

// uint8 image [S, S, 3] -> pixel values [3, S * S]: (k * rescale_factor - mean) / std.
// Element (c, y * S + x) is channel c (R, G, B) of pixel (x, y), like HF's pixel_values[0, c, y, x].
inline Matrix normalize_pixels(const Image& img, const Gemma3ImageProcessorConfig& cfg = {}) {
  Matrix out(3, Eigen::Index(img.width) * img.height);  // [3, S * S]
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < img.height; ++y)
      for (int x = 0; x < img.width; ++x) {
        const float rescaled = float(double(img.at(x, y, c)) * cfg.rescale_factor);  // HF: float64 product -> float32
        out(c, Eigen::Index(y) * img.width + x) = (rescaled - cfg.image_mean[c]) / cfg.image_std[c];
      }
  return out;
}

// The whole base path: resize to cfg.size x cfg.size, rescale, normalise.
//   image -> pixel values [3, size * size]
inline Matrix preprocess_image(const Image& img, const Gemma3ImageProcessorConfig& cfg = {}) {
  return normalize_pixels(resize_bilinear(img, cfg.size, cfg.size), cfg);
}

}  // namespace gemma3
