// cuda/tests/test_attention_decode.cpp -- decode attention (attention_decode, the split-K
// kernel the backend runs, and attention_decode_v1, the lab's baseline) and kv_append,
// against the float64 brute force of cuda_test_util.hpp.
//
// Every decode case fills the caches the way the backend does: each sequence's history
// (positions 0 .. p - 1) through kv_append in chunks (a ring wraps, a chunk longer than
// the ring keeps only its last rows), then the current key of every sequence in one
// batched kv_append at its own position (the positions array), then decode. The
// reference sees the same keys and values rounded to the cache type, so only float32
// accumulation order separates the two:
//   relative error = max|got - want| / max|want| <= kTol, and no NaN or Inf
// (outputs, workspace and unwritten cache rows start as NaN, so a value never written,
// a partial never stored or a row read past the keys shows up).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <sstream>
#include <string>
#include <vector>

#include "catch.hpp"
#include "cuda_test_util.hpp"
#include "decode_versions.hpp"
#include "prefill_versions.hpp"

using cuda_test::DeviceBuffer;
using gemma3::cuda::AttentionArgs;
using gemma3::cuda::KvType;

namespace {

// q is float32 and K/V are rounded in the reference too: what is left is float32
// summation order, ~1e-6.
constexpr double kTol = 1e-4;

enum class Version { split, v1, fused };
const char* name(Version v) { return v == Version::split ? "split-K" : v == Version::v1 ? "v1" : "fused (version 3)"; }
const char* name(KvType t) { return t == KvType::bf16 ? "bf16" : "f16"; }

struct Shape {
  int num_heads = 4, num_kv_heads = 1, head_dim = 256;  // Gemma 3 270M / 1B
  float scale = 0.0625f, softcap = 0.f;
  bool sliding = false;
  int window = 512;
  KvType kv = KvType::bf16;

  int row() const { return num_kv_heads * head_dim; }  // one cache row: [num_kv_heads * head_dim]
  std::string describe() const {
    std::ostringstream s;
    s << "NH " << num_heads << " KV " << num_kv_heads << " D " << head_dim << " " << name(kv)
      << (sliding ? " sliding W " + std::to_string(window) : std::string(" global")) << " softcap " << softcap;
    return s.str();
  }
};

// B sequences, each with keys/values at positions 0 .. positions[b] and one query.
struct Problem {
  Shape s;
  std::vector<int> positions;  // [B] each sequence's query position
  int capacity = 0;            // rows of each sequence's cache
  int max_position = 0;        // the call is planned for positions up to this
  bool positions_on_device = true;               // false: every sequence at pos0 = positions[0]
  // Empty: the caches in one allocation, seq_stride apart. Else each sequence's cache in
  // an allocation of its own, found through k_caches / v_caches, of capacity_b = this
  // max_cache_len[b] (global) or min(W, max_cache_len[b]) (sliding); `capacity` is then
  // the largest capacity_b.
  std::vector<int> max_cache_len;
  std::vector<std::vector<float>> keys, values;  // [B][(positions[b] + 1) * row] float32
  std::vector<float> q;                          // [B, NH * D]

  int batch() const { return int(positions.size()); }
};

Problem random_problem(const Shape& s, std::vector<int> positions, std::mt19937& rng, int capacity = 0) {
  Problem pr;
  pr.s = s;
  pr.positions = std::move(positions);
  pr.max_position = *std::max_element(pr.positions.begin(), pr.positions.end());
  // A global cache gets spare rows past the last key: they stay NaN, so reading them shows.
  pr.capacity = capacity > 0 ? capacity : s.sliding ? s.window : pr.max_position + 6;
  for (int p : pr.positions) {
    pr.keys.push_back(cuda_test::randn(std::size_t(p + 1) * s.row(), rng));
    pr.values.push_back(cuda_test::randn(std::size_t(p + 1) * s.row(), rng));
  }
  pr.q = cuda_test::randn(std::size_t(pr.batch()) * s.num_heads * s.head_dim, rng);
  return pr;
}

// The float64 brute force, per sequence, over the keys and values rounded to the cache
// type. window_override > 0 replaces the window (to show a wrong window fails).
std::vector<float> reference(const Problem& pr, int window_override = 0) {
  const Shape& s = pr.s;
  const std::size_t qw = std::size_t(s.num_heads) * s.head_dim;
  std::vector<float> want;
  for (int b = 0; b < pr.batch(); ++b) {
    const int p = pr.positions[std::size_t(b)];
    std::vector<float> k = pr.keys[std::size_t(b)], v = pr.values[std::size_t(b)];
    cuda_test::round_all(s.kv, k);
    cuda_test::round_all(s.kv, v);
    const std::vector<float> qb(pr.q.begin() + std::ptrdiff_t(b * qw), pr.q.begin() + std::ptrdiff_t((b + 1) * qw));
    const std::vector<float> o =
        cuda_test::reference_attention(s.num_heads, s.num_kv_heads, s.head_dim, s.scale, s.softcap, s.sliding,
                                       window_override > 0 ? window_override : s.window, p, 1, qb, k, v, p + 1);
    want.insert(want.end(), o.begin(), o.end());
  }
  return want;
}

// A problem on the device, its caches filled through kv_append.
class DeviceProblem {
 public:
  // The history rows 0 .. p - 1 of each sequence go in by kv_append calls of the sizes
  // in `chunks`, cycled; then the rows at positions[b] of all sequences in one call.
  explicit DeviceProblem(const Problem& pr, const std::vector<int>& chunks = {300})
      : pr_(pr),
        seq_stride_(pr.max_cache_len.empty() ? (long long)pr.capacity * pr.s.row() : 0),
        k_(std::size_t(pr.batch()) * std::size_t(seq_stride_)),
        v_(std::size_t(pr.batch()) * std::size_t(seq_stride_)),
        q_(pr.q),
        positions_(pr.positions) {
    const std::size_t row = std::size_t(pr.s.row());
    if (!pr.max_cache_len.empty()) {  // each sequence's own cache
      std::vector<void*> table;       // k rows of each sequence, then v rows
      pr_.capacity = 0;
      for (int len : pr.max_cache_len) {
        const int cap = pr.s.sliding ? std::min(pr.s.window, len) : len;
        own_capacity_.push_back(cap);
        pr_.capacity = std::max(pr_.capacity, cap);
        k_own_.emplace_back(std::size_t(cap) * row);
        v_own_.emplace_back(std::size_t(cap) * row);
      }
      for (auto& x : k_own_) table.push_back(x.get());
      for (auto& x : v_own_) table.push_back(x.get());
      table_ = DeviceBuffer<void*>(table);
    }
    for (int b = 0; b < pr.batch(); ++b) {
      const int p = pr.positions[std::size_t(b)];
      std::size_t c = 0;
      for (int start = 0; start < p;) {
        const int T = std::min(chunks[c++ % chunks.size()], p - start);
        const auto first = std::ptrdiff_t(std::size_t(start) * row);
        const auto last = std::ptrdiff_t(std::size_t(start + T) * row);
        DeviceBuffer<float> kd(std::vector<float>(pr.keys[std::size_t(b)].begin() + first,
                                                  pr.keys[std::size_t(b)].begin() + last));
        DeviceBuffer<float> vd(std::vector<float>(pr.values[std::size_t(b)].begin() + first,
                                                  pr.values[std::size_t(b)].begin() + last));
        AttentionArgs a = args();
        a.batch = 1;
        a.T = T;
        a.pos0 = start;
        a.positions = nullptr;
        a.k_caches = a.v_caches = nullptr;
        a.seq_stride = 0;
        if (own()) {
          a.k_cache = k_own_[std::size_t(b)].get();
          a.v_cache = v_own_[std::size_t(b)].get();
          a.capacity = own_capacity_[std::size_t(b)];
        } else {
          a.k_cache = k_.get() + std::size_t(b) * std::size_t(seq_stride_);
          a.v_cache = v_.get() + std::size_t(b) * std::size_t(seq_stride_);
        }
        gemma3::cuda::kv_append(a, kd.get(), vd.get(), nullptr);
        cuda_test::sync();
        start += T;
      }
    }
    std::vector<float> k_now, v_now;  // [B, row] the row at each sequence's position
    for (int b = 0; b < pr.batch(); ++b) {
      const auto at = std::ptrdiff_t(std::size_t(pr.positions[std::size_t(b)]) * row);
      const std::vector<float>& k = pr.keys[std::size_t(b)];
      const std::vector<float>& v = pr.values[std::size_t(b)];
      k_now.insert(k_now.end(), k.begin() + at, k.begin() + at + std::ptrdiff_t(row));
      v_now.insert(v_now.end(), v.begin() + at, v.begin() + at + std::ptrdiff_t(row));
    }
    DeviceBuffer<float> kd(k_now), vd(v_now);
    gemma3::cuda::kv_append(args(), kd.get(), vd.get(), nullptr);
    cuda_test::sync();
  }

  // The decode call's arguments (out and workspace unset).
  AttentionArgs args() const {
    const Shape& s = pr_.s;
    AttentionArgs a;
    a.num_heads = s.num_heads;
    a.num_kv_heads = s.num_kv_heads;
    a.head_dim = s.head_dim;
    a.scale = s.scale;
    a.softcap = s.softcap;
    a.sliding = s.sliding;
    a.window = s.window;
    a.kv_type = s.kv;
    a.batch = pr_.batch();
    a.T = 1;
    a.q = q_.get();
    a.pos0 = pr_.positions[0];
    a.positions = pr_.positions_on_device ? positions_.get() : nullptr;
    a.max_position = pr_.max_position;
    if (own()) {
      a.k_caches = table_.get();
      a.v_caches = table_.get() + pr_.batch();
    } else {
      a.k_cache = k_.get();
      a.v_cache = v_.get();
      a.seq_stride = seq_stride_;
    }
    a.capacity = pr_.capacity;
    return a;
  }

  // out [B, NH * D] of `calls` decode calls in a row (the same inputs, so the same
  // outputs: version 3's counters must be zero again after each call). Every call also
  // writes out_bf16, which must be out rounded as gemma3::f32_to_bf16 rounds it.
  std::vector<float> run(Version v, int num_sms, int calls = 1) const {
    DeviceBuffer<float> out(std::size_t(pr_.batch()) * pr_.s.num_heads * pr_.s.head_dim);
    DeviceBuffer<std::uint16_t> out16(out.size());
    AttentionArgs a = args();
    a.out = out.get();
    a.out_bf16 = out16.get();
    if (v == Version::split || v == Version::fused) {
      const std::size_t bytes = gemma3::cuda::attention_decode_workspace(a, num_sms);
      DeviceBuffer<unsigned char> ws(bytes);
      const DeviceBuffer<unsigned> counters(  // version 3's, zero: [batch * num_kv_heads]
          std::vector<unsigned>(std::size_t(pr_.batch()) * std::size_t(pr_.s.num_kv_heads), 0u));
      a.workspace = ws.get();
      a.workspace_bytes = bytes;
      for (int i = 0; i < calls; ++i) {
        if (v == Version::split) gemma3::cuda::attention_decode(a, num_sms, nullptr);
        else gemma3::cuda::attention_decode_fused(a, num_sms, counters.get(), nullptr);
      }
      cuda_test::sync();
      if (v == Version::fused) {
        const std::vector<unsigned> left = counters.download();
        if (std::any_of(left.begin(), left.end(), [](unsigned c) { return c != 0; }))
          throw std::runtime_error("attention_decode_fused left a counter not zero");
      }
    } else {
      gemma3::cuda::attention_decode_v1(a, nullptr);
      cuda_test::sync();
    }
    const std::vector<float> got = out.download();
    const std::vector<std::uint16_t> got16 = out16.download();
    for (std::size_t i = 0; i < got.size(); ++i)
      if (got16[i] != gemma3::f32_to_bf16(got[i]))
        throw std::runtime_error("out_bf16[" + std::to_string(i) + "] is not out rounded to bf16");
    return got;
  }

  // Replaces the positions the kernels read on the device (the cache stays as filled).
  void set_device_positions(const std::vector<int>& positions) { positions_.upload(positions); }

  // The caches' 16-bit values [B * seq_stride] (one allocation).
  std::vector<std::uint16_t> k_bits() const { return k_.download(); }

 private:
  bool own() const { return !pr_.max_cache_len.empty(); }

  Problem pr_;
  long long seq_stride_;
  DeviceBuffer<std::uint16_t> k_, v_;  // [B][capacity][row] (one allocation)
  std::vector<DeviceBuffer<std::uint16_t>> k_own_, v_own_;  // [B] each [capacity_b, row] (own caches)
  std::vector<int> own_capacity_;                           // [B] capacity_b
  DeviceBuffer<void*> table_;                               // [2 B] k_own_ then v_own_ pointers
  DeviceBuffer<float> q_;              // [B, NH * D]
  DeviceBuffer<int> positions_;        // [B]
};

// Runs the split-K kernel at each num_sms (so with different split counts), version 3
// at each (twice in a row: the same bits as split-K), and v1, each against `want`.
// Returns the split counts used.
std::vector<int> check_decode(const DeviceProblem& dev, const std::vector<float>& want,
                              const std::vector<int>& sms_list,
                              bool with_v1 = true) {
  std::vector<int> splits;
  for (int sms : sms_list) {
    const int n = gemma3::cuda::attention_decode_splits(dev.args(), sms);
    splits.push_back(n);
    INFO("split-K, num_sms " << sms << ", splits " << n);
    const std::vector<float> got = dev.run(Version::split, sms);
    REQUIRE(got.size() == want.size());
    const cuda_test::Error e = cuda_test::compare(got, want);
    INFO("relative error " << e.relative << ", max abs " << e.max_abs);
    CHECK(e.non_finite == 0);
    CHECK(e.relative <= kTol);
    const std::vector<float> fused = dev.run(Version::fused, sms, 2);
    CHECK(std::memcmp(fused.data(), got.data(), got.size() * sizeof(float)) == 0);  // NaN included
  }
  if (with_v1) {
    INFO("v1");
    const std::vector<float> got = dev.run(Version::v1, 1);
    REQUIRE(got.size() == want.size());
    const cuda_test::Error e = cuda_test::compare(got, want);
    INFO("relative error " << e.relative << ", max abs " << e.max_abs);
    CHECK(e.non_finite == 0);
    CHECK(e.relative <= kTol);
  }
  return splits;
}

std::vector<int> sms_variants() { return {1, cuda_test::num_sms(), 1000}; }

std::size_t mismatches(const std::vector<std::uint16_t>& got, const std::vector<std::uint16_t>& want) {
  if (got.size() != want.size()) return std::max(got.size(), want.size());
  std::size_t n = 0;
  for (std::size_t i = 0; i < got.size(); ++i) n += got[i] != want[i];
  return n;
}

}  // namespace

TEST_CASE("kv_append stores each kept row, rounded, at its slot and nothing else", "[cuda][decode][kv_append]") {
  std::mt19937 rng(1001);
  SECTION("B sequences of T rows at their own positions (positions array)") {
    for (KvType kv : {KvType::bf16, KvType::f16})
      for (bool ring : {false, true}) {
        // B sequences of T rows each at their own positions (a ring of 40 wraps for two).
        const int B = 3, T = 5, KV = 2, D = 128, width = KV * D;
        const int capacity = ring ? 40 : 100;
        const std::vector<int> positions = ring ? std::vector<int>{0, 38, 95} : std::vector<int>{0, 17, 60};
        const long long seq_stride = (long long)capacity * width + 8;  // a gap between sequences
        INFO(name(kv) << (ring ? " ring" : " global"));
        DeviceBuffer<std::uint16_t> kc(std::size_t(B * seq_stride)), vc(std::size_t(B * seq_stride));
        DeviceBuffer<int> pos_d(positions);
        const std::vector<float> k = cuda_test::randn(std::size_t(B) * T * width, rng);
        const std::vector<float> v = cuda_test::randn(std::size_t(B) * T * width, rng);
        DeviceBuffer<float> kd(k), vd(v);
        AttentionArgs a;
        a.num_heads = 2 * KV;
        a.num_kv_heads = KV;
        a.head_dim = D;
        a.sliding = ring;
        a.window = 40;
        a.kv_type = kv;
        a.batch = B;
        a.T = T;
        a.positions = pos_d.get();
        a.max_position = *std::max_element(positions.begin(), positions.end());
        a.k_cache = kc.get();
        a.v_cache = vc.get();
        a.seq_stride = seq_stride;
        a.capacity = capacity;
        gemma3::cuda::kv_append(a, kd.get(), vd.get(), nullptr);
        cuda_test::sync();

        std::vector<std::uint16_t> want_k(std::size_t(B * seq_stride), 0xFFFF), want_v = want_k;
        for (int b = 0; b < B; ++b)
          for (int t = 0; t < T; ++t) {
            const int p = positions[std::size_t(b)] + t, slot = ring ? p % capacity : p;
            for (int c = 0; c < width; ++c) {
              const std::size_t src = (std::size_t(b) * T + t) * width + c;
              const std::size_t dst = std::size_t(b * seq_stride) + std::size_t(slot) * width + c;
              want_k[dst] = cuda_test::encode(kv, k[src]);
              want_v[dst] = cuda_test::encode(kv, v[src]);
            }
          }
        CHECK(mismatches(kc.download(), want_k) == 0);
        CHECK(mismatches(vc.download(), want_v) == 0);
      }
  }

  SECTION("a ring keeps only the last capacity rows of a longer call (pos0 for every sequence)") {
    for (KvType kv : {KvType::bf16, KvType::f16}) {
      const int B = 2, C = 40, T = 3 * C + 13, pos0 = 7, width = 256;
      INFO(name(kv));
      DeviceBuffer<std::uint16_t> kc(std::size_t(B) * C * width), vc(std::size_t(B) * C * width);
      const std::vector<float> k = cuda_test::randn(std::size_t(B) * T * width, rng);
      const std::vector<float> v = cuda_test::randn(std::size_t(B) * T * width, rng);
      DeviceBuffer<float> kd(k), vd(v);
      AttentionArgs a;
      a.num_heads = 1;
      a.num_kv_heads = 1;
      a.head_dim = width;
      a.sliding = true;
      a.window = C;
      a.kv_type = kv;
      a.batch = B;
      a.T = T;
      a.pos0 = pos0;
      a.k_cache = kc.get();
      a.v_cache = vc.get();
      a.seq_stride = (long long)C * width;
      a.capacity = C;
      gemma3::cuda::kv_append(a, kd.get(), vd.get(), nullptr);
      cuda_test::sync();
      // Slot s holds the last row t with (pos0 + t) mod C == s: t in [T - C, T).
      std::vector<std::uint16_t> want_k(std::size_t(B) * C * width), want_v(want_k.size());
      for (int b = 0; b < B; ++b)
        for (int t = T - C; t < T; ++t)
          for (int c = 0; c < width; ++c) {
            const std::size_t src = (std::size_t(b) * T + t) * width + c;
            const std::size_t dst = (std::size_t(b) * C + std::size_t((pos0 + t) % C)) * width + c;
            want_k[dst] = cuda_test::encode(kv, k[src]);
            want_v[dst] = cuda_test::encode(kv, v[src]);
          }
      CHECK(mismatches(kc.download(), want_k) == 0);
      CHECK(mismatches(vc.download(), want_v) == 0);
    }
  }
}

TEST_CASE("decode at contexts around the window, global and sliding", "[cuda][decode]") {
  std::mt19937 rng(1002);
  std::vector<int> seen_splits;
  for (bool sliding : {false, true})
    for (int ctx : {1, 511, 512, 513, 2048}) {  // W - 1, W, W + 1, 4 W for W = 512
      Shape s;  // Gemma 3 1B: 4 q heads, 1 kv head, head_dim 256
      s.sliding = sliding;
      INFO(s.describe() << ", context " << ctx);
      const Problem pr = random_problem(s, {ctx - 1}, rng);
      const DeviceProblem dev(pr, {300});
      const std::vector<float> want = reference(pr);
      for (int n : check_decode(dev, want, sms_variants())) seen_splits.push_back(n);
      if (sliding && ctx > s.window) {
        // The test can fail: a window one wider (W + 1 keys) is far off.
        const cuda_test::Error e =
            cuda_test::compare(dev.run(Version::split, cuda_test::num_sms()), reference(pr, s.window + 1));
        CHECK(e.relative > 10 * kTol);
      }
    }
  // Both paths ran: one split (direct output) and several (workspace + combine).
  CHECK(std::count(seen_splits.begin(), seen_splits.end(), 1) > 0);
  CHECK(*std::max_element(seen_splits.begin(), seen_splits.end()) > 1);
}

TEST_CASE("decode over a long context, and a ring wrapped many times", "[cuda][decode][long]") {
  std::mt19937 rng(1003);
  SECTION("global, 32768 keys") {
    Shape s;
    const Problem pr = random_problem(s, {32767}, rng);
    const DeviceProblem dev(pr, {4096});
    check_decode(dev, reference(pr), {1, cuda_test::num_sms(), 1000});
  }
  SECTION("sliding W = 512 at position 20000: the ring wrapped 39 times, some chunks longer than the ring") {
    Shape s;
    s.sliding = true;
    const Problem pr = random_problem(s, {20000}, rng);
    const DeviceProblem dev(pr, {1500, 77, 512, 1});
    check_decode(dev, reference(pr), sms_variants());
  }
  SECTION("sliding, W = 100 (not a multiple of the key tile), B = 6 at positions before and after several wraps") {
    Shape s;
    s.sliding = true;
    s.window = 100;
    s.kv = KvType::f16;
    const Problem pr = random_problem(s, {0, 98, 99, 100, 357, 1234}, rng);
    const DeviceProblem dev(pr, {37, 250, 1, 100});
    check_decode(dev, reference(pr), sms_variants());
  }
  SECTION("sliding with a ring shorter than the window (max_cache_len < W)") {
    Shape s;
    s.sliding = true;
    const Problem pr = random_problem(s, {150, 199}, rng, /*capacity=*/200);
    const DeviceProblem dev(pr, {64});
    check_decode(dev, reference(pr), sms_variants());
  }
}

TEST_CASE("decode with GQA groups 1, 2, 4, 8, head_dim 128 and 256, bf16 and f16, softcap", "[cuda][decode][gqa]") {
  std::mt19937 rng(1004);
  int i = 0;
  for (int D : {128, 256})
    for (int G : {1, 2, 4, 8})
      for (KvType kv : {KvType::bf16, KvType::f16})
        for (float softcap : {0.f, 3.f}) {
          Shape s;
          s.num_kv_heads = 2;
          s.num_heads = 2 * G;
          s.head_dim = D;
          s.scale = 1.f / std::sqrt(float(D));
          s.softcap = softcap;
          s.kv = kv;
          const int bits = i++ & 7;  // softcap, kv type, G's low bit: each pair meets both layer types
          s.sliding = ((bits ^ (bits >> 1) ^ (bits >> 2)) & 1) == 1;
          s.window = 256;
          INFO(s.describe());
          const Problem pr = random_problem(s, {700, 333}, rng);
          const DeviceProblem dev(pr, {300});
          check_decode(dev, reference(pr), sms_variants());
        }
}

TEST_CASE("decode with Gemma 3 27B's shape (32 q heads, 16 kv heads, head_dim 128)", "[cuda][decode][gqa]") {
  std::mt19937 rng(1005);
  for (bool sliding : {false, true}) {
    Shape s;
    s.num_heads = 32;
    s.num_kv_heads = 16;
    s.head_dim = 128;
    s.scale = 1.f / std::sqrt(168.f);  // query_pre_attn_scalar = hidden_size / num_heads = 168
    s.sliding = sliding;
    s.window = 1024;
    INFO(s.describe());
    const Problem pr = random_problem(s, {2999, 1500, 17}, rng);
    const DeviceProblem dev(pr, {1100});
    check_decode(dev, reference(pr), sms_variants());
  }
}

TEST_CASE("decode of a batch, each sequence at its own position", "[cuda][decode][batch]") {
  std::mt19937 rng(1006);
  SECTION("B = 1, 3, 16 (1B, 4B, 1B shapes), planned for a longer max_position") {
    std::uniform_int_distribution<int> pick(0, 2500);
    for (int B : {1, 3, 16})
      for (bool sliding : {false, true}) {
        Shape s;
        if (B == 3) {  // Gemma 3 4B: 8 q heads, 4 kv heads, W = 1024
          s.num_heads = 8;
          s.num_kv_heads = 4;
          s.window = 1024;
          s.kv = KvType::f16;
        }
        s.sliding = sliding;
        std::vector<int> positions(static_cast<std::size_t>(B));
        for (int& p : positions) p = pick(rng);
        if (B > 1) positions[0] = 0;  // one key only: its later splits are empty
        if (B > 2) positions[1] = 2500;
        INFO(s.describe() << ", B " << B);
        Problem pr = random_problem(s, positions, rng, sliding ? 0 : 2700);
        pr.max_position = 2600;  // planned for more than the longest sequence
        const DeviceProblem dev(pr, {1000});
        check_decode(dev, reference(pr), sms_variants());
      }
  }

  SECTION("every sequence at pos0 (no positions array)") {
    Shape s;
    s.sliding = true;
    Problem pr = random_problem(s, {900, 900, 900}, rng);
    pr.positions_on_device = false;
    const DeviceProblem dev(pr, {256});
    check_decode(dev, reference(pr), sms_variants());
  }
}

TEST_CASE("decode of a batch whose sequences each own a cache of their own length (k_caches)",
          "[cuda][decode][batch]") {
  // The history goes in by one-sequence kv_append calls on each cache, as the backend's
  // prefill does; the current rows by one batched kv_append through the tables; then one
  // decode launch reads every cache through them.
  std::mt19937 rng(1010);
  struct Case {
    Shape s;
    std::vector<int> positions, max_cache_len;
  };
  std::vector<Case> cases;
  Shape global;  // 1B: 4 q heads, 1 kv head, head_dim 256
  cases.push_back({global, {0, 700, 2500, 31}, {1, 701, 2600, 90}});
  Shape sliding = global;  // rings of 512, and shorter caches that never wrap
  sliding.sliding = true;
  cases.push_back({sliding, {5, 600, 2000, 100, 511}, {6, 700, 5000, 101, 512}});
  Shape b4 = sliding;  // 4B: 8 q heads, 4 kv heads, W = 1024, f16 cache
  b4.num_heads = 8;
  b4.num_kv_heads = 4;
  b4.window = 1024;
  b4.kv = KvType::f16;
  cases.push_back({b4, {3000, 40}, {4096, 41}});
  Shape b27 = global;  // 27B: 32 q heads, 16 kv heads, head_dim 128, softcap
  b27.num_heads = 32;
  b27.num_kv_heads = 16;
  b27.head_dim = 128;
  b27.softcap = 50.f;
  cases.push_back({b27, {129, 1, 64}, {200, 2, 65}});
  Shape tiny = sliding;  // version 1 only: head_dim 32, GQA group 3
  tiny.num_heads = 3;
  tiny.num_kv_heads = 1;
  tiny.head_dim = 32;
  tiny.window = 16;
  cases.push_back({tiny, {3, 40, 15}, {4, 100, 16}});
  for (const Case& c : cases) {
    INFO(c.s.describe() << ", B " << c.positions.size());
    Problem pr = random_problem(c.s, c.positions, rng);
    pr.max_cache_len = c.max_cache_len;
    const DeviceProblem dev(pr);
    check_decode(dev, reference(pr), c.s.head_dim == 32 ? std::vector<int>{} : sms_variants());
  }
}

TEST_CASE("decode, kv_append, prefill and qk_norm_rope refuse caches named both ways, or half",
          "[cuda][decode][host]") {
  // Every call here throws in its host-side checks, before any CUDA call: this case runs
  // without a device too (ctest cuda_host_tests). The pointers are host addresses never read.
  alignas(16) static float buf[4096];
  void* const fake_table[2] = {buf, buf + 1024};
  AttentionArgs a;
  a.num_heads = 4;
  a.num_kv_heads = 1;
  a.head_dim = 256;
  a.scale = 0.0625f;
  a.batch = 2;
  a.T = 1;
  a.q = buf;
  a.out = buf + 2048;
  a.positions = reinterpret_cast<const int*>(buf + 3072);
  a.max_position = 10;
  a.capacity = 16;
  const auto refuses = [](const char* what, const AttentionArgs& x, const char* says) {
    INFO(what);
    CHECK_THROWS_WITH(gemma3::cuda::attention_decode(x, 132, nullptr), Catch::Matchers::Contains(says));
    CHECK_THROWS_WITH(gemma3::cuda::attention_decode_v1(x, nullptr), Catch::Matchers::Contains(says));
    CHECK_THROWS_WITH(gemma3::cuda::kv_append(x, buf, buf, nullptr), Catch::Matchers::Contains(says));
  };
  {
    AttentionArgs x = a;  // k_caches without v_caches
    x.k_caches = fake_table;
    refuses("k_caches alone", x, "go together");
  }
  {
    AttentionArgs x = a;  // both ways at once
    x.k_caches = fake_table;
    x.v_caches = fake_table;
    x.k_cache = buf;
    x.v_cache = buf;
    refuses("k_caches and k_cache", x, "not both");
  }
  {
    AttentionArgs x = a;  // a seq_stride with the tables
    x.k_caches = fake_table;
    x.v_caches = fake_table;
    x.seq_stride = 16 * 256;
    refuses("k_caches and a seq_stride", x, "not both");
  }
  refuses("no cache at all", a, "must be set");
  {
    AttentionArgs x = a;  // version 3 without its counters
    x.batch = 1;
    x.k_cache = buf;
    x.v_cache = buf + 1024;
    CHECK_THROWS_WITH(gemma3::cuda::attention_decode_fused(x, 132, nullptr, nullptr), Catch::Matchers::Contains("counters"));
  }
  {
    AttentionArgs x = a;  // prefill takes one sequence's cache
    x.batch = 1;
    x.T = 4;
    x.positions = nullptr;
    x.pos0 = 0;
    x.k_new = buf;
    x.v_new = buf;
    x.k_caches = fake_table;
    x.v_caches = fake_table;
    CHECK_THROWS_WITH(gemma3::cuda::attention_prefill(x, nullptr), Catch::Matchers::Contains("k_caches"));
    CHECK_THROWS_WITH(gemma3::cuda::attention_prefill_v1(x, nullptr), Catch::Matchers::Contains("k_caches"));
  }
  {
    AttentionArgs x = a;  // so does the fused QK-norm + RoPE's cache write
    x.batch = 1;
    x.positions = nullptr;
    x.pos0 = 3;
    x.k_cache = buf;
    x.v_cache = buf;
    x.k_caches = fake_table;
    x.v_caches = fake_table;
    gemma3::cuda::QkNormRope qk;
    qk.q = buf;
    qk.k = buf + 1024;
    qk.q_norm = buf + 2048;
    qk.k_norm = buf + 2048;
    qk.inv_freq = buf + 3072;
    CHECK_THROWS_WITH(gemma3::cuda::qk_norm_rope(x, qk, buf, nullptr), Catch::Matchers::Contains("k_caches"));
  }
}

TEST_CASE("a sliding layer on a long cache equals a global layer on its last W keys", "[cuda][decode][metamorphic]") {
  // FlashInfer's check: the window is the only thing a sliding layer adds, so the same
  // query over a cache holding just the last W keys (a global layer at position W - 1)
  // gives the same output.
  std::mt19937 rng(1007);
  Shape s;
  s.sliding = true;
  const int W = s.window, p = 5000;
  const Problem ring = random_problem(s, {p}, rng);
  Problem flat;
  flat.s = s;
  flat.s.sliding = false;
  flat.positions = {W - 1};
  flat.max_position = W - 1;
  flat.capacity = W;
  const std::size_t row = std::size_t(s.row()), first = std::size_t(p - W + 1) * row;
  flat.keys = {std::vector<float>(ring.keys[0].begin() + std::ptrdiff_t(first), ring.keys[0].end())};
  flat.values = {std::vector<float>(ring.values[0].begin() + std::ptrdiff_t(first), ring.values[0].end())};
  flat.q = ring.q;
  const DeviceProblem dev_ring(ring, {700}), dev_flat(flat, {W});
  for (int sms : sms_variants()) {
    INFO("num_sms " << sms);
    const std::vector<float> a = dev_ring.run(Version::split, sms), b = dev_flat.run(Version::split, sms);
    const cuda_test::Error e = cuda_test::compare(a, b);
    CHECK(e.non_finite == 0);
    CHECK(cuda_test::compare(b, a).non_finite == 0);
    CHECK(e.relative <= 1e-6);  // the same keys in the same order: equal
  }
  check_decode(dev_ring, reference(ring), {cuda_test::num_sms()});
}

TEST_CASE("version 1 takes any head_dim up to 256 and any GQA group", "[cuda][decode][v1]") {
  // The backend runs it for the shapes the split-K kernel does not take (the test
  // fixtures' head_dim 8 .. 32, windows of 1 .. 4 keys).
  std::mt19937 rng(1010);
  struct Odd {
    int num_heads, num_kv_heads, head_dim, window;
  };
  for (const Odd& o : {Odd{4, 2, 8, 3}, Odd{4, 1, 16, 1}, Odd{2, 2, 32, 2}, Odd{6, 2, 40, 4}, Odd{3, 1, 100, 50},
                       Odd{4, 2, 200, 64}, Odd{8, 8, 1, 5}})
    for (bool sliding : {false, true})
      for (KvType kv : {KvType::bf16, KvType::f16}) {
        Shape s;
        s.num_heads = o.num_heads;
        s.num_kv_heads = o.num_kv_heads;
        s.head_dim = o.head_dim;
        s.scale = 1.f / std::sqrt(float(o.head_dim));
        s.softcap = o.head_dim == 40 ? 2.f : 0.f;
        s.sliding = sliding;
        s.window = o.window;
        s.kv = kv;
        INFO(s.describe());
        const Problem pr = random_problem(s, {0, 5, 37, 130}, rng);
        const DeviceProblem dev(pr, {7, 64});
        const std::vector<float> got = dev.run(Version::v1, 1), want = reference(pr);
        REQUIRE(got.size() == want.size());
        const cuda_test::Error e = cuda_test::compare(got, want);
        INFO("relative error " << e.relative << ", max abs " << e.max_abs);
        CHECK(e.non_finite == 0);
        CHECK(e.relative <= kTol);
      }
}

TEST_CASE("decode outputs NaN for a device position past max_position, and reads nothing", "[cuda][decode]") {
  std::mt19937 rng(1008);
  Shape s;
  const Problem pr = random_problem(s, {100, 150}, rng);
  DeviceProblem dev(pr, {300});
  const std::vector<float> want = reference(pr);
  const std::size_t qw = std::size_t(s.num_heads) * s.head_dim;
  for (int bad : {151, 1 << 30, -1}) {
    dev.set_device_positions({100, bad});
    INFO("position " << bad);
    for (Version v : {Version::split, Version::fused, Version::v1})
      for (int sms : sms_variants()) {
        INFO(name(v) << ", num_sms " << sms);
        const std::vector<float> got = dev.run(v, sms);
        const std::vector<float> got0(got.begin(), got.begin() + std::ptrdiff_t(qw));
        const std::vector<float> want0(want.begin(), want.begin() + std::ptrdiff_t(qw));
        const cuda_test::Error e = cuda_test::compare(got0, want0);
        CHECK(e.non_finite == 0);
        CHECK(e.relative <= kTol);
        CHECK(std::all_of(got.begin() + std::ptrdiff_t(qw), got.end(), [](float x) { return std::isnan(x); }));
      }
  }
}

TEST_CASE("decode and kv_append reject what they cannot run", "[cuda][decode]") {
  std::mt19937 rng(1009);
  Shape s;
  const Problem pr = random_problem(s, {40}, rng);
  const DeviceProblem dev(pr, {300});
  const int sms = cuda_test::num_sms();
  DeviceBuffer<float> out(std::size_t(s.num_heads) * s.head_dim);
  AttentionArgs good = dev.args();
  good.out = out.get();
  const std::size_t need = gemma3::cuda::attention_decode_workspace(good, sms);
  REQUIRE(need > 0);
  DeviceBuffer<unsigned char> ws(need);
  good.workspace = ws.get();
  good.workspace_bytes = need;
  REQUIRE_NOTHROW(gemma3::cuda::attention_decode(good, sms, nullptr));
  REQUIRE_NOTHROW(gemma3::cuda::attention_decode_v1(good, nullptr));
  cuda_test::sync();

  // v1_too: version 1 rejects it as well (it takes any head_dim 1 .. 256 and any group).
  const auto rejects = [&](const char* what, bool v1_too, auto change) {
    INFO(what);
    AttentionArgs a = good;
    change(a);
    CHECK_THROWS_AS(gemma3::cuda::attention_decode(a, sms, nullptr), std::invalid_argument);
    if (v1_too) CHECK_THROWS_AS(gemma3::cuda::attention_decode_v1(a, nullptr), std::invalid_argument);
  };
  rejects("head_dim 64", false, [](AttentionArgs& a) { a.head_dim = 64; });
  rejects("GQA group 16", false, [](AttentionArgs& a) { a.num_heads = 16; });
  rejects("GQA group 3", false, [](AttentionArgs& a) { a.num_heads = 6; a.num_kv_heads = 2; });
  rejects("head_dim 0", true, [](AttentionArgs& a) { a.head_dim = 0; });
  rejects("head_dim 512", true, [](AttentionArgs& a) { a.head_dim = 512; });
  rejects("num_heads not a multiple of num_kv_heads", true, [](AttentionArgs& a) {
    a.num_heads = 6;
    a.num_kv_heads = 4;
  });
  rejects("T = 2", true, [](AttentionArgs& a) { a.T = 2; });
  rejects("capacity 0", true, [](AttentionArgs& a) { a.capacity = 0; });
  rejects("a global position past the cache", true, [](AttentionArgs& a) { a.max_position = a.capacity; });
  rejects("a ring shorter than the window's keys", true, [](AttentionArgs& a) {
    a.sliding = true;
    a.window = 512;
    a.capacity = 30;
  });
  rejects("no q", true, [](AttentionArgs& a) { a.q = nullptr; });
  rejects("a negative position", true, [](AttentionArgs& a) { a.positions = nullptr; a.pos0 = -1; });
  {
    AttentionArgs a = good;
    a.workspace_bytes = need - 1;
    CHECK_THROWS_AS(gemma3::cuda::attention_decode(a, sms, nullptr), std::invalid_argument);
    a.workspace = nullptr;
    a.workspace_bytes = need;
    CHECK_THROWS_AS(gemma3::cuda::attention_decode(a, sms, nullptr), std::invalid_argument);
  }
  {
    AttentionArgs a = good;  // kv_append past a global cache's end
    a.batch = 1;
    a.T = 3;
    a.positions = nullptr;
    a.pos0 = a.capacity - 2;
    DeviceBuffer<float> rows(std::size_t(3) * s.row());
    CHECK_THROWS_AS(gemma3::cuda::kv_append(a, rows.get(), rows.get(), nullptr), std::invalid_argument);
  }
  cuda_test::sync();
}
