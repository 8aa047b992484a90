// gemma3/generate.hpp -- the generation loop: prompt ids in, streamed text out.
//
//   logits = model.prefill(prompt)              one batched pass over the whole prompt
//   repeat:
//     token = sampler(logits)                   temperature / top-k / top-p; greedy runs
//                                               prefill_greedy / decode_greedy instead,
//                                               which return the backend's argmax id
//     stop if token is a stop token (<eos> 1, <end_of_turn> 106), or on max_new_tokens,
//          or when the callback returns false, or when the KV cache is full
//     on_token(text, token)                     text: only whole UTF-8 characters
//     logits = model.decode(token)              one token, reusing the KV cache
//
// The stop token itself is neither passed to the callback nor run through the model.
// Streaming: a character split over several byte tokens (<0xF0><0x9F><0x99><0x82>) reaches the
// callback once, whole, with its last token; the tokens before it are reported with empty
// text. Bytes that never form a character are passed on as they are (see TokenStreamDecoder),
// so the callback texts add up to tokenizer.decode(result.tokens) (unless the callback stopped
// the run while bytes were held back; result.text always has them).
//
// Errors before any work: an empty prompt, an id outside the vocabulary, or a prompt that does
// not fit the context (std::length_error naming both lengths).
//
// Timing (GenerateResult): prefill_seconds covers model.prefill; decode_seconds covers every
// model.decode call. A run that makes N tokens makes N - 1 decode calls (the first token comes
// from the prefill's logits), so decode_tokens_per_second = decode_calls / decode_seconds.
//
// generate_batch runs several prompts together: after their prefills, each step is one decode
// batch (model.decode_greedy_batch / decode_batch) of the sequences still going.
//
// Pinned by tests/test_generate.cpp (greedy run equal to transformers' greedy continuation on
// tests/fixtures/tiny_global_last; stops; streaming of split characters; generate_batch equal
// to generate for each prompt).
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "chat.hpp"
#include "dtype.hpp"
#include "sampler.hpp"
#include "tensor.hpp"
#include "tokenizer.hpp"

namespace gemma3 {

struct GenerateOptions {
  int max_new_tokens = 256;
  std::vector<int> stop_tokens = chat_stop_tokens();  // <eos>, <end_of_turn>
  SamplingOptions sampling;       // Gemma's defaults; SamplingOptions::greedy() for argmax
  int max_context = 0;            // longest sequence (prompt + new tokens); 0: the model's context
  std::optional<DType> kv_dtype;  // the fresh KV cache's values: F32 or F16 (kv_cache.hpp); unset: the backend's choice
  DecodeOptions decode{true};     // streamed text: control tokens are skipped by default
};

enum class StopReason { stop_token, max_new_tokens, callback, context_full };

inline const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::stop_token: return "stop token";
    case StopReason::max_new_tokens: return "max_new_tokens";
    case StopReason::callback: return "callback";
    case StopReason::context_full: return "context full";
  }
  return "?";
}

struct GenerateResult {
  std::vector<int> tokens;  // generated ids, without the stop token
  std::string text;         // their decoded text (what the callback received, joined)
  StopReason stop_reason = StopReason::max_new_tokens;
  int stop_token = -1;      // the stop token drawn, if stop_reason == stop_token
  int prompt_tokens = 0;
  int decode_calls = 0;
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;

  double prefill_tokens_per_second() const { return prefill_seconds > 0 ? prompt_tokens / prefill_seconds : 0.0; }
  double decode_tokens_per_second() const { return decode_seconds > 0 ? decode_calls / decode_seconds : 0.0; }
};

// on_token(text, token_id) -> keep going? Called once per generated token (text may be empty
// while a character is incomplete) and, if bytes are still held back at the end, once more with
// token_id -1 and those bytes.
using TokenCallback = std::function<bool(std::string_view text, int token_id)>;

namespace detail {

// The checks on a prompt, before any work: empty, or an id outside the vocabulary.
inline void check_prompt_ids(const std::vector<int>& prompt_ids, int vocab, const std::string& who) {
  if (prompt_ids.empty()) throw std::invalid_argument(who + ": the prompt is empty");
  for (std::size_t i = 0; i < prompt_ids.size(); ++i)
    if (prompt_ids[i] < 0 || prompt_ids[i] >= vocab)
      throw std::invalid_argument(who + ": prompt token " + std::to_string(i) + " is " +
                                  std::to_string(prompt_ids[i]) + ", outside the model's vocabulary [0, " +
                                  std::to_string(vocab) + ")");
}

// One sequence being generated: its result so far, its text stream, and the rules that end it.
class Generation {
 public:
  Generation(const Tokenizer& tokenizer, const GenerateOptions& opts, int prompt_tokens)
      : tokenizer_(&tokenizer), opts_(&opts), stream_(tokenizer, opts.decode) {
    r.prompt_tokens = prompt_tokens;
  }

  // Before drawing a token: false once max_new_tokens are made.
  bool room() {
    if (int(r.tokens.size()) < opts_->max_new_tokens) return true;
    r.stop_reason = StopReason::max_new_tokens;
    return false;
  }

  // The token drawn: a stop token ends the run; any other is kept, its text streamed to
  // on_token, and the run ends if the callback says so, at max_new_tokens, or when the
  // cache is full. True: run the token through the model and draw again.
  bool take(int token, bool cache_full, const TokenCallback& on_token) {
    if (std::find(opts_->stop_tokens.begin(), opts_->stop_tokens.end(), token) != opts_->stop_tokens.end()) {
      r.stop_reason = StopReason::stop_token;
      r.stop_token = token;
      return false;
    }
    r.tokens.push_back(token);
    const std::string text = token < tokenizer_->vocab_size() ? stream_.push(token) : std::string();
    r.text += text;
    if (on_token && !on_token(text, token)) {
      r.stop_reason = StopReason::callback;
      by_callback_ = true;
      return false;
    }
    if (!room()) return false;
    if (cache_full) {
      r.stop_reason = StopReason::context_full;
      return false;
    }
    return true;
  }

  // The bytes still held back (an unfinished character), to the text and the callback.
  void finish(const TokenCallback& on_token) {
    const std::string rest = stream_.flush();
    if (rest.empty()) return;
    r.text += rest;
    if (on_token && !by_callback_) on_token(rest, -1);
  }

  GenerateResult r;

 private:
  const Tokenizer* tokenizer_;
  const GenerateOptions* opts_;
  TokenStreamDecoder stream_;
  bool by_callback_ = false;
};

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace detail

// Continue the sequence in `cache` with prompt_ids, then generate. Model: Gemma3ForCausalLM, or
// any type with config() (vocab_size, max_position_embeddings), prefill(ids, cache) and
// decode(id, cache) returning logits with data()/size(), and prefill_greedy(ids, cache) and
// decode_greedy(id, cache) returning the argmax id.
template <class Model, class Cache>
GenerateResult generate(const Model& model, const Tokenizer& tokenizer, Cache& cache, const std::vector<int>& prompt_ids,
                        const GenerateOptions& opts = {}, const TokenCallback& on_token = {}) {
  detail::check_prompt_ids(prompt_ids, int(model.config().vocab_size), "generate");
  if (opts.max_new_tokens < 0) throw std::invalid_argument("generate: max_new_tokens is negative");
  const long long context = cache.max_cache_len();
  const long long needed = (long long)cache.length() + (long long)prompt_ids.size();
  if (needed > context)
    throw std::length_error("generate: the prompt has " + std::to_string(prompt_ids.size()) + " tokens" +
                            (cache.length() ? " (after " + std::to_string(cache.length()) + " cached)" : std::string()) +
                            " but the context holds " + std::to_string(context) + "; shorten the prompt");

  detail::Generation g(tokenizer, opts, int(prompt_ids.size()));
  Sampler sampler(opts.sampling);

  // Greedy decoding asks the model for the id alone (prefill_greedy / decode_greedy: the
  // backend's argmax, where the activations are); sampling needs the logits.
  const bool greedy = opts.sampling.temperature <= 0.0f;
  decltype(model.prefill(prompt_ids, cache)) logits{};
  int next = -1;  // greedy: the id the last model call picked
  auto t0 = std::chrono::steady_clock::now();
  if (greedy) next = model.prefill_greedy(prompt_ids, cache);
  else logits = model.prefill(prompt_ids, cache);
  g.r.prefill_seconds = detail::seconds_since(t0);

  while (g.room()) {
    const int token = greedy ? next : sampler.sample(logits);
    if (!g.take(token, cache.length() >= context, on_token)) break;
    t0 = std::chrono::steady_clock::now();
    if (greedy) next = model.decode_greedy(token, cache);
    else logits = model.decode(token, cache);
    g.r.decode_seconds += detail::seconds_since(t0);
    ++g.r.decode_calls;
  }
  g.finish(on_token);
  return g.r;
}

// The longest sequence (prompt + new tokens) a fresh cache holds under opts.
template <class Model>
long long generate_context(const Model& model, const GenerateOptions& opts) {
  long long context = model.config().max_position_embeddings;
  if (opts.max_context > 0) context = std::min<long long>(context, opts.max_context);
  return context;
}

// Generate after prompt_ids with a fresh KV cache (of opts.kv_dtype) sized for prompt +
// max_new_tokens (at most the model's context, or opts.max_context). Model also needs
// new_cache(max_cache_len, kv_dtype).
template <class Model>
GenerateResult generate(const Model& model, const Tokenizer& tokenizer, const std::vector<int>& prompt_ids,
                        const GenerateOptions& opts = {}, const TokenCallback& on_token = {}) {
  const long long context = generate_context(model, opts);
  if ((long long)prompt_ids.size() > context)
    throw std::length_error("generate: the prompt has " + std::to_string(prompt_ids.size()) +
                            " tokens but the context holds " + std::to_string(context) + "; shorten the prompt");
  const long long want = (long long)prompt_ids.size() + std::max(opts.max_new_tokens, 0);
  auto cache = model.new_cache(int(std::max<long long>(1, std::min(want, context))), opts.kv_dtype);
  return generate(model, tokenizer, cache, prompt_ids, opts, on_token);
}

// on_token(sequence, text, token_id) -> keep that sequence going? As TokenCallback, for
// the sequence of prompts[sequence].
using BatchTokenCallback = std::function<bool(std::size_t sequence, std::string_view text, int token_id)>;

// Several prompts generated together, each in a fresh KV cache of its own (sized as
// generate() sizes it). The prompts are prefilled one after another; then each step runs
// every sequence still going as one decode batch (model.decode_greedy_batch, or
// decode_batch and a sampler per sequence), so the weights are read once per step for all
// of them. A sequence that stops (its rules are generate()'s) leaves the batch and the
// others go on. results[i] is what generate(model, tokenizer, prompts[i], opts) returns
// (the same tokens when greedy, to float rounding of the batched products:
// tests/test_generate.cpp); with sampling, sequence i draws from a Sampler seeded with
// opts.sampling.seed + i. decode_seconds of a sequence: the batch steps it took part in.
// Every prompt is checked before any work.
template <class Model>
std::vector<GenerateResult> generate_batch(const Model& model, const Tokenizer& tokenizer,
                                           const std::vector<std::vector<int>>& prompts,
                                           const GenerateOptions& opts = {}, const BatchTokenCallback& on_token = {}) {
  if (prompts.empty()) throw std::invalid_argument("generate_batch: no prompts");
  if (opts.max_new_tokens < 0) throw std::invalid_argument("generate_batch: max_new_tokens is negative");
  const long long context = generate_context(model, opts);
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    const std::string who = "generate_batch: prompt " + std::to_string(i);
    detail::check_prompt_ids(prompts[i], int(model.config().vocab_size), who);
    if ((long long)prompts[i].size() > context)
      throw std::length_error(who + " has " + std::to_string(prompts[i].size()) + " tokens but the context holds " +
                              std::to_string(context) + "; shorten the prompt");
  }
  const std::size_t N = prompts.size();
  using Cache = decltype(model.new_cache(1, opts.kv_dtype));
  std::vector<Cache> caches;
  std::vector<detail::Generation> gens;
  std::vector<Sampler> samplers;
  std::vector<TokenCallback> callbacks;  // on_token for one sequence
  caches.reserve(N);
  gens.reserve(N);
  samplers.reserve(N);
  for (std::size_t i = 0; i < N; ++i) {
    const long long want = (long long)prompts[i].size() + opts.max_new_tokens;
    caches.push_back(model.new_cache(int(std::max<long long>(1, std::min(want, context))), opts.kv_dtype));
    gens.emplace_back(tokenizer, opts, int(prompts[i].size()));
    SamplingOptions so = opts.sampling;
    so.seed += std::uint64_t(i);
    samplers.emplace_back(so);
    if (on_token) callbacks.push_back([&on_token, i](std::string_view text, int id) { return on_token(i, text, id); });
    else callbacks.emplace_back();
  }

  const bool greedy = opts.sampling.temperature <= 0.0f;
  std::vector<decltype(model.prefill(prompts[0], caches[0]))> logits(N);
  std::vector<int> next(N, -1);  // greedy: each sequence's last pick
  for (std::size_t i = 0; i < N; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    if (greedy) next[i] = model.prefill_greedy(prompts[i], caches[i]);
    else logits[i] = model.prefill(prompts[i], caches[i]);
    gens[i].r.prefill_seconds = detail::seconds_since(t0);
  }

  std::vector<std::size_t> going(N);  // the sequences still generating
  for (std::size_t i = 0; i < N; ++i) going[i] = i;
  while (!going.empty()) {
    std::vector<std::size_t> step;  // the sequences in this decode batch, and their tokens
    std::vector<int> ids;
    std::vector<Cache*> step_caches;
    for (std::size_t i : going) {
      if (!gens[i].room()) continue;
      const int token = greedy ? next[i] : samplers[i].sample(logits[i]);
      if (!gens[i].take(token, caches[i].length() >= caches[i].max_cache_len(), callbacks[i])) continue;
      step.push_back(i);
      ids.push_back(token);
      step_caches.push_back(&caches[i]);
    }
    if (step.empty()) break;
    const auto t0 = std::chrono::steady_clock::now();
    if (greedy) {
      const std::vector<int> picks = model.decode_greedy_batch(ids, step_caches);
      for (std::size_t k = 0; k < step.size(); ++k) next[step[k]] = picks[k];
    } else {
      const auto rows = model.decode_batch(ids, step_caches);  // [B, vocab]
      for (std::size_t k = 0; k < step.size(); ++k) logits[step[k]] = rows.row(Eigen::Index(k)).transpose();
    }
    const double dt = detail::seconds_since(t0);
    for (std::size_t i : step) {
      gens[i].r.decode_seconds += dt;
      ++gens[i].r.decode_calls;
    }
    going = std::move(step);
  }

  std::vector<GenerateResult> results;
  for (std::size_t i = 0; i < N; ++i) {
    gens[i].finish(callbacks[i]);
    results.push_back(std::move(gens[i].r));
  }
  return results;
}

}  // namespace gemma3
