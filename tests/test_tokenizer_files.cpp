// The two sources of a vocabulary, GGUF metadata and an HF folder's tokenizer.model,
// give the same tokenizer: the real GGUF's vocabulary written as SentencePiece's
// ModelProto, read back by load_sentencepiece_model, encodes the corpus to the same ids.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "catch.hpp"
#include "test_tokenizer_common.hpp"

#include "gemma3/tokenizer_files.hpp"

TEST_CASE("tokenizer.model and the GGUF vocabulary give the same ids", "[tokenizer]") {
  const gemma3::GgufFile f(tokfix::gguf_path());
  const gemma3::Vocabulary gguf_vocab = gemma3::vocabulary_from_gguf(f);
  const std::string path = (std::filesystem::temp_directory_path() / "gemma3_test_tokenizer.model").string();
  {
    std::ofstream out(path, std::ios::binary);
    out << tokfix::sentencepiece_model_from(gguf_vocab);
  }
  const gemma3::Vocabulary model_vocab = gemma3::load_sentencepiece_model(path);
  std::remove(path.c_str());
  CHECK(model_vocab.tokens.size() == gguf_vocab.tokens.size());
  CHECK(model_vocab.bos_id == 2);
  CHECK(model_vocab.eos_id == 1);
  CHECK(model_vocab.unk_id == 3);
  CHECK(!model_vocab.add_space_prefix);

  const gemma3::Tokenizer a = gemma3::tokenizer_from_vocabulary(gguf_vocab);
  const gemma3::Tokenizer b = gemma3::tokenizer_from_vocabulary(model_vocab);
  int lines = 0;
  for (const auto& s : tokfix::read_json(tokfix::fixture_dir() + "/corpus.json").array) {
    INFO(s.string);
    CHECK(a.encode(s.string) == b.encode(s.string));
    ++lines;
  }
  CHECK(lines > 50);
}

TEST_CASE("a truncated or corrupt tokenizer.model is refused with the file named", "[tokenizer][errors]") {
  const std::string path = (std::filesystem::temp_directory_path() / "gemma3_bad_tokenizer.model").string();
  for (const std::string& bytes : {std::string("\x0a\xff\xff\xff\x7f", 5), std::string("\x0a\x05\x0a\x03" "ab", 6),
                                   std::string("\x0b", 1), std::string()}) {
    {
      std::ofstream out(path, std::ios::binary);
      out << bytes;
    }
    CHECK_THROWS_WITH(gemma3::load_sentencepiece_model(path), Catch::Contains(path) && Catch::Contains("expected"));
  }
  std::remove(path.c_str());
}

TEST_CASE("an HF folder's chat template: chat_template.jinja, tokenizer_config.json, or none", "[tokenizer]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "gemma3_chat_template_test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  CHECK(gemma3::load_hf_chat_template(dir.string()).empty());  // a base model's folder
  std::ofstream(dir / "tokenizer_config.json") << R"({"add_bos_token": true, "chat_template": "{{ bos_token }}<start_of_turn>"})";
  CHECK(gemma3::load_hf_chat_template(dir.string()) == "{{ bos_token }}<start_of_turn>");
  std::ofstream(dir / "chat_template.jinja") << "{{ from the jinja file }}";
  CHECK(gemma3::load_hf_chat_template(dir.string()) == "{{ from the jinja file }}");  // it wins
  fs::remove(dir / "chat_template.jinja");
  std::ofstream(dir / "tokenizer_config.json") << R"({"chat_template": )";  // truncated
  CHECK_THROWS_WITH(gemma3::load_hf_chat_template(dir.string()), Catch::Matchers::Contains("tokenizer_config.json"));
  fs::remove_all(dir);
}
