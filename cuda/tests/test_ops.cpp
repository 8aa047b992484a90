// The small-step kernels of cuda/src/ops.cu against the library's own CPU functions, on
// random inputs: embed (bf16 rows, exact), set_rows, RMSNorm per row and per head
// (rms_norm.hpp), RoPE at positions up to 131 000 (rope.hpp, rope_theta 1e6 and
// factor 8: angles up to ~1.3e5 rad), the residual add, the fused post-norm + residual
// add + pre-norm (bit for bit against the three kernels it stands for), GeGLU (kernels/gelu.hpp),
// float32 -> bf16 (bit for bit against gemma3::f32_to_bf16), argmax (ties, NaN and
// -inf as ReferenceBackend::argmax), and the fused qk_norm_rope against rms_norm_heads,
// rope and kv_append, bit for bit. Every output buffer starts as NaN bytes
// (DeviceBuffer), so a value a kernel never writes fails the comparison. Each shape
// is run once with a length and pointers that allow 16-byte accesses and once without
// (the kernels' one-value-at-a-time path).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "catch.hpp"
#include "cuda_test_util.hpp"
#include "attention.hpp"
#include "ops.hpp"

#include "gemma3/backends/reference.hpp"
#include "gemma3/dtype.hpp"
#include "gemma3/kernels/gelu.hpp"
#include "gemma3/rms_norm.hpp"
#include "gemma3/rope.hpp"

using cuda_test::DeviceBuffer;
using gemma3::Matrix;

namespace {

// max |got - want| / max |want| (a NaN or Inf in got counts as infinitely wrong).
double rel_error(const std::vector<float>& got, const std::vector<float>& want) {
  const cuda_test::Error e = cuda_test::compare(got, want);
  return e.non_finite ? INFINITY : e.relative;
}

Matrix as_matrix(const std::vector<float>& v, int rows, int cols) {
  return Eigen::Map<const Matrix>(v.data(), rows, cols);
}
std::vector<float> as_vector(const Matrix& m) { return std::vector<float>(m.data(), m.data() + m.size()); }

}  // namespace

TEST_CASE("ops: embed gives the bf16 rows times the scale, exactly", "[cuda][ops]") {
  std::mt19937 rng(1);
  const int vocab = 1000, T = 7;
  for (int H : {640, 36}) {  // H % 8 == 0: 16-byte loads; 36: one value at a time
    INFO("H = " << H);
    const std::vector<float> values = cuda_test::randn(std::size_t(vocab) * H, rng);
    std::vector<std::uint16_t> table(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) table[i] = gemma3::f32_to_bf16(values[i]);
    const std::vector<int> ids = {0, vocab - 1, 17, 17, 503, 2, 999};
    const float scale = std::sqrt(float(H));
    DeviceBuffer<std::uint16_t> table_d(table);
    DeviceBuffer<int> ids_d(ids);
    DeviceBuffer<float> out(std::size_t(T) * H);
    gemma3::cuda::embed(table_d.get(), vocab, H, ids_d.get(), T, scale, out.get(), nullptr);
    cuda_test::sync();
    const std::vector<float> got = out.download();
    std::size_t wrong = 0;
    for (int t = 0; t < T; ++t)
      for (int c = 0; c < H; ++c) {
        const float want = gemma3::bf16_to_f32(table[std::size_t(ids[t]) * H + c]) * scale;
        if (!(got[std::size_t(t) * H + c] == want)) ++wrong;
      }
    CHECK(wrong == 0);
  }
}

TEST_CASE("ops: set_rows replaces the given rows and only those", "[cuda][ops]") {
  std::mt19937 rng(2);
  const int rows = 9, cols = 40;
  const std::vector<float> h = cuda_test::randn(std::size_t(rows) * cols, rng);
  const std::vector<int> which = {1, 4, 8};
  const std::vector<float> values = cuda_test::randn(which.size() * cols, rng);
  DeviceBuffer<float> h_d(h), values_d(values);
  DeviceBuffer<int> which_d(which);
  gemma3::cuda::set_rows(h_d.get(), cols, which_d.get(), int(which.size()), values_d.get(), nullptr);
  cuda_test::sync();
  std::vector<float> want = h;
  for (std::size_t i = 0; i < which.size(); ++i)
    std::copy_n(values.begin() + std::ptrdiff_t(i * cols), cols, want.begin() + std::ptrdiff_t(which[i] * cols));
  CHECK(h_d.download() == want);
}

TEST_CASE("ops: rms_norm equals rms_norm_rows (the (1 + w) scale), in place and not", "[cuda][ops]") {
  std::mt19937 rng(3);
  for (int n : {640, 1152, 5376, 37}) {
    for (int rows : {1, 5}) {
      for (bool in_place : {false, true}) {
        for (int offset : {0, 1}) {  // offset 1: pointers not 16-byte aligned
          INFO("n = " << n << ", rows = " << rows << (in_place ? ", in place" : "") << ", offset " << offset);
          const std::vector<float> x = cuda_test::randn(std::size_t(rows) * n, rng);
          std::vector<float> w = cuda_test::randn(std::size_t(n), rng);
          for (float& v : w) v *= 0.3f;
          const float eps = 1e-6f;
          Matrix want = as_matrix(x, rows, n);
          gemma3::rms_norm_rows(want, Eigen::Map<const gemma3::Vector>(w.data(), n), eps);

          std::vector<float> x_padded(std::size_t(offset), 0.f), w_padded(std::size_t(offset), 0.f);
          x_padded.insert(x_padded.end(), x.begin(), x.end());
          w_padded.insert(w_padded.end(), w.begin(), w.end());
          DeviceBuffer<float> x_d(x_padded), w_d(w_padded), out_d(x_padded.size());
          DeviceBuffer<std::uint16_t> out16_d(x_padded.size());
          float* out = in_place ? x_d.get() + offset : out_d.get() + offset;
          gemma3::cuda::rms_norm(x_d.get() + offset, w_d.get() + offset, eps, out, rows, n, nullptr,
                                 out16_d.get() + offset);
          cuda_test::sync();
          const std::vector<float> all = in_place ? x_d.download() : out_d.download();
          const std::vector<float> got(all.begin() + offset, all.end());
          CHECK(rel_error(got, as_vector(want)) <= 2e-5);
          // the bf16 copy: the output's own values, rounded as to_bf16 rounds them
          const std::vector<std::uint16_t> all16 = out16_d.download();
          std::size_t wrong = 0;
          for (std::size_t i = 0; i < got.size(); ++i)
            if (all16[i + std::size_t(offset)] != gemma3::f32_to_bf16(got[i])) ++wrong;
          CHECK(wrong == 0);
        }
      }
    }
  }
}

TEST_CASE("ops: rms_norm_heads equals rms_norm_heads on every head_dim slice", "[cuda][ops]") {
  std::mt19937 rng(4);
  for (int head_dim : {256, 128, 32, 16, 8, 6}) {
    const int rows = 3, heads = 5, n = heads * head_dim;
    INFO("head_dim " << head_dim);
    const std::vector<float> x = cuda_test::randn(std::size_t(rows) * n, rng);
    const std::vector<float> w = cuda_test::randn(std::size_t(head_dim), rng);
    Matrix want = as_matrix(x, rows, n);
    gemma3::rms_norm_heads(want, head_dim, Eigen::Map<const gemma3::Vector>(w.data(), head_dim), 1e-6f);
    DeviceBuffer<float> x_d(x), w_d(w);
    gemma3::cuda::rms_norm_heads(x_d.get(), rows, heads, head_dim, w_d.get(), 1e-6f, nullptr);
    cuda_test::sync();
    CHECK(rel_error(x_d.download(), as_vector(want)) <= 2e-5);
  }
}

TEST_CASE("ops: rope equals RotaryEmbedding::apply up to position 131000", "[cuda][ops]") {
  std::mt19937 rng(5);
  gemma3::RopeParameters global;
  global.rope_type = "linear";
  global.rope_theta = 1e6;
  global.factor = 8.0;
  const gemma3::RopeParameters local;  // rope_theta 10 000, factor 1
  for (const gemma3::RopeParameters& p : {global, local}) {
    for (int head_dim : {256, 128, 16}) {
      for (int pos0 : {0, 4093, 130990}) {
        const int rows = 11, heads = 3, n = heads * head_dim;  // positions pos0 .. pos0 + 10 (131000 at most)
        INFO("theta " << p.rope_theta << ", head_dim " << head_dim << ", pos0 " << pos0);
        const gemma3::RotaryEmbedding rope(head_dim, p);
        const std::vector<float> x = cuda_test::randn(std::size_t(rows) * n, rng);
        Matrix want = as_matrix(x, rows, n);
        rope.apply(want, pos0);
        DeviceBuffer<float> x_d(x), f_d(rope.inv_freq());
        gemma3::cuda::rope(x_d.get(), rows, heads, head_dim, f_d.get(), pos0, nullptr);
        cuda_test::sync();
        // cos and sin within an ulp of std::cos/std::sin, a different rounding of
        // x cos - y sin: a few 1e-7 of max|x|. A wrong angle at 1e5 rad is O(1) off.
        CHECK(rel_error(x_d.download(), as_vector(want)) <= 1e-6);
      }
    }
  }
}

TEST_CASE("ops: add is h + x, exactly", "[cuda][ops]") {
  std::mt19937 rng(6);
  for (std::size_t n : {std::size_t(4096), std::size_t(4097)}) {
    for (int offset : {0, 1}) {
      const std::vector<float> h = cuda_test::randn(n + std::size_t(offset), rng),
                               x = cuda_test::randn(n + std::size_t(offset), rng);
      DeviceBuffer<float> h_d(h), x_d(x);
      gemma3::cuda::add(h_d.get() + offset, x_d.get() + offset, n, nullptr);
      cuda_test::sync();
      std::vector<float> want = h;
      for (std::size_t i = std::size_t(offset); i < want.size(); ++i) want[i] += x[i];
      CHECK(h_d.download() == want);
    }
  }
}

TEST_CASE("ops: residual_rms_norm gives rms_norm, add, rms_norm bit for bit, and refuses what it cannot take",
          "[cuda][ops]") {
  std::mt19937 rng(11);
  const float eps_x = 1e-6f, eps = 3e-6f;
  for (int n : {1152, 640, 2560}) {
    for (int rows : {1, 4}) {
      for (int mode = 0; mode < 3; ++mode) {  // 0: out apart, 1: out = h (in place), 2: the add alone
        INFO("n = " << n << ", rows = " << rows << ", mode " << mode);
        const std::size_t count = std::size_t(rows) * std::size_t(n);
        const std::vector<float> x = cuda_test::randn(count, rng), h = cuda_test::randn(count, rng);
        std::vector<float> wx = cuda_test::randn(std::size_t(n), rng), w = cuda_test::randn(std::size_t(n), rng);
        for (float& v : wx) v *= 0.3f;
        for (float& v : w) v *= 0.3f;
        DeviceBuffer<float> wx_d(wx), w_d(w);
        // the three kernels the fused one stands for
        DeviceBuffer<float> x1(x), h1(h), out1(count);
        DeviceBuffer<std::uint16_t> out16_1(count);
        gemma3::cuda::rms_norm(x1.get(), wx_d.get(), eps_x, x1.get(), rows, n, nullptr);
        gemma3::cuda::add(h1.get(), x1.get(), count, nullptr);
        if (mode != 2)
          gemma3::cuda::rms_norm(h1.get(), w_d.get(), eps, mode == 1 ? h1.get() : out1.get(), rows, n, nullptr,
                                 out16_1.get());
        // the fused one
        DeviceBuffer<float> x2(x), h2(h), out2(count);
        DeviceBuffer<std::uint16_t> out16_2(count);
        if (mode == 2)
          gemma3::cuda::residual_rms_norm(x2.get(), wx_d.get(), eps_x, h2.get(), rows, n, nullptr);
        else
          gemma3::cuda::residual_rms_norm(x2.get(), wx_d.get(), eps_x, h2.get(), rows, n, nullptr, w_d.get(), eps,
                                          mode == 1 ? h2.get() : out2.get(), out16_2.get());
        cuda_test::sync();
        CHECK(x2.download() == x);  // x is only read
        CHECK(h2.download() == h1.download());
        if (mode == 0) CHECK(out2.download() == out1.download());
        if (mode != 2) CHECK(out16_2.download() == out16_1.download());
        // and against the library's functions on the CPU
        Matrix y = as_matrix(x, rows, n), hh = as_matrix(h, rows, n);
        gemma3::rms_norm_rows(y, Eigen::Map<const gemma3::Vector>(wx.data(), n), eps_x);
        hh += y;
        Matrix want = hh;
        if (mode != 2) gemma3::rms_norm_rows(want, Eigen::Map<const gemma3::Vector>(w.data(), n), eps);
        const std::vector<float> got = mode == 0 ? out2.download() : h2.download();
        CHECK(rel_error(got, as_vector(want)) <= 2e-5);
      }
    }
  }
  // a row length or a pointer the 16-byte path cannot take is refused, not run slowly
  DeviceBuffer<float> a(64), b(64), w(64);
  CHECK(gemma3::cuda::residual_rms_norm_fits(a.get(), w.get(), b.get(), w.get(), b.get(), nullptr, 32));
  CHECK_FALSE(gemma3::cuda::residual_rms_norm_fits(a.get(), w.get(), b.get(), w.get(), b.get(), nullptr, 30));
  CHECK_FALSE(gemma3::cuda::residual_rms_norm_fits(a.get() + 1, w.get(), b.get(), nullptr, nullptr, nullptr, 32));
  CHECK_THROWS_WITH(gemma3::cuda::residual_rms_norm(a.get(), w.get(), 1e-6f, b.get() + 2, 1, 32, nullptr),
                    Catch::Contains("residual_rms_norm"));
  CHECK_THROWS_WITH(gemma3::cuda::residual_rms_norm(a.get(), w.get(), 1e-6f, b.get(), 1, 32, nullptr, w.get()),
                    Catch::Contains("residual_rms_norm"));
}

TEST_CASE("ops: gelu_tanh_mul equals gelu_tanh(gate) * up", "[cuda][ops]") {
  std::mt19937 rng(7);
  for (std::size_t n : {std::size_t(8192), std::size_t(4099)}) {
    INFO("n = " << n);
    std::vector<float> gate = cuda_test::randn(n, rng, 0.01), up = cuda_test::randn(n, rng);
    for (float& g : gate) g *= 3.f;  // the range where tanh bends, and tails to ~+-100
    gate[0] = 0.f;
    gate[1] = -0.f;
    gate[2] = 1e-30f;
    DeviceBuffer<float> gate_d(gate), up_d(up);
    DeviceBuffer<std::uint16_t> gate16_d(n);
    gemma3::cuda::gelu_tanh_mul(gate_d.get(), up_d.get(), n, nullptr, gate16_d.get());
    cuda_test::sync();
    const std::vector<float> got = gate_d.download();
    const std::vector<std::uint16_t> got16 = gate16_d.download();  // the result rounded as to_bf16 rounds it
    std::size_t wrong16 = 0;
    for (std::size_t i = 0; i < n; ++i)
      if (got16[i] != gemma3::f32_to_bf16(got[i])) ++wrong16;
    CHECK(wrong16 == 0);
    // Both evaluate the same float formula; tanhf differs by an ulp or two and the
    // contraction of u + c u^3 by one: |error| <~ 1e-7 |u| |up| (and a relative 1e-7).
    std::size_t bad = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const float want = gemma3::gelu_tanh(gate[i]) * up[i];
      const double tol = 1e-6 * std::fabs(double(want)) + 4e-7 * std::fabs(double(gate[i]) * double(up[i])) + 1e-30;
      if (!(std::fabs(double(got[i]) - double(want)) <= tol)) ++bad;
    }
    CHECK(bad == 0);
  }
}

TEST_CASE("ops: to_bf16 rounds as gemma3::f32_to_bf16, bit for bit", "[cuda][ops]") {
  std::mt19937 rng(8);
  for (std::size_t n : {std::size_t(65536), std::size_t(100003)}) {
    std::vector<float> x(n);
    std::uniform_int_distribution<std::uint32_t> bits;
    for (float& v : x) {
      const std::uint32_t b = bits(rng);  // every exponent, NaN payloads, subnormals
      std::memcpy(&v, &b, 4);
    }
    const std::uint32_t special[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00001u,
                                     0x7f800001u, 0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x7f7fffffu, 0x00000001u,
                                     0x807fffffu, 0x3f7fffffu, 0x4b7fff80u, 0x7f7f8000u};
    for (std::size_t i = 0; i < sizeof(special) / 4; ++i) std::memcpy(&x[i], &special[i], 4);
    DeviceBuffer<float> x_d(x);
    DeviceBuffer<std::uint16_t> y_d(n);
    gemma3::cuda::to_bf16(x_d.get(), y_d.get(), n, nullptr);
    cuda_test::sync();
    const std::vector<std::uint16_t> got = y_d.download();
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < n; ++i) wrong += got[i] != gemma3::f32_to_bf16(x[i]);
    CHECK(wrong == 0);
  }
}

TEST_CASE("ops: argmax takes the first of the largest and never a NaN", "[cuda][ops]") {
  std::mt19937 rng(9);
  const gemma3::ReferenceBackend ref;
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  struct Case {
    std::string name;
    std::vector<float> x;
  };
  std::vector<Case> cases;
  const std::vector<float> base = cuda_test::randn(262144, rng);
  cases.push_back({"random, vocab 262144", base});
  {
    std::vector<float> x = base;
    x[70000] = x[3] = 100.f;  // a tie across blocks: the first wins
    cases.push_back({"tie 3 / 70000", x});
  }
  {
    std::vector<float> x = base;
    x[200001] = x[200000] = 50.f;  // a tie in one block's neighbours
    cases.push_back({"tie 200000 / 200001", x});
  }
  {
    std::vector<float> x = base;
    for (std::size_t i = 0; i < x.size(); i += 97) x[i] = nan;  // index 0 included
    x[5000] = nan;
    cases.push_back({"NaNs scattered", x});
  }
  {
    std::vector<float> x = base;
    x.back() = 1000.f;
    cases.push_back({"largest last", x});
  }
  cases.push_back({"all NaN", std::vector<float>(1000, nan)});
  {
    std::vector<float> x(3000, -inf);
    x[0] = nan;
    cases.push_back({"NaN then -inf", x});
  }
  cases.push_back({"one value", {3.f}});
  cases.push_back({"odd length", cuda_test::randn(262151, rng)});
  {
    std::vector<float> x(5000, 1.f);
    x[0] = -0.f;
    x[1] = 0.f;
    for (std::size_t i = 2; i < x.size(); ++i) x[i] = -1.f;
    cases.push_back({"-0 and +0 tie", x});
  }
  DeviceBuffer<int> out(1);
  DeviceBuffer<unsigned char> workspace(gemma3::cuda::argmax_workspace_bytes());
  for (const Case& c : cases) {
    INFO(c.name);
    DeviceBuffer<float> x_d(c.x);
    gemma3::cuda::argmax(x_d.get(), int(c.x.size()), out.get(), workspace.get(), nullptr);
    cuda_test::sync();
    CHECK(out.download()[0] == ref.argmax(c.x.data(), c.x.size()));
  }
}

TEST_CASE("ops: argmax_rows takes each row's first largest, as argmax of the row alone", "[cuda][ops]") {
  std::mt19937 rng(10);
  const gemma3::ReferenceBackend ref;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int n : {1, 700, 262144}) {
    constexpr int kRows = 6;
    std::vector<float> x = cuda_test::randn(std::size_t(kRows) * std::size_t(n), rng);  // [rows, n]
    float* r = x.data();
    if (n > 1) {
      r[1 * n + n - 1] = 1000.f;                 // row 1: largest last
      r[2 * n + 0] = r[2 * n + n / 2] = 100.f;   // row 2: a tie, the first wins
      for (int i = 0; i < n; i += 3) r[3 * n + i] = nan;  // row 3: NaNs, index 0 among them
    }
    for (int i = 0; i < n; ++i) r[4 * n + i] = nan;  // row 4: all NaN
    INFO("n " << n);
    DeviceBuffer<float> x_d(x);
    DeviceBuffer<int> out(kRows);
    DeviceBuffer<unsigned char> workspace(gemma3::cuda::argmax_workspace_bytes(kRows));
    gemma3::cuda::argmax_rows(x_d.get(), kRows, n, out.get(), workspace.get(), nullptr);
    cuda_test::sync();
    const std::vector<int> got = out.download();
    for (int row = 0; row < kRows; ++row) {
      INFO("row " << row);
      CHECK(got[std::size_t(row)] == ref.argmax(r + std::size_t(row) * std::size_t(n), std::size_t(n)));
    }
  }
}

TEST_CASE("ops: qk_norm_rope is rms_norm_heads then rope on q and k, and kv_append, bit for bit",
          "[cuda][ops]") {
  using gemma3::cuda::KvType;
  std::mt19937 rng(11);
  gemma3::RopeParameters rp;
  rp.rope_type = "linear";
  rp.rope_theta = 1e6;
  rp.factor = 8.0;
  struct Shape {
    int NH, KV, D;
  };
  for (const Shape sh : {Shape{4, 1, 256}, Shape{8, 4, 128}, Shape{2, 2, 64}, Shape{4, 2, 32}, Shape{2, 1, 16},
                         Shape{4, 1, 8}})
    for (int T : {1, 5})
      for (int pos0 : {0, 21, 130990}) {
        const int NH = sh.NH, KV = sh.KV, D = sh.D;
        INFO("NH " << NH << " KV " << KV << " D " << D << " T " << T << " pos0 " << pos0);
        const gemma3::RotaryEmbedding rope(D, rp);
        const std::vector<float> q = cuda_test::randn(std::size_t(T) * NH * D, rng);
        const std::vector<float> k = cuda_test::randn(std::size_t(T) * KV * D, rng);
        const std::vector<float> v = cuda_test::randn(std::size_t(T) * KV * D, rng);
        const std::vector<float> qw = cuda_test::randn(std::size_t(D), rng), kw = cuda_test::randn(std::size_t(D), rng);
        DeviceBuffer<float> qw_d(qw), kw_d(kw), f_d(rope.inv_freq());
        // the two kernels, as the seam's calls launch them
        DeviceBuffer<float> q_want(q), k_want(k);
        gemma3::cuda::rms_norm_heads(q_want.get(), T, NH, D, qw_d.get(), 1e-6f, nullptr);
        gemma3::cuda::rms_norm_heads(k_want.get(), T, KV, D, kw_d.get(), 2e-6f, nullptr);
        gemma3::cuda::rope(q_want.get(), T, NH, D, f_d.get(), pos0, nullptr);
        gemma3::cuda::rope(k_want.get(), T, KV, D, f_d.get(), pos0, nullptr);
        // fused
        DeviceBuffer<float> q_got(q), k_got(k);
        gemma3::cuda::AttentionArgs a;
        a.num_heads = NH;
        a.num_kv_heads = KV;
        a.head_dim = D;
        a.T = T;
        a.pos0 = pos0;
        gemma3::cuda::QkNormRope x;
        x.q = q_got.get();
        x.k = k_got.get();
        x.q_norm = qw_d.get();
        x.q_eps = 1e-6f;
        x.k_norm = kw_d.get();
        x.k_eps = 2e-6f;
        x.inv_freq = f_d.get();
        gemma3::cuda::qk_norm_rope(a, x, nullptr, nullptr);
        cuda_test::sync();
        const std::vector<float> qa = q_got.download(), qb = q_want.download();
        const std::vector<float> ka = k_got.download(), kb = k_want.download();
        CHECK(std::memcmp(qa.data(), qb.data(), qa.size() * sizeof(float)) == 0);
        CHECK(std::memcmp(ka.data(), kb.data(), ka.size() * sizeof(float)) == 0);
        // and against the library on the host (norm then RoPE), as the two kernels' own tests
        Matrix qh = as_matrix(q, T, NH * D);
        gemma3::rms_norm_heads(qh, D, Eigen::Map<const gemma3::Vector>(qw.data(), D), 1e-6f);
        rope.apply(qh, pos0);
        CHECK(rel_error(qa, as_vector(qh)) <= 2e-5);
        if (T != 1) continue;

        // decode: the k row so made and v's row stored at pos0's slot, as kv_append stores them
        for (const KvType kt : {KvType::bf16, KvType::f16})
          for (const bool sliding : {true, false}) {
            if (!sliding && pos0 > 1000) continue;  // a global cache of 131K rows adds nothing here
            INFO((kt == KvType::bf16 ? "bf16" : "f16") << (sliding ? " ring of 8" : " global"));
            const int capacity = sliding ? 8 : pos0 + 3, width = KV * D;
            a.kv_type = kt;
            a.sliding = sliding;
            a.window = 8;
            a.capacity = capacity;
            a.seq_stride = (long long)capacity * width;
            DeviceBuffer<std::uint16_t> kc_want(std::size_t(capacity) * width), vc_want(std::size_t(capacity) * width);
            DeviceBuffer<std::uint16_t> kc_got(std::size_t(capacity) * width), vc_got(std::size_t(capacity) * width);
            DeviceBuffer<float> v_d(v), k_again(k), q_again(q);
            a.k_cache = kc_want.get();
            a.v_cache = vc_want.get();
            gemma3::cuda::kv_append(a, k_want.get(), v_d.get(), nullptr);
            a.k_cache = kc_got.get();
            a.v_cache = vc_got.get();
            x.q = q_again.get();
            x.k = k_again.get();
            gemma3::cuda::qk_norm_rope(a, x, v_d.get(), nullptr);
            cuda_test::sync();
            const std::vector<std::uint16_t> k1 = kc_got.download(), k2 = kc_want.download();
            const std::vector<std::uint16_t> v1 = vc_got.download(), v2 = vc_want.download();
            CHECK(k1 == k2);  // every other row still the 0xFFFF poison in both
            CHECK(v1 == v2);
            const std::size_t slot = std::size_t(sliding ? pos0 % capacity : pos0);
            CHECK(k1[slot * std::size_t(width)] != 0xFFFF);
            const std::vector<float> k3 = k_again.download(), q3 = q_again.download();
            CHECK(std::memcmp(k3.data(), kb.data(), k3.size() * sizeof(float)) == 0);
            CHECK(std::memcmp(q3.data(), qb.data(), q3.size() * sizeof(float)) == 0);
          }
      }
  // what it refuses
  gemma3::cuda::AttentionArgs a;
  a.num_heads = 2;
  a.num_kv_heads = 1;
  a.head_dim = 6;
  gemma3::cuda::QkNormRope x;
  CHECK_THROWS_WITH(gemma3::cuda::qk_norm_rope(a, x, nullptr, nullptr), Catch::Matchers::Contains("head_dim must be 8, 16"));
}
