// The CPU backend's decode path of grouped_query_attention (one query token: the two
// products spread over the thread pool, backends/cpu.hpp scores_one_token and
// weighted_values_one_token) against a plain double-precision softmax(q k^T s) v,
// for group sizes 1 to 8, windows that cut the keys, with and without a logit
// soft-cap, and whatever the thread count: bit for bit the same output with 1 and 3
// threads.
#include <cmath>
#include <optional>
#include <random>
#include <vector>

#include "catch.hpp"

#include "gemma3/backends/cpu.hpp"
#include "gemma3/kernels/kv_dot.hpp"
#include "gemma3/kernels/thread_pool.hpp"

namespace {

gemma3::Matrix random_matrix(std::mt19937& rng, Eigen::Index r, Eigen::Index c) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  gemma3::Matrix m(r, c);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = nd(rng);
  return m;
}

// out [NH * D] for the query at position `pos` over keys/values at positions 0 .. n-1.
std::vector<double> reference(const gemma3::AttentionShape& s, const gemma3::AttentionMask& mask,
                              const gemma3::Matrix& q, int pos, const gemma3::Matrix& keys,
                              const gemma3::Matrix& values) {
  const int D = s.head_dim, group = s.num_attention_heads / s.num_key_value_heads;
  std::vector<double> out(std::size_t(s.num_attention_heads) * D, 0.0);
  for (int h = 0; h < s.num_attention_heads; ++h) {
    const int kv = h / group;
    const int lo = mask.first_key(pos);
    std::vector<double> w;
    double mx = -1e300;
    for (int j = lo; j <= pos; ++j) {
      double dot = 0.0;
      for (int c = 0; c < D; ++c) dot += double(q(0, h * D + c)) * double(keys(j, kv * D + c));
      double z = dot * s.scale;
      if (s.softcap) z = *s.softcap * std::tanh(z / *s.softcap);
      w.push_back(z);
      mx = std::max(mx, w.back());
    }
    double sum = 0.0;
    for (double& e : w) sum += (e = std::exp(e - mx));
    for (int j = lo; j <= pos; ++j)
      for (int c = 0; c < D; ++c)
        out[std::size_t(h * D + c)] += w[std::size_t(j - lo)] / sum * double(values(j, kv * D + c));
  }
  return out;
}

}  // namespace

TEST_CASE("decode attention: matches softmax(q k^T s) v, the same with 1 and 3 threads", "[model][kernels]") {
  std::mt19937 rng(2026);
  struct Case {
    int heads, kv_heads, head_dim, n;
    bool sliding;
    double softcap;  // 0: none
  };
  for (const Case& k : {Case{4, 1, 256, 1, false, 0}, Case{4, 1, 256, 37, false, 0}, Case{4, 1, 256, 700, false, 0},
                        Case{4, 1, 256, 700, true, 0}, Case{8, 4, 64, 2500, false, 0}, Case{2, 1, 96, 130, false, 0},
                        Case{3, 1, 32, 90, true, 0}, Case{8, 1, 32, 200, false, 0}, Case{4, 1, 64, 600, true, 5.0},
                        Case{2, 1, 64, 300, false, 5.0}}) {
    INFO("heads " << k.heads << " kv " << k.kv_heads << " D " << k.head_dim << " keys " << k.n << " sliding " << k.sliding
                  << " softcap " << k.softcap);
    const std::optional<double> cap = k.softcap > 0 ? std::optional<double>(k.softcap) : std::nullopt;
    const gemma3::AttentionShape s{k.heads, k.kv_heads, k.head_dim, 1.0f / std::sqrt(float(k.head_dim)), cap};
    const gemma3::AttentionMask mask{k.sliding, 512, k.n - 1};
    const gemma3::Matrix q = random_matrix(rng, 1, Eigen::Index(k.heads) * k.head_dim);
    const gemma3::Matrix keys = random_matrix(rng, k.n, Eigen::Index(k.kv_heads) * k.head_dim);
    const gemma3::Matrix values = random_matrix(rng, k.n, Eigen::Index(k.kv_heads) * k.head_dim);
    const int pos = k.n - 1;
    const std::vector<double> ref = reference(s, mask, q, pos, keys, values);
    gemma3::Matrix first;
    for (int threads : {1, 3}) {
      gemma3::ThreadPool pool(threads);
      gemma3::Matrix out;
      gemma3::cpu::grouped_query_attention(s, mask, q, keys, values, 0, out, gemma3::best_isa(), pool);
      REQUIRE(out.cols() == Eigen::Index(ref.size()));
      double err = 0.0;
      for (Eigen::Index c = 0; c < out.cols(); ++c) err = std::max(err, std::fabs(double(out(0, c)) - ref[std::size_t(c)]));
      CHECK(err < 2e-5);
      if (threads == 1) first = out;
      else CHECK(out == first);
    }
  }
}

// The same products reading a float16 cache (kv_cache.hpp KVRowStore): each key and
// value row is widened on the fly; the result equals the double reference on the
// float16-rounded keys and values (and so differs from the float32 keys' result).
TEST_CASE("decode attention over a float16 cache: matches the reference on the rounded keys", "[model][kernels][kv]") {
  std::mt19937 rng(2027);
  for (const int n : {1, 37, 700}) {
    for (const bool sliding : {false, true}) {
      INFO("keys " << n << " sliding " << sliding);
      const int heads = 4, kv_heads = 2, D = 64;
      const gemma3::AttentionShape s{heads, kv_heads, D, 1.0f / std::sqrt(float(D)), std::nullopt};
      const gemma3::AttentionMask mask{sliding, 512, n - 1};
      const gemma3::Matrix q = random_matrix(rng, 1, Eigen::Index(heads) * D);
      gemma3::Matrix keys = random_matrix(rng, n, Eigen::Index(kv_heads) * D);
      gemma3::Matrix values = random_matrix(rng, n, Eigen::Index(kv_heads) * D);
      gemma3::KVRowStore k16(gemma3::DType::F16, n, kv_heads * D), v16(gemma3::DType::F16, n, kv_heads * D);
      for (int j = 0; j < n; ++j) {
        k16.store(j, keys.row(j).data());
        v16.store(j, values.row(j).data());
      }
      const std::vector<double> exact32 = reference(s, mask, q, n - 1, keys, values);
      k16.round(keys);
      v16.round(values);
      const std::vector<double> ref = reference(s, mask, q, n - 1, keys, values);
      gemma3::Matrix first;
      for (int threads : {1, 3}) {
        gemma3::ThreadPool pool(threads);
        gemma3::Matrix out;
        gemma3::cpu::grouped_query_attention(s, mask, q, k16.view(0, n), v16.view(0, n), 0, out, gemma3::best_isa(),
                                             pool);
        double err = 0.0, moved = 0.0;
        for (Eigen::Index c = 0; c < out.cols(); ++c) {
          err = std::max(err, std::fabs(double(out(0, c)) - ref[std::size_t(c)]));
          moved = std::max(moved, std::fabs(ref[std::size_t(c)] - exact32[std::size_t(c)]));
        }
        CHECK(err < 2e-5);
        CHECK(moved > 1e-5);  // the rounding to float16 is visible, and the kernel follows it
        if (threads == 1) first = out;
        else CHECK(out == first);
      }
    }
  }
}

// kernels/kv_dot.hpp: the AVX2 twins of the two products against the scalar ones, on
// float32 and float16 rows read with a stride (a kv head's columns inside a wider
// row), for 1 to 9 query rows (short groups of four included) and several D.
TEST_CASE("kv_dot: AVX2 twins equal the scalar ones to float rounding", "[kernels][kv]") {
  std::mt19937 rng(2028);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const gemma3::DType t : {gemma3::DType::F32, gemma3::DType::F16}) {
    for (const int D : {16, 64, 256}) {
      for (const int rows : {1, 2, 3, 4, 5, 8, 9}) {
        const int n = 77, stride = 2 * D + 16, col0 = D;  // rows of 2 kv heads plus padding; head 1
        INFO(gemma3::dtype_name(t) << " D " << D << " rows " << rows);
        std::vector<float> kv_f32(std::size_t(n) * std::size_t(stride));
        for (float& x : kv_f32) x = nd(rng);
        std::vector<std::uint16_t> kv_f16(kv_f32.size());
        gemma3::kernels::narrow_f16_scalar(kv_f32.data(), kv_f16.data(), std::int64_t(kv_f32.size()));
        const void* base = t == gemma3::DType::F16 ? static_cast<const void*>(kv_f16.data() + col0)
                                                   : static_cast<const void*>(kv_f32.data() + col0);
        std::vector<float> q(std::size_t(rows) * std::size_t(D)), p(std::size_t(rows) * std::size_t(n));
        for (float& x : q) x = nd(rng);
        for (float& x : p) x = std::fabs(nd(rng)) / float(n);
        std::vector<float> s_ref(p.size(), -1.0f), s_simd(p.size(), -1.0f);
        gemma3::kernels::kv_scores_scalar(q.data(), rows, D, t, base, stride, n, s_ref.data(), n);
        std::vector<float> acc_ref(std::size_t(rows) * std::size_t(D), 0.5f), acc_simd = acc_ref;
        gemma3::kernels::kv_weighted_scalar(p.data(), n, rows, D, t, base, stride, 5, n, acc_ref.data());
        // the scalar twin against a double-precision sum
        double err = 0.0;
        for (int r = 0; r < rows; ++r)
          for (int j = 0; j < n; ++j) {
            double e = 0.0;
            for (int c = 0; c < D; ++c)
              e += double(q[std::size_t(r * D + c)]) *
                   double(t == gemma3::DType::F16 ? gemma3::f16_to_f32(kv_f16[std::size_t(j * stride + col0 + c)])
                                                  : kv_f32[std::size_t(j * stride + col0 + c)]);
            err = std::max(err, std::fabs(e - double(s_ref[std::size_t(r * n + j)])));
          }
        CHECK(err < 1e-4 * std::sqrt(double(D)));
#if GEMMA3_HAVE_X86_SIMD
        if (gemma3::isa_available(gemma3::Isa::avx2)) {
          gemma3::kernels::kv_scores_avx2(q.data(), rows, D, t, base, stride, n, s_simd.data(), n);
          gemma3::kernels::kv_weighted_avx2(p.data(), n, rows, D, t, base, stride, 5, n, acc_simd.data());
          double ds = 0.0, da = 0.0;
          for (std::size_t i = 0; i < s_ref.size(); ++i) ds = std::max(ds, double(std::fabs(s_ref[i] - s_simd[i])));
          for (std::size_t i = 0; i < acc_ref.size(); ++i) da = std::max(da, double(std::fabs(acc_ref[i] - acc_simd[i])));
          CHECK(ds < 1e-4 * std::sqrt(double(D)));
          CHECK(da < 1e-5);
        }
#endif
      }
    }
  }
}
