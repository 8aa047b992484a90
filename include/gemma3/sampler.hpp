// gemma3/sampler.hpp -- choosing the next token from logits: greedy, temperature, top-k, top-p.
//
//   temperature <= 0:  argmax(logits)                         (greedy; ties -> the lowest id)
//   otherwise, in HF's order (TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper):
//     z = logits / temperature
//     top-k: keep the tokens whose z >= the k-th largest z    (ties at the k-th value all stay)
//     p = softmax(z over the kept tokens)
//     top-p: keep the most likely tokens, in order, while the mass before each is < top_p
//            (so the token that crosses top_p stays; at least one token always stays)
//     draw one token from the kept p, renormalized
//
// Gemma 3's defaults (HF generation_config): temperature 1.0, top_k 64, top_p 0.95 -- the
// defaults of SamplingOptions. top_k = 0 and top_p = 1 switch those filters off.
//
// Determinism: the random numbers come from this header's own xoshiro256** generator seeded with
// splitmix64, not from std:: distributions (whose output differs between standard libraries),
// so a seed gives the same draws with every compiler. Logits that are NaN or -inf never win.
//
// Pinned by tests/test_sampler.cpp (each rule's effect, statistically with fixed seeds).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <utility>
#include <vector>

#include "kernels/argmax.hpp"

namespace gemma3 {

// splitmix64: one step of Vigna's seed expander; also turns any seed into xoshiro's state.
inline std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// xoshiro256** (Blackman & Vigna): small, fast, and the same sequence on every platform.
class Rng {
 public:
  explicit Rng(std::uint64_t seed = 0) { reseed(seed); }

  void reseed(std::uint64_t seed) {
    std::uint64_t sm = seed;
    for (auto& w : s_) w = splitmix64(sm);
  }

  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1), 53 random bits.
  double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

struct SamplingOptions {
  float temperature = 1.0f;  // <= 0: greedy
  int top_k = 64;            // 0: off
  float top_p = 0.95f;       // >= 1: off
  std::uint64_t seed = 0;

  static SamplingOptions greedy() {
    SamplingOptions o;
    o.temperature = 0.0f;
    return o;
  }
};

// Index of the largest logit (the first one on ties; NaN never wins). n must be >= 1.
// (kernels/argmax.hpp: a scalar and an AVX2 twin; this uses best_isa(). The model's own
// greedy pick is its backend's argmax, generate.hpp.)
inline int argmax(const float* logits, std::size_t n) { return int(argmax(logits, n, best_isa())); }

class Sampler {
 public:
  explicit Sampler(SamplingOptions opts = {}) : opts_(opts), rng_(opts.seed) {}

  const SamplingOptions& options() const { return opts_; }
  void reseed(std::uint64_t seed) { opts_.seed = seed; rng_.reseed(seed); }

  // The tokens that may be drawn and their probabilities (summing to 1), most likely first.
  // Greedy: the argmax with probability 1.
  std::vector<std::pair<int, double>> candidates(const float* logits, std::size_t n) const {
    if (n == 0) throw std::invalid_argument("Sampler: no logits");
    if (opts_.temperature <= 0.0f) return {{argmax(logits, n), 1.0}};
    const double inv_t = 1.0 / double(opts_.temperature);
    const float inf = std::numeric_limits<float>::infinity();
    auto higher = [&](int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
    auto usable = [&](std::size_t i) { return !std::isnan(logits[i]) && logits[i] != -inf; };

    // +inf logits: those tokens only, equally likely.
    std::vector<std::pair<int, double>> out;
    for (std::size_t i = 0; i < n; ++i)
      if (logits[i] == inf) out.emplace_back(int(i), 1.0);
    if (!out.empty()) {
      for (auto& c : out) c.second = 1.0 / double(out.size());
      return out;
    }

    std::vector<int> idx;  // the kept tokens, best first
    bool top_p_done = false;
    if (opts_.top_k > 0 && std::size_t(opts_.top_k) < n) {
      // top-k: the k best in one pass, with a heap whose front is the worst of them ...
      const std::size_t k = std::size_t(opts_.top_k);
      std::vector<int> heap;
      heap.reserve(k);
      float worst = 0.0f;
      for (std::size_t i = 0; i < n; ++i) {
        if (heap.size() < k) {
          if (!usable(i)) continue;
          heap.push_back(int(i));
          std::push_heap(heap.begin(), heap.end(), higher);
          worst = logits[heap.front()];
        } else if (logits[i] > worst) {
          std::pop_heap(heap.begin(), heap.end(), higher);
          heap.back() = int(i);
          std::push_heap(heap.begin(), heap.end(), higher);
          worst = logits[heap.front()];
        }
      }
      // ... then every token >= the k-th value (HF keeps ties at the boundary).
      for (std::size_t i = 0; i < n && !heap.empty(); ++i)
        if (logits[i] >= worst) idx.push_back(int(i));
      std::sort(idx.begin(), idx.end(), higher);
    } else {
      for (std::size_t i = 0; i < n; ++i)
        if (usable(i)) idx.push_back(int(i));
      if (opts_.top_p < 1.0f && idx.size() > 256) {
        // top-p without top-k: sort only as much of the head as top-p needs.
        float max_l = -inf;
        for (int i : idx) max_l = std::max(max_l, logits[i]);
        double total = 0.0;
        for (int i : idx) total += std::exp((double(logits[i]) - max_l) * inv_t);
        for (std::size_t m = 256;; m *= 4) {
          if (m >= idx.size() / 4) m = idx.size();  // most of it: one full sort is cheaper
          if (m == idx.size()) std::sort(idx.begin(), idx.end(), higher);
          else std::partial_sort(idx.begin(), idx.begin() + long(m), idx.end(), higher);
          double before = 0.0;
          std::size_t keep = 0;
          while (keep < m && (keep == 0 || before < double(opts_.top_p) * total))
            before += std::exp((double(logits[idx[keep++]]) - max_l) * inv_t);
          if (keep < m || m == idx.size()) {
            idx.resize(keep);
            break;
          }
        }
        top_p_done = true;
      } else {
        std::sort(idx.begin(), idx.end(), higher);
      }
    }
    if (idx.empty()) return {{argmax(logits, n), 1.0}};

    // softmax(logits / T) over the kept tokens.
    const double max_z = double(logits[idx[0]]) * inv_t;
    out.reserve(idx.size());
    double sum = 0.0;
    for (int i : idx) {
      out.emplace_back(i, std::exp(double(logits[i]) * inv_t - max_z));
      sum += out.back().second;
    }
    for (auto& c : out) c.second /= sum;

    // top-p: keep while the mass before a token is < top_p.
    if (opts_.top_p < 1.0f && !top_p_done) {
      double before = 0.0;
      std::size_t keep = 0;
      while (keep < out.size() && (keep == 0 || before < double(opts_.top_p))) before += out[keep++].second;
      out.resize(keep);
      for (auto& c : out) c.second /= before;
    }
    return out;
  }

  // Draw the next token.
  int sample(const float* logits, std::size_t n) {
    if (opts_.temperature <= 0.0f) return argmax(logits, n);
    if (opts_.top_k <= 0 && opts_.top_p >= 1.0f) return sample_unfiltered(logits, n);
    const std::vector<std::pair<int, double>> c = candidates(logits, n);
    const double u = rng_.uniform();
    double acc = 0.0;
    for (const auto& [id, p] : c) {
      acc += p;
      if (u < acc) return id;
    }
    return c.back().first;  // u within rounding of 1
  }

  // No filter: draw from softmax(logits / T) in id order, without sorting (same distribution as
  // candidates(), another walk order).
  int sample_unfiltered(const float* logits, std::size_t n) {
    if (n == 0) throw std::invalid_argument("Sampler: no logits");
    const float inf = std::numeric_limits<float>::infinity();
    float max_l = -inf;
    for (std::size_t i = 0; i < n; ++i)
      if (logits[i] > max_l) max_l = logits[i];  // NaN never compares greater
    if (max_l == -inf || max_l == inf) {
      const auto c = candidates(logits, n);  // all masked, or +inf present: the slow path handles it
      return c[std::size_t(rng_.uniform() * double(c.size())) % c.size()].first;
    }
    const double inv_t = 1.0 / double(opts_.temperature);
    double sum = 0.0;
    for (std::size_t i = 0; i < n; ++i)
      if (logits[i] > -inf) sum += std::exp((double(logits[i]) - max_l) * inv_t);
    const double target = rng_.uniform() * sum;
    double acc = 0.0;
    int last = -1;
    for (std::size_t i = 0; i < n; ++i) {
      if (!(logits[i] > -inf)) continue;  // NaN, -inf
      acc += std::exp((double(logits[i]) - max_l) * inv_t);
      last = int(i);
      if (target < acc) return last;
    }
    return last;
  }

  // Any contiguous float vector (std::vector<float>, Eigen::VectorXf, ...).
  template <class V>
  int sample(const V& logits) { return sample(logits.data(), std::size_t(logits.size())); }
  template <class V>
  std::vector<std::pair<int, double>> candidates(const V& logits) const {
    return candidates(logits.data(), std::size_t(logits.size()));
  }

 private:
  SamplingOptions opts_;
  Rng rng_;
};

}  // namespace gemma3
