// web/gemma3_web.cpp -- the library as the browser page's Worker sees it: a handful of
// C functions over one loaded model, compiled by Emscripten (web/CMakeLists.txt).
//
//   g3_alloc(n)                 a heap buffer the Worker streams the GGUF file into
//   g3_load(ptr, n, name, threads)   adopt that buffer (no copy), parse, build the model
//   g3_info()                   the model: config, layer types, chat template, instruction set
//   g3_tokenize(text, chat)     the prompt's ids and pieces, as the model will see them
//   g3_begin(...)               a new turn: prompt, mode, sampling, context
//   g3_step(max_prefill)        the next piece of work: one prefill chunk, or one token
//   g3_attention(i, layer, head)  what generated token i's query attended to
//
// Every call returns JSON text (or 0 / 1 with the JSON in g3_result()), and every C++
// exception becomes {"error": "..."}: a bad file or a prompt over the context costs
// the page a message, never the module. The Worker (web/model-worker.js) drives g3_step in a
// loop, so it can read the Stop flag between steps and post each token as it comes.
//
// Generation follows generate.hpp: prefill the prompt (here in chunks of up to 1024
// tokens, which give the same logits as one pass), then sample, stop on <eos> /
// <end_of_turn>, decode. Stop: the page sets an int in this module's memory
// (g3_stop_flag); the Worker reads it between steps, and StoppableBackend reads it
// before each layer's attention, so a long prefill ends within one layer. The
// attention rows come from the model's ForwardTrace (attention_weights.hpp), the KV
// gauge from the KVCache itself (kv_cache.hpp), so the page computes nothing itself.
#include <emscripten/emscripten.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gemma3/gemma3.hpp>

namespace {

using clock_type = std::chrono::steady_clock;

// ---- JSON text, written by hand (the values are numbers, strings and arrays) ----
void json_string(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += char(c);
        }
    }
  }
  out += '"';
}
// Text that may end inside a UTF-8 character or hold invalid bytes (a byte-token
// piece): each invalid byte becomes U+FFFD, so the JSON stays valid UTF-8.
std::string valid_utf8(const std::string& s) {
  std::string out;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    const int len = gemma3::detail::utf8_sequence_length(p + i, n - i);  // tokenizer.hpp; 0: not a character
    if (len > 0) {
      out.append(s, i, std::size_t(len));
      i += std::size_t(len);
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}
std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// ---- Stop inside a forward pass ----
// The page writes 1 here (Atomics.store on the wasm memory) to stop generation.
std::atomic<int> g_stop{0};
struct Stopped {};  // thrown out of a forward pass; the turn ends "stopped"

// The CPU backend, unchanged, except that each layer's attention first looks at the
// Stop flag. A backend decorator: the model code knows nothing of it (backend.hpp).
// A pass stopped this way has written some layers' keys for its tokens and not others,
// so the cache is not continued afterwards (g3_step starts the next turn afresh).
class StoppableBackend : public gemma3::Backend {
 public:
  explicit StoppableBackend(std::shared_ptr<const gemma3::Backend> inner) : inner_(std::move(inner)) {}
  std::string name() const override { return inner_->name(); }
  void embed(const gemma3::Weight& t, const std::vector<int>& ids, float scale, gemma3::Activations& out) const override {
    inner_->embed(t, ids, scale, out);
  }
  void set_rows(gemma3::Activations& h, const std::vector<int>& rows, const gemma3::Matrix& v) const override {
    inner_->set_rows(h, rows, v);
  }
  void rms_norm(const gemma3::Activations& x, const gemma3::Vector& w, float eps, gemma3::Activations& out) const override {
    inner_->rms_norm(x, w, eps, out);
  }
  void rms_norm_heads(gemma3::Activations& x, int d, const gemma3::Vector& w, float eps) const override {
    inner_->rms_norm_heads(x, d, w, eps);
  }
  void rope(gemma3::Activations& x, const gemma3::RotaryEmbedding& r, int pos0) const override { inner_->rope(x, r, pos0); }
  void add(gemma3::Activations& h, const gemma3::Activations& x) const override { inner_->add(h, x); }
  gemma3::Activations upload(const gemma3::Matrix& x) const override { return inner_->upload(x); }
  gemma3::Matrix download(const gemma3::Activations& x) const override { return inner_->download(x); }
  void linear(const gemma3::Weight& W, const gemma3::Activations& X, gemma3::Activations& Y) const override {
    inner_->linear(W, X, Y);
  }
  void linear_many(const gemma3::Activations& X,
                   std::initializer_list<std::pair<const gemma3::Weight*, gemma3::Activations*>> jobs) const override {
    inner_->linear_many(X, jobs);
  }
  void linear_host(const gemma3::Weight& W, const gemma3::Matrix& X, gemma3::Matrix& Y) const override {
    inner_->linear_host(W, X, Y);
  }
  void gelu_tanh_mul(gemma3::Activations& g, const gemma3::Activations& u) const override { inner_->gelu_tanh_mul(g, u); }
  gemma3::KVCache new_cache(const gemma3::Gemma3TextConfig& c, int len, std::optional<gemma3::DType> t) const override {
    return inner_->new_cache(c, len, t);
  }
  void attention(const gemma3::AttentionShape& shape, const gemma3::AttentionMask& mask, const gemma3::Activations& q,
                 const gemma3::Activations& k, const gemma3::Activations& v, gemma3::LayerKVCache& cache,
                 gemma3::Activations& context) const override {
    if (g_stop.load(std::memory_order_relaxed)) throw Stopped{};
    inner_->attention(shape, mask, q, k, v, cache, context);
  }
  void lm_head_last(const gemma3::Weight& W, const gemma3::Activations& h, float* logits) const override {
    inner_->lm_head_last(W, h, logits);
  }
  int lm_head_argmax(const gemma3::Weight& W, const gemma3::Activations& h) const override {
    return inner_->lm_head_argmax(W, h);
  }
  int argmax(const float* x, std::size_t n) const override { return inner_->argmax(x, n); }

 private:
  std::shared_ptr<const gemma3::Backend> inner_;
};

// ---- the state of the one model this module holds ----
struct Turn {
  std::vector<int> prompt;   // ids still to prefill
  std::size_t prefilled = 0; // of prompt
  int pos0 = 0;              // position of prompt[0]
  gemma3::Sampler sampler;
  int max_tokens = 256;
  int generated = 0;
  int pending = -1;          // the token sampled, not yet fed to the model
  bool record_attention = true;
  bool ignore_eos = false;   // keep going past <eos> / <end_of_turn> (benchmarks)
  double prefill_seconds = 0, decode_seconds = 0;
  int decode_calls = 0;
  std::optional<gemma3::TokenStreamDecoder> stream;
  bool finished = true;
};

struct State {
  std::optional<gemma3::Gemma3ForCausalLM> model;
  std::optional<gemma3::Tokenizer> tokenizer;
  gemma3::Vocabulary vocab;
  std::string name, weight_type;
  std::size_t file_bytes = 0;
  int threads = 1;
  std::optional<gemma3::KVCache> cache;
  bool chat_started = false;  // the cache holds a chat conversation (later turns continue it)
  Turn turn;
  // Attention rows of the generated tokens: record i is the forward pass whose last
  // token's logits gave generated token i; [layers] x [heads, position + 1].
  struct Record { int position; std::vector<gemma3::Matrix> layers; };
  std::vector<Record> attention;
  std::size_t attention_bytes = 0;
  static constexpr std::size_t kAttentionBudget = std::size_t(256) << 20;  // stop recording past this
  bool attention_capped = false;
};

State& state() {
  static State s;
  return s;
}
std::string& result() {
  static std::string r;
  return r;
}
const char* error_json(const std::string& what) {
  std::string& r = result();
  r = "{\"error\":";
  json_string(r, valid_utf8(what));
  r += "}";
  return r.c_str();
}

std::shared_ptr<const gemma3::Backend> make_backend(int threads) {
  gemma3::CpuBackend::Options o;
  o.threads = std::max(1, threads);
  o.kv_dtype = gemma3::DType::F16;  // gemma3-cli's default too
  return std::make_shared<const StoppableBackend>(std::make_shared<const gemma3::CpuBackend>(o));
}

// The KV gauge: bytes held now by the sliding rings and by the global layers, and
// what an all-global cache would hold for the same tokens.
std::string kv_json(const gemma3::KVCache& cache, const gemma3::Gemma3TextConfig& c) {
  const double row = 2.0 * c.num_key_value_heads * c.head_dim * double(gemma3::dtype_size(cache.dtype()));
  double sliding = 0, global = 0;
  for (int i = 0; i < cache.num_layers(); ++i) {
    const gemma3::LayerKVCache& l = cache.layer(i);
    (l.sliding ? sliding : global) += double(std::min(cache.length(), l.capacity)) * row;
  }
  return "{\"tokens\":" + std::to_string(cache.length()) + ",\"sliding_bytes\":" + num(sliding) +
         ",\"global_bytes\":" + num(global) + ",\"used_bytes\":" + num(double(cache.bytes_used())) +
         ",\"all_global_bytes\":" + num(double(cache.length()) * row * cache.num_layers()) +
         ",\"reserved_bytes\":" + num(double(cache.bytes_allocated())) + ",\"max_tokens\":" +
         std::to_string(cache.max_cache_len()) + ",\"dtype\":\"" + gemma3::dtype_name(cache.dtype()) + "\"}";
}

void keep_attention(State& s, int position, std::vector<gemma3::Matrix>&& layers) {
  if (s.attention_capped) return;
  std::size_t bytes = 0;
  for (const auto& m : layers) bytes += std::size_t(m.size()) * sizeof(float);
  if (s.attention_bytes + bytes > State::kAttentionBudget) {
    s.attention_capped = true;
    return;
  }
  s.attention_bytes += bytes;
  s.attention.push_back({position, std::move(layers)});
}

// Runs ids through the model; the last token's logits [vocab_size].
gemma3::Vector run(State& s, const std::vector<int>& ids, bool record) {
  gemma3::ForwardTrace trace;
  trace.hidden_states = false;
  trace.attention = record;
  const int last_position = s.cache->length() + int(ids.size()) - 1;
  gemma3::Matrix logits = s.model->forward(ids, *s.cache, gemma3::Logits::last, record ? &trace : nullptr);
  if (record) keep_attention(s, last_position, std::move(trace.last_token_attention));
  return logits.row(0).transpose();
}

}  // namespace

extern "C" {

const char* g3_stop();

EMSCRIPTEN_KEEPALIVE void* g3_alloc(double bytes) {
  if (bytes < 0 || bytes > 2147483647.0) return nullptr;  // wasm32: one allocation stays under 2 GiB
  return std::malloc(std::size_t(bytes));
}
EMSCRIPTEN_KEEPALIVE void g3_free(void* p) { std::free(p); }
// Where the page writes 1 to stop (an aligned int32 in the shared wasm memory).
EMSCRIPTEN_KEEPALIVE void* g3_stop_flag() { return &g_stop; }
EMSCRIPTEN_KEEPALIVE const char* g3_result() { return result().c_str(); }

// Takes ownership of data (from g3_alloc) whatever happens; 0 on success, else the
// error is in g3_result().
EMSCRIPTEN_KEEPALIVE int g3_load(unsigned char* data, double size, const char* name, int threads) {
  State& s = state();
  s.model.reset();
  s.tokenizer.reset();
  s.cache.reset();
  s.attention.clear();
  s.attention_bytes = 0;
  s.chat_started = false;
  s.turn = Turn();
  try {
    auto file = gemma3::MappedFile::adopt(data, std::size_t(size), std::free, name);
    const gemma3::GgufFile gguf(file);
    gemma3::Vocabulary vocab;
    s.threads = std::max(1, threads);
    gemma3::Gemma3ForCausalLM m = gemma3::load_gguf_model(gguf, &vocab, {}, make_backend(s.threads));
    s.tokenizer.emplace(gemma3::tokenizer_from_vocabulary(vocab));
    s.weight_type = gemma3::dtype_name(m.weights().layers[0].mlp.down_proj.dtype);
    s.model.emplace(std::move(m));
    s.vocab = std::move(vocab);
    s.name = name;
    s.file_bytes = std::size_t(size);
    result() = "{}";
    return 0;
  } catch (const std::exception& e) {
    s.model.reset();
    s.tokenizer.reset();
    error_json(e.what());
    return 1;
  }
}

EMSCRIPTEN_KEEPALIVE const char* g3_info() {
  State& s = state();
  if (!s.model) return error_json("no model is loaded");
  const gemma3::Gemma3TextConfig& c = s.model->config();
  std::string r = "{\"name\":";
  json_string(r, valid_utf8(s.name));
  r += ",\"file_bytes\":" + num(double(s.file_bytes)) + ",\"layers\":" + std::to_string(c.num_hidden_layers) +
       ",\"hidden_size\":" + std::to_string(c.hidden_size) + ",\"heads\":" + std::to_string(c.num_attention_heads) +
       ",\"kv_heads\":" + std::to_string(c.num_key_value_heads) + ",\"head_dim\":" + std::to_string(c.head_dim) +
       ",\"sliding_window\":" + std::to_string(c.sliding_window) + ",\"vocab_size\":" + std::to_string(c.vocab_size) +
       ",\"context\":" + std::to_string(c.max_position_embeddings) + ",\"weights\":\"" + s.weight_type +
       "\",\"has_chat_template\":" + (s.vocab.has_chat_template() ? "true" : "false") + ",\"backend\":";
  json_string(r, s.model->backend().name());
  r += ",\"threads\":" + std::to_string(s.threads) + ",\"layer_types\":[";
  for (int i = 0; i < c.num_hidden_layers; ++i) r += std::string(i ? "," : "") + (c.is_sliding(i) ? "\"local\"" : "\"global\"");
  r += "]}";
  result() = r;
  return result().c_str();
}

EMSCRIPTEN_KEEPALIVE const char* g3_set_threads(int threads) {
  State& s = state();
  if (!s.model) return error_json("no model is loaded");
  s.threads = std::max(1, threads);
  s.model.emplace(s.model->with_backend(make_backend(s.threads)));
  return g3_info();
}

// The ids of text as a prompt (chat: Gemma's chat template around one user turn).
EMSCRIPTEN_KEEPALIVE const char* g3_tokenize(const char* text, int chat) {
  State& s = state();
  if (!s.tokenizer) return error_json("no model is loaded");
  try {
    const std::vector<int> ids =
        chat ? gemma3::encode_chat(*s.tokenizer, {gemma3::ChatMessage("user", text)}) : s.tokenizer->encode(text);
    std::string r = "{\"ids\":[";
    for (std::size_t i = 0; i < ids.size(); ++i) r += (i ? "," : "") + std::to_string(ids[i]);
    r += "],\"pieces\":[";
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (i) r += ',';
      json_string(r, valid_utf8(s.tokenizer->piece(ids[i])));
    }
    r += "]}";
    result() = r;
    return result().c_str();
  } catch (const std::exception& e) {
    return error_json(e.what());
  }
}

// A new turn. chat: Gemma's chat template, continuing the conversation in the cache
// unless reset; otherwise the text is completed from a fresh cache. context: the
// cache's positions (a new cache is made when it changes or on reset). ignore_eos:
// generate max_tokens whatever is drawn (web/bench.py, like gemma3-cli --ignore-eos).
EMSCRIPTEN_KEEPALIVE const char* g3_begin(const char* text, int chat, int reset, double temperature, int top_k,
                                          double top_p, double seed, int max_tokens, int context,
                                          int record_attention, int ignore_eos) {
  State& s = state();
  if (!s.model) return error_json("no model is loaded");
  try {
    const gemma3::Gemma3TextConfig& c = s.model->config();
    context = std::clamp(context, 1, c.max_position_embeddings);
    const bool continue_chat = chat && !reset && s.chat_started && s.cache && s.cache->max_cache_len() == context &&
                               s.cache->length() > 0;
    std::vector<int> ids;
    if (!continue_chat) {
      ids = chat ? gemma3::encode_chat(*s.tokenizer, {gemma3::ChatMessage("user", text)}) : s.tokenizer->encode(text);
    } else {  // what the template adds after the cached tokens: the answer's close, the new turn
      gemma3::ChatTemplateOptions no_bos;
      no_bos.add_bos = false;
      gemma3::EncodeOptions e;
      e.add_bos = false;
      ids = s.tokenizer->encode("<end_of_turn>\n" + gemma3::apply_chat_template({gemma3::ChatMessage("user", text)}, no_bos), e);
    }
    const int used = continue_chat ? s.cache->length() : 0;
    if (used + int(ids.size()) > context)
      throw std::length_error("the prompt has " + std::to_string(ids.size()) + " tokens but the context holds " +
                              std::to_string(context) +
                              (used ? " and the conversation already uses " + std::to_string(used) : std::string()) +
                              ": shorten the prompt, raise the context" + (used ? " or start a new chat" : ""));
    if (!continue_chat) {
      s.cache.reset();  // free the old rows before making the new ones
      s.cache.emplace(s.model->new_cache(context));
      s.attention.clear();
      s.attention_bytes = 0;
      s.attention_capped = false;
    }
    s.chat_started = chat != 0;
    gemma3::SamplingOptions so;
    so.temperature = float(temperature);
    so.top_k = top_k;
    so.top_p = float(top_p);
    so.seed = std::uint64_t(seed);
    Turn t;
    t.prompt = ids;
    t.pos0 = s.cache->length();
    t.sampler = gemma3::Sampler(so);
    t.max_tokens = std::max(0, max_tokens);
    t.record_attention = record_attention != 0;
    t.ignore_eos = ignore_eos != 0;
    t.stream.emplace(*s.tokenizer, gemma3::DecodeOptions{true});
    t.finished = false;
    s.turn = std::move(t);

    std::string r = "{\"pos0\":" + std::to_string(s.turn.pos0) + ",\"continued\":" + (continue_chat ? "true" : "false") +
                    ",\"ids\":[";
    for (std::size_t i = 0; i < ids.size(); ++i) r += (i ? "," : "") + std::to_string(ids[i]);
    r += "],\"pieces\":[";
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (i) r += ',';
      json_string(r, valid_utf8(s.tokenizer->piece(ids[i])));
    }
    r += "],\"kv\":" + kv_json(*s.cache, c) + "}";
    result() = r;
    return result().c_str();
  } catch (const std::exception& e) {
    return error_json(e.what());
  }
}

// One step of the turn: a prefill chunk of at most max_prefill tokens, or one token.
//   {"phase":"prefill","done":k,"total":n,...}   {"phase":"token","id":..,"text":..,...}
//   {"phase":"end","reason":"stop token"|"max_new_tokens"|"context full"|"stopped",...}
EMSCRIPTEN_KEEPALIVE const char* g3_step(int max_prefill) {
  State& s = state();
  if (!s.model || !s.cache) return error_json("no model is loaded");
  Turn& t = s.turn;
  if (t.finished) return error_json("no turn is running: call g3_begin first");
  try {
    const gemma3::Gemma3TextConfig& c = s.model->config();
    auto stats = [&]() {
      return ",\"prefill_tokens\":" + std::to_string(t.prefilled) + ",\"prefill_seconds\":" + num(t.prefill_seconds) +
             ",\"decode_calls\":" + std::to_string(t.decode_calls) + ",\"decode_seconds\":" + num(t.decode_seconds) +
             ",\"attention_records\":" + std::to_string(s.attention.size()) + ",\"attention_bytes\":" +
             num(double(s.attention_bytes)) + ",\"attention_capped\":" + (s.attention_capped ? "true" : "false") +
             ",\"kv\":" + kv_json(*s.cache, c) + "}";
    };
    auto end = [&](const char* reason) {
      t.finished = true;
      std::string r = "{\"phase\":\"end\",\"reason\":\"" + std::string(reason) + "\",\"text\":";
      json_string(r, valid_utf8(t.stream->flush()));
      result() = r + stats();
      return result().c_str();
    };

    gemma3::Vector logits;
    if (t.prefilled < t.prompt.size()) {  // prefill: the next chunk of the prompt
      const std::size_t n = std::min(t.prompt.size() - t.prefilled, std::size_t(std::max(1, max_prefill)));
      const std::vector<int> chunk(t.prompt.begin() + long(t.prefilled), t.prompt.begin() + long(t.prefilled + n));
      const bool last = t.prefilled + n == t.prompt.size();
      const auto t0 = clock_type::now();
      if (!last) {
        s.model->forward(chunk, *s.cache, gemma3::Logits::last);
      } else {
        logits = run(s, chunk, t.record_attention);
      }
      t.prefill_seconds += std::chrono::duration<double>(clock_type::now() - t0).count();
      t.prefilled += n;
      if (!last) {
        result() = "{\"phase\":\"prefill\",\"done\":" + std::to_string(t.prefilled) + ",\"total\":" +
                   std::to_string(t.prompt.size()) + stats();
        return result().c_str();
      }
    } else {  // decode: feed the token sampled last
      if (t.generated >= t.max_tokens) return end("max_new_tokens");
      if (s.cache->length() >= s.cache->max_cache_len()) return end("context full");
      const auto t0 = clock_type::now();
      logits = run(s, {t.pending}, t.record_attention);
      t.decode_seconds += std::chrono::duration<double>(clock_type::now() - t0).count();
      ++t.decode_calls;
    }
    if (t.max_tokens == 0) return end("max_new_tokens");
    const int id = t.sampler.sample(logits);
    const std::vector<int> stops = gemma3::chat_stop_tokens();
    if (!t.ignore_eos && std::find(stops.begin(), stops.end(), id) != stops.end()) return end("stop token");
    t.pending = id;
    ++t.generated;
    std::string r = "{\"phase\":\"token\",\"id\":" + std::to_string(id) + ",\"position\":" +
                    std::to_string(s.cache->length()) + ",\"piece\":";
    json_string(r, valid_utf8(s.tokenizer->piece(id)));
    r += ",\"text\":";
    json_string(r, valid_utf8(t.stream->push(id)));
    result() = r + stats();
    return result().c_str();
  } catch (const Stopped&) {  // in the middle of a forward pass: the cache holds part of it
    s.chat_started = false;
    return g3_stop();
  } catch (const std::exception& e) {
    t.finished = true;
    return error_json(e.what());
  }
}

// The Stop button: the turn ends here (the Worker calls this between steps). A chat
// stopped during its prefill holds half a prompt in the cache, so the next turn
// starts a new conversation.
EMSCRIPTEN_KEEPALIVE const char* g3_stop() {
  State& s = state();
  Turn& t = s.turn;
  if (!t.finished && t.prefilled < t.prompt.size()) s.chat_started = false;
  t.finished = true;
  std::string r = "{\"phase\":\"end\",\"reason\":\"stopped\",\"text\":";
  json_string(r, t.stream ? valid_utf8(t.stream->flush()) : std::string());
  r += s.cache ? ",\"kv\":" + kv_json(*s.cache, s.model->config()) + "}" : std::string("}");
  result() = r;
  return result().c_str();
}

// Generated token `index`'s attention row in `layer`, `head`: floats [position + 1]
// in g3_attention_data(); returns JSON {"position":p,"sliding":b,"window":W,"sum":..}.
EMSCRIPTEN_KEEPALIVE const char* g3_attention(int index, int layer, int head) {
  State& s = state();
  static std::vector<float> row;
  if (!s.model) return error_json("no model is loaded");
  if (index < 0 || index >= int(s.attention.size()))
    return error_json("no attention recorded for generated token " + std::to_string(index) + " (" +
                      std::to_string(s.attention.size()) + " recorded)");
  const gemma3::Gemma3TextConfig& c = s.model->config();
  if (layer < 0 || layer >= c.num_hidden_layers || head < 0 || head >= c.num_attention_heads)
    return error_json("layer or head out of range");
  const State::Record& rec = s.attention[std::size_t(index)];
  const gemma3::Matrix& m = rec.layers[std::size_t(layer)];
  row.resize(std::size_t(m.cols()));
  double sum = 0;
  for (Eigen::Index j = 0; j < m.cols(); ++j) sum += (row[std::size_t(j)] = m(head, j));
  result() = "{\"position\":" + std::to_string(rec.position) + ",\"sliding\":" + (c.is_sliding(layer) ? "true" : "false") +
             ",\"window\":" + std::to_string(c.sliding_window) + ",\"length\":" + std::to_string(row.size()) +
             ",\"sum\":" + num(sum) + ",\"data\":" + std::to_string(reinterpret_cast<std::uintptr_t>(row.data())) + "}";
  return result().c_str();
}

}  // extern "C"
