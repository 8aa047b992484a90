// kv_cache_calculator -- how much memory Gemma 3's KV cache takes, and why the
// interleaved local/global design makes it ~5-6x smaller at long context.
//
//   kv_cache_calculator                    every preset at 4K, 32K and 128K tokens
//   kv_cache_calculator 1b 32768           one preset, one context
//   kv_cache_calculator 4b 27b 8K 128K     any mix of presets and contexts
//   kv_cache_calculator --help
//
// The arithmetic (docs/architecture.md, "KV-cache arithmetic"; gemma3::kv_cache_bytes in kv_cache.hpp):
//
//   bytes = sum over layers of  cache_len(layer) * 2 (K and V) * num_key_value_heads * head_dim * bytes_per_element
//
//   all-global:   cache_len = T for every layer (what a plain decoder would need)
//   interleaved:  cache_len = T on global layers, min(T, sliding_window) on sliding
//                 layers (5 sliding : 1 global; a sliding layer keeps a ring of W rows)
//
// Printed in bf16 (2 bytes per element, the setting of the Gemma 3 report; the same
// size as the float16 cache gemma3-cli uses, KVCache(..., DType::F16)) and in float32
// (4 bytes, gemma3::KVCache's default, the reference).
// Last, a real KVCache is built for a tiny config and its bytes_allocated() is
// compared with the formula, so the live cache and the arithmetic are shown to agree.
#include <gemma3/config.hpp>
#include <gemma3/kv_cache.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

namespace {

// A preset as the user names it and as config.hpp builds it.
struct Preset {
  const char* name;                    // "1b"
  gemma3::Gemma3TextConfig (*make)();  // gemma3::gemma3_1b
};

const Preset kPresets[] = {
    {"270m", gemma3::gemma3_270m}, {"1b", gemma3::gemma3_1b},   {"4b", gemma3::gemma3_4b},
    {"12b", gemma3::gemma3_12b},   {"27b", gemma3::gemma3_27b},
};

constexpr double kBf16Bytes = 2.0;                  // the paper's setting
constexpr double kF32Bytes = double(sizeof(float));  // this library's cache
constexpr double kMiB = 1024.0 * 1024.0;

void print_usage(std::FILE* out) {
  std::fprintf(out,
               "usage: kv_cache_calculator [MODEL...] [CONTEXT...]\n"
               "\n"
               "Prints the KV-cache size of Gemma 3 for each MODEL at each CONTEXT length:\n"
               "all layers global vs the real interleaved design (5 sliding-window layers per\n"
               "global one; a sliding layer keeps only a ring of sliding_window rows), in bf16\n"
               "(2 bytes, the Gemma 3 report's setting; gemma3-cli's float16 cache is the same size)\n"
               "and float32 (4 bytes, this library's default cache).\n"
               "Then builds a real gemma3::KVCache for a tiny config and checks that its\n"
               "bytes_allocated() equals the formula.\n"
               "\n"
               "  MODEL    270m, 1b, 4b, 12b or 27b (also gemma3_1b etc.)   default: all five\n"
               "  CONTEXT  tokens, e.g. 32768, or with a K suffix (x1024): 32K  default: 4K 32K 128K\n"
               "\n"
               "Contexts above a model's max_position_embeddings are marked with '*'.\n"
               "\n"
               "examples:\n"
               "  kv_cache_calculator\n"
               "  kv_cache_calculator 1b 32768\n"
               "  kv_cache_calculator 4b 27b 8K 128K\n");
}

// "1b" or "gemma3_1b" -> the preset, or nullptr.
const Preset* find_preset(std::string arg) {
  if (arg.rfind("gemma3_", 0) == 0) arg = arg.substr(7);
  for (const Preset& p : kPresets)
    if (arg == p.name) return &p;
  return nullptr;
}

// "32768", "32K" or "32k" -> 32768; -1 if it is not a positive token count.
long long parse_context(const std::string& arg) {
  if (arg.empty()) return -1;
  std::string digits = arg;
  long long multiplier = 1;
  if (digits.back() == 'K' || digits.back() == 'k') {
    multiplier = 1024;
    digits.pop_back();
  }
  if (digits.empty() || digits.size() > 9) return -1;
  for (char ch : digits)
    if (ch < '0' || ch > '9') return -1;
  const long long t = std::atoll(digits.c_str()) * multiplier;
  return t >= 1 ? t : -1;
}

// 872415232 -> "872,415,232"
std::string with_commas(unsigned long long n) {
  std::string s = std::to_string(n);
  for (int i = int(s.size()) - 3; i > 0; i -= 3) s.insert(std::size_t(i), ",");
  return s;
}

// bytes -> MiB with one decimal: 66571993088 -> "63,488.0"
std::string mib(double bytes) {
  const double tenths = bytes / kMiB * 10.0 + 0.5;
  const unsigned long long t = (unsigned long long)tenths;
  return with_commas(t / 10) + "." + std::to_string(t % 10);
}

// 32768 -> "32K" when it is a whole number of K, else the plain count.
std::string context_name(long long t) {
  return t % 1024 == 0 ? std::to_string(t / 1024) + "K" : std::to_string(t);
}

// The layer pattern line: "26 layers: 4 global (5 11 17 23), 22 sliding (window 512)".
std::string layer_pattern(const gemma3::Gemma3TextConfig& c) {
  std::string global_list;
  int n_global = 0;
  for (int i = 0; i < c.num_hidden_layers; ++i)
    if (!c.is_sliding(i)) {
      global_list += (n_global++ ? " " : "") + std::to_string(i);
    }
  return std::to_string(c.num_hidden_layers) + " layers: " + std::to_string(n_global) + " global (" + global_list +
         "), " + std::to_string(c.num_hidden_layers - n_global) + " sliding (window " +
         std::to_string(c.sliding_window) + ")";
}

// One model's table: a bf16 row and a float32 row per context length.
void print_model_table(const Preset& p, const std::vector<long long>& contexts) {
  const gemma3::Gemma3TextConfig c = p.make();
  const int row_elems = 2 * c.num_key_value_heads * c.head_dim;  // K and V of one token in one layer

  std::printf("gemma3_%s  %s\n", p.name, layer_pattern(c).c_str());
  std::printf("  num_key_value_heads %d, head_dim %d, max_position_embeddings %d\n", c.num_key_value_heads,
              c.head_dim, c.max_position_embeddings);
  std::printf("  K+V of one token in one layer: 2 x %d x %d = %s elements = %s B bf16, %s B float32\n\n",
              c.num_key_value_heads, c.head_dim, with_commas((unsigned long long)row_elems).c_str(),
              with_commas(row_elems * 2ull).c_str(), with_commas(row_elems * 4ull).c_str());
  std::printf("  %9s  %-7s  %16s %10s  %16s %10s  %6s\n", "context", "dtype", "all-global B", "MiB",
              "interleaved B", "MiB", "ratio");

  bool marked = false;
  for (long long t : contexts) {
    const bool too_long = t > c.max_position_embeddings;
    marked = marked || too_long;
    const std::string ctx = context_name(t) + (too_long ? " *" : "  ");
    const struct { const char* name; double bytes; } dtypes[] = {{"bf16", kBf16Bytes}, {"float32", kF32Bytes}};
    for (int k = 0; k < 2; ++k) {
      const double global = gemma3::kv_cache_bytes(c, double(t), dtypes[k].bytes, /*interleaved=*/false);
      const double inter = gemma3::kv_cache_bytes(c, double(t), dtypes[k].bytes, /*interleaved=*/true);
      std::printf("  %9s  %-7s  %16s %10s  %16s %10s  %5.2fx\n", k == 0 ? ctx.c_str() : "", dtypes[k].name,
                  with_commas((unsigned long long)global).c_str(), mib(global).c_str(),
                  with_commas((unsigned long long)inter).c_str(), mib(inter).c_str(), global / inter);
    }
  }
  if (marked)
    std::printf("  * above max_position_embeddings (%d): arithmetic only; the model is not trained for it\n"
                "    and gemma3::KVCache refuses a max_cache_len that long.\n",
                c.max_position_embeddings);
  std::printf("\n");
}

// Build real caches for a tiny config and compare them with the closed form.
bool check_live_cache() {
  // A tiny Gemma 3: 12 layers (global 5 and 11, like the first 12 layers of every
  // preset), one KV head of 8 dims, a sliding window of 4, at most 64 positions.
  gemma3::Gemma3TextConfig c;
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 12;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 1;
  c.head_dim = 8;
  c.sliding_window = 4;
  c.max_position_embeddings = 64;
  c.derive_layer_types();
  c.validate("tiny config");

  std::printf("live check: a real gemma3::KVCache for a tiny config\n");
  std::printf("  %s\n  num_key_value_heads 1, head_dim 8, float32\n\n", layer_pattern(c).c_str());
  std::printf("  %13s  %12s  %17s  %23s  %18s  %24s\n", "max_cache_len", "rows (g / s)", "bytes_allocated()",
              "kv_cache_bytes(..,true)", "bytes_all_global()", "kv_cache_bytes(..,false)");

  bool all_agree = true;
  for (int len : {3, 4, 16, 64}) {
    const gemma3::KVCache cache(c, len);  // allocates and zeroes every K and V row
    const int global_rows = cache.layer(5).capacity;   // layer 5 is global
    const int sliding_rows = cache.layer(0).capacity;  // layer 0 is sliding: min(W, len)
    const double formula = gemma3::kv_cache_bytes(c, len, kF32Bytes, /*interleaved=*/true);
    const double formula_global = gemma3::kv_cache_bytes(c, len, kF32Bytes, /*interleaved=*/false);
    const gemma3::KVCache half(c, len, gemma3::DType::F16);  // the float16 cache: 2 bytes per value
    const bool agree = double(cache.bytes_allocated()) == formula && double(cache.bytes_all_global()) == formula_global &&
                       double(half.bytes_allocated()) == gemma3::kv_cache_bytes(c, len, 2.0, true) &&
                       double(half.bytes_all_global()) == gemma3::kv_cache_bytes(c, len, 2.0, false);
    all_agree = all_agree && agree;
    const std::string rows = std::to_string(global_rows) + " / " + std::to_string(sliding_rows);
    std::printf("  %13d  %12s  %17s  %23s  %18s  %24s  %s\n", len, rows.c_str(),
                with_commas(cache.bytes_allocated()).c_str(), with_commas((unsigned long long)formula).c_str(),
                with_commas(cache.bytes_all_global()).c_str(), with_commas((unsigned long long)formula_global).c_str(),
                agree ? "agree" : "DISAGREE");
  }

  // The ring: a sliding layer's row for position p is slot p % sliding_window, so
  // position 4 overwrites position 0, which no query at 4 or later may see.
  const gemma3::KVCache cache(c, 16);
  std::printf("\n  sliding layer ring (window 4), position -> slot:");
  for (int p = 0; p < 10; ++p) std::printf(" %d->%d", p, cache.layer(0).slot(p));
  std::printf("\n  global layer, position -> slot:                 ");
  for (int p = 0; p < 10; ++p) std::printf(" %d->%d", p, cache.layer(5).slot(p));
  std::printf("\n\n  %s\n", all_agree ? "For every max_cache_len T above, bytes_allocated() == kv_cache_bytes(config, T, 4, "
                                        "true)\n  and bytes_all_global() == kv_cache_bytes(config, T, 4, false), and the same with 2 "
                                        "bytes for a\n  float16 cache: the live cache and the arithmetic agree."
                                      : "MISMATCH between the live cache and the formula.");
  return all_agree;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<const Preset*> models;
  std::vector<long long> contexts;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      print_usage(stdout);
      return 0;
    }
    if (const Preset* p = find_preset(arg)) {
      models.push_back(p);
    } else if (const long long t = parse_context(arg); t > 0) {
      contexts.push_back(t);
    } else {
      std::fprintf(stderr, "kv_cache_calculator: '%s' is neither a model (270m 1b 4b 12b 27b) nor a context "
                   "length (e.g. 32768 or 32K)\n\n", arg.c_str());
      print_usage(stderr);
      return 2;
    }
  }
  if (models.empty())
    for (const Preset& p : kPresets) models.push_back(&p);
  if (contexts.empty()) contexts = {4 * 1024, 32 * 1024, 128 * 1024};

  try {
    std::printf("Gemma 3 KV cache: all layers global vs interleaved (5 sliding : 1 global)\n");
    std::printf("bytes = sum over layers of cache_len x 2 (K,V) x num_key_value_heads x head_dim x bytes_per_element\n");
    std::printf("ratio = all-global / interleaved (the same in every dtype); MiB = 2^20 bytes\n\n");
    for (const Preset* p : models) print_model_table(*p, contexts);
    return check_live_cache() ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kv_cache_calculator: %s\n", e.what());
    return 1;
  }
}
