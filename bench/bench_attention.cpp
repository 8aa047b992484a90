// bench/bench_attention.cpp -- one gemma3_attention layer call against a KV cache
// that already holds `context` tokens, for a sliding (local) and a global layer.
//
// Shapes are Gemma 3 1B's attention: hidden 1152, 4 query heads, 1 kv head,
// head_dim 256, sliding_window 512, f32 random weights. The cache is made with
// max_cache_len = context + T, its rows filled with random keys/values, and its
// position reset to `context` before every call, so every iteration measures the
// same context (the call writes the same new rows each time).
//
// What the numbers should show: a local layer only ever sees the last 512 keys,
// so its cost is flat in context; a global layer reads every key, so its cost
// grows linearly with context.
//
//   BM_attn_decode_{local,global}/context    T = 1 query    items/s = tokens
//   BM_attn_prefill_{local,global}/context   T = 128 queries after `context` tokens
// Counters: context; kv_layer_MB = K+V bytes the layer's cache holds;
// kv_read_MB = K+V bytes of the keys one call attends over; bytes/s uses kv_read.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <gemma3/attention.hpp>
#include <gemma3/backends/cpu.hpp>
#include <gemma3/config.hpp>
#include <gemma3/kv_cache.hpp>
#include <gemma3/rope.hpp>

#include "bench_util.hpp"

using gemma3::Matrix;
using namespace gemma3_bench;

namespace {

// 1B-like attention, one layer of the given type.
gemma3::Gemma3TextConfig attention_config(bool sliding) {
  gemma3::Gemma3TextConfig c;
  c.vocab_size = 1024;  // unused here
  c.hidden_size = 1152;
  c.intermediate_size = 6912;  // unused here
  c.num_hidden_layers = 1;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 1;
  c.head_dim = 256;
  c.query_pre_attn_scalar = 256;
  c.sliding_window = 512;
  c.max_position_embeddings = 1 << 17;  // room for context 32K + a prefill chunk
  c.layer_types = {sliding ? gemma3::LayerType::sliding_attention : gemma3::LayerType::full_attention};
  c.validate("bench_attention");
  return c;
}

void run_attention(benchmark::State& state, bool sliding, int T, gemma3::DType kv_dtype = gemma3::DType::F32) {
  const int context = int(state.range(0));
  const gemma3::Gemma3TextConfig c = attention_config(sliding);
  const int H = c.hidden_size, NH = c.num_attention_heads, KV = c.num_key_value_heads, D = c.head_dim;

  Rng rng;
  std::vector<std::shared_ptr<const void>> storage;
  gemma3::Gemma3AttentionWeights w;
  w.q_proj = random_weight(rng, gemma3::DType::F32, NH * D, H, storage);
  w.k_proj = random_weight(rng, gemma3::DType::F32, KV * D, H, storage);
  w.v_proj = random_weight(rng, gemma3::DType::F32, KV * D, H, storage);
  w.o_proj = random_weight(rng, gemma3::DType::F32, H, NH * D, storage);
  w.q_norm = random_vector(rng, D);
  w.k_norm = random_vector(rng, D);
  const gemma3::RotaryEmbedding rope(D, c.rope_for(c.layer_types[0]));

  gemma3::KVCache cache(c, context + T, kv_dtype);
  gemma3::LayerKVCache& layer = cache.layer(0);
  fill_random(rng, layer.k);  // stands in for `context` earlier tokens (ring rows for a local layer)
  fill_random(rng, layer.v);

  const gemma3::Activations x(random_matrix(rng, T, H));
  const gemma3::CpuBackend cpu(gemma3::CpuBackend::Options::from_environment());
  gemma3::Activations out;
  for (auto _ : state) {
    cache.clear();
    cache.advance(context);  // every iteration: T new tokens at positions context ..
    gemma3::gemma3_attention(cpu, c, sliding, w, rope, x, cache.length(), layer, out);
    benchmark::DoNotOptimize(out.host().data());
    benchmark::ClobberMemory();
  }

  const std::int64_t row_bytes = 2 * std::int64_t(KV) * D * std::int64_t(gemma3::dtype_size(kv_dtype));  // K and V
  const std::int64_t last_pos = context + T - 1;
  // keys the queries of one call attend over, as a contiguous run (attention.hpp)
  const std::int64_t keys_read =
      sliding ? std::min<std::int64_t>(last_pos + 1, std::int64_t(c.sliding_window) + T - 1) : last_pos + 1;
  state.SetItemsProcessed(std::int64_t(state.iterations()) * T);  // tokens
  state.SetBytesProcessed(std::int64_t(state.iterations()) * keys_read * row_bytes);
  state.counters["context"] = context;
  state.counters["kv_layer_MB"] = double(layer.capacity) * double(row_bytes) / 1e6;
  state.counters["kv_read_MB"] = double(keys_read) * double(row_bytes) / 1e6;
}

}  // namespace

// Decode (one query) on a sliding-window layer: expected flat in context.
static void BM_attn_decode_local(benchmark::State& state) { run_attention(state, true, 1); }
// Decode (one query) on a global layer: expected linear in context.
static void BM_attn_decode_global(benchmark::State& state) { run_attention(state, false, 1); }
// The same two with a float16 cache: half the bytes read.
static void BM_attn_decode_local_f16(benchmark::State& state) { run_attention(state, true, 1, gemma3::DType::F16); }
static void BM_attn_decode_global_f16(benchmark::State& state) { run_attention(state, false, 1, gemma3::DType::F16); }
// Prefill of 128 queries on a sliding-window layer after `context` tokens.
static void BM_attn_prefill_local(benchmark::State& state) { run_attention(state, true, 128); }
// Prefill of 128 queries on a global layer after `context` tokens.
static void BM_attn_prefill_global(benchmark::State& state) { run_attention(state, false, 128); }

static void DecodeContexts(benchmark::internal::Benchmark* b) {
  b->ArgName("context");
  for (int n : {512, 1024, 2048, 4096, 8192, 16384, 32768}) b->Arg(n);
  b->Unit(benchmark::kMicrosecond);
}
static void PrefillContexts(benchmark::internal::Benchmark* b) {
  b->ArgName("context");
  for (int n : {0, 512, 4096}) b->Arg(n);
  b->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_attn_decode_local)->Apply(DecodeContexts);
BENCHMARK(BM_attn_decode_global)->Apply(DecodeContexts);
BENCHMARK(BM_attn_decode_local_f16)->Apply(DecodeContexts);
BENCHMARK(BM_attn_decode_global_f16)->Apply(DecodeContexts);
BENCHMARK(BM_attn_prefill_local)->Apply(PrefillContexts);
BENCHMARK(BM_attn_prefill_global)->Apply(PrefillContexts);
