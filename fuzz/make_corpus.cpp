// fuzz/make_corpus.cpp -- writes the committed seed corpus (fuzz/corpus/{gguf,safetensors}/).
//
//   g++ -std=c++17 -Iinclude -Itests fuzz/make_corpus.cpp -o /tmp/make_corpus && /tmp/make_corpus fuzz/corpus
//
// Seeds are small (at most ~8 KB): valid files that reach deep into the readers (a
// whole tiny gemma3 model, every GGUF value type, nested arrays, alignment 64) and a
// few invalid ones, each broken in one field. The corpus also holds python_all_types, a
// copy of tests/fixtures/gguf/python_all_types.gguf (written by gguf-py, llama.cpp's writer).
// GGUF seeds have no ".gguf" extension: the repository's .gitignore ignores *.gguf.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "test_gguf_writer.hpp"

using gguf_test::Bytes;
using gguf_test::Value;
using gguf_test::Writer;

static void save(const std::string& path, const Bytes& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  std::printf("%-60s %6zu bytes\n", path.c_str(), b.size());
}

// 8-byte little-endian header length + header + data.
static Bytes safetensors(const std::string& header, const Bytes& data, std::uint64_t length_override = ~0ull) {
  Bytes b;
  const std::uint64_t n = length_override == ~0ull ? header.size() : length_override;
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<unsigned char>((n >> (8 * i)) & 0xff));
  b.insert(b.end(), header.begin(), header.end());
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "fuzz/corpus";
  const std::string g = dir + "/gguf/", s = dir + "/safetensors/";

  // ---- GGUF: valid
  gguf_test::TinyModel tiny;  // 1 layer, Q8_0 matrices, f32 norms, tokenizer keys
  tiny.layers = 1;
  tiny.matrix_type = 8;
  tiny.inter = 32;
  Writer model = tiny.writer();
  save(g + "tiny_gemma3_q8_0", model.bytes());

  gguf_test::TinyModel tiny_f32;  // 1 layer, every tensor F32, smallest sizes the shapes allow
  tiny_f32.layers = 1;
  tiny_f32.hidden = 8;
  tiny_f32.inter = 8;
  tiny_f32.heads = 2;
  tiny_f32.kv_heads = 1;
  tiny_f32.head_dim = 4;
  tiny_f32.vocab = 6;
  Writer mf = tiny_f32.writer();
  mf.add("gemma3.attention.sliding_window_pattern", Value::bools({false}));
  mf.add("gemma3.rope.scaling.type", Value::string("linear")).add("gemma3.rope.scaling.factor", Value::f32(8.0f));
  save(g + "tiny_gemma3_f32", mf.bytes());

  Writer all;
  all.version = 2;
  all.alignment = 64;
  all.add("general.architecture", Value::string("test"))
      .add("general.alignment", Value::u32(64))
      .add("u8", Value::u8(1)).add("i8", Value::i8(-1)).add("u16", Value::u16(2)).add("i16", Value::i16(-2))
      .add("u32", Value::u32(3)).add("i32", Value::i32(-3)).add("f32", Value::f32(0.5f)).add("b", Value::boolean(true))
      .add("s", Value::string("str")).add("u64", Value::u64(4)).add("i64", Value::i64(-4)).add("f64", Value::f64(0.25))
      .add("a_str", Value::strings({"x", "y"}))
      .add("a_f32", Value::f32s({1.0f, 2.0f}))
      .add("a_bool", Value::bools({true, false}))
      .add("a_nested", Value::array(gguf_test::ARRAY, {Value::i32s({1, 2}), Value::i32s({3})}));
  all.tensor("f32", 0, {4, 2}, Bytes(32, 1))
      .tensor("f16", 1, {3}, Bytes(6, 2))
      .tensor("q4_k", 12, {256}, Bytes(144, 3))
      .tensor("q6_k", 14, {256, 1, 1, 1}, Bytes(210, 4));
  save(g + "all_types_v2_align64", all.bytes());

  // ---- GGUF: invalid, one field each
  {
    Bytes b = all.bytes();
    gguf_test::put_le(b, all.at.at("version"), 1, 4);
    save(g + "bad_version_1", b);
  }
  {
    Bytes b = all.bytes();
    gguf_test::put_le(b, all.at.at("offset:f16"), 0, 8);
    save(g + "bad_overlap", b);
  }
  {
    Bytes b = all.bytes();
    b.resize(all.at.at("tensor:q4_k") + 5);
    save(g + "bad_truncated_infos", b);
  }
  {
    Bytes b = all.bytes();
    gguf_test::put_le(b, all.at.at("value:a_str") + 4, 1ull << 40, 8);
    save(g + "bad_array_count", b);
  }
  {
    Writer w = model;
    w.tensor("blk.0.attn_q.weight", 8, {32, 16}, Bytes(34 * 16, 0));
    save(g + "bad_shape", w.bytes());
  }

  // ---- safetensors
  Bytes f32(16);
  const float a[4] = {1.0f, -2.0f, 3.5f, 4.25f};
  std::memcpy(f32.data(), a, 16);
  Bytes data = f32;
  data.insert(data.end(), {0x80, 0x3f, 0x00, 0x40, 0x40, 0x40});  // bf16 1, 2, 3
  data.insert(data.end(), {7, 0, 0, 0, 0, 0, 0, 0});
  save(s + "valid.safetensors",
       safetensors(R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
                   R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]},)"
                   R"("empty":{"dtype":"F32","shape":[0,5],"data_offsets":[22,22]},)"
                   R"("scalar":{"dtype":"I64","shape":[],"data_offsets":[22,30]}})",
                   data));
  save(s + "model_names.safetensors",
       safetensors(R"({"model.layers.0.self_attn.q_proj.weight":{"dtype":"F16","shape":[2,4],"data_offsets":[0,16]},)"
                   R"("model.norm.weight":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}}   )",
                   Bytes(32, 0x3c)));
  save(s + "bad_overlap.safetensors",
       safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                   Bytes(12, 0)));
  save(s + "bad_json.safetensors", safetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})", Bytes(4, 0)));
  save(s + "bad_length.safetensors", safetensors(R"({})", Bytes(), 1ull << 40));
  save(s + "escapes.safetensors",
       safetensors(R"({"\u00e9\n\"x\"":{"dtype":"U8","shape":[1e0],"data_offsets":[0,1]},"__metadata__":{"k":"\ud83d\ude00"}})",
                   Bytes(1, 9)));
  return 0;
}
