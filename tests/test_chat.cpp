// Chat template tests against transformers 5.24's apply_chat_template with Gemma 3's template
// (tests/fixtures/tokenizer/chat.json, written by tests/reference/make_tokenizer_fixtures.py):
// the rendered text and, through the real tokenizer, the token ids HF gives (tokenize=True).
#include "catch.hpp"
#include "test_tokenizer_common.hpp"

#include <algorithm>

#include "gemma3/chat.hpp"

using gemma3::ChatMessage;
using gemma3::ChatPart;
using gemma3::ChatTemplateOptions;

namespace {

std::vector<ChatMessage> conversation(const gemma3::detail::Json& messages) {
  std::vector<ChatMessage> out;
  for (const auto& m : messages.array) {
    const std::string role = tokfix::at(m, "role").string;
    const auto& content = tokfix::at(m, "content");
    if (content.is_string()) {
      out.emplace_back(role, content.string);
    } else {
      std::vector<ChatPart> parts;
      for (const auto& item : content.array) {
        if (tokfix::at(item, "type").string == "image") parts.push_back(ChatPart::make_image());
        else parts.push_back(ChatPart::make_text(tokfix::at(item, "text").string));
      }
      out.emplace_back(role, parts);
    }
  }
  return out;
}

ChatTemplateOptions with_prompt(bool gen) {
  ChatTemplateOptions o;
  o.add_generation_prompt = gen;
  return o;
}

}  // namespace

TEST_CASE("chat: text and ids match transformers' apply_chat_template", "[chat]") {
  const auto fixture = tokfix::read_json(tokfix::fixture_dir() + "/chat.json");
  const auto& convs = tokfix::at(fixture, "conversations").array;
  REQUIRE(convs.size() >= 10);
  const gemma3::Tokenizer& tok = tokfix::gemma3_tokenizer();
  for (std::size_t i = 0; i < convs.size(); ++i) {
    INFO("conversation " << i);
    const std::vector<ChatMessage> msgs = conversation(tokfix::at(convs[i], "messages"));
    for (bool gen : {false, true}) {
      INFO("add_generation_prompt " << gen);
      const auto& ref = tokfix::at(convs[i], gen ? "with_generation_prompt" : "without_generation_prompt");
      CHECK(gemma3::apply_chat_template(msgs, with_prompt(gen)) == tokfix::at(ref, "text").string);
      CHECK(gemma3::encode_chat(tok, msgs, with_prompt(gen)) == tokfix::int_array(tokfix::at(ref, "ids")));
    }
  }
}

TEST_CASE("chat: conversations the template refuses", "[chat]") {
  const auto fixture = tokfix::read_json(tokfix::fixture_dir() + "/chat.json");
  for (const auto& bad : tokfix::at(fixture, "errors").array) {
    const std::vector<ChatMessage> msgs = conversation(tokfix::at(bad, "messages"));
    std::string what;
    try {
      gemma3::apply_chat_template(msgs);
    } catch (const std::invalid_argument& e) {
      what = e.what();
    }
    INFO(what);
    CHECK(what.find(tokfix::at(bad, "error").string) == 0);  // HF's message, plus which message broke it
  }
  CHECK_THROWS_AS(gemma3::apply_chat_template({}), std::invalid_argument);
  CHECK_THROWS_AS(gemma3::apply_chat_template({ChatMessage("system", std::vector<ChatPart>{ChatPart::make_image()}),
                                               ChatMessage("user", "x")}),
                  std::invalid_argument);
}

TEST_CASE("chat: the rules spelled out", "[chat]") {
  using V = std::vector<ChatMessage>;
  // System folded into the first user turn with a blank line; assistant -> model; trimmed.
  CHECK(gemma3::apply_chat_template(V{{"system", "S"}, {"user", " Q "}, {"assistant", "\tA\n"}, {"user", "Q2"}}) ==
        "<bos><start_of_turn>user\nS\n\nQ<end_of_turn>\n<start_of_turn>model\nA<end_of_turn>\n"
        "<start_of_turn>user\nQ2<end_of_turn>\n<start_of_turn>model\n");
  // The spec's example: system "S", user [image, "Q"].
  CHECK(gemma3::apply_chat_template(V{{"system", "S"},
                                      {"user", std::vector<ChatPart>{ChatPart::make_image(), ChatPart::make_text("Q")}}}) ==
        "<bos><start_of_turn>user\nS\n\n<start_of_image>Q<end_of_turn>\n<start_of_turn>model\n");
  ChatTemplateOptions no_bos;
  no_bos.add_bos = false;
  no_bos.add_generation_prompt = false;
  CHECK(gemma3::apply_chat_template(V{{"user", "hi"}}, no_bos) == "<start_of_turn>user\nhi<end_of_turn>\n");
  // Trim is Python's: Unicode spaces go, U+200B (not a space to Python) stays, invalid bytes stay.
  CHECK(gemma3::detail::python_strip("\xC2\xA0\xE3\x80\x80 x \xE2\x80\x83\n") == "x");
  CHECK(gemma3::detail::python_strip("\xE2\x80\x8Bx") == "\xE2\x80\x8Bx");
  CHECK(gemma3::detail::python_strip(" \xFF ") == "\xFF");
  CHECK(gemma3::detail::python_strip("   ").empty());
  CHECK(gemma3::chat_stop_tokens() == std::vector<int>{1, 106});

  // One BOS, control tokens as their ids, the generation prompt's ids at the end.
  const gemma3::Tokenizer& tok = tokfix::gemma3_tokenizer();
  const std::vector<int> ids = gemma3::encode_chat(tok, V{{"user", "Hello"}});
  REQUIRE(ids.size() > 6);
  CHECK(ids[0] == 2);
  CHECK(ids[1] == 105);
  CHECK(std::count(ids.begin(), ids.end(), 2) == 1);
  CHECK(std::vector<int>(ids.end() - 3, ids.end()) == std::vector<int>{105, tok.encode("model", {false, true})[0], 107});
}
