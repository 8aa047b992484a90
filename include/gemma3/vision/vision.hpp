// gemma3/vision/vision.hpp -- the vision path, in the order an image travels (docs/vision.md).
//
//   concept                              header            entry point
//   RGB image, alpha over white, limits  image.hpp         Image, image_from_pixels, check_image_size
//   PNG / JPEG / BMP files (stb_image)   image_file.hpp    load_image, decode_image   (optional: not included here)
//   Pan-and-Scan crops and prompt text   pan_and_scan.hpp  pan_and_scan_crops, pan_and_scan
//   PIL bilinear resize, normalise       preprocess.hpp    resize_bilinear, preprocess_image
//   vision_config, mm_tokens_per_image   config.hpp        Gemma3VisionConfig, load_vision_config_json
//   SigLIP tower                         siglip.hpp        siglip_vision_tower
//   pool, RMSNorm, projection            projector.hpp     gemma3_multimodal_projector
//   prompt ids, the multimodal model     multimodal.hpp    expand_image_tokens, Gemma3ForConditionalGeneration,
//                                                          load_hf_multimodal_model
//   llama.cpp mmproj GGUF                mmproj.hpp        load_mmproj, load_gguf_multimodal_model
// The image mask rule itself lives with the text model's masks: ../attention_mask.hpp.
#pragma once

#include "config.hpp"
#include "image.hpp"
#include "mmproj.hpp"
#include "multimodal.hpp"
#include "pan_and_scan.hpp"
#include "preprocess.hpp"
#include "projector.hpp"
#include "siglip.hpp"
