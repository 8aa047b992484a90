// Sampler tests: each rule's effect, with fixed seeds (statistical bounds are ~6 standard
// deviations wide, and the seeds are fixed, so they are deterministic).
#include "catch.hpp"

#include <cmath>
#include <map>
#include <set>
#include <vector>

#include "gemma3/sampler.hpp"

using gemma3::Sampler;
using gemma3::SamplingOptions;

namespace {

SamplingOptions opts(float t, int k, float p, std::uint64_t seed = 1) {
  SamplingOptions o;
  o.temperature = t;
  o.top_k = k;
  o.top_p = p;
  o.seed = seed;
  return o;
}

std::vector<double> softmax(const std::vector<float>& z, double t = 1.0) {
  double m = *std::max_element(z.begin(), z.end()), s = 0;
  std::vector<double> p;
  for (float x : z) { p.push_back(std::exp((x - m) / t)); s += p.back(); }
  for (double& x : p) x /= s;
  return p;
}

std::vector<double> frequencies(Sampler& s, const std::vector<float>& logits, int draws) {
  std::vector<double> f(logits.size(), 0.0);
  for (int i = 0; i < draws; ++i) f[std::size_t(s.sample(logits))] += 1.0 / draws;
  return f;
}

// 6 sigma of a binomial frequency.
double bound(double p, int n) { return 6.0 * std::sqrt(std::max(p * (1 - p), 1e-4) / n) + 1e-9; }

// Random logits from the library's own generator (normal-ish: sum of uniforms).
std::vector<float> random_logits(std::size_t n, std::uint64_t seed, double scale = 3.0) {
  gemma3::Rng r(seed);
  std::vector<float> z(n);
  for (float& x : z) x = float(scale * (r.uniform() + r.uniform() + r.uniform() - 1.5));
  return z;
}

}  // namespace

TEST_CASE("sampler: the generator is splitmix64-seeded xoshiro256**, the same everywhere", "[sampler]") {
  std::uint64_t s = 0;
  CHECK(gemma3::splitmix64(s) == 0xE220A8397B1DCDAFull);  // Vigna's splitmix64, seed 0, first output
  CHECK(gemma3::splitmix64(s) == 0x6E789E6AA1B965F4ull);
  gemma3::Rng a(42), b(42), c(43);
  std::vector<std::uint64_t> va, vb, vc;
  for (int i = 0; i < 8; ++i) { va.push_back(a.next()); vb.push_back(b.next()); vc.push_back(c.next()); }
  CHECK(va == vb);
  CHECK(va != vc);
  // Pin the stream itself, so a change to the generator cannot go unnoticed.
  gemma3::Rng z(0);
  CHECK(z.next() == 0x99EC5F36CB75F2B4ull);
  int out_of_range = 0;
  for (int i = 0; i < 1000; ++i) {
    const double u = a.uniform();
    out_of_range += !(u >= 0.0 && u < 1.0);
  }
  CHECK(out_of_range == 0);
}

TEST_CASE("sampler: Gemma's defaults", "[sampler]") {
  const SamplingOptions d;
  CHECK(d.temperature == 1.0f);
  CHECK(d.top_k == 64);
  CHECK(d.top_p == 0.95f);
}

TEST_CASE("sampler: temperature 0 is greedy, and greedy takes the first of equal maxima", "[sampler]") {
  const std::vector<float> z = random_logits(1000, 5);
  const int best = int(std::max_element(z.begin(), z.end()) - z.begin());
  Sampler g(SamplingOptions::greedy());
  for (int i = 0; i < 10; ++i) CHECK(g.sample(z) == best);
  CHECK(gemma3::argmax(std::vector<float>{1, 3, 3, 2}.data(), 4) == 1);
  CHECK(gemma3::argmax(std::vector<float>{NAN, -1, NAN}.data(), 3) == 1);
  Sampler neg(opts(-1.0f, 0, 1.0f));
  CHECK(neg.sample(z) == best);
  // A tiny temperature converges to greedy too.
  Sampler cold(opts(1e-4f, 0, 1.0f));
  for (int i = 0; i < 100; ++i) CHECK(cold.sample(z) == best);
}

TEST_CASE("sampler: with no filter the draws follow softmax(logits / T)", "[sampler]") {
  const std::vector<float> z = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f, -3.0f};
  const int n = 40000;
  for (float t : {1.0f, 0.5f, 2.0f}) {
    INFO("temperature " << t);
    Sampler s(opts(t, 0, 1.0f, 7));
    const std::vector<double> f = frequencies(s, z, n);
    const std::vector<double> p = softmax(z, t);
    for (std::size_t i = 0; i < z.size(); ++i) CHECK(std::abs(f[i] - p[i]) < bound(p[i], n));
    const auto c = s.candidates(z);
    REQUIRE(c.size() == z.size());
    for (const auto& [id, prob] : c) CHECK(prob == Approx(p[std::size_t(id)]).epsilon(1e-9));
  }
  // Lower temperature sharpens: the top token's share grows.
  Sampler hot(opts(2.0f, 0, 1.0f, 3)), cold(opts(0.5f, 0, 1.0f, 3));
  CHECK(frequencies(cold, z, 20000)[0] > frequencies(hot, z, 20000)[0] + 0.2);
}

TEST_CASE("sampler: top-k never picks outside the k best, and reaches all of them", "[sampler]") {
  const std::vector<float> z = random_logits(5000, 11, 0.5);  // flat-ish: many tokens are likely
  std::vector<int> order(z.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = int(i);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return z[std::size_t(a)] > z[std::size_t(b)]; });
  for (int k : {1, 5, 64}) {
    INFO("top_k " << k);
    const std::set<int> best(order.begin(), order.begin() + k);
    Sampler s(opts(1.0f, k, 1.0f, 99));
    std::set<int> seen;
    int outside = 0;
    for (int i = 0; i < 20000; ++i) {
      const int t = s.sample(z);
      outside += best.count(t) == 0;
      seen.insert(t);
    }
    CHECK(outside == 0);
    CHECK(seen == best);
    // Within the k, the probabilities are the softmax of the k logits.
    std::vector<float> zk;
    for (int i = 0; i < k; ++i) zk.push_back(z[std::size_t(order[std::size_t(i)])]);
    const std::vector<double> pk = softmax(zk);
    const auto c = s.candidates(z);
    REQUIRE(c.size() == std::size_t(k));
    for (int i = 0; i < k; ++i) {
      CHECK(c[std::size_t(i)].first == order[std::size_t(i)]);
      CHECK(c[std::size_t(i)].second == Approx(pk[std::size_t(i)]).epsilon(1e-9));
    }
  }
  // Ties at the k-th value all stay (as HF's TopKLogitsWarper).
  Sampler tie(opts(1.0f, 2, 1.0f));
  CHECK(tie.candidates(std::vector<float>{5, 3, 3, 3, 1}).size() == 4);
}

TEST_CASE("sampler: top-p keeps the smallest head whose mass reaches p", "[sampler]") {
  // probabilities 0.5, 0.3, 0.15, 0.05 exactly
  const std::vector<float> z = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  auto kept = [&](float p) { return Sampler(opts(1.0f, 0, p)).candidates(z).size(); };
  CHECK(kept(0.3f) == 1);   // 0.5 alone crosses 0.3
  CHECK(kept(0.79f) == 2);
  CHECK(kept(0.81f) == 3);
  CHECK(kept(0.96f) == 4);
  CHECK(kept(1.0f) == 4);
  CHECK(kept(0.0f) == 1);   // at least one token
  // Draw frequencies: renormalized over the kept head.
  const int n = 40000;
  Sampler s(opts(1.0f, 0, 0.79f, 5));
  const std::vector<double> f = frequencies(s, z, n);
  CHECK(std::abs(f[0] - 0.625) < bound(0.625, n));
  CHECK(std::abs(f[1] - 0.375) < bound(0.375, n));
  CHECK(f[2] == 0.0);
  CHECK(f[3] == 0.0);
  // Mass of what top-p keeps on a big random vocabulary: >= p, and dropping the last one goes below p.
  const std::vector<float> big = random_logits(262144, 3, 4.0);
  const auto c = Sampler(opts(1.0f, 0, 0.9f)).candidates(big);
  const std::vector<double> full = softmax(big);
  double mass = 0.0;
  for (const auto& e : c) mass += full[std::size_t(e.first)];
  CHECK(mass >= 0.9 - 1e-9);
  CHECK(mass - full[std::size_t(c.back().first)] < 0.9);
}

TEST_CASE("sampler: temperature is applied before top-p (HF's order)", "[sampler]") {
  const std::vector<float> z = {3.0f, 2.0f, 1.0f, 0.0f};
  // At T = 1, p = (0.644, 0.237, 0.087, 0.032): top_p 0.87 keeps 2 (0.644 + 0.237 >= 0.87).
  // At T = 3 the distribution is flatter, (0.385, 0.276, 0.198, 0.142): the same top_p keeps 4
  // (the first three hold 0.858 < 0.87). Top-p first, then temperature, would keep 2 both times.
  CHECK(Sampler(opts(1.0f, 0, 0.87f)).candidates(z).size() == 2);
  CHECK(Sampler(opts(3.0f, 0, 0.87f)).candidates(z).size() == 4);
  // top-k then top-p: k cuts first, p then works on the renormalized k.
  CHECK(Sampler(opts(3.0f, 2, 0.87f)).candidates(z).size() == 2);
}

TEST_CASE("sampler: a seed fixes the draws, another seed changes them", "[sampler]") {
  const std::vector<float> z = random_logits(262144, 8, 2.0);
  auto draws = [&](std::uint64_t seed) {
    Sampler s(opts(1.0f, 64, 0.95f, seed));
    std::vector<int> v;
    for (int i = 0; i < 50; ++i) v.push_back(s.sample(z));
    return v;
  };
  CHECK(draws(123) == draws(123));
  CHECK(draws(123) != draws(124));
  Sampler s(opts(1.0f, 64, 0.95f, 123));
  const int first = s.sample(z);
  s.reseed(123);
  CHECK(s.sample(z) == first);
}

TEST_CASE("sampler: masked logits (-inf, NaN) are never drawn", "[sampler]") {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> z = {-inf, 0.0f, NAN, 0.0f, -inf};
  Sampler s(opts(1.0f, 0, 1.0f, 2));
  std::map<int, int> count;
  for (int i = 0; i < 2000; ++i) ++count[s.sample(z)];
  CHECK(count.size() == 2);
  CHECK(count.count(1) == 1);
  CHECK(count.count(3) == 1);
  CHECK_THROWS_AS(s.sample(std::vector<float>{}), std::invalid_argument);
  // +inf: only those tokens, with and without filters.
  for (int k : {0, 64}) {
    Sampler p(opts(1.0f, k, k ? 0.95f : 1.0f, 4));
    std::set<int> seen;
    for (int i = 0; i < 200; ++i) seen.insert(p.sample(std::vector<float>{0.0f, inf, 1.0f, inf}));
    CHECK(seen == std::set<int>{1, 3});
  }
  // Everything masked: no crash, some id comes back.
  Sampler all(opts(1.0f, 0, 1.0f));
  const int id = all.sample(std::vector<float>{-inf, -inf});
  CHECK((id == 0 || id == 1));
}
