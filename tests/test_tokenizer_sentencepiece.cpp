// Optional cross-check against SentencePiece itself (Debian's libsentencepiece-dev, 0.1.97;
// built in only when tests/CMakeLists.txt finds it: GEMMA3_HAVE_SENTENCEPIECE).
//
// No file and no Python needed: the test writes SentencePiece's ModelProto from the GGUF
// vocabulary by hand (protobuf wire format, the few fields below, as
// tests/reference/make_tokenizer_fixtures.py does with sentencepiece_model_pb2), loads it with
// LoadFromSerializedProto, and compares SentencePiece's ids with ours (parse_special = false:
// SentencePiece never treats control pieces in the text as special) on the corpus and on a few
// thousand generated strings built from its characters, words and whitespace runs.
#if defined(GEMMA3_HAVE_SENTENCEPIECE)

#include "catch.hpp"
#include "test_tokenizer_common.hpp"

#include <sentencepiece_processor.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>

namespace {

// The corpus cut into atoms (UTF-8 characters, words, whitespace runs) to build random strings from.
std::vector<std::string> atoms_of(const std::vector<std::string>& lines) {
  std::set<std::string> set;
  for (const std::string& line : lines) {
    const auto* b = reinterpret_cast<const unsigned char*>(line.data());
    std::string word;
    for (std::size_t i = 0; i < line.size();) {
      const int n = gemma3::detail::utf8_sequence_length(b + i, line.size() - i);
      const std::string ch = line.substr(i, std::size_t(n > 0 ? n : 1));
      set.insert(ch);
      if (ch == " " || ch == "\n" || ch == "\t") {
        if (!word.empty()) set.insert(word);
        word.clear();
      } else {
        word += ch;
      }
      i += ch.size();
    }
    if (!word.empty()) set.insert(word);
  }
  for (int n : {2, 3, 4, 8, 31, 32, 33, 45}) {
    set.insert(std::string(std::size_t(n), ' '));
    set.insert(std::string(std::size_t(n), '\n'));
    set.insert(std::string(std::size_t(n), '\t'));
  }
  return std::vector<std::string>(set.begin(), set.end());
}

}  // namespace

TEST_CASE("tokenizer: libsentencepiece gives the same ids on a model built from the GGUF", "[tokenizer][sentencepiece]") {
  const gemma3::GgufFile f(tokfix::gguf_path());
  const gemma3::Vocabulary vocab = gemma3::vocabulary_from_gguf(f);
  const gemma3::Tokenizer ours = tokfix::tokenizer_from(vocab);
  sentencepiece::SentencePieceProcessor sp;
  const std::string proto = tokfix::sentencepiece_model_from(vocab);
  const auto status = sp.LoadFromSerializedProto(proto);
  INFO(status.ToString());
  REQUIRE(status.ok());
  REQUIRE(sp.GetPieceSize() == ours.vocab_size());

  const gemma3::EncodeOptions plain{false, false};
  auto compare = [&](const std::string& text, std::size_t& same, std::size_t& ids) {
    std::vector<int> want;
    REQUIRE(sp.Encode(text, &want).ok());
    const std::vector<int> got = ours.encode(text, plain);
    INFO("text: " << text);
    CHECK(got == want);
    std::string sp_text;
    REQUIRE(sp.Decode(want, &sp_text).ok());
    CHECK(ours.decode(got, gemma3::DecodeOptions{true}) == sp_text);
    same += (got == want);
    ids += want.size();
  };

  std::vector<std::string> lines;
  for (const auto& s : tokfix::read_json(tokfix::fixture_dir() + "/corpus.json").array) lines.push_back(s.string);
  std::size_t same = 0, ids = 0;
  for (const std::string& line : lines) compare(line, same, ids);
  std::printf("libsentencepiece: corpus %zu/%zu lines identical (%zu ids)\n", same, lines.size(), ids);
  CHECK(same == lines.size());

  // Random strings from the corpus's characters, words and whitespace runs (std::mt19937's
  // sequence is fixed by the standard; no distributions, so every library gives the same strings).
  const std::vector<std::string> atoms = atoms_of(lines);
  std::mt19937 rng(20250101);
  const int n_random = 3000;
  std::size_t rsame = 0, rids = 0;
  for (int t = 0; t < n_random; ++t) {
    std::string s;
    const int len = 1 + int(rng() % 24);
    for (int k = 0; k < len; ++k) s += atoms[rng() % atoms.size()];
    compare(s, rsame, rids);
  }
  std::printf("libsentencepiece: random %zu/%d strings identical (%zu ids, %zu atoms)\n", rsame, n_random, rids,
              atoms.size());
  CHECK(rsame == std::size_t(n_random));

  // add_space_prefix (SentencePiece's add_dummy_prefix; not Gemma's setting, but the flag exists).
  {
    gemma3::Vocabulary v2 = vocab;
    v2.add_space_prefix = true;
    const gemma3::Tokenizer ours2 = tokfix::tokenizer_from(v2);
    sentencepiece::SentencePieceProcessor sp2;
    REQUIRE(sp2.LoadFromSerializedProto(tokfix::sentencepiece_model_from(v2)).ok());
    std::size_t same2 = 0;
    for (const std::string& line : lines) {
      std::vector<int> want;
      REQUIRE(sp2.Encode(line, &want).ok());
      const std::vector<int> got = ours2.encode(line, plain);
      std::string sp_text;
      REQUIRE(sp2.Decode(want, &sp_text).ok());
      INFO("text: " << line);
      CHECK(got == want);
      CHECK(ours2.decode(got, gemma3::DecodeOptions{true}) == sp_text);
      same2 += (got == want);
    }
    std::printf("libsentencepiece, add_dummy_prefix: %zu/%zu lines identical\n", same2, lines.size());
  }

  // Speed, for the record (not asserted): ~600 tokens.
  std::string text;
  for (const std::string& line : lines) {
    text += line + "\n";
    if (ours.encode(text, plain).size() >= 600) break;
  }
  auto time_ms = [&](auto&& fn) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < 20; ++r) fn();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 20;
  };
  std::vector<int> tmp;
  const double ms_sp = time_ms([&] { (void)sp.Encode(text, &tmp); });
  const double ms_ours = time_ms([&] { tmp = ours.encode(text, plain); });
  std::printf("encode %zu tokens: libsentencepiece %.3f ms, gemma3::Tokenizer %.3f ms\n", tmp.size(), ms_sp, ms_ours);
}

#endif  // GEMMA3_HAVE_SENTENCEPIECE
