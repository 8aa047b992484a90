// Every way a safetensors file, a config.json or a checkpoint folder can be wrong
// must throw the loader's own exception type, with a message that names the file,
// the field or tensor, what was expected and what was found. Each rule has a
// positive control beside it, so the tests fail if the reader rejects everything.
//
// Files are built in memory (MappedFile::from_bytes) or written to a fresh temp
// directory; nothing here depends on tests/fixtures.
#include "catch.hpp"

#include "loader_error_helpers.hpp"

#include <gemma3/checkpoint.hpp>
#include <gemma3/config_json.hpp>
#include <gemma3/mapped_file.hpp>
#include <gemma3/model.hpp>
#include <gemma3/safetensors.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace loader_errors;
using gemma3::ConfigError;
using gemma3::CheckpointError;
using gemma3::MappedFile;
using gemma3::SafetensorsError;
using gemma3::SafetensorsFile;

namespace {

const char* const kFile = "name.safetensors";

std::shared_ptr<const MappedFile> mem(const Bytes& bytes, const std::string& name = kFile) {
  return MappedFile::from_bytes(bytes, name);
}

// A header with one tensor entry `w` written verbatim, and `data_bytes` of data.
Bytes one_tensor(const std::string& entry, std::size_t data_bytes) {
  return raw_safetensors("{\"w\":" + entry + "}", data_bytes);
}

gemma3::Gemma3TextConfig parse(const JsonFields& f) { return gemma3::parse_config_json(f.str(), "config.json"); }

}  // namespace

// =============================================================================
// safetensors
// =============================================================================

TEST_CASE("safetensors: a valid file parses and its views point at the right bytes", "[errors][safetensors]") {
  const std::vector<float> a = {1.0f, -2.0f, 3.5f, 4.25f};
  const Bytes bf16 = {0x80, 0x3f, 0x00, 0x40, 0x40, 0x40};  // bf16 1, 2, 3
  const std::vector<StTensor> tensors = {
      {"a", "F32", {2, 2}, f32_bytes(a)},
      {"b", "BF16", {3}, bf16},
      {"empty", "F32", {0, 5}, {}},
      {"scalar", "I64", {}, Bytes{7, 0, 0, 0, 0, 0, 0, 0}},
  };
  const Bytes bytes = serialize_safetensors(tensors, "{\"format\":\"pt\",\"note\":\"hi\"}");
  const auto file = mem(bytes);
  const SafetensorsFile st(file);

  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[std::size_t(i)];
  const unsigned char* data = file->data() + 8 + n;

  REQUIRE(st.path() == kFile);
  REQUIRE(st.tensors().size() == 4);
  CHECK(st.metadata().size() == 2);
  CHECK(st.metadata().at("format") == "pt");
  CHECK(st.metadata().at("note") == "hi");

  const gemma3::TensorView& ta = st.at("a");
  CHECK(ta.dtype == "F32");
  CHECK(ta.shape == std::vector<std::int64_t>{2, 2});
  CHECK(ta.numel() == 4);
  CHECK(ta.nbytes == 16);
  CHECK(ta.data == data);  // views, not copies
  float got[4];
  std::memcpy(got, ta.data, 16);
  for (int i = 0; i < 4; ++i) CHECK(got[i] == a[std::size_t(i)]);

  const gemma3::TensorView& tb = st.at("b");
  CHECK(tb.dtype == "BF16");
  CHECK(tb.shape == std::vector<std::int64_t>{3});
  CHECK(tb.data == data + 16);
  CHECK(tb.nbytes == 6);
  CHECK(std::memcmp(tb.data, bf16.data(), 6) == 0);

  const gemma3::TensorView& te = st.at("empty");
  CHECK(te.numel() == 0);
  CHECK(te.nbytes == 0);

  const gemma3::TensorView& ts = st.at("scalar");
  CHECK(ts.shape.empty());
  CHECK(ts.numel() == 1);
  CHECK(ts.nbytes == 8);
  CHECK(ts.data == data + 22);
  CHECK(ts.data[0] == 7);

  CHECK(st.find("missing") == nullptr);
  REQUIRE_THROWS_NAMING(SafetensorsError, st.at("missing"), kFile, "missing");
}

TEST_CASE("safetensors: file shorter than 8 bytes", "[errors][safetensors]") {
  REQUIRE_THROWS_NAMING(SafetensorsError, (SafetensorsFile(mem(Bytes{1, 2, 3, 4, 5}))), kFile, "header length",
                        "at least 8 bytes", "5 bytes");
  REQUIRE_THROWS_NAMING(SafetensorsError, SafetensorsFile(mem(Bytes{})), kFile, "header length", "at least 8 bytes",
                        "0 bytes");
}

TEST_CASE("safetensors: header length larger than the file (truncated)", "[errors][safetensors]") {
  const std::string header = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  Bytes full = raw_safetensors(header, 4);
  REQUIRE_NOTHROW(SafetensorsFile(mem(full)));  // control
  Bytes cut(full.begin(), full.begin() + 8 + 10);  // keeps only 10 bytes of the header
  REQUIRE_THROWS_NAMING(SafetensorsError, SafetensorsFile(mem(cut)), kFile, "header length",
                        "at most 10 bytes", std::to_string(header.size()), "truncated");
}

TEST_CASE("safetensors: header length over the 100 MB limit", "[errors][safetensors]") {
  const std::uint64_t limit = SafetensorsFile::kMaxHeaderBytes;
  CHECK(limit >= 100000000u);
  CHECK(limit <= 110000000u);
  // The length field alone is over the limit; the file is small, and the limit is
  // reported (not "truncated").
  const Bytes b = safetensors_with_length(limit + 1, "{}", 0);
  REQUIRE_THROWS_NAMING(SafetensorsError, SafetensorsFile(mem(b)), kFile, "header length",
                        "at most " + std::to_string(limit), std::to_string(limit + 1));
  const Bytes huge = safetensors_with_length(~std::uint64_t(0), "{}", 0);
  REQUIRE_THROWS_NAMING(SafetensorsError, SafetensorsFile(mem(huge)), kFile, "header length",
                        std::to_string(~std::uint64_t(0)));
}

TEST_CASE("safetensors: invalid JSON header", "[errors][safetensors]") {
  SECTION("truncated JSON") {
    REQUIRE_THROWS_NAMING(SafetensorsError, SafetensorsFile(mem(raw_safetensors(R"({"w":{"dtype":"F3)", 0))),
                          kFile, "header", "invalid JSON at byte", "closing '\"'", "end of input");
  }
  SECTION("bad escape") {
    REQUIRE_THROWS_NAMING(SafetensorsError, SafetensorsFile(mem(raw_safetensors(R"({"w\q":1})", 0))), kFile,
                          "header", "invalid JSON at byte 4", "a valid escape", "'q'");
  }
  SECTION("nesting bomb: 10000 '['") {
    const std::string bomb = std::string(10000, '[') + std::string(10000, ']');
    REQUIRE_THROWS_NAMING(SafetensorsError, SafetensorsFile(mem(raw_safetensors(bomb, 0))), kFile, "header",
                          "nesting depth <= 64", "deeper nesting");
    const std::string unclosed(10000, '[');
    REQUIRE_THROWS_NAMING(SafetensorsError, SafetensorsFile(mem(raw_safetensors(unclosed, 0))), kFile,
                          "nesting depth");
  }
  SECTION("trailing garbage") {
    REQUIRE_THROWS_NAMING(SafetensorsError, SafetensorsFile(mem(raw_safetensors("{} x", 0))), kFile,
                          "end of input", "'x'");
  }
  SECTION("empty header") {
    REQUIRE_THROWS_NAMING(SafetensorsError, SafetensorsFile(mem(raw_safetensors("", 0))), kFile, "a value",
                          "end of input");
  }
}

TEST_CASE("safetensors: header not an object", "[errors][safetensors]") {
  REQUIRE_THROWS_NAMING(SafetensorsError, SafetensorsFile(mem(raw_safetensors("[1, 2]", 0))), kFile, "header",
                        "a JSON object", "an array");
  REQUIRE_THROWS_NAMING(SafetensorsError, SafetensorsFile(mem(raw_safetensors("\"x\"", 0))), kFile, "header",
                        "a JSON object", "a string");
  // A tensor entry that is not an object.
  REQUIRE_THROWS_NAMING(SafetensorsError, SafetensorsFile(mem(one_tensor("[0, 4]", 4))), kFile, "tensor 'w'",
                        "an object", "an array");
}

TEST_CASE("safetensors: unknown dtype", "[errors][safetensors]") {
  REQUIRE_NOTHROW(SafetensorsFile(mem(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 8))));
  REQUIRE_THROWS_NAMING(SafetensorsError,
                        SafetensorsFile(mem(one_tensor(R"({"dtype":"F33","shape":[2],"data_offsets":[0,8]})", 8))),
                        kFile, "tensor 'w' dtype", "a safetensors dtype", "\"F33\"");
  REQUIRE_THROWS_NAMING(SafetensorsError,
                        SafetensorsFile(mem(one_tensor(R"({"dtype":4,"shape":[2],"data_offsets":[0,8]})", 8))),
                        kFile, "tensor 'w' dtype", "a string", "a number");
  REQUIRE_THROWS_NAMING(SafetensorsError,
                        SafetensorsFile(mem(one_tensor(R"({"shape":[2],"data_offsets":[0,8]})", 8))), kFile,
                        "tensor 'w' dtype", "a string", "nothing");
}

TEST_CASE("safetensors: shape with a negative or non-integer entry", "[errors][safetensors]") {
  SECTION("negative") {
    REQUIRE_THROWS_NAMING(SafetensorsError,
                          SafetensorsFile(mem(one_tensor(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})", 8))),
                          kFile, "tensor 'w' shape", "non-negative integers", "-2");
  }
  SECTION("fraction") {
    REQUIRE_THROWS_NAMING(SafetensorsError,
                          SafetensorsFile(mem(one_tensor(R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,8]})", 8))),
                          kFile, "tensor 'w' shape", "non-negative integers", "1.5");
  }
  SECTION("a number too large for any integer (1e3081 reads as infinity; found by fuzz_safetensors)") {
    REQUIRE_THROWS_NAMING(SafetensorsError,
                          SafetensorsFile(mem(one_tensor(R"({"dtype":"F32","shape":[1e3081],"data_offsets":[0,8]})", 8))),
                          kFile, "tensor 'w' shape", "non-negative integers", "inf");
    REQUIRE_THROWS_NAMING(SafetensorsError,
                          SafetensorsFile(mem(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0,1e400]})", 8))),
                          kFile, "tensor 'w'", "inf");
  }
  SECTION("a string entry") {
    REQUIRE_THROWS_NAMING(SafetensorsError,
                          SafetensorsFile(mem(one_tensor(R"({"dtype":"F32","shape":["2"],"data_offsets":[0,8]})", 8))),
                          kFile, "tensor 'w' shape", "non-negative integers", "a string");
  }
  SECTION("shape not a list") {
    REQUIRE_THROWS_NAMING(SafetensorsError,
                          SafetensorsFile(mem(one_tensor(R"({"dtype":"F32","shape":2,"data_offsets":[0,8]})", 8))),
                          kFile, "tensor 'w' shape", "a list of integers", "a number");
    REQUIRE_THROWS_NAMING(SafetensorsError,
                          SafetensorsFile(mem(one_tensor(R"({"dtype":"F32","data_offsets":[0,8]})", 8))), kFile,
                          "tensor 'w' shape", "a list of integers", "nothing");
  }
}

TEST_CASE("safetensors: shape whose product overflows", "[errors][safetensors]") {
  // 2^32 * 2^32 = 2^64 elements.
  REQUIRE_THROWS_NAMING(
      SafetensorsError,
      SafetensorsFile(mem(one_tensor(R"({"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]})", 0))),
      kFile, "tensor 'w' shape", "fits in 62 bits", "overflow");
  // Many moderate dimensions.
  REQUIRE_THROWS_NAMING(
      SafetensorsError,
      SafetensorsFile(mem(one_tensor(
          R"({"dtype":"U8","shape":[65536,65536,65536,65536,65536],"data_offsets":[0,0]})", 0))),
      kFile, "tensor 'w' shape", "overflow");
}

TEST_CASE("safetensors: element count fits but numel * dtype size overflows 64 bits", "[errors][safetensors]") {
  // numel = 2^31 * 2^30 = 2^61 passes the 62-bit element check, but 2^61 * 8 bytes
  // (F64) = 2^64 wraps to 0 in uint64 -- which then "matches" data_offsets [0, 0].
  // The file must be rejected, not parsed into a view of 2^61 elements over 0 bytes.
  const Bytes f64 = one_tensor(R"({"dtype":"F64","shape":[2147483648,1073741824],"data_offsets":[0,0]})", 0);
  CHECK_THROWS_AS(SafetensorsFile(mem(f64)), SafetensorsError);
  // Same with I32: 2^31 * 2^31 = 2^62 elements, * 4 bytes = 2^64.
  const Bytes i32 = one_tensor(R"({"dtype":"I32","shape":[2147483648,2147483648],"data_offsets":[0,0]})", 0);
  CHECK_THROWS_AS(SafetensorsFile(mem(i32)), SafetensorsError);
}

TEST_CASE("safetensors: data_offsets missing, malformed or reversed", "[errors][safetensors]") {
  SECTION("missing") {
    REQUIRE_THROWS_NAMING(SafetensorsError,
                          SafetensorsFile(mem(one_tensor(R"({"dtype":"F32","shape":[2]})", 8))), kFile,
                          "tensor 'w' data_offsets", "a list [begin, end]", "nothing");
  }
  SECTION("wrong length") {
    REQUIRE_THROWS_NAMING(SafetensorsError,
                          SafetensorsFile(mem(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0]})", 8))),
                          kFile, "tensor 'w' data_offsets", "a list [begin, end]");
  }
  SECTION("negative") {
    REQUIRE_THROWS_NAMING(
        SafetensorsError,
        SafetensorsFile(mem(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[-8,0]})", 8))), kFile,
        "tensor 'w' data_offsets", "non-negative integers", "-8");
  }
  SECTION("reversed") {
    REQUIRE_THROWS_NAMING(SafetensorsError,
                          SafetensorsFile(mem(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[8,0]})", 8))),
                          kFile, "tensor 'w' data_offsets", "begin <= end", "[8, 0]");
  }
}

TEST_CASE("safetensors: data_offsets past the end of the data section (truncated file)", "[errors][safetensors]") {
  const std::string entry = R"({"dtype":"F32","shape":[4],"data_offsets":[0,16]})";
  REQUIRE_NOTHROW(SafetensorsFile(mem(one_tensor(entry, 16))));  // control
  REQUIRE_THROWS_NAMING(SafetensorsError, SafetensorsFile(mem(one_tensor(entry, 12))), kFile,
                        "tensor 'w' data_offsets", "end <= 12", "16", "truncated");
}

TEST_CASE("safetensors: byte size not equal to numel * dtype size", "[errors][safetensors]") {
  REQUIRE_THROWS_NAMING(SafetensorsError,
                        SafetensorsFile(mem(one_tensor(R"({"dtype":"F32","shape":[2,3],"data_offsets":[0,20]})", 24))),
                        kFile, "tensor 'w' byte size", "24", "[2, 3]", "4 bytes", "found 20");
  REQUIRE_THROWS_NAMING(SafetensorsError,
                        SafetensorsFile(mem(one_tensor(R"({"dtype":"BF16","shape":[3],"data_offsets":[0,12]})", 12))),
                        kFile, "tensor 'w' byte size", "expected 6", "found 12");
}

TEST_CASE("safetensors: two tensors overlapping", "[errors][safetensors]") {
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})";
  REQUIRE_NOTHROW(SafetensorsFile(mem(raw_safetensors(ok, 16))));  // adjacent is fine
  const std::string bad = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  REQUIRE_THROWS_NAMING(SafetensorsError, SafetensorsFile(mem(raw_safetensors(bad, 16))), kFile, "tensor 'b'",
                        "data_offsets", "not shared", "overlap with tensor 'a'");
  // Same start, and one tensor inside another (listed in reverse order).
  const std::string inside = R"({"small":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},)"
                             R"("big":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
  REQUIRE_THROWS_NAMING(SafetensorsError, SafetensorsFile(mem(raw_safetensors(inside, 16))), kFile, "overlap",
                        "'big'", "'small'");
}

TEST_CASE("safetensors: duplicate tensor names", "[errors][safetensors]") {
  const std::string dup = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})";
  REQUIRE_THROWS_NAMING(SafetensorsError, SafetensorsFile(mem(raw_safetensors(dup, 16))), kFile, "tensor 'w'",
                        "a unique name", "a duplicate");
}

TEST_CASE("safetensors: __metadata__ with non-string values", "[errors][safetensors]") {
  const std::string tensor = R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  REQUIRE_NOTHROW(SafetensorsFile(mem(raw_safetensors("{\"__metadata__\":{\"format\":\"pt\"}," + tensor + "}", 8))));
  REQUIRE_THROWS_NAMING(SafetensorsError,
                        SafetensorsFile(mem(raw_safetensors("{\"__metadata__\":{\"format\":1}," + tensor + "}", 8))),
                        kFile, "__metadata__.format", "a string", "a number");
  REQUIRE_THROWS_NAMING(
      SafetensorsError,
      SafetensorsFile(mem(raw_safetensors("{\"__metadata__\":{\"nested\":{\"a\":\"b\"}}," + tensor + "}", 8))), kFile,
      "__metadata__.nested", "a string", "an object");
  REQUIRE_THROWS_NAMING(SafetensorsError,
                        SafetensorsFile(mem(raw_safetensors("{\"__metadata__\":[\"pt\"]," + tensor + "}", 8))), kFile,
                        "__metadata__", "an object of strings", "an array");
}

TEST_CASE("safetensors: files on disk", "[errors][safetensors]") {
  TempDir dir;
  const std::vector<StTensor> tensors = {{"x", "F32", {3}, f32_bytes({1.0f, 2.0f, 3.0f})}};
  const Bytes good = serialize_safetensors(tensors);

  SECTION("a valid file opens through mmap and its views read the file") {
    const std::string path = (dir / "good.safetensors").string();
    write_file(path, good);
    const SafetensorsFile st(path);
    REQUIRE(st.path() == path);
    const gemma3::TensorView& x = st.at("x");
    float v[3];
    std::memcpy(v, x.data, 12);
    CHECK(v[0] == 1.0f);
    CHECK(v[1] == 2.0f);
    CHECK(v[2] == 3.0f);
  }
  SECTION("a truncated file names its full path") {
    const std::string path = (dir / "cut.safetensors").string();
    write_file(path, Bytes(good.begin(), good.end() - 4));
    REQUIRE_THROWS_NAMING(SafetensorsError, SafetensorsFile(path), path, "tensor 'x' data_offsets", "end <= 8",
                          "12", "truncated");
  }
  SECTION("a header length beyond the file on disk") {
    const std::string path = (dir / "short.safetensors").string();
    write_file(path, Bytes(good.begin(), good.begin() + 12));
    REQUIRE_THROWS_NAMING(SafetensorsError, SafetensorsFile(path), path, "header length", "at most 4 bytes",
                          "truncated");
  }
  SECTION("an empty file") {
    const std::string path = (dir / "empty.safetensors").string();
    write_file(path, Bytes{});
    REQUIRE_THROWS_NAMING(SafetensorsError, SafetensorsFile(path), path, "at least 8 bytes", "0 bytes");
  }
  SECTION("a missing file") {
    const std::string path = (dir / "nope.safetensors").string();
    REQUIRE_THROWS_NAMING(gemma3::FileError, SafetensorsFile(path), path, "cannot open");
  }
}

// =============================================================================
// config.json
// =============================================================================

TEST_CASE("config: a full gemma3_text config parses (positive control)", "[errors][config]") {
  const gemma3::Gemma3TextConfig c = parse(tiny_config_fields());
  CHECK(c.vocab_size == kVocab);
  CHECK(c.hidden_size == kHidden);
  CHECK(c.intermediate_size == kInter);
  CHECK(c.num_hidden_layers == kLayers);
  CHECK(c.num_attention_heads == kHeads);
  CHECK(c.num_key_value_heads == kKvHeads);
  CHECK(c.head_dim == kHeadDim);
  CHECK(c.sliding_window == 2);
  CHECK(c.max_position_embeddings == 32);
  CHECK(c.query_pre_attn_scalar == 4.0);
  REQUIRE(c.layer_types.size() == 2);
  CHECK(c.layer_types[0] == gemma3::LayerType::sliding_attention);
  CHECK(c.layer_types[1] == gemma3::LayerType::full_attention);
  CHECK(c.rms_norm_eps == 1e-6);
  CHECK_FALSE(c.rope_scaling.has_value());

  // The same fields under text_config with model_type "gemma3" (multimodal file).
  JsonFields text = tiny_config_fields();
  text.erase("model_type").erase("architectures");
  JsonFields mm;
  mm.set("model_type", "\"gemma3\"").set("text_config", text.str());
  const gemma3::Gemma3TextConfig m = parse(mm);
  CHECK(m.hidden_size == kHidden);
  CHECK(m.layer_types == c.layer_types);

  // v5 rope_parameters with a linear-scaled global RoPE.
  JsonFields v5 = tiny_config_fields();
  v5.erase("rope_theta").erase("rope_local_base_freq").erase("rope_scaling");
  v5.set("rope_parameters", R"({"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})");
  const gemma3::Gemma3TextConfig r = parse(v5);
  REQUIRE(r.rope_scaling.has_value());
  CHECK(r.rope_scaling->factor == 8.0);
}

TEST_CASE("config: missing required field", "[errors][config]") {
  for (const char* field : {"hidden_size", "vocab_size", "num_hidden_layers", "head_dim", "sliding_window"}) {
    INFO("field " << field);
    JsonFields f = tiny_config_fields();
    f.erase(field);
    REQUIRE_THROWS_NAMING(ConfigError, parse(f), "config.json", std::string("field '") + field + "'",
                          "an integer", "nothing (the field is missing)");
  }
}

TEST_CASE("config: wrong type", "[errors][config]") {
  REQUIRE_THROWS_NAMING(ConfigError, parse(tiny_config_fields().set("hidden_size", "\"8\"")), "config.json",
                        "field 'hidden_size'", "expected an integer", "found \"8\"");
  REQUIRE_THROWS_NAMING(ConfigError, parse(tiny_config_fields().set("hidden_size", "[8]")), "config.json",
                        "field 'hidden_size'", "an integer", "an array");
  REQUIRE_THROWS_NAMING(ConfigError, parse(tiny_config_fields().set("rms_norm_eps", "\"1e-6\"")), "config.json",
                        "field 'rms_norm_eps'", "a number", "\"1e-6\"");
  REQUIRE_THROWS_NAMING(ConfigError, parse(tiny_config_fields().set("tie_word_embeddings", "1")), "config.json",
                        "field 'tie_word_embeddings'", "true or false", "1");
  REQUIRE_THROWS_NAMING(ConfigError, parse(tiny_config_fields().set("layer_types", "\"sliding_attention\"")),
                        "config.json", "field 'layer_types'", "a list of strings", "\"sliding_attention\"");
}

TEST_CASE("config: non-integer where an integer is needed", "[errors][config]") {
  REQUIRE_THROWS_NAMING(ConfigError, parse(tiny_config_fields().set("hidden_size", "8.5")), "config.json",
                        "field 'hidden_size'", "an integer", "8.5");
  REQUIRE_THROWS_NAMING(ConfigError, parse(tiny_config_fields().set("num_attention_heads", "2.25")), "config.json",
                        "field 'num_attention_heads'", "an integer", "2.25");
}

TEST_CASE("config: eos_token_id entries must be integers that fit an int", "[errors][config]") {
  CHECK(parse(tiny_config_fields().set("eos_token_id", "[1, 106]")).eos_token_id == std::vector<int>{1, 106});
  // 1.5 is silently truncated to 1 today; 1e12 goes through int(double) out of
  // range, which is undefined behaviour ([conv.fpint]).
  CHECK_THROWS_AS(parse(tiny_config_fields().set("eos_token_id", "1.5")), ConfigError);
  CHECK_THROWS_AS(parse(tiny_config_fields().set("eos_token_id", "[1, 1.5]")), ConfigError);
  CHECK_THROWS_AS(parse(tiny_config_fields().set("eos_token_id", "[1e12]")), ConfigError);
  CHECK_THROWS_AS(parse(tiny_config_fields().set("eos_token_id", "1e12")), ConfigError);
}

TEST_CASE("config: absurd values", "[errors][config]") {
  SECTION("hidden_size 0") {
    REQUIRE_THROWS_NAMING(ConfigError, parse(tiny_config_fields().set("hidden_size", "0")), "config.json",
                          "field 'hidden_size'", "an integer in [1, ", "found 0");
  }
  SECTION("hidden_size negative") {
    REQUIRE_THROWS_NAMING(ConfigError, parse(tiny_config_fields().set("hidden_size", "-8")), "config.json",
                          "field 'hidden_size'", "an integer in [1, ", "found -8");
  }
  SECTION("hidden_size 1e12") {
    REQUIRE_THROWS_NAMING(ConfigError, parse(tiny_config_fields().set("hidden_size", "1e12")), "config.json",
                          "field 'hidden_size'", "an integer", "1e+12");
    REQUIRE_THROWS_NAMING(ConfigError, parse(tiny_config_fields().set("hidden_size", "1000000000000")),
                          "config.json", "field 'hidden_size'", "an integer", "1e+12");
  }
  SECTION("hidden_size above the cap but inside int") {
    REQUIRE_THROWS_NAMING(ConfigError, parse(tiny_config_fields().set("hidden_size", "70000")), "config.json",
                          "field 'hidden_size'", "an integer in [1, 65536]", "found 70000");
  }
  SECTION("vocab_size 0") {
    REQUIRE_THROWS_NAMING(ConfigError, parse(tiny_config_fields().set("vocab_size", "0")), "config.json",
                          "field 'vocab_size'", "found 0");
  }
  SECTION("num_attention_heads not a multiple of num_key_value_heads") {
    REQUIRE_THROWS_NAMING(
        ConfigError,
        parse(tiny_config_fields().set("num_attention_heads", "3").set("num_key_value_heads", "2")), "config.json",
        "field 'num_key_value_heads'", "a divisor of num_attention_heads = 3", "found 2");
  }
  SECTION("odd head_dim") {
    REQUIRE_THROWS_NAMING(ConfigError, parse(tiny_config_fields().set("head_dim", "5")), "config.json",
                          "field 'head_dim'", "an even number", "found 5");
  }
  SECTION("rms_norm_eps 0") {
    REQUIRE_THROWS_NAMING(ConfigError, parse(tiny_config_fields().set("rms_norm_eps", "0")), "config.json",
                          "field 'rms_norm_eps'", "(0, 1]", "found 0");
  }
  SECTION("rms_norm_eps negative") {
    REQUIRE_THROWS_NAMING(ConfigError, parse(tiny_config_fields().set("rms_norm_eps", "-0.5")), "config.json",
                          "field 'rms_norm_eps'", "(0, 1]", "found -0.5");
  }
  SECTION("layer_types with the wrong length") {
    REQUIRE_THROWS_NAMING(
        ConfigError,
        parse(tiny_config_fields().set("layer_types",
                                       R"(["sliding_attention", "sliding_attention", "full_attention"])")),
        "config.json", "field 'layer_types'", "2 entries (num_hidden_layers)", "found 3");
    REQUIRE_THROWS_NAMING(ConfigError, parse(tiny_config_fields().set("layer_types", "[]")), "config.json",
                          "field 'layer_types'", "2 entries", "found 0");
  }
  SECTION("layer_types with an unknown string") {
    REQUIRE_THROWS_NAMING(
        ConfigError, parse(tiny_config_fields().set("layer_types", R"(["sliding_attention", "chunked_attention"])")),
        "config.json", "field 'layer_types[1]'", "\"full_attention\" or \"sliding_attention\"",
        "\"chunked_attention\"");
  }
  SECTION("unknown rope_type: yarn") {
    REQUIRE_THROWS_NAMING(
        ConfigError, parse(tiny_config_fields().set("rope_scaling", R"({"rope_type": "yarn", "factor": 8.0})")),
        "config.json", "field 'rope_scaling.rope_type'", "\"default\" or \"linear\"", "\"yarn\"");
    // the older spelling "type"
    REQUIRE_THROWS_NAMING(
        ConfigError, parse(tiny_config_fields().set("rope_scaling", R"({"type": "dynamic", "factor": 2.0})")),
        "config.json", "rope_scaling", "\"dynamic\"");
    JsonFields v5 = tiny_config_fields();
    v5.set("rope_parameters", R"({"full_attention": {"rope_type": "yarn", "factor": 8.0, "rope_theta": 1e6},
                                  "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}})");
    REQUIRE_THROWS_NAMING(ConfigError, parse(v5), "config.json", "field 'rope_parameters.full_attention.rope_type'",
                          "\"default\" or \"linear\"", "\"yarn\"");
  }
  SECTION("rope_parameters with a scaled sliding_attention") {
    JsonFields v5 = tiny_config_fields();
    v5.set("rope_parameters", R"({"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
                                  "sliding_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e4}})");
    REQUIRE_THROWS_NAMING(ConfigError, parse(v5), "config.json", "rope_parameters.sliding_attention.rope_type",
                          "\"default\"", "never scaled", "\"linear\"");
  }
  SECTION("rope_parameters missing a layer type") {
    JsonFields v5 = tiny_config_fields();
    v5.set("rope_parameters", R"({"full_attention": {"rope_type": "default", "rope_theta": 1e6}})");
    REQUIRE_THROWS_NAMING(ConfigError, parse(v5), "config.json", "field 'rope_parameters'", "\"sliding_attention\"");
  }
}

TEST_CASE("config: model_type missing or not Gemma 3", "[errors][config]") {
  JsonFields missing = tiny_config_fields();
  missing.erase("model_type");
  REQUIRE_THROWS_NAMING(ConfigError, parse(missing), "config.json", "field 'model_type'",
                        "\"gemma3_text\" or \"gemma3\"", "nothing (the field is missing)");
  REQUIRE_THROWS_NAMING(ConfigError, parse(tiny_config_fields().set("model_type", "\"llama\"")), "config.json",
                        "field 'model_type'", "\"gemma3_text\" or \"gemma3\"", "\"llama\"");
  REQUIRE_THROWS_NAMING(ConfigError, parse(tiny_config_fields().set("model_type", "3")), "config.json",
                        "field 'model_type'", "a string", "3");
}

TEST_CASE("config: text_config missing for model_type gemma3", "[errors][config]") {
  JsonFields mm;
  mm.set("model_type", "\"gemma3\"").set("vision_config", "{}");
  REQUIRE_THROWS_NAMING(ConfigError, parse(mm), "config.json", "field 'text_config'", "an object",
                        "nothing (the field is missing)");
  mm.set("text_config", "[]");
  REQUIRE_THROWS_NAMING(ConfigError, parse(mm), "config.json", "field 'text_config'", "an object", "an array");
  // An error inside text_config carries the prefix.
  mm.set("text_config", R"({"hidden_size": "big"})");
  REQUIRE_THROWS_NAMING(ConfigError, parse(mm), "config.json", "field 'text_config.hidden_size'", "an integer",
                        "\"big\"");
}

TEST_CASE("config: top level not an object", "[errors][config]") {
  REQUIRE_THROWS_NAMING(ConfigError, gemma3::parse_config_json("[1, 2]", "config.json"), "config.json",
                        "a JSON object", "an array");
  REQUIRE_THROWS_NAMING(ConfigError, gemma3::parse_config_json("42", "config.json"), "config.json",
                        "a JSON object", "a number");
}

TEST_CASE("config: invalid JSON", "[errors][config]") {
  const std::string full = tiny_config_fields().str();
  REQUIRE_THROWS_NAMING(ConfigError, gemma3::parse_config_json(full.substr(0, full.size() / 2), "config.json"),
                        "config.json", "invalid JSON at byte", "expected", "found");
  REQUIRE_THROWS_NAMING(ConfigError, gemma3::parse_config_json(R"({"model_type": "gemma3_text",})", "config.json"),
                        "config.json", "invalid JSON at byte", "a string key", "'}'");
  REQUIRE_THROWS_NAMING(ConfigError, gemma3::parse_config_json(R"({"a\x": 1})", "config.json"), "config.json",
                        "invalid JSON", "a valid escape", "'x'");
  REQUIRE_THROWS_NAMING(ConfigError, gemma3::parse_config_json(std::string(10000, '['), "config.json"),
                        "config.json", "nesting depth");
  REQUIRE_THROWS_NAMING(ConfigError, gemma3::parse_config_json("", "config.json"), "config.json", "invalid JSON",
                        "end of input");
}

// =============================================================================
// checkpoint folders
// =============================================================================

namespace {

void check_model_runs(const gemma3::Gemma3ForCausalLM& model) {
  auto cache = model.new_cache(8);
  const gemma3::Matrix logits = (model.forward({1, 2, 3}, cache));
  REQUIRE(logits.rows() == 3);
  REQUIRE(logits.cols() == kVocab);
  CHECK(logits.allFinite());
  CHECK(logits.cwiseAbs().maxCoeff() > 0.0f);
  CHECK(cache.length() == 3);
}

}  // namespace

TEST_CASE("checkpoint: a valid tiny folder loads and runs (positive control)", "[errors][checkpoint]") {
  SECTION("single file, model. prefix") {
    TempDir dir;
    const std::vector<StTensor> tensors = tiny_tensors("model.");
    write_checkpoint(dir.path(), tensors);
    const gemma3::Gemma3ForCausalLM model = gemma3::load_hf_model(dir.str());
    CHECK(model.config().hidden_size == kHidden);
    CHECK(model.config().num_hidden_layers == kLayers);
    // The embedding is a view of the bytes we wrote.
    std::vector<float> row(kHidden);
    dequantize_row(model.weights().embed_tokens, 3, row.data());
    const std::vector<float> expected = pattern(std::size_t(kVocab * kHidden), 0);
    for (int c = 0; c < kHidden; ++c) CHECK(row[std::size_t(c)] == expected[std::size_t(3 * kHidden + c)]);
    check_model_runs(model);
  }
  SECTION("single file, language_model.model. prefix, with extra tensors ignored") {
    TempDir dir;
    std::vector<StTensor> tensors = tiny_tensors("language_model.model.");
    tensors.push_back(f32_tensor("vision_tower.something.weight", {2, 2}, 99));
    tensors.push_back(f32_tensor("lm_head.weight", {kVocab, kHidden}, 98));
    write_checkpoint(dir.path(), tensors);
    check_model_runs(gemma3::load_hf_model(dir.str()));
  }
  SECTION("sharded with an index") {
    TempDir dir;
    write_sharded_checkpoint(dir.path(), tiny_tensors("model.language_model."));
    check_model_runs(gemma3::load_hf_model(dir.str()));
  }
}

TEST_CASE("checkpoint: no weights file at all", "[errors][checkpoint]") {
  TempDir dir;
  write_file(dir / "config.json", tiny_config_fields().str());
  REQUIRE_THROWS_NAMING(CheckpointError, gemma3::load_hf_model(dir.str()), dir.str(), "model.safetensors",
                        "model.safetensors.index.json", "found neither");
}

TEST_CASE("checkpoint: config.json missing or invalid", "[errors][checkpoint]") {
  TempDir dir;
  write_file(dir / "model.safetensors", serialize_safetensors(tiny_tensors()));
  const std::string config_path = (dir / "config.json").string();
  REQUIRE_THROWS_NAMING(ConfigError, gemma3::load_hf_model(dir.str()), config_path, "cannot open");
  write_file(dir / "config.json", tiny_config_fields().set("hidden_size", "\"8\"").str());
  REQUIRE_THROWS_NAMING(ConfigError, gemma3::load_hf_model(dir.str()), config_path, "field 'hidden_size'",
                        "an integer", "\"8\"");
}

TEST_CASE("checkpoint: a corrupt weights file throws SafetensorsError naming it", "[errors][checkpoint]") {
  TempDir dir;
  write_checkpoint(dir.path(), tiny_tensors());
  const std::string path = (dir / "model.safetensors").string();
  const Bytes full = serialize_safetensors(tiny_tensors());
  write_file(path, Bytes(full.begin(), full.end() - 100));
  REQUIRE_THROWS_NAMING(SafetensorsError, gemma3::load_hf_model(dir.str()), path, "data_offsets", "truncated");
}

TEST_CASE("checkpoint: a tensor missing", "[errors][checkpoint]") {
  TempDir dir;
  std::vector<StTensor> tensors = tiny_tensors();
  erase_tensor(tensors, "model.layers.1.mlp.up_proj.weight");
  write_checkpoint(dir.path(), tensors);
  REQUIRE_THROWS_NAMING(CheckpointError, gemma3::load_hf_model(dir.str()), dir.str(),
                        "tensor 'layers.1.mlp.up_proj.weight'", "expected present", "found missing");
}

TEST_CASE("checkpoint: a tensor whose shape disagrees with the config", "[errors][checkpoint]") {
  TempDir dir;
  std::vector<StTensor> tensors = tiny_tensors();
  // k_proj should be [num_key_value_heads * head_dim, hidden] = [4, 8]; write [8, 8].
  tensor_named(tensors, "model.layers.0.self_attn.k_proj.weight") = f32_tensor("model.layers.0.self_attn.k_proj.weight",
                                                                               {8, 8}, 7);
  write_checkpoint(dir.path(), tensors);
  const std::string path = (dir / "model.safetensors").string();
  REQUIRE_THROWS_NAMING(CheckpointError, gemma3::load_hf_model(dir.str()), path,
                        "tensor 'model.layers.0.self_attn.k_proj.weight'", "expected shape [4, 8]", "found [8, 8]");

  // A transposed matrix (same element count) is caught too.
  std::vector<StTensor> transposed = tiny_tensors();
  tensor_named(transposed, "model.layers.1.mlp.down_proj.weight").shape = {kInter, kHidden};
  write_checkpoint(dir.path(), transposed);
  REQUIRE_THROWS_NAMING(CheckpointError, gemma3::load_hf_model(dir.str()), path,
                        "tensor 'model.layers.1.mlp.down_proj.weight'", "expected shape [8, 16]", "found [16, 8]");

  // A vector with the wrong length.
  std::vector<StTensor> norm = tiny_tensors();
  tensor_named(norm, "model.norm.weight") = f32_tensor("model.norm.weight", {kHidden + 1}, 1);
  write_checkpoint(dir.path(), norm);
  REQUIRE_THROWS_NAMING(CheckpointError, gemma3::load_hf_model(dir.str()), path, "tensor 'model.norm.weight'",
                        "expected shape [8]", "found [9]");
}

TEST_CASE("checkpoint: an unsupported dtype for a weight", "[errors][checkpoint]") {
  TempDir dir;
  std::vector<StTensor> tensors = tiny_tensors();
  tensor_named(tensors, "model.norm.weight").dtype = "I32";  // same byte size as F32
  write_checkpoint(dir.path(), tensors);
  const std::string path = (dir / "model.safetensors").string();
  REQUIRE_THROWS_NAMING(CheckpointError, gemma3::load_hf_model(dir.str()), path, "tensor 'model.norm.weight'",
                        "expected dtype F32, BF16 or F16", "found I32");

  std::vector<StTensor> f64 = tiny_tensors();
  StTensor& q = tensor_named(f64, "model.layers.0.self_attn.q_proj.weight");
  q.dtype = "F64";
  q.bytes.resize(q.bytes.size() * 2);
  write_checkpoint(dir.path(), f64);
  REQUIRE_THROWS_NAMING(CheckpointError, gemma3::load_hf_model(dir.str()), path,
                        "tensor 'model.layers.0.self_attn.q_proj.weight'", "F32, BF16 or F16", "found F64");
}

TEST_CASE("checkpoint: index.json weight_map points at a missing shard", "[errors][checkpoint]") {
  TempDir dir;
  JsonFields weight_map;
  write_sharded_checkpoint(dir.path(), tiny_tensors(), &weight_map);
  write_index(dir.path(), weight_map);
  REQUIRE_NOTHROW(gemma3::load_hf_model(dir.str()));  // control

  weight_map.set("model.norm.weight", "\"model-00003-of-00002.safetensors\"");
  write_index(dir.path(), weight_map);
  const std::string index_path = (dir / "model.safetensors.index.json").string();
  // Whatever is thrown must at least name the missing shard...
  try {
    gemma3::load_hf_model(dir.str());
    FAIL("a weight_map entry naming a missing shard was accepted");
  } catch (const std::runtime_error& e) {
    INFO("message: " << e.what());
    CHECK(std::string(e.what()).find("model-00003-of-00002.safetensors") != std::string::npos);
  }
  // ...and, as a checkpoint-structure error, be a CheckpointError naming the index
  // file, the tensor that points there, and the shard it expected.
  REQUIRE_THROWS_NAMING(CheckpointError, gemma3::load_hf_model(dir.str()), index_path, "model.norm.weight",
                        "model-00003-of-00002.safetensors");
}

TEST_CASE("checkpoint: index.json weight_map points outside the folder", "[errors][checkpoint]") {
  TempDir outer;
  const std::filesystem::path ckpt = outer / "ckpt";
  std::filesystem::create_directory(ckpt);
  JsonFields weight_map;
  write_sharded_checkpoint(ckpt, tiny_tensors(), &weight_map);
  write_index(ckpt, weight_map);
  REQUIRE_NOTHROW(gemma3::load_hf_model(ckpt.string()));  // control
  const std::string index_path = (ckpt / "model.safetensors.index.json").string();
  // Rejected even though the escaping file exists and is a valid shard.
  write_file(outer / "evil.safetensors", serialize_safetensors(tiny_tensors()));
  for (const char* evil : {"../evil.safetensors", "/tmp/evil.safetensors", "..", "", "sub\\\\x.safetensors"}) {
    INFO("shard name: " << evil);
    weight_map.set("model.norm.weight", std::string("\"") + evil + "\"");
    write_index(ckpt, weight_map);
    REQUIRE_THROWS_NAMING(CheckpointError, gemma3::load_hf_model(ckpt.string()), index_path,
                          "weight_map['model.norm.weight']", "a file name inside the folder");
  }
  weight_map.set("model.norm.weight", "\"../evil.safetensors\"");
  write_index(ckpt, weight_map);
  REQUIRE_THROWS_NAMING(CheckpointError, gemma3::load_hf_model(ckpt.string()), "found \"../evil.safetensors\"");
}

TEST_CASE("checkpoint: index.json lists a tensor that is not in its shard", "[errors][checkpoint]") {
  TempDir dir;
  JsonFields weight_map;
  const auto shards = write_sharded_checkpoint(dir.path(), tiny_tensors(), &weight_map);
  // norm.weight lives in shard 1; the index says shard 2.
  weight_map.set("model.norm.weight", "\"" + shards.second + "\"");
  write_index(dir.path(), weight_map);
  const std::string index_path = (dir / "model.safetensors.index.json").string();
  REQUIRE_THROWS_NAMING(CheckpointError, gemma3::load_hf_model(dir.str()), index_path,
                        "weight_map['model.norm.weight']", shards.second, "found it missing");

  // A name in the index that no shard holds.
  weight_map.set("model.norm.weight", "\"" + shards.first + "\"").set("model.ghost.weight", "\"" + shards.first + "\"");
  write_index(dir.path(), weight_map);
  REQUIRE_THROWS_NAMING(CheckpointError, gemma3::load_hf_model(dir.str()), index_path,
                        "weight_map['model.ghost.weight']", shards.first, "found it missing");
}

TEST_CASE("checkpoint: malformed index.json", "[errors][checkpoint]") {
  TempDir dir;
  JsonFields weight_map;
  write_sharded_checkpoint(dir.path(), tiny_tensors(), &weight_map);
  const std::string index_path = (dir / "model.safetensors.index.json").string();
  write_file(index_path, std::string("{\"weight_map\": {"));
  REQUIRE_THROWS_NAMING(CheckpointError, gemma3::load_hf_model(dir.str()), index_path, "invalid JSON");
  write_file(index_path, std::string("{\"metadata\": {}}"));
  REQUIRE_THROWS_NAMING(CheckpointError, gemma3::load_hf_model(dir.str()), index_path, "field 'weight_map'",
                        "an object", "nothing");
  weight_map.set("model.norm.weight", "3");
  write_index(dir.path(), weight_map);
  REQUIRE_THROWS_NAMING(CheckpointError, gemma3::load_hf_model(dir.str()), index_path,
                        "weight_map['model.norm.weight']", "a file name", "a number");
}

TEST_CASE("checkpoint: two tensors mapping to the same name under different prefixes", "[errors][checkpoint]") {
  SECTION("in one file") {
    TempDir dir;
    std::vector<StTensor> tensors = tiny_tensors("model.");
    tensors.push_back(f32_tensor("language_model.model.norm.weight", {kHidden}, 42));
    write_checkpoint(dir.path(), tensors);
    const std::string path = (dir / "model.safetensors").string();
    REQUIRE_THROWS_NAMING(CheckpointError, gemma3::load_hf_model(dir.str()), path, "'norm.weight'",
                          "language_model.model.norm.weight", "expected one tensor", "a second one");
  }
  SECTION("across shards") {
    TempDir dir;
    std::vector<StTensor> tensors = tiny_tensors("model.");
    // The duplicate sits in shard 1, the original (model.layers.1.*) in shard 2.
    tensors.push_back(f32_tensor("model.language_model.layers.1.input_layernorm.weight", {kHidden}, 43));
    JsonFields weight_map;
    const auto shards = write_sharded_checkpoint(dir.path(), tensors, &weight_map, [](const std::string& name) {
      return name.rfind("model.layers.1.", 0) == 0;
    });
    write_index(dir.path(), weight_map);
    REQUIRE_THROWS_NAMING(CheckpointError, gemma3::load_hf_model(dir.str()), "'layers.1.input_layernorm.weight'",
                          "model.layers.1.input_layernorm.weight", "expected one tensor", "a second one",
                          shards.first, shards.second);
  }
}

// =============================================================================
// forward() input checks
// =============================================================================

TEST_CASE("forward: token ids outside the vocabulary and prompts longer than the cache", "[errors][model]") {
  TempDir dir;
  write_checkpoint(dir.path(), tiny_tensors());
  const gemma3::Gemma3ForCausalLM model = gemma3::load_hf_model(dir.str());

  SECTION("token id == vocab_size") {
    auto cache = model.new_cache(8);
    REQUIRE_THROWS_NAMING(std::out_of_range, (model.forward({1, kVocab, 3}, cache)), "token id 16", "position 1",
                          "[0, 16)");
    CHECK(cache.length() == 0);  // nothing was consumed
    check_model_runs(model);
  }
  SECTION("negative token id") {
    auto cache = model.new_cache(8);
    REQUIRE_THROWS_NAMING(std::out_of_range, (model.forward({-1}, cache)), "token id -1", "[0, 16)");
    REQUIRE_THROWS_NAMING(std::out_of_range, model.decode(1000000, cache), "token id 1000000");
    CHECK(cache.length() == 0);
  }
  SECTION("prompt longer than the cache") {
    auto cache = model.new_cache(4);
    REQUIRE_THROWS_NAMING(std::length_error, (model.forward({1, 2, 3, 4, 5}, cache)), "5 tokens", "position 0",
                          "KV cache's 4 positions");
    CHECK(cache.length() == 0);
    // Filling the cache exactly is fine; one more token is not.
    REQUIRE_NOTHROW((model.forward({1, 2, 3, 4}, cache)));
    REQUIRE_THROWS_NAMING(std::length_error, model.decode(5, cache), "1 token ", "position 4",
                          "KV cache's 4 positions");
  }
  SECTION("empty prompt") {
    auto cache = model.new_cache(4);
    REQUIRE_THROWS_AS((model.forward({}, cache)), std::invalid_argument);
  }
}
