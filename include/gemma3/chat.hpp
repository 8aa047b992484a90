// gemma3/chat.hpp -- Gemma 3's chat prompt format (the chat template of the -it checkpoints).
//
//   <bos><start_of_turn>user\n{system}\n\n{user 1}<end_of_turn>\n
//   <start_of_turn>model\n{answer 1}<end_of_turn>\n
//   <start_of_turn>user\n{user 2}<end_of_turn>\n
//   <start_of_turn>model\n                                   <- the generation prompt
//
// The rules, exactly as the Jinja template in google/gemma-3-*-it tokenizer_config.json does them:
//   1. Write "<bos>" (the template does; so tokenize the result WITHOUT adding another BOS).
//   2. A first message with role "system" is not a turn: its text + "\n\n" is glued in front of
//      the first remaining message's text. The system text is NOT trimmed; if it is the only
//      message, it disappears.
//   3. After the system message, even places (0, 2, ...) must be "user" and odd places must not
//      be "user", else std::invalid_argument "Conversation roles must alternate ...". That is the
//      whole check: an odd place may hold any other role ("tool", "system", ...), written as is.
//   4. Role "assistant" is written "model".
//   5. Each message: "<start_of_turn>" role "\n" [system prefix] content "<end_of_turn>\n". String
//      content is trimmed (Python's str.strip(): Unicode whitespace, e.g. U+00A0 and U+3000 too);
//      list content writes its items with no separator: text items trimmed, image items as
//      "<start_of_image>" (the processor later expands that into the image's soft tokens).
//   6. With add_generation_prompt: "<start_of_turn>model\n".
// Generation stops at <eos> (1) or <end_of_turn> (106): chat_stop_tokens().
//
// Mirrors HF apply_chat_template with that template (and llama.cpp's LLM_CHAT_TEMPLATE_GEMMA).
// Pinned by tests/test_chat.cpp against transformers 5.24's rendering and token ids
// (tests/fixtures/tokenizer/chat.json).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer.hpp"

namespace gemma3 {

// One item of a list-valued message content.
struct ChatPart {
  enum class Kind { text, image };
  Kind kind = Kind::text;
  std::string text;  // for Kind::text

  static ChatPart make_text(std::string t) { return ChatPart{Kind::text, std::move(t)}; }
  static ChatPart make_image() { return ChatPart{Kind::image, {}}; }
};

struct ChatMessage {
  std::string role;              // "system" (first only), "user", "assistant" or "model", ...
  std::string content;           // string content; used when `parts` is empty
  std::vector<ChatPart> parts;   // list content (text and image items); non-empty wins over `content`

  ChatMessage(std::string r, std::string c) : role(std::move(r)), content(std::move(c)) {}
  ChatMessage(std::string r, std::vector<ChatPart> p) : role(std::move(r)), parts(std::move(p)) {}
};

struct ChatTemplateOptions {
  bool add_generation_prompt = true;  // end with "<start_of_turn>model\n"
  bool add_bos = true;                // start with "<bos>"
};

// <eos> and <end_of_turn>: HF generation_config eos_token_id [1, 106].
inline std::vector<int> chat_stop_tokens() { return {1, 106}; }

namespace detail {

// Python's str.isspace() for one code point (what Jinja's `trim` = str.strip() removes).
inline bool python_isspace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// The code point of the well-formed UTF-8 sequence of length n at s.
inline char32_t utf8_decode(const unsigned char* s, int n) {
  if (n == 1) return s[0];
  char32_t c = s[0] & (0xFF >> (n + 1));
  for (int i = 1; i < n; ++i) c = (c << 6) | (s[i] & 0x3F);
  return c;
}

// Jinja's `trim`: strip leading and trailing Unicode whitespace (invalid UTF-8 is never stripped).
inline std::string python_strip(std::string_view s) {
  const auto* b = reinterpret_cast<const unsigned char*>(s.data());
  std::size_t begin = 0, end = s.size();
  while (begin < end) {
    const int n = utf8_sequence_length(b + begin, end - begin);
    if (n == 0 || !python_isspace(utf8_decode(b + begin, n))) break;
    begin += std::size_t(n);
  }
  while (end > begin) {  // find the start of the last character
    std::size_t p = end - 1;
    while (p > begin && end - p < 4 && (b[p] & 0xC0) == 0x80) --p;
    const int n = utf8_sequence_length(b + p, end - p);
    if (n == 0 || p + std::size_t(n) != end || !python_isspace(utf8_decode(b + p, n))) break;
    end = p;
  }
  return std::string(s.substr(begin, end - begin));
}

}  // namespace detail

// The prompt text for a conversation (see the rules at the top).
inline std::string apply_chat_template(const std::vector<ChatMessage>& messages, ChatTemplateOptions opts = {}) {
  if (messages.empty()) throw std::invalid_argument("apply_chat_template: the conversation has no messages");
  std::string out = opts.add_bos ? "<bos>" : "";

  // 2. A leading system message becomes a prefix of the first turn.
  std::string first_prefix;
  std::size_t first = 0;
  if (messages[0].role == "system") {
    const ChatMessage& sys = messages[0];
    if (sys.parts.empty()) {
      first_prefix = sys.content + "\n\n";
    } else {
      if (sys.parts[0].kind != ChatPart::Kind::text)
        throw std::invalid_argument("apply_chat_template: a list-valued system message must start with a text item");
      first_prefix = sys.parts[0].text + "\n\n";  // the template reads content[0]['text'] only
    }
    first = 1;
  }

  for (std::size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    const std::size_t place = i - first;
    // 3. user at even places, anything but user at odd places.
    if ((m.role == "user") != (place % 2 == 0))
      throw std::invalid_argument("Conversation roles must alternate user/assistant/user/assistant/... (message " +
                                  std::to_string(i) + " has role \"" + m.role + "\")");
    const std::string role = m.role == "assistant" ? "model" : m.role;  // 4.
    out += "<start_of_turn>" + role + "\n" + (place == 0 ? first_prefix : std::string());
    if (m.parts.empty()) {
      out += detail::python_strip(m.content);
    } else {
      for (const ChatPart& p : m.parts)
        out += p.kind == ChatPart::Kind::image ? std::string("<start_of_image>") : detail::python_strip(p.text);
    }
    out += "<end_of_turn>\n";
  }
  if (opts.add_generation_prompt) out += "<start_of_turn>model\n";  // 6.
  return out;
}

// The prompt's token ids. The template writes "<bos>" itself, so no second BOS is added;
// control tokens in the text (also ones a user typed) become their ids, as in HF.
inline std::vector<int> encode_chat(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages,
                                    ChatTemplateOptions opts = {}) {
  EncodeOptions e;
  e.add_bos = false;
  e.parse_special = true;
  return tokenizer.encode(apply_chat_template(messages, opts), e);
}

}  // namespace gemma3
