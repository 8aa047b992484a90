// gemma3-cli -- generate text or chat with a Gemma 3 model.
//
//   gemma3-cli generate --model PATH --prompt "Why is the sky blue?"     one answer, streamed
//   gemma3-cli chat     --model PATH [--system "Be brief."]              interactive, multi-turn
//   gemma3-cli tokenize --model PATH --prompt TEXT                       the ids and pieces
//
// PATH is a GGUF file (default: models/gemma-3-270m-q4_k_m.gguf, which
// `make run` / scripts/fetch-model.sh puts there) or a Hugging Face folder with
// config.json, model.safetensors and tokenizer.model. The prompt goes through the
// Gemma chat template when the model has one (an instruction-tuned file); a base
// model's file has none, and its prompt is continued as plain text (--chat / --raw
// choose). At the end it prints prefill and decode speed and the KV cache against
// what an all-global cache would need. --device cuda runs the whole model on the GPU
// (the CUDA backend, cuda/: bf16 weights, a bf16 or f16 cache) when the build has it.
// Run `gemma3-cli --help` for every flag.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gemma3/gemma3.hpp>
#if defined(GEMMA3_HAVE_CUDA)
#include <gemma3/cuda/backend.hpp>
#endif

#include <unistd.h>  // isatty

namespace {

const char* const kDefaultModel = "models/gemma-3-270m-q4_k_m.gguf";

struct Args {
  std::string command;
  std::string model = kDefaultModel;
  std::string prompt;
  std::string prompt_ids_file;  // whitespace- or comma-separated token ids instead of --prompt
  std::string prompts_file;     // one prompt per line, generated together (generate_batch)
  std::string system;
  bool raw = false;             // no chat template
  bool chat_template = false;   // the chat template even when the model has none
  bool print_ids = false;       // print the prompt's and the answer's token ids
  bool ignore_eos = false;
  bool stats_json = false;
  int max_tokens = 256;
  int threads = 0;              // 0: hardware threads
  std::string device = "cpu";   // cpu | cuda
  bool cuda_graphs = false;     // --cuda-graphs
  std::string cuda_weights = "bf16";  // --cuda-weights bf16|blocks
  bool cuda_weights_given = false;
  std::string backend = "cpu";  // cpu | reference (the CPU backends)
  bool backend_given = false;
  std::string isa;              // empty: the best this CPU has
  bool int16 = true;            // int16 activations on avx512
  int context = 0;              // 0: prompt + max tokens (generate) / 4096 (chat)
  gemma3::DType kv_type = gemma3::DType::F16;  // the KV cache's values (llama.cpp's default too; bf16 on cuda)
  bool kv_type_given = false;
  gemma3::SamplingOptions sampling;  // Gemma's defaults: temperature 1.0, top-k 64, top-p 0.95
};

void usage(std::ostream& os) {
  os << "usage: gemma3-cli generate [options] --prompt TEXT\n"
        "       gemma3-cli chat     [options]\n"
        "       gemma3-cli tokenize [--model PATH] [--chat | --raw] --prompt TEXT\n"
        "\n"
        "options:\n"
        "  --model PATH         GGUF file or HF checkpoint folder (default " << kDefaultModel << ")\n"
        "  --prompt TEXT        the user's message (generate)\n"
        "  --prompt-ids-file F  token ids (separated by spaces, commas or newlines) instead of --prompt\n"
        "  --prompts-file F     one prompt per line (empty lines skipped), generated together as\n"
        "                       decode batches; the answers are printed in order at the end\n"
        "  --system TEXT        system instructions, folded into the first user turn\n"
        "  --raw                feed the prompt as is, without the chat template (the default\n"
        "                       when the model has no chat template: a base model)\n"
        "  --chat               wrap the prompt in Gemma's chat template (the default when the\n"
        "                       model has one: an instruction-tuned model)\n"
        "  --print-ids          print the prompt's and the answer's token ids (stderr)\n"
        "  --max-tokens N       most tokens to generate per answer (default 256)\n"
        "  --temperature T      sampling temperature (default 1.0; 0 = greedy)\n"
        "  --top-k K            keep the K most likely tokens (default 64; 0 = off)\n"
        "  --top-p P            nucleus sampling mass (default 0.95; 1 = off)\n"
        "  --seed S             random seed (default 0)\n"
        "  --greedy             same as --temperature 0\n"
        "  --ignore-eos         keep generating past <eos> / <end_of_turn>\n"
        "  --device cpu|cuda    where the model runs (default cpu); cuda: the whole model on the\n"
        "                       GPU, bf16 weights (only in a build with the CUDA backend)\n"
        "  --cuda-graphs        --device cuda: launch each decode step as one CUDA graph\n"
        "  --cuda-weights bf16|blocks  --device cuda: GGUF block weights widened to bf16 on\n"
        "                       upload (default), or kept as the file stores them (a\n"
        "                       dequantizing GEMV for decode; about the file's size on the GPU)\n"
        "  --threads N          threads for the kernels (default: all cores)\n"
        "  --backend cpu|reference  the CPU backend (default) or the plain float32 reference\n"
        "                       backend (slow: widens every weight to float32; f32 cache)\n"
        "  --isa scalar|avx2|avx512  the CPU backend's instruction set (default: the best here)\n"
        "  --activations int16|f32  how quantized weights see activations on avx512 (default int16)\n"
        "  --context N          KV cache length in tokens\n"
        "  --kv-type f16|f32|bf16  KV cache values. cpu: f16 (default: half the memory) or f32\n"
        "                       (the library's reference default); cuda: bf16 (default) or f16\n"
        "  --stats-json         print the timing as one JSON line at the end of stdout\n"
        "  -h, --help           this text\n";
}

long parse_long(const std::string& flag, const std::string& s, long lo, long hi) {
  char* end = nullptr;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || v < lo || v > hi)
    throw std::invalid_argument(flag + ": expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                "], found '" + s + "'");
  return v;
}

float parse_float(const std::string& flag, const std::string& s, float lo, float hi) {
  char* end = nullptr;
  const float v = std::strtof(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !(v >= lo && v <= hi))
    throw std::invalid_argument(flag + ": expected a number in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                "], found '" + s + "'");
  return v;
}

Args parse_args(int argc, char** argv) {
  Args a;
  if (argc < 2) throw std::invalid_argument("no command given (generate or chat)");
  a.command = argv[1];
  if (a.command == "-h" || a.command == "--help") return a;
  if (a.command != "generate" && a.command != "chat" && a.command != "tokenize")
    throw std::invalid_argument("unknown command '" + a.command + "' (expected generate, chat or tokenize)");
  for (int i = 2; i < argc; ++i) {
    const std::string f = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(f + " needs a value");
      return argv[++i];
    };
    if (f == "-h" || f == "--help") { a.command = "--help"; return a; }
    else if (f == "--model") a.model = value();
    else if (f == "--prompt") a.prompt = value();
    else if (f == "--prompt-ids-file") a.prompt_ids_file = value();
    else if (f == "--prompts-file") a.prompts_file = value();
    else if (f == "--system") a.system = value();
    else if (f == "--raw") a.raw = true;
    else if (f == "--chat") a.chat_template = true;
    else if (f == "--print-ids") a.print_ids = true;
    else if (f == "--max-tokens") a.max_tokens = int(parse_long(f, value(), 0, 1 << 20));
    else if (f == "--temperature") a.sampling.temperature = parse_float(f, value(), 0.0f, 100.0f);
    else if (f == "--top-k") a.sampling.top_k = int(parse_long(f, value(), 0, 1 << 24));
    else if (f == "--top-p") a.sampling.top_p = parse_float(f, value(), 0.0f, 1.0f);
    else if (f == "--seed") a.sampling.seed = std::uint64_t(parse_long(f, value(), 0, 0x7fffffffL));
    else if (f == "--greedy") a.sampling.temperature = 0.0f;
    else if (f == "--ignore-eos") a.ignore_eos = true;
    else if (f == "--cuda-graphs") a.cuda_graphs = true;
    else if (f == "--cuda-weights") {
      a.cuda_weights = value();
      a.cuda_weights_given = true;
      if (a.cuda_weights != "bf16" && a.cuda_weights != "blocks")
        throw std::invalid_argument("--cuda-weights expects bf16 or blocks, got '" + a.cuda_weights + "'");
    }
    else if (f == "--threads") a.threads = int(parse_long(f, value(), 1, 1024));
    else if (f == "--device") {
      a.device = value();
      if (a.device != "cpu" && a.device != "cuda")
        throw std::invalid_argument("--device expects cpu or cuda, got '" + a.device + "'");
    } else if (f == "--backend") {
      a.backend = value();
      a.backend_given = true;
      if (a.backend != "cpu" && a.backend != "reference")
        throw std::invalid_argument("--backend expects cpu or reference, got '" + a.backend + "'");
    } else if (f == "--isa") a.isa = value();
    else if (f == "--activations") {
      const std::string t = value();
      if (t != "int16" && t != "f32") throw std::invalid_argument("--activations expects int16 or f32, got '" + t + "'");
      a.int16 = t == "int16";
    }
    else if (f == "--context") a.context = int(parse_long(f, value(), 1, 1 << 24));
    else if (f == "--kv-type") {
      const std::string t = value();
      a.kv_type_given = true;
      if (t == "f16") a.kv_type = gemma3::DType::F16;
      else if (t == "f32") a.kv_type = gemma3::DType::F32;
      else if (t == "bf16") a.kv_type = gemma3::DType::BF16;
      else throw std::invalid_argument("--kv-type expects f16, f32 or bf16, got '" + t + "'");
    }
    else if (f == "--stats-json") a.stats_json = true;
    else throw std::invalid_argument("unknown option '" + f + "'");
  }
  const int prompt_sources = int(!a.prompt.empty()) + int(!a.prompt_ids_file.empty()) + int(!a.prompts_file.empty());
  if (a.command == "generate" && prompt_sources == 0)
    throw std::invalid_argument("generate needs --prompt TEXT, --prompt-ids-file FILE or --prompts-file FILE");
  if (a.command == "generate" && prompt_sources > 1)
    throw std::invalid_argument("give one of --prompt, --prompt-ids-file and --prompts-file");
  if (!a.prompts_file.empty() && a.command != "generate")
    throw std::invalid_argument("--prompts-file is for generate");
  if (a.command == "tokenize" && a.prompt.empty()) throw std::invalid_argument("tokenize needs --prompt TEXT");
  if (a.raw && a.chat_template) throw std::invalid_argument("--raw and --chat contradict each other");
  if (a.device == "cuda" && a.backend_given)
    throw std::invalid_argument("--backend chooses between the CPU backends; --device cuda runs the CUDA backend");
  if (a.cuda_graphs && a.device != "cuda") throw std::invalid_argument("--cuda-graphs needs --device cuda");
  if (a.cuda_weights_given && a.device != "cuda") throw std::invalid_argument("--cuda-weights needs --device cuda");
  if (a.device == "cuda" && a.kv_type_given && a.kv_type == gemma3::DType::F32)
    throw std::invalid_argument("--device cuda keeps a bf16 or f16 cache: use --kv-type bf16 or f16");
  if (a.device == "cpu" && a.kv_type_given && a.kv_type == gemma3::DType::BF16)
    throw std::invalid_argument("--kv-type bf16 needs --device cuda; the CPU backends keep f16 or f32");
  return a;
}

std::vector<int> read_ids(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error(path + ": cannot open the file");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::replace(text.begin(), text.end(), ',', ' ');
  std::istringstream ss(text);
  std::vector<int> ids;
  std::string item;
  while (ss >> item) ids.push_back(int(parse_long(path, item, 0, 1 << 30)));
  if (ids.empty()) throw std::runtime_error(path + ": expected token ids, found none");
  return ids;
}

// A model's tokenizer: from the GGUF metadata, or tokenizer.model in an HF folder.
gemma3::Tokenizer load_tokenizer(const std::string& model_path, const gemma3::Vocabulary& from_gguf) {
  if (!from_gguf.tokens.empty()) return gemma3::tokenizer_from_vocabulary(from_gguf);
  const std::string spm = model_path + "/tokenizer.model";
  if (std::filesystem::exists(spm)) return gemma3::tokenizer_from_vocabulary(gemma3::load_sentencepiece_model(spm));
  throw std::runtime_error(model_path + ": expected a tokenizer (GGUF metadata or tokenizer.model), found none");
}

// Whether the checkpoint carries a chat template (instruction-tuned) or not (base).
bool has_chat_template(const std::string& model_path, const gemma3::Vocabulary& from_gguf) {
  if (!from_gguf.tokens.empty()) return from_gguf.has_chat_template();
  return !gemma3::load_hf_chat_template(model_path).empty();
}

// A prompt's ids: the chat template of [system], user, or the text as it is.
std::vector<int> prompt_ids(const Args& args, const std::string& prompt, const gemma3::Tokenizer& tokenizer,
                            bool use_template) {
  if (!use_template) return tokenizer.encode(prompt);
  std::vector<gemma3::ChatMessage> messages;
  if (!args.system.empty()) messages.emplace_back("system", args.system);
  messages.emplace_back("user", prompt);
  return gemma3::encode_chat(tokenizer, messages);
}
std::vector<int> prompt_ids(const Args& args, const gemma3::Tokenizer& tokenizer, bool use_template) {
  return prompt_ids(args, args.prompt, tokenizer, use_template);
}

// The lines of a --prompts-file that are not empty.
std::vector<std::string> read_prompts(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error(path + ": cannot open the file");
  std::vector<std::string> prompts;
  for (std::string line; std::getline(f, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) prompts.push_back(line);
  }
  if (prompts.empty()) throw std::runtime_error(path + ": expected prompts (one per line), found none");
  return prompts;
}

void print_ids(const char* what, const std::vector<int>& ids) {
  std::fprintf(stderr, "[%s ids (%zu):", what, ids.size());
  for (int id : ids) std::fprintf(stderr, " %d", id);
  std::fprintf(stderr, "]\n");
}

// The loading bar, drawn only on a terminal (into a pipe or a file it would be dozens
// of carriage-return redraws).
void progress_bar(double fraction) {
  const int width = 40, filled = int(fraction * width + 0.5);
  std::fprintf(stderr, "\rloading [%s%s] %3d%%", std::string(std::size_t(filled), '#').c_str(),
               std::string(std::size_t(width - filled), ' ').c_str(), int(fraction * 100 + 0.5));
  if (fraction >= 1.0) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

double mib(double bytes) { return bytes / (1024.0 * 1024.0); }

void print_stats(const gemma3::GenerateResult& r, const gemma3::KVCache& cache, bool json) {
  std::fprintf(stderr,
               "\n[prefill %d tokens: %.1f tok/s | decode %d tokens: %.1f tok/s | stop: %s]\n"
               "[kv cache (%s): %.1f MiB reserved for %d positions, %.1f MiB of it written (only that is resident); "
               "all-global would need %.1f MiB, %.2fx]\n",
               r.prompt_tokens, r.prefill_tokens_per_second(), r.decode_calls, r.decode_tokens_per_second(),
               gemma3::stop_reason_name(r.stop_reason), gemma3::dtype_name(cache.dtype()), mib(double(cache.bytes_allocated())), cache.max_cache_len(),
               mib(double(cache.bytes_used())), mib(double(cache.bytes_all_global())),
               double(cache.bytes_all_global()) / double(cache.bytes_allocated()));
  // Weights streamed through 2 MiB pages decode faster (include/gemma3/mapped_file.hpp);
  // -1 where the kernel does not say (not Linux).
  const std::int64_t huge = gemma3::MappedFile::process_huge_mapped_bytes();
  if (huge >= 0)
    std::fprintf(stderr, "[model file pages mapped with 2 MiB pages: %.1f MiB%s]\n", mib(double(huge)),
                 huge == 0 ? " (scripts/page-cache.py --evict MODEL re-reads them so they can be)" : "");
  if (json)
    std::printf("{\"prefill_tokens\": %d, \"prefill_tok_s\": %.3f, \"decode_tokens\": %d, \"decode_tok_s\": %.3f, "
                "\"huge_mapped_mib\": %.1f, \"kv_type\": \"%s\", \"kv_mib\": %.1f}\n",
                r.prompt_tokens, r.prefill_tokens_per_second(), r.decode_calls, r.decode_tokens_per_second(),
                huge >= 0 ? mib(double(huge)) : -1.0, gemma3::dtype_name(cache.dtype()),
                mib(double(cache.bytes_allocated())));
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  try {
    args = parse_args(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "gemma3-cli: " << e.what() << "\n\n";
    usage(std::cerr);
    return 2;
  }
  if (args.command == "--help") {
    usage(std::cout);
    return 0;
  }

  try {
    std::shared_ptr<const gemma3::Backend> backend;
    if (args.device == "cuda") {
#if defined(GEMMA3_HAVE_CUDA)
      if (!args.kv_type_given) args.kv_type = gemma3::DType::BF16;
      gemma3::cuda::Options o;
      o.kv_dtype = args.kv_type;
      o.graphs = args.cuda_graphs;
      o.keep_quantized = args.cuda_weights == "blocks";
      backend = gemma3::cuda::make_backend(o);
#else
      throw std::runtime_error("this gemma3-cli was built without the CUDA backend (GEMMA3_CUDA=OFF or no nvcc)");
#endif
    } else if (args.backend == "reference") {
      if (args.kv_type != gemma3::DType::F32) {
        if (args.kv_type_given) throw std::invalid_argument("--backend reference keeps a float32 cache: use --kv-type f32");
        args.kv_type = gemma3::DType::F32;
      }
      backend = std::make_shared<const gemma3::ReferenceBackend>();
    } else {
      gemma3::CpuBackend::Options o;
      o.threads = args.threads;
      if (!args.isa.empty()) o.isa = gemma3::isa_from_name(args.isa);
      o.int16_activations = args.int16;
      o.kv_dtype = args.kv_type;
      backend = std::make_shared<const gemma3::CpuBackend>(o);
    }
    if (args.command == "tokenize") {  // the tokenizer alone: no weights are read
      gemma3::Vocabulary vocab;
      if (gemma3::is_gguf_path(args.model)) vocab = gemma3::vocabulary_from_gguf(gemma3::GgufFile(args.model));
      const gemma3::Tokenizer tokenizer = load_tokenizer(args.model, vocab);
      const bool use_template = !args.raw && (args.chat_template || has_chat_template(args.model, vocab));
      const std::vector<int> ids = prompt_ids(args, tokenizer, use_template);
      std::printf("%zu tokens (%s)\n", ids.size(), use_template ? "chat template" : "raw text");
      for (int id : ids) {
        std::string shown;
        for (char ch : tokenizer.piece(id)) {
          if (ch == '\n') shown += "\\n";
          else if (ch == '\t') shown += "\\t";
          else shown += ch;
        }
        std::printf("%8d  %s\n", id, shown.c_str());
      }
      return 0;
    }
    gemma3::Vocabulary vocab;
    const auto t0 = std::chrono::steady_clock::now();
    const bool tty = isatty(fileno(stderr));
    const gemma3::Gemma3ForCausalLM model =
        gemma3::load_model(args.model, &vocab, tty ? std::function<void(double)>(progress_bar) : nullptr, backend);
    const gemma3::Tokenizer tokenizer = load_tokenizer(args.model, vocab);
    const gemma3::Gemma3TextConfig& c = model.config();
    std::fprintf(stderr, "[%s: %d layers (%d global), hidden %d, vocab %d, %s weights, backend %s, loaded in %.2f s]\n",
                 args.model.c_str(), c.num_hidden_layers,
                 int(std::count(c.layer_types.begin(), c.layer_types.end(), gemma3::LayerType::full_attention)),
                 c.hidden_size, c.vocab_size, gemma3::dtype_name(model.weights().layers[0].mlp.down_proj.dtype),
                 model.backend().name().c_str(),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());

    gemma3::GenerateOptions opts;
    opts.max_new_tokens = args.max_tokens;
    opts.sampling = args.sampling;
    if (args.ignore_eos) opts.stop_tokens.clear();
    auto stream = [](std::string_view text, int) {
      std::cout << text << std::flush;
      return true;
    };

    const bool model_has_template = has_chat_template(args.model, vocab);
    if (args.command == "generate" && !args.prompts_file.empty()) {
      // Several prompts as decode batches: every step runs the answers still going together.
      const std::vector<std::string> prompts = read_prompts(args.prompts_file);
      const bool use_template = !args.raw && (args.chat_template || model_has_template);
      if (!use_template && !args.raw)
        std::fprintf(stderr, "[%s has no chat template (a base model): each prompt is continued as plain text; "
                             "--chat applies Gemma's chat template anyway]\n", args.model.c_str());
      std::vector<std::vector<int>> ids;
      for (const std::string& p : prompts) ids.push_back(prompt_ids(args, p, tokenizer, use_template));
      opts.kv_dtype = args.kv_type;
      if (args.context > 0) opts.max_context = args.context;
      const std::vector<gemma3::GenerateResult> results = gemma3::generate_batch(model, tokenizer, ids, opts);
      int prompt_tokens = 0, decode_tokens = 0;
      double prefill_s = 0, decode_s = 0;  // the batch steps: the longest run took part in all of them
      for (std::size_t i = 0; i < results.size(); ++i) {
        const gemma3::GenerateResult& r = results[i];
        std::cout << "[" << i + 1 << "/" << results.size() << "] " << prompts[i] << "\n" << r.text << "\n\n";
        if (args.print_ids) print_ids("generated", r.tokens);
        std::fprintf(stderr, "[%zu: %d prompt tokens, %zu generated, stop: %s]\n", i + 1, r.prompt_tokens,
                     r.tokens.size(), gemma3::stop_reason_name(r.stop_reason));
        prompt_tokens += r.prompt_tokens;
        decode_tokens += r.decode_calls;
        prefill_s += r.prefill_seconds;
        decode_s = std::max(decode_s, r.decode_seconds);
      }
      std::cout << std::flush;
      const double prefill_tok_s = prefill_s > 0 ? prompt_tokens / prefill_s : 0.0;
      const double decode_tok_s = decode_s > 0 ? decode_tokens / decode_s : 0.0;
      std::fprintf(stderr, "[%zu prompts: prefill %d tokens: %.1f tok/s | decode %d tokens in batches: %.1f tok/s]\n",
                   results.size(), prompt_tokens, prefill_tok_s, decode_tokens, decode_tok_s);
      if (args.stats_json)
        std::printf("{\"prompts\": %zu, \"prefill_tokens\": %d, \"prefill_tok_s\": %.3f, \"decode_tokens\": %d, "
                    "\"decode_tok_s\": %.3f}\n",
                    results.size(), prompt_tokens, prefill_tok_s, decode_tokens, decode_tok_s);
      return 0;
    }
    if (args.command == "generate") {
      std::vector<int> ids;
      if (!args.prompt_ids_file.empty()) {
        ids = read_ids(args.prompt_ids_file);
      } else {
        const bool use_template = !args.raw && (args.chat_template || model_has_template);
        if (!use_template && !args.raw)
          std::fprintf(stderr, "[%s has no chat template (a base model): the prompt is continued as plain text; "
                               "--chat applies Gemma's chat template anyway]\n", args.model.c_str());
        ids = prompt_ids(args, tokenizer, use_template);
      }
      if (args.print_ids) print_ids("prompt", ids);
      const int want = int(ids.size()) + args.max_tokens;
      gemma3::KVCache cache = model.new_cache(std::min(args.context > 0 ? args.context : want, c.max_position_embeddings), args.kv_type);
      const gemma3::GenerateResult r = gemma3::generate(model, tokenizer, cache, ids, opts, stream);
      std::cout << "\n";
      if (args.print_ids) print_ids("generated", r.tokens);
      print_stats(r, cache, args.stats_json);
      return 0;
    }
    const bool use_template = !args.raw && (args.chat_template || model_has_template);
    if (!use_template && !args.raw)
      std::fprintf(stderr, "[%s has no chat template (a base model): each line you type is continued as plain "
                           "text; --chat applies Gemma's chat template anyway]\n", args.model.c_str());

    // chat: one KV cache for the whole conversation. The first turn is the chat template
    // of [system], user; each later turn feeds only what the template adds after the
    // tokens already in the cache: the close of the model's answer and the new user turn.
    gemma3::KVCache cache = model.new_cache(std::min(args.context > 0 ? args.context : 4096, c.max_position_embeddings), args.kv_type);
    std::fprintf(stderr, "[chat: type a message and press Enter; an empty line or Ctrl-D ends]\n");
    for (bool first = true;; first = false) {
      std::fprintf(stderr, "\n> ");
      std::string line;
      if (!std::getline(std::cin, line) || line.empty()) break;
      std::vector<gemma3::ChatMessage> turn;
      if (first && !args.system.empty()) turn.emplace_back("system", args.system);
      turn.emplace_back("user", line);
      std::vector<int> ids;
      if (!use_template) {  // completion: the line continues the text so far
        gemma3::EncodeOptions e;
        e.add_bos = first;
        ids = tokenizer.encode(first ? line : "\n" + line, e);
      } else if (first) {
        ids = gemma3::encode_chat(tokenizer, turn);
      } else {
        gemma3::ChatTemplateOptions no_bos;
        no_bos.add_bos = false;
        gemma3::EncodeOptions e;
        e.add_bos = false;
        ids = tokenizer.encode("<end_of_turn>\n" + gemma3::apply_chat_template(turn, no_bos), e);
      }
      gemma3::GenerateResult r;
      try {
        r = gemma3::generate(model, tokenizer, cache, ids, opts, stream);
      } catch (const std::length_error& e) {
        std::fprintf(stderr, "\n[%s; the conversation is full]\n", e.what());
        break;
      }
      std::cout << "\n";
      if (args.print_ids) print_ids("generated", r.tokens);
      print_stats(r, cache, args.stats_json);
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "\ngemma3-cli: " << e.what() << "\n";
    return 1;
  }
}
