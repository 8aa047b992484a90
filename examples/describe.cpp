// describe -- show Gemma 3 (4B / 12B / 27B) some images and let it continue a prompt.
//
//   describe --model DIR --image A.png [--image B.jpg ...] [--pan-and-scan]
//            (--prompt "Describe the image." --tokenizer VOCAB.gguf | --prompt-ids 2,105,...)
//            [--max-tokens 32] [--context N] [--kv-type f16|f32]
//   describe --model gemma-3-4b-it-Q4_K_M.gguf --mmproj mmproj-gemma-3-4b-it-f16.gguf --image A.png --prompt "..."
//
//   --model       Hugging Face checkpoint folder of a Gemma3ForConditionalGeneration
//                 (config.json with vision_config + safetensors), or a llama.cpp text
//                 GGUF together with --mmproj (its vision part; the GGUF's own vocabulary
//                 is then the tokenizer). A text-only model (270M / 1B) is refused as
//                 soon as an image is given.
//   --image       an image file (PNG, JPEG, BMP, GIF, TGA, PNM); repeat for several.
//   --pan-and-scan  also give the model crops of images far from square (HF's do_pan_and_scan).
//   --prompt      user text; the prompt becomes the chat template
//                   <bos><start_of_turn>user\n<start_of_image>...<start_of_image>TEXT<end_of_turn>\n<start_of_turn>model\n
//                 tokenized with --tokenizer: any Gemma 3 GGUF (all sizes share one
//                 vocabulary; the 270M file from scripts/fetch-model.sh will do).
//   --kv-type     the KV cache's values: f16 (default, half the memory) or f32.
//   --prompt-ids  the prompt as ids instead (no tokenizer needed); each <start_of_image>
//                 id (255999, or the config's boi_token_index) marks where an image goes;
//                 without any, one per image is put right after the first id.
//
// Each <start_of_image> becomes [108 "\n\n", 255999, 262144 x 256, 256000, 108]
// (vision/multimodal.hpp, JAX's id-level expansion; HF tokenizes the expanded
// string instead, which can merge the "\n" before it into one "\n\n\n" token).
// Prints, per image, its size, its crops and its soft tokens, then greedy ids (and
// text with a tokenizer). There is no sampling here: greedy decoding with decode().
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gemma3/chat.hpp>
#include <gemma3/gguf_model.hpp>
#include <gemma3/tokenizer.hpp>
#include <gemma3/vision/image_file.hpp>
#include <gemma3/vision/mmproj.hpp>
#include <gemma3/vision/multimodal.hpp>

namespace {

void usage(std::ostream& os) {
  os << "usage: describe --model DIR|MODEL.gguf [--mmproj MMPROJ.gguf] --image FILE [--image FILE ...] [--pan-and-scan]\n"
        "                (--prompt TEXT --tokenizer VOCAB.gguf | --prompt-ids ID,ID,...)\n"
        "                [--max-tokens N] [--context N] [--kv-type f16|f32 (default f16)]\n";
}

std::vector<int> parse_ids(const std::string& s) {
  std::vector<int> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 0 || v > 1 << 30)
      throw std::invalid_argument("--prompt-ids: '" + item + "' is not a token id");
    ids.push_back(int(v));
  }
  if (ids.empty()) throw std::invalid_argument("--prompt-ids: no ids given");
  return ids;
}

int parse_count(const std::string& flag, const std::string& s) {
  char* end = nullptr;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || v < 0 || v > 1 << 24) throw std::invalid_argument(flag + ": '" + s + "' is not a count");
  return int(v);
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir, mmproj_path, prompt, prompt_ids, tokenizer_path;
  std::vector<std::string> images;
  bool pan_and_scan = false;
  int max_tokens = 32, context = 0;
  gemma3::DType kv_type = gemma3::DType::F16;  // as gemma3-cli: half the KV memory
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(a + ": missing value");
        return argv[++i];
      };
      if (a == "--model") model_dir = value();
      else if (a == "--mmproj") mmproj_path = value();
      else if (a == "--image") images.push_back(value());
      else if (a == "--pan-and-scan") pan_and_scan = true;
      else if (a == "--prompt") prompt = value();
      else if (a == "--prompt-ids") prompt_ids = value();
      else if (a == "--tokenizer") tokenizer_path = value();
      else if (a == "--max-tokens") max_tokens = parse_count(a, value());
      else if (a == "--context") context = parse_count(a, value());
      else if (a == "--kv-type") {
        const std::string t = value();
        if (t != "f16" && t != "f32") throw std::invalid_argument("--kv-type expects f16 or f32, got '" + t + "'");
        kv_type = t == "f16" ? gemma3::DType::F16 : gemma3::DType::F32;
      }
      else if (a == "-h" || a == "--help") { usage(std::cout); return 0; }
      else throw std::invalid_argument("unknown option " + a);
    }
    if (model_dir.empty()) throw std::invalid_argument("--model is required");
    if (prompt.empty() == prompt_ids.empty()) throw std::invalid_argument("give exactly one of --prompt and --prompt-ids");
    if (!prompt.empty() && tokenizer_path.empty() && mmproj_path.empty())
      throw std::invalid_argument("--prompt needs --tokenizer VOCAB.gguf (or use --prompt-ids)");
    if (pan_and_scan && tokenizer_path.empty() && mmproj_path.empty())
      throw std::invalid_argument("--pan-and-scan needs --tokenizer VOCAB.gguf: the crops are introduced by text "
                                  "phrases (\"Here is the original image ... and here are some crops\") that "
                                  "must be tokenized");
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    usage(std::cerr);
    return 2;
  }

  try {
    using clock = std::chrono::steady_clock;
    const auto t_load = clock::now();
    gemma3::Vocabulary gguf_vocab;
    const gemma3::Gemma3ForConditionalGeneration model =
        mmproj_path.empty() ? gemma3::load_hf_multimodal_model(model_dir)
                            : gemma3::load_gguf_multimodal_model(model_dir, mmproj_path, &gguf_vocab);
    if (!mmproj_path.empty() && tokenizer_path.empty()) tokenizer_path = model_dir;  // the text GGUF's vocabulary
    std::printf("model     %s (%s, loaded in %.2f s)\n", model_dir.c_str(),
                model.has_vision() ? "with vision tower" : "text only",
                std::chrono::duration<double>(clock::now() - t_load).count());

    std::unique_ptr<gemma3::Tokenizer> tok;
    if (!tokenizer_path.empty()) {
      const gemma3::GgufFile f(tokenizer_path);
      const gemma3::Vocabulary v = gemma3::vocabulary_from_gguf(f);
      gemma3::TokenizerConfig tc;
      tc.bos_id = v.bos_id;
      tc.eos_id = v.eos_id;
      tc.unk_id = v.unk_id;
      tc.pad_id = v.pad_id;
      tc.add_bos = v.add_bos;
      tc.add_space_prefix = v.add_space_prefix;
      tok = std::make_unique<gemma3::Tokenizer>(v.tokens, v.scores, v.token_types, tc);
    }

    // Images -> pixel values (full image, then crops), in prompt order.
    std::vector<gemma3::Matrix> pixel_values;
    std::vector<int> num_crops;
    for (const std::string& path : images) {
      const gemma3::Image img = gemma3::load_image(path);
      const std::vector<gemma3::Matrix> views = model.preprocess(img, pan_and_scan);  // throws for text-only
      const int crops = int(views.size()) - 1;
      const int N = model.vision_config().mm_tokens_per_image;
      std::printf("image     %s: %d x %d -> %d crop%s -> %d x %d x %d soft tokens\n", path.c_str(), img.width,
                  img.height, crops, crops == 1 ? "" : "s", int(views.size()), N,
                  model.language_model().config().hidden_size);
      for (const gemma3::CropBox& b : pan_and_scan ? gemma3::pan_and_scan_crops(img.width, img.height)
                                                   : std::vector<gemma3::CropBox>{})
        std::printf("            crop at (%d, %d), %d x %d\n", b.x, b.y, b.width, b.height);
      pixel_values.insert(pixel_values.end(), views.begin(), views.end());
      num_crops.push_back(crops);
    }

    // The prompt with one <start_of_image> per image, then expanded.
    gemma3::Gemma3VisionConfig vc = model.has_vision() ? model.vision_config() : gemma3::Gemma3VisionConfig{};
    if (tok) {  // the "\n\n" around each image, as this vocabulary spells it
      const int nn = tok->find("\n\n");
      if (nn < 0) throw std::runtime_error(tokenizer_path + ": the vocabulary has no \"\\n\\n\" piece to put around images");
      vc.double_newline_token_id = nn;
    }
    std::vector<int> ids;
    if (tok) {
      std::vector<gemma3::ChatPart> parts(images.size(), gemma3::ChatPart::make_image());
      parts.push_back(gemma3::ChatPart::make_text(prompt));
      ids = gemma3::encode_chat(*tok, {gemma3::ChatMessage("user", parts)});
    } else {
      ids = parse_ids(prompt_ids);
      if (std::count(ids.begin(), ids.end(), vc.boi_token_index) == 0)
        ids.insert(ids.begin() + 1, images.size(), vc.boi_token_index);
    }
    gemma3::PanAndScanPromptIds pas;
    if (tok) {
      gemma3::EncodeOptions e;
      e.add_bos = false;
      pas.before_original = tok->encode("Here is the original image ", e);
      pas.before_crops = tok->encode(" and here are some crops to help you see better ", e);
      pas.between_crops = tok->encode(" ", e);
    }
    if (!images.empty()) ids = gemma3::expand_image_tokens(ids, num_crops, vc, tok ? &pas : nullptr);
    std::printf("prompt    %zu tokens (%zu image soft tokens)\n", ids.size(),
                std::size_t(std::count(ids.begin(), ids.end(), vc.image_token_index)));

    gemma3::KVCache cache = model.new_cache(context > 0 ? context : int(ids.size()) + max_tokens, kv_type);
    const auto t0 = clock::now();
    gemma3::Vector logits = model.prefill(ids, pixel_values, cache);
    const double prefill_s = std::chrono::duration<double>(clock::now() - t0).count();
    std::vector<int> out;
    for (int g = 0; g < max_tokens; ++g) {
      Eigen::Index next;
      logits.maxCoeff(&next);
      out.push_back(int(next));
      if (next == 1 || next == 106) break;  // <eos>, <end_of_turn>
      if (g + 1 < max_tokens) logits = model.decode(int(next), cache);
    }
    std::printf("prefill   %.2f s (vision tower + %zu tokens)\n", prefill_s, ids.size());
    std::printf("ids      ");
    for (int id : out) std::printf(" %d", id);
    std::printf("\n");
    if (tok) std::printf("text      %s\n", tok->decode(out).c_str());
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
