// gemma3-run -- load a Gemma 3 checkpoint and greedily continue a prompt given as ids.
//
//   gemma3-run MODEL [--prompt-ids 2,818,5279] [--max-tokens 16] [--context 4096]
//
// MODEL is anything load_model() takes: a GGUF file, or a Hugging Face folder
// (config.json + model.safetensors or a sharded index; f32, bf16 or f16). The prompt
// is token ids (gemma3-cli takes text); without --prompt-ids the program uses the
// fixture's own input_ids when MODEL is a folder with an expected.safetensors (the
// test fixtures have one), else "2" (<bos>).
//
// It prints the model's shape and layer pattern, the continuation, prefill and
// decode speed, and the KV cache against what an all-global cache would need.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <gemma3/gemma3.hpp>

namespace {

void usage(std::ostream& os) {
  os << "usage: gemma3-run MODEL [--prompt-ids ID,ID,...] [--max-tokens N] [--context N]\n"
        "  MODEL          a GGUF file or a Hugging Face checkpoint folder (config.json + model.safetensors)\n"
        "  --prompt-ids   comma-separated token ids (default: the fixture's input_ids, else 2)\n"
        "  --max-tokens   tokens to generate greedily (default 16)\n"
        "  --context      KV cache length in tokens (default: prompt + max-tokens)\n";
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

double mib(std::size_t bytes) { return double(bytes) / (1024.0 * 1024.0); }

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir;
  std::vector<int> prompt;
  int max_tokens = 16, context = 0;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
        return argv[++i];
      };
      if (a == "-h" || a == "--help") { usage(std::cout); return 0; }
      else if (a == "--prompt-ids") prompt = parse_ids(value());
      else if (a == "--max-tokens") max_tokens = parse_count(a, value());
      else if (a == "--context") context = parse_count(a, value());
      else if (!a.empty() && a[0] == '-') throw std::invalid_argument("unknown option " + a);
      else if (model_dir.empty()) model_dir = a;
      else throw std::invalid_argument("more than one MODEL given");
    }
    if (model_dir.empty()) throw std::invalid_argument("no MODEL given");
  } catch (const std::exception& e) {
    std::cerr << "gemma3-run: " << e.what() << "\n";
    usage(std::cerr);
    return 2;
  }

  try {
    using clock = std::chrono::steady_clock;
    const auto t_load = clock::now();
    const gemma3::Gemma3ForCausalLM model = gemma3::load_model(model_dir);
    const double load_s = std::chrono::duration<double>(clock::now() - t_load).count();
    const gemma3::Gemma3TextConfig& c = model.config();

    if (prompt.empty()) {
      const std::string expected = model_dir + "/expected.safetensors";
      if (!gemma3::is_gguf_path(model_dir) && std::ifstream(expected).good()) {
        const gemma3::SafetensorsFile f(expected);
        const gemma3::TensorView& t = f.at("input_ids");
        for (std::int64_t i = 0; i < t.numel(); ++i) {
          std::int64_t v;
          std::memcpy(&v, t.data + 8 * i, 8);
          prompt.push_back(int(v));
        }
      } else {
        prompt = {c.bos_token_id};
      }
    }

    std::printf("model     %s (loaded in %.3f s)\n", model_dir.c_str(), load_s);
    std::printf("config    hidden %d, %d layers, %d query heads / %d kv heads x head_dim %d, "
                "intermediate %d, vocab %d, window %d\n",
                c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads, c.head_dim,
                c.intermediate_size, c.vocab_size, c.sliding_window);
    std::printf("layers    ");
    for (int i = 0; i < c.num_hidden_layers; ++i) std::printf("%c", c.is_sliding(i) ? 'L' : 'G');
    std::printf("   (L = sliding window %d, rope %.0f; G = global, rope %.0f / %.0f)\n", c.sliding_window,
                c.rope_local_base_freq, c.rope_theta, c.rope_for(gemma3::LayerType::full_attention).factor);
    std::printf("dtype     %s weights, float32 activations\n",
                gemma3::dtype_name(model.weights().layers[0].mlp.up_proj.dtype));

    const int needed = int(prompt.size()) + max_tokens;
    gemma3::KVCache cache = model.new_cache(context > 0 ? context : std::min(needed, c.max_position_embeddings));

    std::printf("prompt    %zu tokens:", prompt.size());
    for (int id : prompt) std::printf(" %d", id);
    std::printf("\n");

    const auto t0 = clock::now();
    gemma3::Vector logits = model.prefill(prompt, cache);
    const double prefill_s = std::chrono::duration<double>(clock::now() - t0).count();

    std::printf("greedy   ");
    std::fflush(stdout);
    const auto t1 = clock::now();
    int generated = 0;
    for (; generated < max_tokens; ++generated) {
      Eigen::Index next;
      logits.maxCoeff(&next);
      std::printf(" %d", int(next));
      std::fflush(stdout);
      const bool stop = std::find(c.eos_token_id.begin(), c.eos_token_id.end(), int(next)) != c.eos_token_id.end();
      if (stop || generated + 1 == max_tokens) { ++generated; break; }
      logits = model.decode(int(next), cache);
    }
    const double decode_s = std::chrono::duration<double>(clock::now() - t1).count();
    std::printf("\n");

    std::printf("speed     prefill %zu tokens in %.4f s (%.1f tok/s); decode %d tokens in %.4f s (%.1f tok/s)\n",
                prompt.size(), prefill_s, double(prompt.size()) / prefill_s, generated, decode_s,
                generated > 1 ? double(generated - 1) / decode_s : 0.0);
    std::printf("kv cache  %d positions: %.3f MiB allocated (%.3f MiB in use); all-global would need %.3f MiB (%.2fx)\n",
                cache.max_cache_len(), mib(cache.bytes_allocated()), mib(cache.bytes_used()),
                mib(cache.bytes_all_global()), double(cache.bytes_all_global()) / double(cache.bytes_allocated()));
    std::printf("          at this model's full context of %d: interleaved %.1f MiB vs all-global %.1f MiB (float32)\n",
                c.max_position_embeddings, gemma3::kv_cache_bytes(c, c.max_position_embeddings, 4, true) / 1048576.0,
                gemma3::kv_cache_bytes(c, c.max_position_embeddings, 4, false) / 1048576.0);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "gemma3-run: " << e.what() << "\n";
    return 1;
  }
}
