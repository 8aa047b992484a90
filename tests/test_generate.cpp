// generate() tests: on the tiny HF fixture model (greedy parity with transformers' greedy
// continuation, stops, limits, seeds) and on a scripted fake model (streaming of characters split
// over byte tokens). The tokenizer is a small made-up one: the fixture model has 512 ids.
#include "catch.hpp"
#include "fixture_helpers.hpp"

#include <algorithm>
#include <cstdio>

#include "gemma3/checkpoint.hpp"
#include "gemma3/backends/reference.hpp"
#include "gemma3/generate.hpp"

using gemma3::GenerateOptions;
using gemma3::StopReason;

namespace {

// n ids: <pad> <eos> <bos> <unk>, <0x00>..<0xFF> (ids 4..259), then made-up normal pieces.
gemma3::Tokenizer fake_tokenizer(int n) {
  std::vector<std::string> pieces{"<pad>", "<eos>", "<bos>", "<unk>"};
  std::vector<int> types{3, 3, 3, 3};
  char buf[16];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    pieces.push_back(buf);
    types.push_back(6);
  }
  for (int i = int(pieces.size()); i < n; ++i) {
    std::snprintf(buf, sizeof buf, "\xE2\x96\x81w%d", i);  // "▁w260", ...
    pieces.push_back(buf);
    types.push_back(1);
  }
  return gemma3::Tokenizer(pieces, std::vector<float>(pieces.size(), 0.0f), types);
}

struct Tiny {
  gemma3::Gemma3ForCausalLM model = gemma3::load_hf_model(fixtures::path("tiny_global_last"));
  gemma3::SafetensorsFile expected{fixtures::path("tiny_global_last") + "/expected.safetensors"};
  std::vector<int> prompt = fixtures::ids(expected, "input_ids");
  std::vector<int> greedy = fixtures::ids(expected, "greedy_continuation");
  gemma3::Tokenizer tok = fake_tokenizer(model.config().vocab_size);
};

GenerateOptions greedy_opts(int max_new) {
  GenerateOptions o;
  o.sampling = gemma3::SamplingOptions::greedy();
  o.stop_tokens.clear();
  o.max_new_tokens = max_new;
  return o;
}

// Plain sampling at temperature 1.5 (no top-k, no top-p), no stop tokens.
GenerateOptions sampling_opts(int max_new, std::uint64_t seed) {
  GenerateOptions o;
  o.stop_tokens.clear();
  o.max_new_tokens = max_new;
  o.sampling.top_k = 0;
  o.sampling.top_p = 1.0f;
  o.sampling.temperature = 1.5f;
  o.sampling.seed = seed;
  return o;
}

// A model that "predicts" a fixed script: one-hot logits for script[k] at generated step k.
struct ScriptedModel {
  gemma3::Gemma3TextConfig cfg;
  std::vector<int> script;
  struct Cache {
    int len = 0, cap = 0, prompt = 0;
    int length() const { return len; }
    int max_cache_len() const { return cap; }
  };
  const gemma3::Gemma3TextConfig& config() const { return cfg; }
  Cache new_cache(int n, std::optional<gemma3::DType> = std::nullopt) const { return Cache{0, n, 0}; }
  const gemma3::Backend& backend() const { return reference; }
  gemma3::ReferenceBackend reference;  // its argmax picks the greedy token
  std::vector<float> logits(const Cache& c) const {
    std::vector<float> z(std::size_t(cfg.vocab_size), 0.0f);
    const std::size_t k = std::size_t(c.len - c.prompt);
    z[std::size_t(k < script.size() ? script[k] : 1)] = 10.0f;
    return z;
  }
  std::vector<float> prefill(const std::vector<int>& ids, Cache& c) const {
    c.len += int(ids.size());
    c.prompt = c.len;
    return logits(c);
  }
  std::vector<float> decode(int, Cache& c) const {
    ++c.len;
    return logits(c);
  }
  int prefill_greedy(const std::vector<int>& ids, Cache& c) const { return pick(prefill(ids, c)); }
  int decode_greedy(int id, Cache& c) const { return pick(decode(id, c)); }
  int pick(const std::vector<float>& z) const { return reference.argmax(z.data(), z.size()); }
};

}  // namespace

TEST_CASE("generate: greedy equals transformers' greedy continuation", "[generate]") {
  Tiny t;
  REQUIRE(t.greedy.size() == 8);
  std::vector<int> streamed_ids;
  std::string streamed_text;
  const gemma3::GenerateResult r =
      gemma3::generate(t.model, t.tok, t.prompt, greedy_opts(8), [&](std::string_view text, int id) {
        streamed_ids.push_back(id);
        streamed_text += text;
        return true;
      });
  CHECK(r.tokens == t.greedy);
  CHECK(streamed_ids == t.greedy);
  CHECK(r.stop_reason == StopReason::max_new_tokens);
  CHECK(r.prompt_tokens == int(t.prompt.size()));
  CHECK(r.decode_calls == 7);
  CHECK(r.text == t.tok.decode(r.tokens, gemma3::DecodeOptions{true}));
  CHECK(streamed_text == r.text);
  CHECK(r.prefill_seconds > 0.0);
  CHECK(r.decode_seconds > 0.0);
  CHECK(r.prefill_tokens_per_second() > 0.0);
  CHECK(r.decode_tokens_per_second() > 0.0);
  std::printf("generate (tiny model): prefill %.0f tokens/s, decode %.0f tokens/s\n", r.prefill_tokens_per_second(),
              r.decode_tokens_per_second());

  // With an explicit cache, continuing after a first chunk of the prompt gives the same tokens.
  auto cache = t.model.new_cache(64);
  (void)t.model.prefill(std::vector<int>(t.prompt.begin(), t.prompt.begin() + 7), cache);
  const auto r2 = gemma3::generate(t.model, t.tok, cache, std::vector<int>(t.prompt.begin() + 7, t.prompt.end()),
                                   greedy_opts(8));
  CHECK(r2.tokens == t.greedy);
  CHECK(r2.prompt_tokens == int(t.prompt.size()) - 7);
}

TEST_CASE("generate: stop tokens, max_new_tokens and the callback end the run", "[generate]") {
  Tiny t;
  // Stop at the 4th greedy token (the first of its value); it is neither returned nor decoded.
  std::size_t k = 3;
  while (std::find(t.greedy.begin(), t.greedy.begin() + long(k), t.greedy[k]) != t.greedy.begin() + long(k)) ++k;
  REQUIRE(k < t.greedy.size());
  GenerateOptions o = greedy_opts(100);
  o.stop_tokens = {t.greedy[k]};
  auto r = gemma3::generate(t.model, t.tok, t.prompt, o);
  CHECK(r.stop_reason == StopReason::stop_token);
  CHECK(r.stop_token == t.greedy[k]);
  CHECK(r.tokens == std::vector<int>(t.greedy.begin(), t.greedy.begin() + long(k)));
  CHECK(r.decode_calls == int(k));

  r = gemma3::generate(t.model, t.tok, t.prompt, greedy_opts(5));
  CHECK(r.tokens == std::vector<int>(t.greedy.begin(), t.greedy.begin() + 5));
  CHECK(r.stop_reason == StopReason::max_new_tokens);
  CHECK(r.decode_calls == 4);

  r = gemma3::generate(t.model, t.tok, t.prompt, greedy_opts(0));
  CHECK(r.tokens.empty());

  int calls = 0;
  r = gemma3::generate(t.model, t.tok, t.prompt, greedy_opts(8), [&](std::string_view, int) { return ++calls < 2; });
  CHECK(calls == 2);
  CHECK(r.tokens.size() == 2);
  CHECK(r.stop_reason == StopReason::callback);

  // The default stop tokens are Gemma's chat stops.
  CHECK(GenerateOptions().stop_tokens == std::vector<int>{1, 106});
}

TEST_CASE("generate: a prompt longer than the context fails before running", "[generate]") {
  Tiny t;
  GenerateOptions o = greedy_opts(4);
  o.max_context = 10;
  std::string what;
  try {
    gemma3::generate(t.model, t.tok, t.prompt, o);
  } catch (const std::length_error& e) {
    what = e.what();
  }
  CHECK(what.find("20 tokens") != std::string::npos);
  CHECK(what.find("10") != std::string::npos);
  // The model's own context (131072 here): refused at once, nothing is allocated or run.
  const std::vector<int> huge(std::size_t(t.model.config().max_position_embeddings) + 1, 5);
  CHECK_THROWS_AS(gemma3::generate(t.model, t.tok, huge, greedy_opts(1)), std::length_error);
  CHECK_THROWS_AS(gemma3::generate(t.model, t.tok, std::vector<int>{}, greedy_opts(1)), std::invalid_argument);
  CHECK_THROWS_AS(gemma3::generate(t.model, t.tok, std::vector<int>{1, 512}, greedy_opts(1)), std::invalid_argument);
  // Generation that reaches the end of the context stops there.
  o.max_context = 22;
  o.max_new_tokens = 10;
  const auto r = gemma3::generate(t.model, t.tok, t.prompt, o);
  CHECK(r.stop_reason == StopReason::context_full);
  CHECK(r.tokens.size() == 3);  // 20 + 2 decoded = 22 positions, plus the token drawn from the last logits
}

TEST_CASE("generate: kv_dtype picks the fresh cache's precision, greedy text is kept here", "[generate][kv]") {
  Tiny t;
  GenerateOptions o = greedy_opts(8);
  const auto a = gemma3::generate(t.model, t.tok, t.prompt, o);
  o.kv_dtype = gemma3::DType::F16;
  const auto b = gemma3::generate(t.model, t.tok, t.prompt, o);
  CHECK(a.tokens == b.tokens);  // this tiny model has no near-ties in its first 8 greedy tokens
  o.kv_dtype = gemma3::DType::BF16;  // not a cache type
  CHECK_THROWS_AS(gemma3::generate(t.model, t.tok, t.prompt, o), std::invalid_argument);
}

TEST_CASE("generate: sampling with a seed is reproducible", "[generate]") {
  Tiny t;
  GenerateOptions o = sampling_opts(12, 2024);
  const auto a = gemma3::generate(t.model, t.tok, t.prompt, o);
  const auto b = gemma3::generate(t.model, t.tok, t.prompt, o);
  CHECK(a.tokens == b.tokens);
  CHECK(a.tokens.size() == 12);
  o.sampling.seed = 2025;
  CHECK(gemma3::generate(t.model, t.tok, t.prompt, o).tokens != a.tokens);
}

TEST_CASE("generate: streaming never splits a UTF-8 character across callbacks", "[generate]") {
  ScriptedModel m;
  m.cfg.vocab_size = 300;
  m.cfg.max_position_embeddings = 100;
  const gemma3::Tokenizer tok = fake_tokenizer(300);
  auto byte = [](int b) { return 4 + b; };
  // "é" as two byte tokens, a word, "🙂" as four byte tokens, a stray invalid byte, then <eos>.
  m.script = {byte(0xC3), byte(0xA9), 270, byte(0xF0), byte(0x9F), byte(0x99), byte(0x82), byte(0xFF), 1};
  std::vector<std::string> chunks;
  GenerateOptions o = greedy_opts(50);
  o.stop_tokens = {1};
  const auto r = gemma3::generate(m, tok, std::vector<int>{2, 5}, o, [&](std::string_view text, int) {
    chunks.emplace_back(text);
    return true;
  });
  CHECK(r.stop_reason == StopReason::stop_token);
  CHECK(chunks == std::vector<std::string>{"", "\xC3\xA9", " w270", "", "", "", "\xF0\x9F\x99\x82", "\xFF"});
  CHECK(r.text == "\xC3\xA9 w270\xF0\x9F\x99\x82\xFF");

  // An incomplete character at the end is delivered by a last call with token id -1.
  m.script = {byte(0x41), byte(0xE2), byte(0x96), 1};
  chunks.clear();
  std::vector<int> ids;
  gemma3::generate(m, tok, std::vector<int>{2}, o, [&](std::string_view text, int id) {
    chunks.emplace_back(text);
    ids.push_back(id);
    return true;
  });
  CHECK(chunks == std::vector<std::string>{"A", "", "", "\xE2\x96"});
  CHECK(ids.back() == -1);
}

// ---- generate_batch: several prompts as decode batches ----

namespace {
void check_same_run(const gemma3::GenerateResult& batch, const gemma3::GenerateResult& alone) {
  CHECK(batch.tokens == alone.tokens);
  CHECK(batch.text == alone.text);
  CHECK(batch.stop_reason == alone.stop_reason);
  CHECK(batch.stop_token == alone.stop_token);
  CHECK(batch.prompt_tokens == alone.prompt_tokens);
  CHECK(batch.decode_calls == alone.decode_calls);
}
}  // namespace

TEST_CASE("generate_batch: each prompt's run equals generate() of that prompt alone", "[generate][batch]") {
  Tiny t;
  const auto prefix = [&](std::size_t n) { return std::vector<int>(t.prompt.begin(), t.prompt.begin() + long(n)); };
  const std::vector<std::vector<int>> prompts = {t.prompt, prefix(5), prefix(12), {t.prompt[3]}};
  GenerateOptions o = greedy_opts(10);
  o.max_context = 24;  // the 20-token prompt runs into the end of its context, the others do not
  // A stop token the greedy continuation of the 5-token prompt draws, so that sequence ends early.
  const auto alone5 = gemma3::generate(t.model, t.tok, prompts[1], greedy_opts(10));
  REQUIRE(alone5.tokens.size() >= 4);
  o.stop_tokens = {alone5.tokens[3]};
  const std::vector<gemma3::GenerateResult> batch = gemma3::generate_batch(t.model, t.tok, prompts, o);
  REQUIRE(batch.size() == prompts.size());
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    INFO("prompt " << i);
    check_same_run(batch[i], gemma3::generate(t.model, t.tok, prompts[i], o));
  }
  CHECK(batch[0].stop_reason == StopReason::context_full);
  CHECK(batch[0].tokens == std::vector<int>(t.greedy.begin(), t.greedy.begin() + 5));  // transformers' tokens
  CHECK(batch[1].stop_reason == StopReason::stop_token);
  CHECK(batch[1].tokens.size() <= 3);

  // A callback that stops sequence 2 after two tokens stops that one alone.
  std::vector<int> seen(prompts.size(), 0);
  o.stop_tokens.clear();
  o.max_context = 0;
  const auto stopped = gemma3::generate_batch(t.model, t.tok, prompts, o, [&](std::size_t i, std::string_view, int id) {
    if (id >= 0) ++seen[i];
    return !(i == 2 && seen[i] == 2);
  });
  CHECK(stopped[2].stop_reason == StopReason::callback);
  CHECK(stopped[2].tokens.size() == 2);
  for (std::size_t i : {std::size_t(0), std::size_t(1), std::size_t(3)}) {
    INFO("prompt " << i);
    CHECK(seen[i] == 10);
    check_same_run(stopped[i], gemma3::generate(t.model, t.tok, prompts[i], o));
  }
}

TEST_CASE("generate_batch: sampling, sequence i seeded with seed + i", "[generate][batch]") {
  Tiny t;
  GenerateOptions o = sampling_opts(12, 77);
  const std::vector<std::vector<int>> prompts = {t.prompt, t.prompt, {t.prompt[0], t.prompt[1]}};
  const auto a = gemma3::generate_batch(t.model, t.tok, prompts, o);
  CHECK(gemma3::generate_batch(t.model, t.tok, prompts, o)[1].tokens == a[1].tokens);  // reproducible
  CHECK(a[0].tokens != a[1].tokens);  // the same prompt, another seed
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    GenerateOptions alone = o;
    alone.sampling.seed = o.sampling.seed + i;
    INFO("prompt " << i);
    check_same_run(a[i], gemma3::generate(t.model, t.tok, prompts[i], alone));
  }
}

TEST_CASE("generate_batch: a bad prompt anywhere is refused before any work", "[generate][batch]") {
  Tiny t;
  CHECK_THROWS_AS(gemma3::generate_batch(t.model, t.tok, {}, greedy_opts(2)), std::invalid_argument);
  std::string what;
  try {
    gemma3::generate_batch(t.model, t.tok, {t.prompt, {1, 512}}, greedy_opts(2));
  } catch (const std::invalid_argument& e) {
    what = e.what();
  }
  CHECK(what.find("prompt 1") != std::string::npos);
  CHECK_THROWS_AS(gemma3::generate_batch(t.model, t.tok, {t.prompt, {}}, greedy_opts(2)), std::invalid_argument);
  GenerateOptions o = greedy_opts(2);
  o.max_context = 10;
  CHECK_THROWS_AS(gemma3::generate_batch(t.model, t.tok, {{5, 6}, t.prompt}, o), std::length_error);
  o.max_new_tokens = -1;
  CHECK_THROWS_AS(gemma3::generate_batch(t.model, t.tok, {{5, 6}}, o), std::invalid_argument);
}
