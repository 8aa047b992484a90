// Every rule gguf.hpp and gguf_model.hpp enforce, broken once: each must throw
// GgufError naming the file, the field or tensor, what was expected and what was
// found. Files are valid ones from tests/test_gguf_writer.hpp with one field
// patched (the writer records where each field landed), so every test has a
// positive control: the unpatched file parses.
#include "catch.hpp"

#include "loader_error_helpers.hpp"
#include "test_gguf_writer.hpp"

#include <gemma3/gguf.hpp>
#include <gemma3/gguf_model.hpp>

#include <cstdint>
#include <string>
#include <vector>

using gemma3::GgufError;
using gemma3::GgufFile;
using gemma3::MappedFile;
using gguf_test::Bytes;
using gguf_test::put_le;
using gguf_test::Value;
using gguf_test::Writer;

namespace {

const char* const kFile = "bad.gguf";

std::shared_ptr<const MappedFile> mem(const Bytes& b) { return MappedFile::from_bytes(b, kFile); }

// A small valid file: a few keys (a string, an array, a bool, a nested array) and
// three tensors (F32 [8], Q8_0 [32, 2], F16 [4, 2]).
Writer base() {
  Writer w;
  w.add("general.architecture", Value::string("test"))
      .add("general.name", Value::string("name"))
      .add("flag", Value::boolean(true))
      .add("list", Value::i32s({1, 2, 3}))
      .add("words", Value::strings({"ab", "cd"}))
      .add("nested", Value::array(gguf_test::ARRAY, {Value::i32s({1}), Value::i32s({2, 3})}));
  w.tensor("a", 0, {8}, gguf_test::f32_data({1, 2, 3, 4, 5, 6, 7, 8}))
      .tensor("b", 8, {32, 2}, Bytes(68, 1))
      .tensor("c", 1, {4, 2}, Bytes(16, 2));
  return w;
}

Bytes patched(const Writer& w, const std::string& field, std::uint64_t value, std::size_t n, std::size_t extra = 0) {
  Bytes b = w.bytes();
  put_le(b, w.at.at(field) + extra, value, n);
  return b;
}

gemma3::Gemma3ForCausalLM load(const Bytes& b, gemma3::Vocabulary* v = nullptr) {
  const GgufFile f(mem(b));
  return gemma3::load_gguf_model(f, v);
}

gemma3::Gemma3TextConfig config(const Bytes& b) { return gemma3::config_from_gguf(GgufFile(mem(b))); }

Writer tiny() { return gguf_test::TinyModel{}.writer(); }

}  // namespace

TEST_CASE("gguf errors: the base files parse (positive controls)", "[gguf][errors]") {
  const Writer w = base();
  const GgufFile g(mem(w.bytes()));
  CHECK(g.tensors().size() == 3);
  CHECK(g.metadata().size() == 6);
  REQUIRE_NOTHROW(load(tiny().bytes()));
}

// ---- header -------------------------------------------------------------------

TEST_CASE("gguf errors: bad magic, and files too short for a header", "[gguf][errors]") {
  Bytes b = base().bytes();
  b[3] = 'X';
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(b)), kFile, "magic", "\"GGUF\"", "47 47 55 58", "not a GGUF file");
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(Bytes{'G', 'G', 'U'})), kFile, "magic", "a file of 3 bytes");
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(Bytes{})), kFile, "magic", "a file of 0 bytes");
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(Bytes{'G', 'G', 'U', 'F', 3, 0, 0, 0, 0})), kFile, "header",
                        "at least 24 bytes", "a file of 9 bytes", "truncated");
}

TEST_CASE("gguf errors: versions other than 2 and 3", "[gguf][errors]") {
  const Writer w = base();
  REQUIRE_NOTHROW(GgufFile(mem(patched(w, "version", 2, 4))));
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "version", 1, 4))), kFile, "version", "expected 2 or 3",
                        "GGUF v1", "no longer supported");
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "version", 0, 4))), kFile, "version", "expected 2 or 3",
                        "found 0");
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "version", 4, 4))), kFile, "version", "expected 2 or 3",
                        "4 (unknown)");
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "version", 0x03000000u, 4))), kFile, "version",
                        "little-endian", "50331648", "big-endian");
}

TEST_CASE("gguf errors: tensor and metadata counts larger than the file could hold", "[gguf][errors]") {
  const Writer w = base();
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "kv_count", 1ull << 40, 8))), kFile, "metadata count",
                        "what the file size allows", std::to_string(1ull << 40));
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "tensor_count", ~0ull, 8))), kFile, "tensor count",
                        "what the file size allows", "negative as int64");
  // A count that passes the size bound but not the records: the tensor infos are read as
  // metadata, and something in them is refused (which thing depends on their bytes).
  for (std::uint64_t n : {7ull, 9ull, 12ull}) {
    const std::string m = loader_errors::message_of<GgufError>(
        [&] { GgufFile g(mem(patched(w, "kv_count", n, 8))); }, "kv_count patched");
    CHECK(m.find(std::string(kFile) + ": ") == 0);
  }
}

// ---- metadata ---------------------------------------------------------------------

TEST_CASE("gguf errors: unknown value types, scalar and array element", "[gguf][errors]") {
  const Writer w = base();
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "type:flag", 13, 4))), kFile, "metadata 'flag' value type",
                        "a GGUF value type 0..12", "13 (unknown)");
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "value:list", 99, 4))), kFile,
                        "metadata 'list' element type", "0..12", "99 (unknown)");
}

TEST_CASE("gguf errors: a BOOL that is neither 0 nor 1", "[gguf][errors]") {
  const Writer w = base();
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "value:flag", 2, 1))), kFile, "metadata 'flag'",
                        "a BOOL byte 0 or 1", "found 2");
  Writer a = base();
  a.add("bools", Value::bools({false, true, true}));
  REQUIRE_NOTHROW(GgufFile(mem(a.bytes())));
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(a, "value:bools", 7, 1, 4 + 8 + 2))), kFile,
                        "metadata 'bools[2]'", "a BOOL byte 0 or 1", "found 7");
}

TEST_CASE("gguf errors: string lengths that run past the file or are absurd", "[gguf][errors]") {
  const Writer w = base();
  // the value of general.name
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "value:general.name", 1000000, 8))), kFile,
                        "metadata 'general.name' length", "(the rest of the file)", "1000000",
                        "runs past the end of the file");
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "value:general.name", 1ull << 40, 8))), kFile,
                        "metadata 'general.name' length", "at most 1073741824 bytes", "1099511627776 (absurd)");
  // a key
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "key:flag", 5000, 8))), kFile, "metadata key #2 length",
                        "the rest of the file", "5000");
  // an element of a string array
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "value:words", 777777, 8, 4 + 8))), kFile,
                        "metadata 'words[0]' length", "777777", "runs past");
  // a tensor name
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "tensor:b", ~0ull, 8))), kFile, "tensor #1 name length",
                        "at most 1073741824", "absurd");
}

TEST_CASE("gguf errors: array counts that run past the file or are absurd", "[gguf][errors]") {
  const Writer w = base();
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "value:list", 100000, 8, 4))), kFile,
                        "metadata 'list' element count", "elements of INT32 (the rest of the file)", "100000",
                        "runs past the end of the file");
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "value:list", 1ull << 31, 8, 4))), kFile,
                        "metadata 'list' element count", "at most 1073741824 elements", "2147483648 (absurd)");
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "value:words", 1000, 8, 4))), kFile,
                        "metadata 'words' element count", "elements of STRING", "runs past");
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "value:nested", 1000, 8, 4))), kFile,
                        "metadata 'nested' element count", "elements of ARRAY", "runs past");
}

TEST_CASE("gguf errors: arrays nested deeper than the reader allows", "[gguf][errors]") {
  auto nest = [](int depth) {
    Value v = Value::array(gguf_test::UINT8, {Value::u8(1)});
    for (int i = 1; i < depth; ++i) v = Value::array(gguf_test::ARRAY, {v});
    Writer w;
    w.add("deep", v);
    return w.bytes();
  };
  REQUIRE_NOTHROW(GgufFile(mem(nest(GgufFile::kMaxArrayDepth))));
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(nest(GgufFile::kMaxArrayDepth + 1))), kFile, "metadata 'deep",
                        "nested at most 16 deep", "deeper nesting");
}

TEST_CASE("gguf errors: empty and duplicate keys", "[gguf][errors]") {
  Writer w = base();
  w.kv.emplace_back("flag", Value::boolean(false));  // the writer's add() would replace it
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(w.bytes())), kFile, "metadata 'flag'", "a unique key",
                        "a duplicate (key #6)");
  Writer e = base();
  e.kv.emplace_back("", Value::u8(1));
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(e.bytes())), kFile, "metadata key #6", "a non-empty key",
                        "an empty string");
}

TEST_CASE("gguf errors: general.alignment of the wrong type, zero, or not a power of two", "[gguf][errors]") {
  Writer ok = base();
  ok.alignment = 16;
  ok.add("general.alignment", Value::u32(16));
  CHECK(GgufFile(mem(ok.bytes())).alignment() == 16);

  Writer t = base();
  t.add("general.alignment", Value::u64(32));
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(t.bytes())), kFile, "metadata 'general.alignment'", "a UINT32",
                        "UINT64");
  for (std::uint32_t bad : {0u, 48u, 3u}) {
    Writer w = base();
    w.add("general.alignment", Value::u32(bad));
    REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(w.bytes())), kFile, "metadata 'general.alignment'",
                          "a non-zero power of two", "found " + std::to_string(bad));
  }
}

// ---- tensor infos ------------------------------------------------------------------

TEST_CASE("gguf errors: tensor names empty, too long, or duplicated", "[gguf][errors]") {
  Writer e = base();
  e.tensor("", 0, {1}, Bytes(4));
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(e.bytes())), kFile, "tensor #3 name", "a non-empty name",
                        "an empty string");
  Writer ok = base();
  ok.tensor(std::string(63, 'n'), 0, {1}, Bytes(4));
  REQUIRE_NOTHROW(GgufFile(mem(ok.bytes())));
  Writer l = base();
  l.tensor(std::string(64, 'n'), 0, {1}, Bytes(4));
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(l.bytes())), kFile, "tensor 'nnnn", "at most 63 bytes", "64 bytes");
  Writer d = base();
  d.tensors.push_back(gguf_test::Tensor{"a", 0, {1}, Bytes(4)});
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(d.bytes())), kFile, "tensor 'a'", "a unique name",
                        "a duplicate (tensor #3)");
}

TEST_CASE("gguf errors: n_dims outside 1..4", "[gguf][errors]") {
  const Writer w = base();
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "n_dims:a", 5, 4))), kFile, "tensor 'a' n_dims",
                        "1 to 4", "found 5");
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "n_dims:a", 0, 4))), kFile, "tensor 'a' n_dims", "1 to 4",
                        "found 0");
  Writer four = base();
  four.tensor("d4", 0, {1, 2, 1, 2}, Bytes(16));
  REQUIRE_NOTHROW(GgufFile(mem(four.bytes())));
}

TEST_CASE("gguf errors: dimensions that are zero, negative, or overflow the element count", "[gguf][errors]") {
  const Writer w = base();
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "dims:a", 0, 8))), kFile, "tensor 'a' dims[0]",
                        "at least 1", "0 (a tensor with no elements)");
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "dims:c", ~0ull, 8, 8))), kFile, "tensor 'c' dims[1]",
                        "a non-negative int64", "-1 (negative as int64)");
  Bytes o = w.bytes();
  put_le(o, w.at.at("dims:c"), 1ull << 32, 8);
  put_le(o, w.at.at("dims:c") + 8, 1ull << 32, 8);
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(o)), kFile, "tensor 'c' dims", "an element count that fits int64",
                        "overflow at dims[1] = 4294967296");
}

TEST_CASE("gguf errors: unknown or removed tensor types", "[gguf][errors]") {
  const Writer w = base();
  for (std::uint32_t t : {4u, 5u, 31u, 42u, 1000u}) {
    REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "ggml_type:a", t, 4))), kFile, "tensor 'a' type",
                          "a ggml type id this reader knows", std::to_string(t) + " (unknown or removed");
  }
}

TEST_CASE("gguf errors: a row length that is not a whole number of blocks", "[gguf][errors]") {
  Writer w = base();
  w.tensor("b", 8, {48, 2}, Bytes(68));
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(w.bytes())), kFile, "tensor 'b' dims[0]",
                        "a multiple of 32 (the Q8_0 block size)", "found 48");
  Writer k = base();
  k.tensor("k", 12, {128}, Bytes(144));
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(k.bytes())), kFile, "tensor 'k' dims[0]",
                        "a multiple of 256 (the Q4_K block size)", "found 128");
}

TEST_CASE("gguf errors: a byte size that overflows", "[gguf][errors]") {
  Writer w = base();  // 2^62 f32 elements: 2^64 bytes
  const Bytes b = patched(w, "dims:a", 1ull << 62, 8);
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(b)), kFile, "tensor 'a' byte size", "a size that fits size_t",
                        std::to_string(1ull << 62) + " blocks of 4 bytes");
}

TEST_CASE("gguf errors: offsets not aligned, or past the end of the file", "[gguf][errors]") {
  const Writer w = base();
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "offset:b", 36, 8))), kFile, "tensor 'b' offset",
                        "a multiple of 32 (the alignment)", "found 36");
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "offset:b", 1ull << 40, 8))), kFile, "tensor 'b' data",
                        "68 bytes (Q8_0 [32, 2]) at offset 1099511627776", "truncated or the offset is corrupt");
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "offset:c", ~0ull - 31, 8))), kFile, "tensor 'c' data",
                        "inside the data section", "truncated or the offset is corrupt");
}

TEST_CASE("gguf errors: tensor bytes (by block type) past the end of the file", "[gguf][errors]") {
  const Writer w = base();
  // dims that need more bytes than the file has: Q8_0 [32, 2000] is 68000 bytes
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "dims:b", 2000, 8, 8))), kFile, "tensor 'b' data",
                        "68000 bytes (Q8_0 [32, 2000])", "truncated");
  // the file cut inside the last tensor's bytes
  Bytes cut = w.bytes();
  cut.resize(w.at.at("data:c") + 10);
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(cut)), kFile, "tensor 'c' data", "16 bytes (F16 [4, 2])",
                        "inside the data section of", "truncated");
}

TEST_CASE("gguf errors: overlapping tensors", "[gguf][errors]") {
  const Writer w = base();
  // c (16 bytes) moved onto b's bytes [32, 100)
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "offset:c", 64, 8))), kFile, "tensor 'c' offset",
                        "bytes not shared with another tensor", "inside tensor 'b' [32, 100)");
  // two tensors at the same offset
  REQUIRE_THROWS_NAMING(GgufError, GgufFile(mem(patched(w, "offset:b", 0, 8))), kFile, "bytes not shared",
                        "inside tensor");
}

TEST_CASE("gguf errors: every truncation of a valid file is refused with a message, never a crash",
          "[gguf][errors]") {
  const Writer w = base();
  const Bytes full = w.bytes();
  const std::size_t end = w.at.at("data:c") + 16;  // after the last tensor's bytes only padding follows
  REQUIRE_NOTHROW(GgufFile(mem(Bytes(full.begin(), full.begin() + long(end)))));
  for (std::size_t n = 0; n < end; ++n) {
    const Bytes cut(full.begin(), full.begin() + long(n));
    const std::string m = loader_errors::message_of<GgufError>([&] { GgufFile g(mem(cut)); }, "truncated file");
    INFO("cut at " << n << " of " << full.size() << ": " << m);
    CHECK(m.find(kFile) == 0);
    CHECK((m.find("truncated") != std::string::npos || m.find("runs past") != std::string::npos ||
           m.find("file size allows") != std::string::npos || m.find("a file of") != std::string::npos));
  }
}

// ---- the gemma3 mapping ---------------------------------------------------------

TEST_CASE("gguf model errors: not a gemma3 file", "[gguf][errors]") {
  Writer w = tiny();
  w.add("general.architecture", Value::string("llama"));
  REQUIRE_THROWS_NAMING(GgufError, load(w.bytes()), kFile, "metadata 'general.architecture'", "\"gemma3\"",
                        "\"llama\"");
  w.erase("general.architecture");
  REQUIRE_THROWS_NAMING(GgufError, load(w.bytes()), kFile, "'general.architecture'", "nothing (the key is missing)");
}

TEST_CASE("gguf model errors: hyper-parameters missing, of the wrong type, or out of range", "[gguf][errors]") {
  {
    Writer w = tiny();
    w.erase("gemma3.block_count");
    REQUIRE_THROWS_NAMING(GgufError, config(w.bytes()), kFile, "'gemma3.block_count'", "an integer",
                          "nothing (the key is missing)");
  }
  {
    Writer w = tiny();
    w.add("gemma3.block_count", Value::u32(513));
    REQUIRE_THROWS_NAMING(GgufError, config(w.bytes()), kFile, "'gemma3.block_count'", "[1, 512]", "found 513");
  }
  {
    Writer w = tiny();
    w.add("gemma3.embedding_length", Value::string("640"));
    REQUIRE_THROWS_NAMING(GgufError, config(w.bytes()), kFile, "'gemma3.embedding_length'", "an integer", "STRING");
  }
  {
    Writer w = tiny();
    w.add("gemma3.embedding_length", Value::u64(1ull << 40));
    REQUIRE_THROWS_NAMING(GgufError, config(w.bytes()), kFile, "'gemma3.embedding_length'", "[1, 65536]",
                          "1099511627776");
  }
  {
    Writer w = tiny();
    w.add("gemma3.attention.layer_norm_rms_epsilon", Value::f32(-1.0f));
    REQUIRE_THROWS_NAMING(GgufError, config(w.bytes()), kFile, "'gemma3.attention.layer_norm_rms_epsilon'",
                          "a positive number", "-1");
  }
  {  // per-layer arrays: the right length, every value the same
    Writer w = tiny();
    w.add("gemma3.feed_forward_length", Value::i32s({32, 32}));
    REQUIRE(config(w.bytes()).intermediate_size == 32);
    w.add("gemma3.feed_forward_length", Value::i32s({32, 64}));
    REQUIRE_THROWS_NAMING(GgufError, config(w.bytes()), kFile, "'gemma3.feed_forward_length[1]'",
                          "expected 32 like layer 0", "found 64");
    w.add("gemma3.feed_forward_length", Value::i32s({32, 32, 32}));
    REQUIRE_THROWS_NAMING(GgufError, config(w.bytes()), kFile, "'gemma3.feed_forward_length'",
                          "2 per-layer values", "found 3");
  }
  {
    Writer w = tiny();
    w.add("gemma3.attention.value_length", Value::u32(8));
    REQUIRE_THROWS_NAMING(GgufError, config(w.bytes()), kFile, "'gemma3.attention.value_length'",
                          "expected 16 (= attention.key_length", "found 8");
  }
  {
    Writer w = tiny();
    w.add("gemma3.rope.scaling.type", Value::string("yarn"));
    w.add("gemma3.rope.scaling.factor", Value::f32(4.0f));
    REQUIRE_THROWS_NAMING(GgufError, config(w.bytes()), kFile, "'gemma3.rope.scaling.type'",
                          "\"none\" or \"linear\"", "\"yarn\"");
  }
  {
    Writer w = tiny();
    w.add("gemma3.attention.sliding_window_pattern", Value::bools({true}));
    REQUIRE_THROWS_NAMING(GgufError, config(w.bytes()), kFile, "'gemma3.attention.sliding_window_pattern'",
                          "2 per-layer flags", "found 1");
    w.add("gemma3.attention.sliding_window_pattern", Value::i32s({1, 0}));
    REQUIRE_THROWS_NAMING(GgufError, config(w.bytes()), kFile, "'gemma3.attention.sliding_window_pattern'",
                          "ARRAY[BOOL]", "ARRAY[INT32]");
  }
  {  // the config's own rules, reported as GgufError with the file name
    Writer w = tiny();
    w.add("gemma3.attention.head_count", Value::u32(3));
    w.add("gemma3.attention.head_count_kv", Value::u32(2));
    REQUIRE_THROWS_NAMING(GgufError, config(w.bytes()), kFile, "'num_key_value_heads'",
                          "a divisor of num_attention_heads = 3", "found 2");
  }
}

TEST_CASE("gguf model errors: tensors missing, of the wrong shape, of an unusable type, or unexpected",
          "[gguf][errors]") {
  {
    Writer w = tiny();
    w.erase_tensor("blk.1.ffn_up.weight");
    REQUIRE_THROWS_NAMING(GgufError, load(w.bytes()), kFile, "tensor 'blk.1.ffn_up.weight'", "expected present",
                          "found missing");
  }
  {
    Writer w = tiny();
    w.erase_tensor("token_embd.weight");
    REQUIRE_THROWS_NAMING(GgufError, load(w.bytes()), kFile, "tensor 'token_embd.weight'", "expected present",
                          "missing");
  }
  {  // q_proj with 16 output rows instead of 2 heads x 16
    Writer w = tiny();
    w.tensor("blk.0.attn_q.weight", 0, {32, 16}, Bytes(32 * 16 * 4));
    REQUIRE_THROWS_NAMING(GgufError, load(w.bytes()), kFile, "tensor 'blk.0.attn_q.weight'",
                          "expected dims [32, 32]", "found [32, 16]");
  }
  {  // a norm with the wrong length
    Writer w = tiny();
    w.tensor("blk.1.attn_k_norm.weight", 0, {32}, Bytes(128));
    REQUIRE_THROWS_NAMING(GgufError, load(w.bytes()), kFile, "tensor 'blk.1.attn_k_norm.weight'",
                          "expected dims [16]", "found [32]");
  }
  {  // a matrix transposed (dims [out, in] instead of ne0 = in)
    Writer w = tiny();
    w.tensor("blk.0.ffn_down.weight", 0, {32, 32}, Bytes(32 * 32 * 4));
    w.add("gemma3.feed_forward_length", Value::u32(64));
    for (const char* n : {"blk.0.ffn_gate.weight", "blk.0.ffn_up.weight", "blk.1.ffn_gate.weight", "blk.1.ffn_up.weight"})
      w.tensor(n, 0, {32, 64}, Bytes(32 * 64 * 4));
    w.tensor("blk.1.ffn_down.weight", 0, {64, 32}, Bytes(64 * 32 * 4));
    REQUIRE_THROWS_NAMING(GgufError, load(w.bytes()), kFile, "tensor 'blk.0.ffn_down.weight'",
                          "expected dims [64, 32]", "found [32, 32]");
  }
  {  // a matrix in a ggml type the kernels do not multiply
    Writer w = tiny();
    w.tensor("blk.0.attn_k.weight", 20, {32, 16}, Bytes(18 * 16));  // IQ4_NL
    REQUIRE_THROWS_NAMING(GgufError, load(w.bytes()), kFile, "tensor 'blk.0.attn_k.weight' type",
                          "the types the kernels multiply", "IQ4_NL");
  }
  {  // a quantized norm
    Writer w = tiny();
    w.tensor("output_norm.weight", 8, {32}, Bytes(34));
    REQUIRE_THROWS_NAMING(GgufError, load(w.bytes()), kFile, "tensor 'output_norm.weight' type",
                          "F32, F16 or BF16 (a norm weight)", "Q8_0");
  }
  {  // an untied LM head, and a stray tensor
    Writer w = tiny();
    w.tensor("output.weight", 0, {32, 8}, Bytes(32 * 8 * 4));
    REQUIRE_THROWS_NAMING(GgufError, load(w.bytes()), kFile, "tensor 'output.weight'",
                          "only the gemma3 text-decoder tensors", "the LM head is tied", "found this one too");
    Writer s = tiny();
    s.tensor("blk.2.attn_q.weight", 0, {32, 32}, Bytes(32 * 32 * 4));
    REQUIRE_THROWS_NAMING(GgufError, load(s.bytes()), kFile, "tensor 'blk.2.attn_q.weight'", "found this one too");
  }
}

TEST_CASE("gguf model errors: a vocabulary that disagrees with the embedding or with itself", "[gguf][errors]") {
  gemma3::Vocabulary v;
  {  // 7 tokens, 8 embedding rows: refused whether or not the vocabulary is requested
    Writer w = tiny();
    w.add("tokenizer.ggml.tokens", Value::strings({"<pad>", "<eos>", "<bos>", "<unk>", "a", "b", "c"}));
    w.add("tokenizer.ggml.scores", Value::f32s(std::vector<float>(7, 0.0f)));
    w.add("tokenizer.ggml.token_type", Value::i32s(std::vector<std::int32_t>(7, 1)));
    REQUIRE_THROWS_NAMING(GgufError, load(w.bytes(), &v), kFile, "'tokenizer.ggml.tokens'",
                          "expected 8 tokens (the rows of token_embd.weight)", "found 7");
    REQUIRE_THROWS_NAMING(GgufError, load(w.bytes()), kFile, "'tokenizer.ggml.tokens'", "expected 8 tokens",
                          "found 7");
  }
  {
    Writer w = tiny();
    w.add("tokenizer.ggml.scores", Value::f32s({1.0f, 2.0f}));
    REQUIRE_THROWS_NAMING(GgufError, load(w.bytes(), &v), kFile, "'tokenizer.ggml.scores'",
                          "expected 8 scores (one per token)", "found 2");
  }
  {
    Writer w = tiny();
    w.add("tokenizer.ggml.token_type", Value::i32s({1, 1, 1}));
    REQUIRE_THROWS_NAMING(GgufError, load(w.bytes(), &v), kFile, "'tokenizer.ggml.token_type'",
                          "expected 8 types (one per token)", "found 3");
    w.add("tokenizer.ggml.token_type", Value::i32s({3, 3, 3, 3, 1, 1, 9, 1}));
    REQUIRE_THROWS_NAMING(GgufError, load(w.bytes(), &v), kFile, "'tokenizer.ggml.token_type[6]'",
                          "a token type 0..6", "found 9");
  }
  {
    Writer w = tiny();
    w.add("tokenizer.ggml.bos_token_id", Value::u32(8));
    REQUIRE_THROWS_NAMING(GgufError, load(w.bytes(), &v), kFile, "'tokenizer.ggml.bos_token_id'", "[0, 7]",
                          "found 8");
  }
  {
    Writer w = tiny();
    w.add("tokenizer.ggml.tokens", Value::strings({"<pad>", "<eos>", "<bos>", "<unk>", "a", "b", "a", "c"}));
    REQUIRE_THROWS_NAMING(GgufError, load(w.bytes(), &v), kFile, "'tokenizer.ggml.tokens[6]'",
                          "a token string not already in the vocabulary", "a duplicate of token 4", "\"a\"");
  }
  {
    Writer w = tiny();
    w.add("tokenizer.ggml.model", Value::string("gpt2"));
    REQUIRE_THROWS_NAMING(GgufError, load(w.bytes(), &v), kFile, "'tokenizer.ggml.model'", "\"llama\"", "\"gpt2\"");
  }
  {
    Writer w = tiny();
    w.erase("tokenizer.ggml.tokens");
    REQUIRE_NOTHROW(load(w.bytes()));  // the model alone needs no tokenizer
    REQUIRE_THROWS_NAMING(GgufError, load(w.bytes(), &v), kFile, "'tokenizer.ggml.tokens'", "ARRAY[STRING]",
                          "nothing (the key is missing)");
  }
}
