// bench/bench_model.cpp -- whole-model Gemma3ForCausalLM speed on random weights and on
// the GGUF files of models/.
//
//   BM_tiny_decode/context       tiny model (f32), one decode step after `context` tokens   tokens/s
//   BM_tiny_prefill/tokens       tiny model (f32), prefill of a fresh 128-token prompt       tokens/s
//   BM_270m_bf16_decode/context  270M-like model (bf16, vocab cut to 32768), one decode step  tokens/s
//   BM_gguf_decode_batch/{270m,1b}/batch
//                                the GGUF files of models/ (the real 270M Q4_K_M; the
//                                1B-shaped random one), one greedy decode step of `batch`
//                                sequences (decode_greedy_batch; batch 1 is decode_greedy)
//                                at context 256 each                                      tokens/s
//
// The tiny model: vocab 4096, hidden 256, intermediate 1024, 6 layers (5 sliding +
// 1 global), 4 query / 1 kv heads, head_dim 64, sliding_window 64.
// The 270M-like model: hidden 640, intermediate 2048, 18 layers (15 + 3), 4 / 1
// heads, head_dim 256, window 512, as google/gemma-3-270m, but vocab 32768
// instead of 262144 so the tied embedding / LM head is 42 MB, not 335 MB, in bf16.
//
// For a decode step at context C the KV cache (max_cache_len C + 1) has its rows
// filled with random values and its position reset to C before every step, so
// every iteration is the same step. bytes/s counts every weight byte once per
// step (a decode step reads all of them; the LM head is the tied embedding).
// Counters: context, weight_MB, kv_MB (bytes the whole cache holds).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <memory>
#include <vector>

#include <gemma3/config.hpp>
#include <gemma3/gguf_model.hpp>
#include <gemma3/kv_cache.hpp>
#include <gemma3/model.hpp>

#include "bench_util.hpp"

using gemma3::DType;
using gemma3::Gemma3ForCausalLM;
using gemma3::Gemma3TextConfig;
using namespace gemma3_bench;

namespace {

Gemma3TextConfig make_config(int vocab, int hidden, int inter, int layers, int heads, int kv, int head_dim,
                             int window) {
  Gemma3TextConfig c;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv;
  c.head_dim = head_dim;
  c.query_pre_attn_scalar = head_dim;
  c.sliding_window = window;
  c.sliding_window_pattern = 6;
  c.max_position_embeddings = 32768;
  c.derive_layer_types();
  c.validate("bench_model");
  return c;
}

struct RandomModel {
  std::unique_ptr<Gemma3ForCausalLM> model;
  std::int64_t weight_bytes = 0;
};

// A model of config c with every projection of dtype dt, random values.
RandomModel make_random_model(const Gemma3TextConfig& c, DType dt) {
  Rng rng(42);
  gemma3::Gemma3TextWeights w;
  std::int64_t bytes = 0;
  auto weight = [&](std::int64_t rows, std::int64_t cols) {
    gemma3::Weight x = random_weight(rng, dt, rows, cols, w.storage);
    bytes += gemma3_bench::weight_bytes(x);
    return x;
  };
  const int H = c.hidden_size, I = c.intermediate_size, D = c.head_dim;
  w.embed_tokens = weight(c.vocab_size, H);
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    gemma3::Gemma3DecoderLayerWeights l;
    l.input_layernorm = random_vector(rng, H);
    l.self_attn.q_proj = weight(std::int64_t(c.num_attention_heads) * D, H);
    l.self_attn.k_proj = weight(std::int64_t(c.num_key_value_heads) * D, H);
    l.self_attn.v_proj = weight(std::int64_t(c.num_key_value_heads) * D, H);
    l.self_attn.o_proj = weight(H, std::int64_t(c.num_attention_heads) * D);
    l.self_attn.q_norm = random_vector(rng, D);
    l.self_attn.k_norm = random_vector(rng, D);
    l.post_attention_layernorm = random_vector(rng, H);
    l.pre_feedforward_layernorm = random_vector(rng, H);
    l.mlp.gate_proj = weight(I, H);
    l.mlp.up_proj = weight(I, H);
    l.mlp.down_proj = weight(H, I);
    l.post_feedforward_layernorm = random_vector(rng, H);
    w.layers.push_back(std::move(l));
  }
  w.norm = random_vector(rng, H);
  RandomModel m;
  m.model = std::make_unique<Gemma3ForCausalLM>(c, std::move(w));
  m.weight_bytes = bytes;
  return m;
}

// Built once, on first use, shared by every benchmark of that model.
const RandomModel& tiny_model() {
  static const RandomModel m = make_random_model(make_config(4096, 256, 1024, 6, 4, 1, 64, 64), DType::F32);
  return m;
}
const RandomModel& model_270m_bf16() {
  static const RandomModel m = make_random_model(make_config(32768, 640, 2048, 18, 4, 1, 256, 512), DType::BF16);
  return m;
}

// One decode step after `context` tokens held in a random-filled cache.
void run_decode(benchmark::State& state, const RandomModel& m) {
  const int context = int(state.range(0));
  const Gemma3ForCausalLM& model = *m.model;
  gemma3::KVCache cache = model.new_cache(context + 1);
  Rng rng(7);
  for (int i = 0; i < cache.num_layers(); ++i) {
    fill_random(rng, cache.layer(i).k);
    fill_random(rng, cache.layer(i).v);
  }
  const int token = 17;
  for (auto _ : state) {
    cache.clear();
    cache.advance(context);
    gemma3::Vector logits = model.decode(token, cache);
    benchmark::DoNotOptimize(logits.data());
  }
  state.SetItemsProcessed(std::int64_t(state.iterations()));  // tokens
  state.SetBytesProcessed(std::int64_t(state.iterations()) * m.weight_bytes);
  state.counters["context"] = context;
  state.counters["weight_MB"] = double(m.weight_bytes) / 1e6;
  state.counters["kv_MB"] = double(cache.bytes_allocated()) / 1e6;
}

}  // namespace

// Tiny f32 model: one decode step (T = 1) at the given context.
static void BM_tiny_decode(benchmark::State& state) { run_decode(state, tiny_model()); }
BENCHMARK(BM_tiny_decode)->ArgName("context")->Arg(64)->Arg(512)->Arg(4096)->Unit(benchmark::kMicrosecond);

// Tiny f32 model: prefill of a fresh prompt of `tokens` tokens (cache cleared each time).
static void BM_tiny_prefill(benchmark::State& state) {
  const int T = int(state.range(0));
  const RandomModel& m = tiny_model();
  const Gemma3ForCausalLM& model = *m.model;
  gemma3::KVCache cache = model.new_cache(T);
  std::vector<int> ids(static_cast<std::size_t>(T));
  Rng rng(3);
  for (int& id : ids) id = int(rng.next() % std::uint64_t(model.config().vocab_size));
  for (auto _ : state) {
    cache.clear();
    gemma3::Vector logits = model.prefill(ids, cache);
    benchmark::DoNotOptimize(logits.data());
  }
  state.SetItemsProcessed(std::int64_t(state.iterations()) * T);  // tokens
  state.counters["weight_MB"] = double(m.weight_bytes) / 1e6;
}
BENCHMARK(BM_tiny_prefill)->ArgName("tokens")->Arg(128)->Unit(benchmark::kMillisecond);

// 270M-like bf16 model (vocab 32768): one decode step at the given context.
static void BM_270m_bf16_decode(benchmark::State& state) { run_decode(state, model_270m_bf16()); }
BENCHMARK(BM_270m_bf16_decode)->ArgName("context")->Arg(512)->Arg(4096)->Unit(benchmark::kMillisecond);

// A GGUF model of models/ (run from the repository root; GEMMA3_BENCH_MODELS names
// another folder), loaded once; null when the file is missing.
static const Gemma3ForCausalLM* gguf_model(int which) {
  static const char* const files[] = {"gemma-3-270m-q4_k_m.gguf", "gemma-3-1b-shaped-q4_k_m.gguf"};
  static std::unique_ptr<Gemma3ForCausalLM> models[2];
  if (!models[which]) {
    const char* dir = std::getenv("GEMMA3_BENCH_MODELS");
    const std::string path = std::string(dir ? dir : "models") + "/" + files[which];
    if (!std::ifstream(path).good()) return nullptr;
    models[which] = std::make_unique<Gemma3ForCausalLM>(gemma3::load_gguf_model(path));
  }
  return models[which].get();
}

// One greedy step of `batch` sequences, each at context 256 (rows of the default
// float16 cache left as new_cache made them: the step's work does not depend on them).
static void BM_gguf_decode_batch(benchmark::State& state) {
  const Gemma3ForCausalLM* model = gguf_model(int(state.range(0)));
  if (!model) {
    state.SkipWithError("model file missing: bash scripts/fetch-model.sh; python3 scripts/make-shaped-gguf.py 1b ...");
    return;
  }
  const int batch = int(state.range(1)), context = 256;
  std::vector<gemma3::KVCache> caches;
  std::vector<gemma3::KVCache*> ptrs;
  for (int b = 0; b < batch; ++b) caches.push_back(model->new_cache(context + 1));
  for (auto& c : caches) ptrs.push_back(&c);
  std::vector<int> ids;
  for (int b = 0; b < batch; ++b) ids.push_back(1000 + 17 * b);
  for (auto _ : state) {
    for (auto& c : caches) {
      c.clear();
      c.advance(context);
    }
    if (batch == 1) {
      benchmark::DoNotOptimize(model->decode_greedy(ids[0], caches[0]));
    } else {
      std::vector<int> next = model->decode_greedy_batch(ids, ptrs);
      benchmark::DoNotOptimize(next.data());
    }
  }
  state.SetItemsProcessed(std::int64_t(state.iterations()) * batch);  // tokens
  state.counters["batch"] = batch;
  state.counters["steps_per_s"] = benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_gguf_decode_batch)
    ->ArgNames({"model", "batch"})
    ->ArgsProduct({{0, 1}, {1, 2, 3, 4, 8, 16}})
    ->Unit(benchmark::kMillisecond);
