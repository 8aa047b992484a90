// GGUF block weights kept on the device (cuda/src/quantized.cu, Options::keep_quantized)
// against the library's CPU functions, for every block type:
//   - gemv_blocks: each y within float32 rounding of the CPU's float64 dot of the
//     dequantized row (cuda_test::gemv_misses): |y - dot| <= 1e-5 sum |w x|, a bound
//     about four times the worst rounding of the GEMV's ~40 float32 steps; at
//     1 to 8 tokens (chunks of 4), widths of 8 and 40 parts, 37 rows (not a whole
//     number of CTAs), x 16-byte aligned and not;
//   - dequantize_bf16 gives f32_to_bf16(dequantize_row) bit for bit, from any first row;
//   - embed_blocks gives embedding.hpp's embed() bit for bit;
//   - the launchers refuse a plain type, rows that are not whole blocks and a token
//     count outside 1..8 before any CUDA call ("[host]": run on every build machine);
//   - a random model whose every weight is a block type, through the backend with
//     keep_quantized: prompts of 150 tokens (the bf16-copy GEMM path, in chunks) and 5
//     (the GEMV), decode steps, a decode batch of 10 (logits through the GEMM path) and
//     of 3 (the GEMV), against the reference backend within the tiny fixtures' bound;
//     greedy ids from the device equal the argmax of the same backend's logits.
// Output buffers start as NaN bytes (DeviceBuffer): a value never written fails.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "catch.hpp"
#include "cuda_test_util.hpp"
#include "fixture_helpers.hpp"
#include "quantized.hpp"
#include "random_model.hpp"
#include "test_quant_helpers.hpp"

#include "gemma3/backends/reference.hpp"
#include "gemma3/cuda/backend.hpp"
#include "gemma3/embedding.hpp"
#include "gemma3/model.hpp"
#include "gemma3/quant/quant.hpp"

using cuda_test::DeviceBuffer;
using gemma3::DType;

namespace {

std::vector<unsigned char> random_rows(DType t, int rows, int cols, quant_test::Rng& rng) {
  return quant_test::random_blocks(t, rows, cols, rng);
}

// The blocks as device bytes.
DeviceBuffer<unsigned char> on_device(const std::vector<unsigned char>& bytes) { return DeviceBuffer<unsigned char>(bytes); }

}  // namespace

TEST_CASE("blocks: the GEMV of every block type is the CPU's dot within float32 rounding", "[cuda][ops][blocks]") {
  quant_test::Rng rng(11);
  const int rows = 37;
  for (DType t : quant_test::block_types()) {
    for (int cols : {256, 1280}) {  // 8 parts (most lanes idle), 40 (lanes take two)
      const std::vector<unsigned char> bytes = random_rows(t, rows, cols, rng);
      const gemma3::Weight w = quant_test::weight_view(t, rows, cols, bytes);
      const DeviceBuffer<unsigned char> wd = on_device(bytes);
      for (int T : {1, 3, 4, 5, 8}) {
        for (bool aligned : {true, false}) {
          INFO(gemma3::dtype_name(t) << ", cols " << cols << ", " << T << " tokens, x "
                                     << (aligned ? "16-byte aligned" : "4 bytes off"));
          const std::vector<float> x = quant_test::random_floats(std::size_t(T) * cols, rng);
          std::vector<float> padded(x.size() + 1, 0.f);
          std::memcpy(padded.data() + (aligned ? 0 : 1), x.data(), x.size() * sizeof(float));
          const DeviceBuffer<float> xd(padded);
          DeviceBuffer<float> y(std::size_t(T) * rows);
          gemma3::cuda::gemv_blocks(t, wd.get(), rows, cols, xd.get() + (aligned ? 0 : 1), T, y.get(), nullptr);
          cuda_test::sync();
          double worst = 0;
          const int bad = cuda_test::gemv_misses(w, x.data(), T, y.download(), 1, &worst);
          INFO("worst |y - dot| / sum |w x| = " << worst);
          CHECK(bad == 0);
        }
      }
    }
  }
}

TEST_CASE("blocks: gemv_blocks_many gives each weight gemv_blocks' bits, in one launch", "[cuda][ops][blocks]") {
  // q / k / v shaped: rows of other counts (one not a whole CTA of 4 warps), each weight
  // of its own block type; every block type takes every place in turn.
  quant_test::Rng rng(12);
  const std::vector<DType> types = quant_test::block_types();
  const int cols = 512;
  const std::vector<int> rows = {40, 9, 16, 3};
  for (std::size_t first = 0; first < types.size(); ++first)
    for (int n : {2, 3, 4}) {
      std::vector<DeviceBuffer<unsigned char>> wd;
      std::vector<DType> ts;
      for (int j = 0; j < n; ++j) {
        ts.push_back(types[(first + std::size_t(j) * 3) % types.size()]);
        wd.push_back(on_device(random_rows(ts.back(), rows[std::size_t(j)], cols, rng)));
      }
      for (int T : {1, 4, 6}) {
        for (bool aligned : {true, false}) {
          INFO(n << " weights from " << gemma3::dtype_name(ts[0]) << ", " << T << " tokens, x "
                 << (aligned ? "16-byte aligned" : "4 bytes off"));
          const std::vector<float> x = quant_test::random_floats(std::size_t(T) * cols, rng);
          std::vector<float> padded(x.size() + 1, 0.f);
          std::memcpy(padded.data() + (aligned ? 0 : 1), x.data(), x.size() * sizeof(float));
          const DeviceBuffer<float> xd(padded);
          const float* xp = xd.get() + (aligned ? 0 : 1);
          std::vector<DeviceBuffer<float>> alone, together;
          std::vector<gemma3::cuda::GemvJob> jobs;
          for (int j = 0; j < n; ++j) {
            const int r = rows[std::size_t(j)];
            alone.emplace_back(std::size_t(T) * r);
            together.emplace_back(std::size_t(T) * r);
            gemma3::cuda::gemv_blocks(ts[std::size_t(j)], wd[std::size_t(j)].get(), r, cols, xp, T,
                                      alone.back().get(), nullptr);
            jobs.push_back({ts[std::size_t(j)], wd[std::size_t(j)].get(), r, together.back().get()});
          }
          gemma3::cuda::gemv_blocks_many(jobs.data(), n, cols, xp, T, nullptr);
          cuda_test::sync();
          for (int j = 0; j < n; ++j) {
            const std::vector<float> a = alone[std::size_t(j)].download(), b = together[std::size_t(j)].download();
            CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
          }
        }
      }
    }
}

TEST_CASE("blocks: dequantize_bf16 gives f32_to_bf16 of dequantize_row, bit for bit", "[cuda][ops][blocks]") {
  quant_test::Rng rng(12);
  const int rows = 21, row0 = 5, n = 13, cols = 512;
  for (DType t : quant_test::block_types()) {
    INFO(gemma3::dtype_name(t));
    const std::vector<unsigned char> bytes = random_rows(t, rows, cols, rng);
    const gemma3::Weight w = quant_test::weight_view(t, rows, cols, bytes);
    const DeviceBuffer<unsigned char> wd = on_device(bytes);
    DeviceBuffer<std::uint16_t> out(std::size_t(n) * cols);
    gemma3::cuda::dequantize_bf16(t, wd.get(), row0, n, cols, out.get(), nullptr);
    cuda_test::sync();
    const std::vector<std::uint16_t> got = out.download();
    std::vector<float> row(cols);
    int bad = 0;
    for (int r = 0; r < n; ++r) {
      gemma3::dequantize_row(w, row0 + r, row.data());
      for (int c = 0; c < cols; ++c)
        if (got[std::size_t(r) * cols + c] != gemma3::f32_to_bf16(row[std::size_t(c)])) ++bad;
    }
    CHECK(bad == 0);
  }
}

TEST_CASE("blocks: embed_blocks gives the CPU embedding bit for bit", "[cuda][ops][blocks]") {
  quant_test::Rng rng(13);
  const int vocab = 50, H = 512;
  const std::vector<int> ids = {0, vocab - 1, 7, 7, 23};
  const float scale = gemma3::embed_scale(H);
  for (DType t : quant_test::block_types()) {
    INFO(gemma3::dtype_name(t));
    const std::vector<unsigned char> bytes = random_rows(t, vocab, H, rng);
    const gemma3::Weight w = quant_test::weight_view(t, vocab, H, bytes);
    const DeviceBuffer<unsigned char> wd = on_device(bytes);
    const DeviceBuffer<int> ids_d(ids);
    DeviceBuffer<float> out(ids.size() * std::size_t(H));
    gemma3::cuda::embed_blocks(t, wd.get(), H, ids_d.get(), int(ids.size()), scale, out.get(), nullptr);
    cuda_test::sync();
    const std::vector<float> got = out.download();
    gemma3::Matrix want;
    gemma3::embed(w, ids, scale, want);  // [T, H] row-major
    CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("blocks: the launchers refuse what they cannot read, before any CUDA call", "[cuda][blocks][host]") {
  using Catch::Matchers::Contains;
  float y = 0;
  CHECK_THROWS_WITH(gemma3::cuda::gemv_blocks(DType::BF16, nullptr, 4, 64, nullptr, 1, &y, nullptr),
                    Contains("BF16 is not a GGUF block type"));
  CHECK_THROWS_WITH(gemma3::cuda::gemv_blocks(DType::Q4_K, nullptr, 4, 640, nullptr, 1, &y, nullptr),
                    Contains("rows of 640 values are not whole Q4_K blocks"));
  CHECK_THROWS_WITH(gemma3::cuda::gemv_blocks(DType::Q8_0, nullptr, 4, 64, nullptr, 0, &y, nullptr),
                    Contains("0 tokens (1 to 8)"));
  CHECK_THROWS_WITH(gemma3::cuda::gemv_blocks(DType::Q8_0, nullptr, 4, 64, nullptr, 9, &y, nullptr),
                    Contains("9 tokens (1 to 8)"));
  CHECK_THROWS_WITH(gemma3::cuda::dequantize_bf16(DType::F16, nullptr, 0, 4, 64, nullptr, nullptr),
                    Contains("F16 is not a GGUF block type"));
  CHECK_THROWS_WITH(gemma3::cuda::dequantize_bf16(DType::Q5_0, nullptr, 0, 4, 48, nullptr, nullptr),
                    Contains("rows of 48 values are not whole Q5_0 blocks"));
  CHECK_THROWS_WITH(gemma3::cuda::embed_blocks(DType::F32, nullptr, 64, nullptr, 1, 1.f, &y, nullptr),
                    Contains("F32 is not a GGUF block type"));
  gemma3::cuda::GemvJob jobs[5] = {{DType::Q8_0, nullptr, 4, &y}, {DType::Q4_K, nullptr, 4, &y},
                                    {DType::Q8_0, nullptr, 4, &y}, {DType::Q8_0, nullptr, 4, &y},
                                    {DType::Q8_0, nullptr, 4, &y}};
  CHECK_THROWS_WITH(gemma3::cuda::gemv_blocks_many(jobs, 2, 640, nullptr, 1, nullptr),
                    Contains("rows of 640 values are not whole Q4_K blocks"));
  CHECK_THROWS_WITH(gemma3::cuda::gemv_blocks_many(jobs, 5, 256, nullptr, 1, nullptr), Contains("5 weights (1 to 4)"));
  CHECK_THROWS_WITH(gemma3::cuda::gemv_blocks_many(jobs, 0, 256, nullptr, 1, nullptr), Contains("0 weights (1 to 4)"));
  CHECK_THROWS_WITH(gemma3::cuda::gemv_blocks_many(jobs, 2, 256, nullptr, 9, nullptr), Contains("9 tokens (1 to 8)"));
  jobs[0].type = DType::BF16;
  CHECK_THROWS_WITH(gemma3::cuda::gemv_blocks_many(jobs, 1, 256, nullptr, 1, nullptr),
                    Contains("BF16 is not a GGUF block type"));
  CHECK(gemma3::cuda::is_block_type(DType::Q6_K));
  CHECK_FALSE(gemma3::cuda::is_block_type(DType::F16));
}

TEST_CASE("cuda backend: a model of GGUF block weights kept on the device (keep_quantized) equals the reference",
          "[cuda][backend][model][blocks]") {
  // Gemma 3's attention shape at head_dim 256 (the tuned kernels), every linear weight a
  // block type (all eight, in turn), the tied embedding Q8_0 as in the released files.
  const gemma3::Gemma3TextConfig c = cuda_test::small_config_head_dim_256();
  quant_test::Rng rng(14);
  const std::vector<DType> types = quant_test::block_types();
  std::size_t next = 0;
  const gemma3::Gemma3TextWeights w =
      cuda_test::weights_of(c, [&](const char* name, std::int64_t rows, std::int64_t cols, cuda_test::Storage& keep) {
        const DType t = std::string(name) == "embed_tokens" ? DType::Q8_0 : types[next++ % types.size()];
        auto bytes = std::make_shared<std::vector<unsigned char>>(quant_test::random_blocks(t, rows, cols, rng));
        keep.push_back(bytes);
        return quant_test::weight_view(t, rows, cols, *bytes);
      });
  gemma3::cuda::Options o;
  o.keep_quantized = true;
  const gemma3::Gemma3ForCausalLM ref(c, w, std::make_shared<const gemma3::ReferenceBackend>());
  const gemma3::Gemma3ForCausalLM model(c, w, gemma3::cuda::make_backend(o));
  REQUIRE_THAT(model.backend().name(), Catch::Matchers::Contains("GGUF block weights as stored"));
  constexpr double kTol = 5e-2;  // the tiny fixtures' bound (test_backend.cpp)

  auto prompt_of = [&](int n) {
    std::vector<int> p;
    for (int i = 0; i < n; ++i) p.push_back((37 * i + 11 * n + 2) % c.vocab_size);
    return p;
  };
  for (int n : {150, 5}) {
    const std::vector<int> p = prompt_of(n);
    INFO("a prompt of " << n << " tokens");
    gemma3::KVCache mc = model.new_cache(n + 8), rc = ref.new_cache(n + 8), gc = model.new_cache(n + 8);
    const fixtures::Diff d = fixtures::compare(model.forward(p, mc), ref.forward(p, rc));
    INFO("prompt logits against the reference: " << d.str());
    CHECK(d.rel <= kTol);
    int id = model.prefill_greedy(p, gc);
    for (int s = 0; s < 4; ++s) {
      const gemma3::Vector got = model.decode(id, mc), want = ref.decode(id, rc);
      const fixtures::Diff ds = fixtures::compare(got.transpose(), want.transpose());
      INFO("decode step " << s << ": " << ds.str());
      CHECK(ds.rel <= kTol);
      const int greedy = model.decode_greedy(id, gc);  // the LM head's GEMV and argmax on the device
      Eigen::Index best = 0;
      got.maxCoeff(&best);
      CHECK(greedy == int(best));
      id = greedy;
    }
  }

  for (int B : {10, 3}) {  // the batch's logits: 10 rows through the GEMM path, 3 through the GEMV
    INFO("a decode batch of " << B);
    std::vector<gemma3::KVCache> mine, theirs;
    std::vector<gemma3::KVCache*> ptrs;
    for (int b = 0; b < B; ++b) {
      const std::vector<int> p = prompt_of(3 + 7 * b);
      mine.push_back(model.new_cache(int(p.size()) + 4));
      theirs.push_back(ref.new_cache(int(p.size()) + 4));
      model.prefill(p, mine.back());
      ref.prefill(p, theirs.back());
    }
    for (auto& x : mine) ptrs.push_back(&x);
    std::vector<int> feed;
    for (int b = 0; b < B; ++b) feed.push_back((5 * b + 1) % c.vocab_size);
    const gemma3::Matrix got = model.decode_batch(feed, ptrs);
    gemma3::Matrix want(got.rows(), got.cols());
    for (int b = 0; b < B; ++b) want.row(b) = ref.decode(feed[std::size_t(b)], theirs[std::size_t(b)]).transpose();
    const fixtures::Diff d = fixtures::compare(got, want);
    INFO("batch logits against the reference: " << d.str());
    CHECK(d.rel <= kTol);
  }
}
