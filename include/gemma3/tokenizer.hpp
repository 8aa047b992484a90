// gemma3/tokenizer.hpp -- Gemma 3's tokenizer: text <-> token ids (SentencePiece BPE, byte fallback).
//
// Gemma 3 ships a SentencePiece model of 262,144 pieces; a GGUF stores it as three arrays
// (tokenizer.ggml.tokens / scores / token_type). This class takes those arrays as plain vectors
// and encodes the way SentencePiece does:
//
//   text ──(1) cut out control tokens ("<start_of_turn>", "<bos>", ...; only if parse_special)
//        ──(2) ' ' -> "▁" (U+2581); no dummy prefix for Gemma, no other normalization
//        ──(3) split into symbols: a user-defined piece ("\n\n", 4 spaces, "<table>", ...) where one
//              starts (leftmost-longest; never merged), else one UTF-8 character
//        ──(4) BPE: repeatedly merge the adjacent pair whose concatenation is the vocabulary piece
//              with the HIGHEST score (ties: the leftmost pair), until no pair is a piece
//        ──(5) each symbol -> its id; a character that is not a piece -> one <0xXX> token per byte
//
// Decoding maps each id back to bytes ("▁" -> ' ', <0xXX> -> that byte) and concatenates them,
// so a character that went out as byte tokens comes back whole.
//
// Which strings are "special" (step 1, step 3), from the token types:
//   CONTROL (3) and UNKNOWN (2)  <bos> <eos> <pad> <unk> <mask> <start_of_turn> <end_of_turn>
//                                <unused0..>: cut out of the text only with parse_special = true
//                                (HF's tokenizer and llama.cpp's parse_special do this; SentencePiece
//                                itself never does and reads them as plain characters).
//   USER_DEFINED (4)             "\n" .. 31 newlines, 2 .. 31 spaces, 1 .. 31 tabs, HTML tags,
//                                [multimodal], <start_of_image>, <end_of_image>: always cut out, as
//                                SentencePiece does. The GGUF converter spells their spaces as ' '
//                                (it "pre-normalizes" them); they are matched after step 2, so "  "
//                                and "▁▁" mean the same piece.
//   Matching is leftmost-longest (SentencePiece's prefix matcher, HF's added-token matcher). For
//   runs longer than the longest piece that means 31 spaces first, then the rest: 40 spaces ->
//   [31 spaces][9 spaces], and 32 spaces + "x" -> [31 spaces]["▁x"].
//
// Invalid UTF-8 (defined here; SentencePiece would replace it with U+FFFD): every byte that does
// not begin a well-formed UTF-8 sequence (RFC 3629: no overlongs, no surrogates, nothing above
// U+10FFFF, no truncated sequence) becomes a symbol of its own that never merges and is written as
// its <0xXX> byte token. decode() gives exactly the input bytes back. Encoding never throws on text.
//
// Mirrors SentencePiece's bpe_model.cc Encode. llama.cpp's llm_tokenizer_spm takes the same steps
// but matches user-defined pieces on the raw text, before step 2, so it differs where the input
// itself contains U+2581 (compared by reading its code, not by running it).
// Pinned by tests/test_tokenizer.cpp against SentencePiece 0.2.3's ids on the real vocabulary
// (tests/reference/make_tokenizer_fixtures.py; transformers 5.24's GGUF tokenizer agrees except on
// runs of more than 31 spaces), and by tests/test_tokenizer_sentencepiece.cpp against Debian's
// libsentencepiece when it is installed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <queue>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "detail/piece_index.hpp"

namespace gemma3 {

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type = SentencePiece's piece types).
// GGUF also allows 0 ("undefined"); the constructor reads it as normal.
enum class TokenType : int { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

// What the vocabulary says beside the three arrays (tokenizer.ggml.* keys). Gemma 3's values.
struct TokenizerConfig {
  int bos_id = 2;
  int eos_id = 1;
  int unk_id = 3;
  int pad_id = 0;
  bool add_bos = true;            // tokenizer.ggml.add_bos_token
  bool add_space_prefix = false;  // tokenizer.ggml.add_space_prefix (SentencePiece's add_dummy_prefix): a "▁"
                                  // before the text and, with parse_special, after each control
                                  // token (llama.cpp); decode() drops it again
};

struct EncodeOptions {
  bool add_bos = true;        // prepend BOS (only if the vocabulary's add_bos is also true)
  bool parse_special = true;  // cut control tokens written in the text out as their ids
};

struct DecodeOptions {
  bool skip_special = false;  // drop CONTROL / UNKNOWN / UNUSED tokens instead of writing their text
};

namespace detail {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 "▁", SentencePiece's space

// Length of the well-formed UTF-8 sequence at s[0..n), or 0 if it is not one (RFC 3629 table 3-7).
inline int utf8_sequence_length(const unsigned char* s, std::size_t n) {
  if (n == 0) return 0;
  const unsigned char c = s[0];
  int len;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (c < 0x80) return 1;
  else if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c == 0xE0) { len = 3; lo = 0xA0; }
  else if (c >= 0xE1 && c <= 0xEC) len = 3;
  else if (c == 0xED) { len = 3; hi = 0x9F; }  // no surrogates
  else if (c >= 0xEE && c <= 0xEF) len = 3;
  else if (c == 0xF0) { len = 4; lo = 0x90; }
  else if (c >= 0xF1 && c <= 0xF3) len = 4;
  else if (c == 0xF4) { len = 4; hi = 0x8F; }  // nothing above U+10FFFF
  else return 0;                                // 80..C1 and F5..FF never start a character
  if (n < std::size_t(len) || s[1] < lo || s[1] > hi) return 0;
  for (int i = 2; i < len; ++i)
    if (s[i] < 0x80 || s[i] > 0xBF) return 0;
  return len;
}

// True if s[0..n) (n >= 1) is the beginning of a well-formed sequence that needs more bytes.
inline bool utf8_incomplete_prefix(const unsigned char* s, std::size_t n) {
  unsigned char padded[4] = {0, 0x80, 0x80, 0x80};  // complete it with the smallest continuation bytes
  if (n == 0 || n >= 4) return false;
  for (std::size_t i = 0; i < n; ++i) padded[i] = s[i];
  if (s[0] == 0xF0 && n == 1) padded[1] = 0x90;  // F0 needs 90..BF next
  if (s[0] == 0xE0 && n == 1) padded[1] = 0xA0;  // E0 needs A0..BF next
  const int len = utf8_sequence_length(padded, 4);
  return len > int(n);
}

// A byte trie over a set of pieces, for leftmost-longest matching inside a text.
class PieceTrie {
 public:
  void insert(std::string_view piece, int id) {
    if (value_.empty()) value_.push_back(-1);  // the root
    int node = 0;
    for (unsigned char b : piece) {
      const std::uint64_t key = (std::uint64_t(node) << 8) | b;
      auto it = edges_.find(key);
      if (it == edges_.end()) {
        it = edges_.emplace(key, int(value_.size())).first;
        value_.push_back(-1);
      }
      node = it->second;
    }
    if (value_[std::size_t(node)] < 0) value_[std::size_t(node)] = id;  // first id wins on duplicates
  }

  // The longest piece that starts at text[pos]: its length (0 if none), and its id in *id.
  std::size_t longest_match(std::string_view text, std::size_t pos, int* id) const {
    std::size_t best = 0;
    int node = 0;
    for (std::size_t i = pos; i < text.size() && !value_.empty(); ++i) {
      const auto it = edges_.find((std::uint64_t(node) << 8) | static_cast<unsigned char>(text[i]));
      if (it == edges_.end()) break;
      node = it->second;
      if (value_[std::size_t(node)] >= 0) { best = i + 1 - pos; *id = value_[std::size_t(node)]; }
    }
    return best;
  }

  bool empty() const { return value_.size() <= 1; }

 private:
  std::unordered_map<std::uint64_t, int> edges_;  // (node << 8 | byte) -> child node
  std::vector<int> value_;                        // node -> piece id, or -1
};

inline std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    if (s.compare(i, from.size(), from) == 0) { out += to; i += from.size(); }
    else out += s[i++];
  }
  return out;
}

// "<0x1F>" -> 0x1F; -1 if the piece is not spelled like a byte token.
inline int parse_byte_piece(std::string_view p) {
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (p.size() != 6 || p.compare(0, 3, "<0x") != 0 || p[5] != '>') return -1;
  const int h = hex(p[3]), l = hex(p[4]);
  return h < 0 || l < 0 ? -1 : h * 16 + l;
}

}  // namespace detail

class Tokenizer {
 public:
  // pieces / scores / types: tokenizer.ggml.tokens / scores / token_type, one entry per id.
  Tokenizer(std::vector<std::string> pieces, std::vector<float> scores, std::vector<int> types,
            TokenizerConfig config = {}) {
    auto built = std::make_shared<Vocab>();
    Vocab& v = *built;
    const std::size_t n = pieces.size();
    if (n == 0) throw std::invalid_argument("Tokenizer: the vocabulary is empty");
    if (scores.size() != n || types.size() != n)
      throw std::invalid_argument("Tokenizer: expected as many scores and token types as tokens (" + std::to_string(n) +
                                  "), found " + std::to_string(scores.size()) + " scores and " +
                                  std::to_string(types.size()) + " types");
    if (n > std::size_t(INT32_MAX)) throw std::invalid_argument("Tokenizer: too many tokens");
    auto check_id = [n](int id, const char* what) {
      if (id < 0 || std::size_t(id) >= n)
        throw std::invalid_argument(std::string("Tokenizer: ") + what + " " + std::to_string(id) +
                                    " is outside the vocabulary [0, " + std::to_string(n) + ")");
    };
    check_id(config.bos_id, "bos_id");
    check_id(config.eos_id, "eos_id");
    check_id(config.unk_id, "unk_id");
    check_id(config.pad_id, "pad_id");
    v.config = config;
    v.pieces = std::move(pieces);
    v.scores = std::move(scores);
    v.types.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      if (types[i] < 0 || types[i] > 6)
        throw std::invalid_argument("Tokenizer: token " + std::to_string(i) + " has type " + std::to_string(types[i]) +
                                    ", expected 0..6 (undefined, normal, unknown, control, user-defined, unused, byte)");
      v.types[i] = types[i] == 0 ? TokenType::normal : TokenType(types[i]);
    }
    v.byte_ids.fill(-1);
    // User-defined pieces in their normalized spelling ("  " -> "▁▁"); stable storage for views.
    v.normalized.resize(n);
    for (std::size_t i = 0; i < n; ++i)
      if (v.types[i] == TokenType::user_defined)
        v.normalized[i] = detail::replace_all(v.pieces[i], " ", detail::kSpaceMarker);

    v.piece_to_id.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      const int id = int(i);
      const std::string& p = v.pieces[i];
      switch (v.types[i]) {
        case TokenType::normal:
          v.piece_to_id.insert(p, id);  // first id wins on duplicates
          break;
        case TokenType::user_defined:
          if (!v.normalized[i].empty()) {
            v.user_defined.insert(v.normalized[i], id);
            v.piece_to_id.insert(v.normalized[i], id);
          }
          break;
        case TokenType::control:
        case TokenType::unknown:
          if (!p.empty()) v.control.insert(p, id);
          break;
        case TokenType::byte: {
          const int b = detail::parse_byte_piece(p);
          if (b >= 0 && v.byte_ids[std::size_t(b)] < 0) v.byte_ids[std::size_t(b)] = id;
          break;
        }
        case TokenType::unused:  // never produced by encode (SentencePiece resegments them away)
          break;
      }
    }
    v_ = std::move(built);
  }

  // ---- encode ----

  std::vector<int> encode(std::string_view text, EncodeOptions opts = {}) const {
    const Vocab& v = *v_;
    std::vector<int> ids;
    ids.reserve(text.size() / 3 + 2);
    if (opts.add_bos && v.config.add_bos) ids.push_back(v.config.bos_id);

    // (1) cut out control tokens; encode the text between them.
    std::size_t start = 0;
    bool after_special = true;  // for add_space_prefix (llama.cpp: at the start and after each special)
    if (opts.parse_special && !v.control.empty()) {
      for (std::size_t i = 0; i < text.size();) {
        int id = -1;
        const std::size_t len = v.control.longest_match(text, i, &id);
        if (len == 0) { ++i; continue; }
        if (i > start) encode_fragment(text.substr(start, i - start), after_special, ids);
        ids.push_back(id);
        after_special = true;
        i += len;
        start = i;
      }
    }
    if (start < text.size()) encode_fragment(text.substr(start), after_special, ids);
    return ids;
  }

  // ---- decode ----

  // The bytes one token stands for ("▁" read as a space; <0xXX> as that byte).
  std::string token_to_bytes(int id, DecodeOptions opts = {}) const {
    const Vocab& v = *v_;
    check(id);
    const std::string& p = v.pieces[std::size_t(id)];
    switch (v.types[std::size_t(id)]) {
      case TokenType::normal:
      case TokenType::user_defined:
        return detail::replace_all(p, detail::kSpaceMarker, " ");
      case TokenType::byte: {
        const int b = detail::parse_byte_piece(p);
        return b >= 0 ? std::string(1, char(b)) : p;
      }
      case TokenType::control:
      case TokenType::unknown:
      case TokenType::unused:
        return opts.skip_special ? std::string() : p;
    }
    return std::string();
  }

  std::string decode(const std::vector<int>& ids, DecodeOptions opts = {}) const {
    std::string out;
    bool at_start = true;  // no text token yet
    for (int id : ids) {
      std::string bytes = token_to_bytes(id, opts);
      const TokenType t = type(id);
      const bool text_token = t == TokenType::normal || t == TokenType::user_defined || t == TokenType::byte;
      // SentencePiece's decoder removes the dummy prefix from the first text piece (never for Gemma).
      if (v_->config.add_space_prefix && at_start && t != TokenType::byte && text_token && !bytes.empty() &&
          bytes[0] == ' ')
        bytes.erase(0, 1);
      if (text_token && !bytes.empty()) at_start = false;
      out += bytes;
    }
    return out;
  }

  // ---- the vocabulary ----

  int vocab_size() const { return int(v_->pieces.size()); }
  const std::string& piece(int id) const { check(id); return v_->pieces[std::size_t(id)]; }
  float score(int id) const { check(id); return v_->scores[std::size_t(id)]; }
  TokenType type(int id) const { check(id); return v_->types[std::size_t(id)]; }
  const TokenizerConfig& config() const { return v_->config; }
  int bos_id() const { return v_->config.bos_id; }
  int eos_id() const { return v_->config.eos_id; }
  int unk_id() const { return v_->config.unk_id; }
  int pad_id() const { return v_->config.pad_id; }

  // The id of a piece as the vocabulary spells it (any type), or -1.
  int find(std::string_view piece) const {
    const Vocab& v = *v_;
    for (std::size_t i = 0; i < v.pieces.size(); ++i)  // linear; for tests and tools, not hot paths
      if (v.pieces[i] == piece) return int(i);
    return -1;
  }
  // The <0xXX> token of byte b, or -1 if the vocabulary has none.
  int byte_token(unsigned char b) const { return v_->byte_ids[b]; }

 private:
  struct Vocab {
    TokenizerConfig config;
    std::vector<std::string> pieces;
    std::vector<float> scores;
    std::vector<TokenType> types;
    std::vector<std::string> normalized;  // user-defined pieces with ' ' -> "▁" (else empty)
    detail::PieceIndex piece_to_id;  // merge targets: normal + user-defined (views)
    detail::PieceTrie control;       // CONTROL + UNKNOWN pieces, matched on the raw text
    detail::PieceTrie user_defined;  // USER_DEFINED pieces, matched on the normalized text
    std::array<int, 256> byte_ids{};
  };

  // A symbol: a span of the normalized fragment, linked to its neighbours.
  struct Symbol {
    std::uint32_t begin = 0, size = 0;  // size 0: merged into its left neighbour
    int prev = -1, next = -1;
    int id = -1;          // fixed id for a user-defined piece
    bool frozen = false;  // user-defined piece or invalid byte: never merged
  };
  // A candidate merge of symbols[left] and symbols[right] (adjacent), scored by the merged piece.
  struct Bigram {
    float score;
    int left, right;
    std::uint32_t size;  // bytes of the merged piece (stale entries are detected by it)
  };
  struct BigramOrder {  // max-heap: higher score first; equal scores: the leftmost first
    bool operator()(const Bigram& a, const Bigram& b) const {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
  };

  void check(int id) const {
    if (id < 0 || id >= vocab_size())
      throw std::out_of_range("Tokenizer: token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                              std::to_string(vocab_size()) + ")");
  }

  // Steps (2)-(5) for one stretch of text without control tokens.
  void encode_fragment(std::string_view raw, bool after_special, std::vector<int>& ids) const {
    const Vocab& v = *v_;
    // (2) ' ' -> "▁" (and the dummy prefix, which Gemma does not use).
    std::string text = v.config.add_space_prefix && after_special ? std::string(detail::kSpaceMarker) : std::string();
    text += detail::replace_all(raw, " ", detail::kSpaceMarker);
    const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());

    // (3) initial symbols: user-defined pieces, UTF-8 characters, invalid bytes.
    std::vector<Symbol> sym;
    sym.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
      Symbol s;
      s.begin = std::uint32_t(i);
      int id = -1;
      std::size_t len = v.user_defined.longest_match(text, i, &id);
      if (len > 0) {
        s.id = id;
        s.frozen = true;
      } else {
        len = std::size_t(detail::utf8_sequence_length(bytes + i, text.size() - i));
        if (len == 0) { len = 1; s.frozen = true; }  // invalid UTF-8: a lone byte, byte-fallback below
      }
      s.size = std::uint32_t(len);
      s.prev = int(sym.size()) - 1;
      s.next = i + len < text.size() ? int(sym.size()) + 1 : -1;
      sym.push_back(s);
      i += len;
    }

    // (4) BPE: merge the best-scoring adjacent pair until none is a vocabulary piece.
    std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> agenda;
    auto try_add = [&](int left, int right) {
      if (left < 0 || right < 0 || sym[std::size_t(left)].frozen || sym[std::size_t(right)].frozen) return;
      const Symbol& l = sym[std::size_t(left)];
      const std::uint32_t size = l.size + sym[std::size_t(right)].size;
      const int id = v.piece_to_id.find(std::string_view(text.data() + l.begin, size));
      if (id < 0) return;
      agenda.push(Bigram{v.scores[std::size_t(id)], left, right, size});
    };
    for (std::size_t i = 1; i < sym.size(); ++i) try_add(int(i) - 1, int(i));
    while (!agenda.empty()) {
      const Bigram top = agenda.top();
      agenda.pop();
      Symbol& l = sym[std::size_t(top.left)];
      Symbol& r = sym[std::size_t(top.right)];
      if (l.size == 0 || r.size == 0 || l.size + r.size != top.size) continue;  // stale
      l.size += r.size;
      r.size = 0;
      l.next = r.next;
      if (r.next >= 0) sym[std::size_t(r.next)].prev = top.left;
      try_add(l.prev, top.left);
      try_add(top.left, l.next);
    }

    // (5) symbols -> ids, with byte fallback.
    for (int i = sym.empty() ? -1 : 0; i >= 0; i = sym[std::size_t(i)].next) {
      const Symbol& s = sym[std::size_t(i)];
      if (s.id >= 0) { ids.push_back(s.id); continue; }
      if (!s.frozen) {
        const int id = v.piece_to_id.find(std::string_view(text.data() + s.begin, s.size));
        if (id >= 0) { ids.push_back(id); continue; }
      }
      for (std::uint32_t k = 0; k < s.size; ++k) {
        const int b = v.byte_ids[bytes[s.begin + k]];
        if (b >= 0) ids.push_back(b);
        else if (k == 0) ids.push_back(v.config.unk_id);  // no byte tokens: one <unk> for the character
      }
    }
  }

  std::shared_ptr<const Vocab> v_;  // immutable and shared: copies are cheap, views stay valid
};

// Decoding one token at a time for streaming: returns only whole UTF-8 characters, holding back
// the bytes of a character whose byte tokens have not all arrived yet. Bytes that can never become
// a character (invalid UTF-8) are passed on as they are, so the concatenated output always equals
// tokenizer.decode(all ids). Call flush() at the end for anything still held back.
class TokenStreamDecoder {
 public:
  explicit TokenStreamDecoder(const Tokenizer& tokenizer, DecodeOptions opts = {})
      : tokenizer_(&tokenizer), opts_(opts) {}

  std::string push(int id) {
    pending_ += tokenizer_->token_to_bytes(id, opts_);
    // Hold back the tail if it is the start of a character that needs more bytes.
    const auto* s = reinterpret_cast<const unsigned char*>(pending_.data());
    std::size_t keep_from = pending_.size();
    for (std::size_t back = 1; back <= 3 && back <= pending_.size(); ++back) {
      const std::size_t p = pending_.size() - back;
      if ((s[p] & 0xC0) != 0x80) {  // the last non-continuation byte
        if (detail::utf8_incomplete_prefix(s + p, back)) keep_from = p;
        break;
      }
    }
    std::string out = pending_.substr(0, keep_from);
    pending_.erase(0, keep_from);
    return out;
  }

  std::string flush() { std::string out; out.swap(pending_); return out; }
  bool has_pending() const { return !pending_.empty(); }

 private:
  const Tokenizer* tokenizer_;
  DecodeOptions opts_;
  std::string pending_;
};

}  // namespace gemma3
