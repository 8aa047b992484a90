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
// Pinned by tests/test_generate.cpp (greedy run equal to transformers' greedy continuation on
// tests/fixtures/tiny_global_last; stops; streaming of split characters).
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

// Continue the sequence in `cache` with prompt_ids, then generate. Model: Gemma3ForCausalLM, or
// any type with config() (vocab_size, max_position_embeddings), prefill(ids, cache) and
// decode(id, cache) returning logits with data()/size(), and prefill_greedy(ids, cache) and
// decode_greedy(id, cache) returning the argmax id.
template <class Model, class Cache>
GenerateResult generate(const Model& model, const Tokenizer& tokenizer, Cache& cache, const std::vector<int>& prompt_ids,
                        const GenerateOptions& opts = {}, const TokenCallback& on_token = {}) {
  using clock = std::chrono::steady_clock;
  const int vocab = int(model.config().vocab_size);
  if (prompt_ids.empty()) throw std::invalid_argument("generate: the prompt is empty");
  for (std::size_t i = 0; i < prompt_ids.size(); ++i)
    if (prompt_ids[i] < 0 || prompt_ids[i] >= vocab)
      throw std::invalid_argument("generate: prompt token " + std::to_string(i) + " is " +
                                  std::to_string(prompt_ids[i]) + ", outside the model's vocabulary [0, " +
                                  std::to_string(vocab) + ")");
  if (opts.max_new_tokens < 0) throw std::invalid_argument("generate: max_new_tokens is negative");
  const long long context = cache.max_cache_len();
  const long long needed = (long long)cache.length() + (long long)prompt_ids.size();
  if (needed > context)
    throw std::length_error("generate: the prompt has " + std::to_string(prompt_ids.size()) + " tokens" +
                            (cache.length() ? " (after " + std::to_string(cache.length()) + " cached)" : std::string()) +
                            " but the context holds " + std::to_string(context) + "; shorten the prompt");

  GenerateResult r;
  r.prompt_tokens = int(prompt_ids.size());
  Sampler sampler(opts.sampling);
  TokenStreamDecoder stream(tokenizer, opts.decode);

  // Greedy decoding asks the model for the id alone (prefill_greedy / decode_greedy: the
  // backend's argmax, where the activations are); sampling needs the logits.
  const bool greedy = opts.sampling.temperature <= 0.0f;
  decltype(model.prefill(prompt_ids, cache)) logits{};
  int next = -1;  // greedy: the id the last model call picked
  auto t0 = clock::now();
  if (greedy) next = model.prefill_greedy(prompt_ids, cache);
  else logits = model.prefill(prompt_ids, cache);
  r.prefill_seconds = std::chrono::duration<double>(clock::now() - t0).count();

  bool stopped = false;
  while (!stopped) {
    if (int(r.tokens.size()) >= opts.max_new_tokens) { r.stop_reason = StopReason::max_new_tokens; break; }
    const int token = greedy ? next : sampler.sample(logits);
    if (std::find(opts.stop_tokens.begin(), opts.stop_tokens.end(), token) != opts.stop_tokens.end()) {
      r.stop_reason = StopReason::stop_token;
      r.stop_token = token;
      break;
    }
    r.tokens.push_back(token);
    const std::string text = token < tokenizer.vocab_size() ? stream.push(token) : std::string();
    r.text += text;
    if (on_token && !on_token(text, token)) { r.stop_reason = StopReason::callback; stopped = true; break; }
    if (int(r.tokens.size()) >= opts.max_new_tokens) { r.stop_reason = StopReason::max_new_tokens; break; }
    if (cache.length() >= context) { r.stop_reason = StopReason::context_full; break; }
    t0 = clock::now();
    if (greedy) next = model.decode_greedy(token, cache);
    else logits = model.decode(token, cache);
    r.decode_seconds += std::chrono::duration<double>(clock::now() - t0).count();
    ++r.decode_calls;
  }
  const std::string rest = stream.flush();
  if (!rest.empty()) {
    r.text += rest;
    if (on_token && !stopped) on_token(rest, -1);
  }
  return r;
}

// Generate after prompt_ids with a fresh KV cache (of opts.kv_dtype) sized for prompt +
// max_new_tokens (at most the model's context, or opts.max_context). Model also needs
// new_cache(max_cache_len, kv_dtype).
template <class Model>
GenerateResult generate(const Model& model, const Tokenizer& tokenizer, const std::vector<int>& prompt_ids,
                        const GenerateOptions& opts = {}, const TokenCallback& on_token = {}) {
  long long context = model.config().max_position_embeddings;
  if (opts.max_context > 0) context = std::min<long long>(context, opts.max_context);
  if ((long long)prompt_ids.size() > context)
    throw std::length_error("generate: the prompt has " + std::to_string(prompt_ids.size()) +
                            " tokens but the context holds " + std::to_string(context) + "; shorten the prompt");
  const long long want = (long long)prompt_ids.size() + std::max(opts.max_new_tokens, 0);
  auto cache = model.new_cache(int(std::max<long long>(1, std::min(want, context))), opts.kv_dtype);
  return generate(model, tokenizer, cache, prompt_ids, opts, on_token);
}

}  // namespace gemma3
