// Tokenizer tests: the real Gemma 3 vocabulary (read from the 270M GGUF by the library's own
// reader) against reference ids, plus small hand-made vocabularies that pin each rule alone.
//
// Reference: tests/fixtures/tokenizer/expected_ids.json, written by
// tests/reference/make_tokenizer_fixtures.py from SentencePiece 0.2.3 run on a model proto
// built from the same GGUF vocabulary (transformers 5.24's GGUF tokenizer agrees on every line
// except runs of more than 31 spaces; see the script and tokenizer.hpp).
#include "catch.hpp"
#include "test_tokenizer_common.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "gemma3/tokenizer.hpp"

using gemma3::DecodeOptions;
using gemma3::EncodeOptions;
using gemma3::Tokenizer;
using gemma3::TokenStreamDecoder;

namespace {

const EncodeOptions kNoBos{false, true};
const EncodeOptions kNoBosPlain{false, false};

std::vector<std::string> corpus() {
  std::vector<std::string> out;
  for (const auto& s : tokfix::read_json(tokfix::fixture_dir() + "/corpus.json").array) out.push_back(s.string);
  return out;
}

// The message of the exception f() throws ("" if none).
template <class F>
std::string what_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

std::string join(const std::vector<int>& ids) {
  std::string s;
  for (int id : ids) s += std::to_string(id) + " ";
  return s;
}

// A small vocabulary for rule tests: byte tokens for every byte, then the given pieces.
struct Mini {
  std::vector<std::string> pieces{"<pad>", "<eos>", "<bos>", "<unk>"};
  std::vector<float> scores{0, 0, 0, 0};
  std::vector<int> types{3, 3, 3, 3};
  Mini() {
    char buf[8];
    for (int b = 0; b < 256; ++b) {
      std::snprintf(buf, sizeof buf, "<0x%02X>", b);
      add(buf, 0, 6);
    }
  }
  int add(const std::string& p, float score, int type = 1) {
    pieces.push_back(p);
    scores.push_back(score);
    types.push_back(type);
    return int(pieces.size()) - 1;
  }
  Tokenizer make() const { return Tokenizer(pieces, scores, types); }
};

}  // namespace

TEST_CASE("tokenizer: every corpus line matches the SentencePiece reference ids", "[tokenizer]") {
  const Tokenizer& tok = tokfix::gemma3_tokenizer();
  const auto lines = corpus();
  const auto expected = tokfix::read_json(tokfix::fixture_dir() + "/expected_ids.json");
  const auto& ref = tokfix::at(expected, "lines").array;
  REQUIRE(tok.vocab_size() == 262144);
  REQUIRE(ref.size() == lines.size());
  REQUIRE(lines.size() >= 50);

  std::size_t ids_checked = 0, lines_ok = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    INFO("corpus line " << i);
    const std::vector<int> want_special = tokfix::int_array(tokfix::at(ref[i], "special"));
    const std::vector<int> want_plain = tokfix::int_array(tokfix::at(ref[i], "plain"));
    const std::vector<int> got_special = tok.encode(lines[i], kNoBos);
    const std::vector<int> got_plain = tok.encode(lines[i], kNoBosPlain);
    CHECK(join(got_special) == join(want_special));
    CHECK(join(got_plain) == join(want_plain));
    ids_checked += want_special.size() + want_plain.size();
    lines_ok += (got_special == want_special && got_plain == want_plain);
  }
  std::printf("tokenizer reference: %zu/%zu lines identical, %zu ids compared\n", lines_ok, lines.size(), ids_checked);
  CHECK(lines_ok == lines.size());

  // add_bos (the default, and the vocabulary says add_bos_token true): BOS first.
  CHECK(tok.encode(lines[0]) == tokfix::int_array(tokfix::at(expected, "line0_with_bos")));
}

TEST_CASE("tokenizer: Gemma 3 ids that the spec names", "[tokenizer]") {
  const Tokenizer& tok = tokfix::gemma3_tokenizer();
  CHECK(tok.bos_id() == 2);
  CHECK(tok.eos_id() == 1);
  CHECK(tok.unk_id() == 3);
  CHECK(tok.pad_id() == 0);
  CHECK(tok.config().add_bos);
  CHECK_FALSE(tok.config().add_space_prefix);
  CHECK(tok.encode("<start_of_turn>", kNoBos) == std::vector<int>{105});
  CHECK(tok.encode("<end_of_turn>", kNoBos) == std::vector<int>{106});
  CHECK(tok.encode("\n", kNoBos) == std::vector<int>{107});
  CHECK(tok.encode("\n\n", kNoBos) == std::vector<int>{108});
  CHECK(tok.encode("<start_of_image>", kNoBos) == std::vector<int>{255999});
  CHECK(tok.encode("<end_of_image>", kNoBos) == std::vector<int>{256000});
  for (int b = 0; b < 256; ++b) CHECK(tok.byte_token(static_cast<unsigned char>(b)) == 238 + b);
  CHECK(tok.piece(248) == "<0x0A>");
  CHECK(tok.type(106) == gemma3::TokenType::control);
  CHECK(tok.type(107) == gemma3::TokenType::user_defined);
  CHECK(tok.find("<start_of_turn>") == 105);
  CHECK(tok.find("no such piece, surely") == -1);
  // No dummy prefix: "Hello" at the start has no "▁".
  CHECK(tok.piece(tok.encode("Hello", kNoBos).at(0)) == "Hello");
  CHECK(tok.piece(tok.encode(" Hello", kNoBos).at(0)) == "\xE2\x96\x81Hello");
}

TEST_CASE("tokenizer: parse_special decides whether control tokens in the text are special", "[tokenizer]") {
  const Tokenizer& tok = tokfix::gemma3_tokenizer();
  const std::string t = "<start_of_turn>user\n<bos>";
  CHECK(tok.encode(t, kNoBos) == std::vector<int>{105, 2364, 107, 2});
  const std::vector<int> plain = tok.encode(t, kNoBosPlain);
  CHECK(std::find(plain.begin(), plain.end(), 105) == plain.end());
  CHECK(std::find(plain.begin(), plain.end(), 2) == plain.end());
  CHECK(std::find(plain.begin(), plain.end(), 107) != plain.end());  // user-defined "\n": always split
  CHECK(tok.decode(plain) == t);
  // Byte-token spellings in the text are only text.
  CHECK(tok.decode(tok.encode("<0x41>", kNoBos)) == "<0x41>");
  CHECK(tok.encode("<0x41>", kNoBos) != std::vector<int>{238 + 0x41});
}

TEST_CASE("tokenizer: decode gives every corpus line back, streaming gives whole characters", "[tokenizer]") {
  const Tokenizer& tok = tokfix::gemma3_tokenizer();
  for (const std::string& line : corpus()) {
    INFO(line);
    const std::vector<int> ids = tok.encode(line, kNoBos);
    // A literal U+2581 in the input is SentencePiece's space marker and reads back as ' '.
    const std::string want = gemma3::detail::replace_all(line, gemma3::detail::kSpaceMarker, " ");
    CHECK(tok.decode(ids) == want);
    CHECK(tok.decode(tok.encode(line, kNoBosPlain)) == want);

    TokenStreamDecoder stream(tok);
    std::string streamed;
    for (int id : ids) {
      const std::string piece = stream.push(id);
      CHECK(tokfix::valid_utf8(piece));
      streamed += piece;
    }
    CHECK_FALSE(stream.has_pending());
    CHECK(streamed == want);
  }
  // skip_special drops control tokens only.
  const std::vector<int> ids = tok.encode("<start_of_turn>hi\n<end_of_turn>");
  CHECK(tok.decode(ids) == "<bos><start_of_turn>hi\n<end_of_turn>");
  CHECK(tok.decode(ids, DecodeOptions{true}) == "hi\n");
}

TEST_CASE("tokenizer: characters outside the vocabulary fall back to byte tokens", "[tokenizer]") {
  const Tokenizer& tok = tokfix::gemma3_tokenizer();
  const std::string plane15 = "\xF3\xB0\x80\x80";  // U+F0000, private use
  CHECK(tok.encode(plane15, kNoBos) == std::vector<int>{238 + 0xF3, 238 + 0xB0, 238 + 0x80, 238 + 0x80});
  CHECK(tok.decode(tok.encode("a" + plane15 + "b", kNoBos)) == "a" + plane15 + "b");
  // Streaming one byte token at a time: nothing comes out until the character is complete.
  TokenStreamDecoder stream(tok);
  CHECK(stream.push(238 + 0xF3).empty());
  CHECK(stream.push(238 + 0xB0).empty());
  CHECK(stream.push(238 + 0x80).empty());
  CHECK(stream.push(238 + 0x80) == plane15);
}

TEST_CASE("tokenizer: invalid UTF-8 never throws and round-trips as byte tokens", "[tokenizer]") {
  const Tokenizer& tok = tokfix::gemma3_tokenizer();
  const std::vector<std::string> bad = {
      "\xFF",                    // never valid
      "\xC3",                    // truncated 2-byte sequence
      "abc\xE2\x96",             // truncated 3-byte sequence at the end
      "\xC0\xAF",                // overlong '/'
      "\xE0\x80\xAF",            // overlong '/'
      "\xED\xA0\x80",            // surrogate U+D800
      "\xF4\x90\x80\x80",        // above U+10FFFF
      "\x80\x80 continuation",   // stray continuation bytes
      "h\xC3\xA9llo\xFFw\xC3\xB6rld \xF0\x9F\x98",  // valid text around invalid bytes
      std::string("nul\0inside", 10),
  };
  for (const std::string& s : bad) {
    INFO(s);
    std::vector<int> ids;
    REQUIRE_NOTHROW(ids = tok.encode(s, kNoBos));
    CHECK(tok.decode(ids) == s);
    // The stream passes the invalid bytes on unchanged, so it adds up to the same bytes.
    TokenStreamDecoder stream(tok);
    std::string streamed;
    for (int id : ids) streamed += stream.push(id);
    streamed += stream.flush();
    CHECK(streamed == s);
  }
  // An invalid byte is its own byte token, and cuts the text like a separator.
  CHECK(tok.encode("abc\xFF" "def", kNoBos) == [&] {
    std::vector<int> v = tok.encode("abc", kNoBos);
    v.push_back(238 + 0xFF);
    for (int id : tok.encode("def", kNoBos)) v.push_back(id);
    return v;
  }());
  // Random bytes: no throw, exact round trip.
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::string s(std::size_t(rng() % 64), '\0');
    for (char& c : s) c = char(rng() & 0xFF);
    CHECK(tok.decode(tok.encode(s, kNoBos)) == s);
  }
}

TEST_CASE("tokenizer: merges go by the merged piece's score, ties to the leftmost pair", "[tokenizer]") {
  SECTION("the higher score wins, wherever it is") {
    Mini m;
    const int a = m.add("a", -1), b = m.add("b", -2), c = m.add("c", -3);
    const int ab = m.add("ab", -20), bc = m.add("bc", -10);
    const Tokenizer tok = m.make();
    CHECK(tok.encode("abc", kNoBos) == std::vector<int>{a, bc});
    (void)b;
    (void)c;
    (void)ab;
  }
  SECTION("equal scores: the leftmost pair first") {
    Mini m;
    const int a = m.add("a", -1);
    const int aa = m.add("aa", -5);
    const Tokenizer tok = m.make();
    CHECK(tok.encode("aaa", kNoBos) == std::vector<int>{aa, a});
    CHECK(tok.encode("aaaa", kNoBos) == std::vector<int>{aa, aa});
  }
  SECTION("merging is greedy by score, not a longest match") {
    Mini m;
    const int a = m.add("a", -1), b = m.add("b", -2), c = m.add("c", -3), d = m.add("d", -4);
    const int bc = m.add("bc", -5), ab = m.add("ab", -6), cd = m.add("cd", -7), abcd = m.add("abcd", -8);
    const Tokenizer tok = m.make();
    // bc merges first; then neither "abc" nor "bcd" is a piece, so "abcd" is never reached.
    CHECK(tok.encode("abcd", kNoBos) == std::vector<int>{a, bc, d});
    (void)b; (void)c; (void)ab; (void)cd; (void)abcd;
  }
  SECTION("spaces become U+2581; a missing character falls back to bytes") {
    Mini m;
    const int sp_x = m.add("\xE2\x96\x81x", -1), x = m.add("x", -2), sp = m.add("\xE2\x96\x81", -3);
    const Tokenizer tok = m.make();
    CHECK(tok.encode("x x", kNoBos) == std::vector<int>{x, sp_x});
    CHECK(tok.encode("x y", kNoBos) == std::vector<int>{x, sp, 4 + 'y'});
  }
  SECTION("user-defined pieces: leftmost-longest, never merged, spaces as the GGUF spells them") {
    Mini m;
    const int n1 = m.add("\n", -1000, 4), n2 = m.add("\n\n", -1000, 4), s2 = m.add("  ", -1000, 4);
    const int x = m.add("x", -1), xn = m.add("x\n", -2);  // a normal piece containing "\n" is never formed
    const Tokenizer tok = m.make();
    CHECK(tok.encode("x\n\n\nx", kNoBos) == std::vector<int>{x, n2, n1, x});
    CHECK(tok.encode("x  x", kNoBos) == std::vector<int>{x, s2, x});
    CHECK(tok.encode("x\xE2\x96\x81\xE2\x96\x81x", kNoBos) == std::vector<int>{x, s2, x});  // "▁▁" is "  "
    CHECK(tok.decode({x, s2, n1}) == "x  \n");
    (void)xn;
  }
  SECTION("add_space_prefix (not Gemma's setting): a leading \"▁\", dropped again by decode") {
    Mini m;
    const int sp_x = m.add("\xE2\x96\x81x", -1), x = m.add("x", -2), ctl = m.add("<c>", -1000, 3);
    gemma3::TokenizerConfig c;
    c.add_space_prefix = true;
    const Tokenizer tok(m.pieces, m.scores, m.types, c);
    CHECK(tok.encode("x", kNoBos) == std::vector<int>{sp_x});
    CHECK(tok.encode("x<c>x", kNoBos) == std::vector<int>{sp_x, ctl, sp_x});     // llama.cpp: after specials too
    CHECK(tok.encode("x<c>x", kNoBosPlain).front() == sp_x);
    CHECK(tok.decode(tok.encode("x x", kNoBos)) == "x x");
    (void)x;
  }
  SECTION("control pieces only with parse_special; the longest match first") {
    Mini m;
    const int lt = m.add("<", -1), gt = m.add(">", -2), t = m.add("t", -3);
    const int tag = m.add("<t>", -1000, 3), tagg = m.add("<t>>", -1000, 3);
    const Tokenizer tok = m.make();
    CHECK(tok.encode("<t><t>>", kNoBos) == std::vector<int>{tag, tagg});
    CHECK(tok.encode("<t>", kNoBosPlain) == std::vector<int>{lt, t, gt});
    CHECK(tok.encode("<t>") == std::vector<int>{2, tag});
  }
}

TEST_CASE("tokenizer: the constructor rejects inconsistent vocabularies", "[tokenizer]") {
  Mini m;
  CHECK(what_of([] { Tokenizer({}, {}, {}); }).find("empty") != std::string::npos);
  CHECK(what_of([&] { Tokenizer(m.pieces, {0.0f}, m.types); }).find("as many scores") != std::string::npos);
  std::vector<int> types = m.types;
  types[7] = 9;
  CHECK(what_of([&] { Tokenizer(m.pieces, m.scores, types); }).find("token 7 has type 9") != std::string::npos);
  gemma3::TokenizerConfig c;
  c.bos_id = 100000;
  CHECK(what_of([&] { Tokenizer(m.pieces, m.scores, m.types, c); }).find("bos_id 100000") != std::string::npos);
  const Tokenizer tok = m.make();
  CHECK_THROWS_AS(tok.decode({-1}), std::out_of_range);
  CHECK_THROWS_AS(tok.piece(int(m.pieces.size())), std::out_of_range);
  CHECK(tok.encode("", kNoBos).empty());
  CHECK(tok.encode("") == std::vector<int>{2});
}

TEST_CASE("tokenizer: a 600-token prompt (timing printed, not asserted)", "[tokenizer][perf]") {
  const Tokenizer& tok = tokfix::gemma3_tokenizer();
  std::string text;
  for (const std::string& line : corpus()) {
    text += line + "\n";
    if (tok.encode(text, kNoBos).size() >= 600) break;
  }
  const std::size_t n_tokens = tok.encode(text, kNoBos).size();
  CHECK(n_tokens >= 600);
  const int reps = 20;
  const auto t0 = std::chrono::steady_clock::now();
  std::size_t total = 0;
  for (int r = 0; r < reps; ++r) total += tok.encode(text, kNoBos).size();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
  CHECK(total == n_tokens * reps);
  std::printf("tokenizer: %zu tokens (%zu bytes) encoded in %.3f ms\n", n_tokens, text.size(), ms);
}

TEST_CASE("tokenizer: PieceIndex keeps the first id of a piece and every piece as it grows", "[tokenizer]") {
  // Pieces built as strings first: the index holds views of them.
  std::vector<std::string> pieces;
  for (int i = 0; i < 1000; ++i) pieces.push_back("p" + std::to_string(i * 7919 % 1000));  // each of 0..999 once
  pieces.push_back("p5");  // a repeat
  pieces.push_back("");    // the empty piece is a piece too
  gemma3::detail::PieceIndex index;  // no reserve: it grows from 16 slots through several rehashes
  CHECK(index.find("p5") == -1);
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    const int first = index.insert(pieces[i], int(i));
    if (i == 1000) CHECK(first == int(std::find(pieces.begin(), pieces.end(), "p5") - pieces.begin()));
    else CHECK(first == int(i));
  }
  for (int i = 0; i < 1000; ++i) CHECK(index.find(pieces[std::size_t(i)]) == i);
  CHECK(index.find("") == 1001);
  CHECK(index.find("p1000") == -1);
  CHECK(index.find("p") == -1);
}
