// cuda/tests/test_attention_prefill.cpp -- prefill attention on the GPU (the tiled
// tensor-core kernel attention_prefill and version 1) against the float64 brute force
// (cuda_test::reference_attention, the library's mask rule).
//
// Every case draws fresh inputs (q, and K / V for positions 0 .. pos0 + T - 1), writes
// the history (positions < pos0) into the cache from the host at plan.hpp cache_slot
// positions -- only the rows the cache still holds: a wrapped ring keeps the last C --
// and leaves every other cache row as NaN bytes, so a kernel that reads a key outside
// the window, or an unwritten row, turns the output into NaN. The output buffer is NaN
// bytes too, with a guard past its end: every element must be written and no padding
// row may be. The reference sees what the kernel sees: q rounded to bf16, K / V rounded
// to the cache type (and, for the tiled kernel, to bf16: its tensor-core inputs).
//
//   tiled kernel   relative error <= 1e-2 (P is rounded to bf16) and, FlashAttention's
//                  test: error <= 3 x that of a float32 path which also rounds P to
//                  bf16, + 1e-4
//   version 1      relative error <= 1e-4 (float32 throughout)
//   both           no NaN or Inf, ever
//
// Cases: global and sliding layers, T in {1, W - 1, W, W + 1, 4 W} for W = 16 and 64,
// version 1 also at head_dims 8 .. 200 (the tiny test models run on it),
// GQA groups 1, 2, 4, head_dim 128 and 256, the 27B shape (32 / 16 heads, head_dim 128,
// scale 1 / sqrt(168)), softcap, bf16 and f16 caches, chunked prefill (pos0 > 0) with
// the ring wrapped, T G not a multiple of the 64-row tile, image groups crossing Q-tile
// and key-tile edges, one real-size case (W 512, T 2048, G 4, head_dim 256), and the
// metamorphic check: the last query of a sliding layer over a long sequence equals a
// global layer's last query over just the last W keys. And the tiled kernel's cp.async
// tile loads against the same kernel loading through registers
// (attention_prefill_sync_loads): the same bits.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "attention.hpp"
#include "catch.hpp"
#include "cuda_test_util.hpp"
#include "gemma3/cuda/plan.hpp"
#include "prefill_versions.hpp"

namespace {

using gemma3::cuda::AttentionArgs;
using gemma3::cuda::KvType;
using cuda_test::DeviceBuffer;

enum class Kernel { tiled, tiled_sync, v1 };  // tiled_sync: attention_prefill_sync_loads

struct Case {
  int num_heads = 4, num_kv_heads = 1, head_dim = 256;
  bool sliding = false;
  int window = 0;
  int pos0 = 0, T = 1;
  float softcap = 0.f;
  KvType kv = KvType::bf16;
  int capacity = 0;  // 0: sliding -> the window (a ring); global -> pos0 + T + 3 (rows past the end unwritten)
  float scale = 0.0625f;
  std::vector<int> groups;  // image group of each query (-1 text); empty: text only
};

std::string describe(const Case& c) {
  std::ostringstream s;
  s << (c.sliding ? "sliding W=" + std::to_string(c.window) : std::string("global")) << " NH=" << c.num_heads
    << " KV=" << c.num_kv_heads << " D=" << c.head_dim << " pos0=" << c.pos0 << " T=" << c.T
    << " cap=" << c.capacity << " softcap=" << c.softcap << " scale=" << c.scale
    << " kv=" << (c.kv == KvType::bf16 ? "bf16" : "f16") << (c.groups.empty() ? "" : " images");
  return s.str();
}

float to_bf16(float x) { return gemma3::bf16_to_f32(gemma3::f32_to_bf16(x)); }

int capacity_of(const Case& c) {
  if (c.capacity > 0) return c.capacity;
  return c.sliding ? c.window : c.pos0 + c.T + 3;
}

struct Result {
  std::vector<float> out;  // [T, num_heads * head_dim]
  cuda_test::Error error;  // against the float64 reference
  double naive_relative = 0;  // the float32 path with P rounded to bf16, against the same reference
  bool guard_intact = true;   // nothing written past the output
};

// FlashAttention's yardstick: softmax in float32 over the same (rounded) inputs, P
// rounded to bf16 before the PV sum (its rounded values also make l).
std::vector<float> naive_bf16_p(const Case& c, const std::vector<float>& q, const std::vector<float>& keys,
                                const std::vector<float>& values, const gemma3::ImageGroups* images) {
  const int NH = c.num_heads, KV = c.num_kv_heads, D = c.head_dim, G = NH / KV, P = c.pos0 + c.T;
  const gemma3::AttentionMask mask{c.sliding, c.window, c.pos0, images};
  std::vector<float> out(std::size_t(c.T) * NH * D, 0.f), s(static_cast<std::size_t>(P)), o(static_cast<std::size_t>(D));
  for (int t = 0; t < c.T; ++t)
    for (int h = 0; h < NH; ++h) {
      const float* qv = &q[(std::size_t(t) * NH + h) * D];
      float m = -INFINITY;
      for (int p = 0; p < P; ++p) {
        if (!mask.allows(c.pos0 + t, p)) { s[p] = -INFINITY; continue; }
        const float* kr = &keys[(std::size_t(p) * KV + h / G) * D];
        float dot = 0.f;
        for (int d = 0; d < D; ++d) dot += qv[d] * kr[d];
        float x = dot * c.scale;
        if (c.softcap > 0.f) x = c.softcap * std::tanh(x / c.softcap);
        s[p] = x;
        m = std::max(m, x);
      }
      float l = 0.f;
      std::fill(o.begin(), o.end(), 0.f);
      for (int p = 0; p < P; ++p) {
        if (s[p] == -INFINITY) continue;
        const float w = to_bf16(std::exp(s[p] - m));
        l += w;
        const float* vr = &values[(std::size_t(p) * KV + h / G) * D];
        for (int d = 0; d < D; ++d) o[d] += w * vr[d];
      }
      for (int d = 0; d < D; ++d) out[(std::size_t(t) * NH + h) * D + d] = o[d] / l;
    }
  return out;
}

// Runs one case on `kernel` with inputs drawn from rng and compares it with the reference.
// q, keys, values (raw float32, [T] / [pos0 + T] rows) may be given; else they are drawn.
Result run(const Case& c, Kernel kernel, std::mt19937& rng, std::vector<float> q = {}, std::vector<float> keys = {},
           std::vector<float> values = {}) {
  const int NH = c.num_heads, KV = c.num_kv_heads, D = c.head_dim, G = NH / KV, P = c.pos0 + c.T;
  const std::size_t qw = std::size_t(NH) * D, kw = std::size_t(KV) * D;
  if (q.empty()) q = cuda_test::randn(std::size_t(c.T) * qw, rng);
  if (keys.empty()) keys = cuda_test::randn(std::size_t(P) * kw, rng);
  if (values.empty()) values = cuda_test::randn(std::size_t(P) * kw, rng);

  // The cache: the history rows it still holds at their slots, every other row NaN bytes.
  const int cap = capacity_of(c);
  std::vector<std::uint16_t> k_cache(std::size_t(cap) * kw, 0xFFFF), v_cache(std::size_t(cap) * kw, 0xFFFF);
  const int kept_from = c.sliding ? std::max(0, c.pos0 - cap) : 0;
  for (int p = kept_from; p < c.pos0; ++p) {
    const std::size_t slot = std::size_t(gemma3::cuda::cache_slot(c.sliding, cap, p));
    for (std::size_t i = 0; i < kw; ++i) {
      k_cache[slot * kw + i] = cuda_test::encode(c.kv, keys[std::size_t(p) * kw + i]);
      v_cache[slot * kw + i] = cuda_test::encode(c.kv, values[std::size_t(p) * kw + i]);
    }
  }
  // This call's rows, unrounded: the kernel rounds them as it reads them.
  const std::vector<float> k_new(keys.begin() + std::ptrdiff_t(std::size_t(c.pos0) * kw), keys.end());
  const std::vector<float> v_new(values.begin() + std::ptrdiff_t(std::size_t(c.pos0) * kw), values.end());

  DeviceBuffer<float> d_q(q), d_k_new(k_new), d_v_new(v_new);
  DeviceBuffer<std::uint16_t> d_k_cache(k_cache), d_v_cache(v_cache);
  const std::size_t guard = std::size_t(gemma3::cuda::prefill_rows_per_tile() / G + 2) * qw;
  DeviceBuffer<float> d_out(std::size_t(c.T) * qw + guard);

  std::unique_ptr<gemma3::ImageGroups> images;
  std::vector<int> last_key;
  DeviceBuffer<int> d_group, d_last_key;
  AttentionArgs a;
  a.num_heads = NH;
  a.num_kv_heads = KV;
  a.head_dim = D;
  a.scale = c.scale;
  a.softcap = c.softcap;
  a.sliding = c.sliding;
  a.window = c.window;
  a.kv_type = c.kv;
  a.batch = 1;
  a.T = c.T;
  a.q = d_q.get();
  a.out = d_out.get();
  a.pos0 = c.pos0;
  a.k_new = d_k_new.get();
  a.v_new = d_v_new.get();
  a.k_cache = d_k_cache.get();
  a.v_cache = d_v_cache.get();
  a.seq_stride = (long long)cap * (long long)kw;
  a.capacity = cap;
  a.last_key_max = P - 1;
  if (!c.groups.empty()) {
    REQUIRE(int(c.groups.size()) == c.T);
    images = std::make_unique<gemma3::ImageGroups>(c.groups, c.pos0);
    for (int t = 0; t < c.T; ++t) last_key.push_back(images->last_visible_key(c.pos0 + t));
    d_group = DeviceBuffer<int>(c.groups);
    d_last_key = DeviceBuffer<int>(last_key);
    a.group = d_group.get();
    a.last_key = d_last_key.get();
    a.last_key_max = *std::max_element(last_key.begin(), last_key.end());
  }

  // the tiled kernel's staged keys (NaN bytes until it writes them)
  DeviceBuffer<std::uint16_t> d_workspace(gemma3::cuda::attention_prefill_workspace(a) / 2);
  a.workspace = d_workspace.get();
  a.workspace_bytes = gemma3::cuda::attention_prefill_workspace(a);
  if (kernel == Kernel::tiled) gemma3::cuda::attention_prefill(a, nullptr);
  else if (kernel == Kernel::tiled_sync) gemma3::cuda::attention_prefill_sync_loads(a, nullptr);
  else gemma3::cuda::attention_prefill_v1(a, nullptr);
  cuda_test::sync();

  Result r;
  std::vector<float> all = d_out.download();
  r.out.assign(all.begin(), all.begin() + std::ptrdiff_t(std::size_t(c.T) * qw));
  for (std::size_t i = std::size_t(c.T) * qw; i < all.size(); ++i) {
    std::uint32_t b;
    std::memcpy(&b, &all[i], 4);
    if (b != 0xFFFFFFFFu) r.guard_intact = false;
  }

  // What the kernel computes with: q in bf16, K / V in the cache type (and bf16 for the
  // tiled kernel's tensor cores).
  for (float& x : q) x = to_bf16(x);
  cuda_test::round_all(c.kv, keys);
  cuda_test::round_all(c.kv, values);
  if (kernel != Kernel::v1) {
    for (float& x : keys) x = to_bf16(x);
    for (float& x : values) x = to_bf16(x);
  }
  const std::vector<float> want = cuda_test::reference_attention(NH, KV, D, c.scale, c.softcap, c.sliding, c.window,
                                                                 c.pos0, c.T, q, keys, values, P, images.get());
  r.error = cuda_test::compare(r.out, want);
  if (kernel != Kernel::v1) r.naive_relative = cuda_test::compare(naive_bf16_p(c, q, keys, values, images.get()), want).relative;
  return r;
}

void check_tiled(const Case& c, std::mt19937& rng) {
  INFO(describe(c));
  const Result r = run(c, Kernel::tiled, rng);
  INFO("relative " << r.error.relative << ", max_abs " << r.error.max_abs << ", naive bf16-P relative "
                   << r.naive_relative);
  REQUIRE(r.error.non_finite == 0);
  CHECK(r.guard_intact);
  CHECK(r.error.relative <= 1e-2);
  CHECK(r.error.relative <= 3 * r.naive_relative + 1e-4);
}

void check_v1(const Case& c, std::mt19937& rng) {
  INFO(describe(c));
  const Result r = run(c, Kernel::v1, rng);
  INFO("relative " << r.error.relative << ", max_abs " << r.error.max_abs);
  REQUIRE(r.error.non_finite == 0);
  CHECK(r.guard_intact);
  CHECK(r.error.relative <= 1e-4);
}

Case text(int NH, int KV, int D, bool sliding, int W, int pos0, int T) {
  Case c;
  c.num_heads = NH;
  c.num_kv_heads = KV;
  c.head_dim = D;
  c.sliding = sliding;
  c.window = W;
  c.pos0 = pos0;
  c.T = T;
  return c;
}

// Image groups of T tokens: group g covers tokens [spans[g].first, spans[g].second].
std::vector<int> groups_of(int T, const std::vector<std::pair<int, int>>& spans) {
  std::vector<int> g(std::size_t(T), -1);
  for (std::size_t i = 0; i < spans.size(); ++i)
    for (int t = spans[i].first; t <= spans[i].second; ++t) g[std::size_t(t)] = int(i);
  return g;
}

// Image cases. With G = 2 a Q tile of 64 packed rows holds 32 positions, so tiles start
// at t = 0, 32, 64, ...; key tiles hold 32 (head_dim 256) or 64 (head_dim 128) positions.
std::vector<Case> image_cases() {
  std::vector<Case> cases;
  const std::vector<std::pair<int, int>> spans = {{20, 50}, {58, 75}};  // cross t = 32 and t = 64
  for (int D : {256, 128}) {
    Case c = text(4, 2, D, false, 0, 0, 100);
    c.groups = groups_of(100, spans);
    cases.push_back(c);  // global, from position 0
    c.sliding = true;
    c.window = 16;       // shorter than image 0: it still sees forward to its end
    c.capacity = 0;
    cases.push_back(c);
    c = text(4, 2, D, false, 0, 40, 100);  // history of 40: image 0 at positions 60..90 crosses key 64
    c.groups = groups_of(100, spans);
    cases.push_back(c);
    c.sliding = true;
    c.window = 64;  // a ring of 64: the history (40 rows) fits, this call's keys reach past it
    cases.push_back(c);
  }
  Case c = text(8, 2, 256, true, 64, 150, 90);  // G = 4 (16 positions a Q tile); wrapped ring; image at both ends
  c.groups = groups_of(90, {{0, 9}, {30, 61}, {80, 89}});
  cases.push_back(c);
  c.kv = KvType::f16;
  c.softcap = 1.5f;
  cases.push_back(c);
  return cases;
}

AttentionArgs tiny_valid_args(DeviceBuffer<float>& q, DeviceBuffer<float>& out, DeviceBuffer<float>& kn,
                              DeviceBuffer<std::uint16_t>& cache) {
  AttentionArgs a;
  a.num_heads = 4;
  a.num_kv_heads = 2;
  a.head_dim = 128;
  a.scale = 0.0625f;
  a.sliding = true;
  a.window = 8;
  a.T = 4;
  a.pos0 = 6;
  a.q = q.get();
  a.out = out.get();
  a.k_new = kn.get();
  a.v_new = kn.get();
  a.k_cache = cache.get();
  a.v_cache = cache.get();
  a.capacity = 8;
  a.seq_stride = 8 * 2 * 128;
  a.last_key_max = 9;
  return a;
}

}  // namespace

TEST_CASE("prefill: text, global and sliding, T around the window", "[cuda][prefill]") {
  std::mt19937 rng(20250301);
  for (int D : {256, 128})
    for (const auto& heads : std::vector<std::pair<int, int>>{{4, 1}, {4, 2}, {2, 2}})
      for (bool sliding : {false, true})
        for (int W : {16, 64})
          for (int T : {1, W - 1, W, W + 1, 4 * W}) check_tiled(text(heads.first, heads.second, D, sliding, W, 0, T), rng);
}

TEST_CASE("prefill: chunked prefill reads the history from the cache, the ring wrapped", "[cuda][prefill]") {
  std::mt19937 rng(7);
  std::vector<Case> cases = {
      text(4, 1, 256, false, 0, 100, 37),   // global; 37 x 4 = 148 rows: the last tile has 20
      text(4, 1, 256, true, 64, 200, 50),   // ring of 64 wrapped three times
      text(4, 1, 256, true, 64, 130, 200),  // T > W after a wrapped history
      text(4, 2, 128, true, 16, 5, 3),      // history shorter than the window
      text(8, 4, 256, true, 16, 1000, 17),  // deep into the sequence, small window
      text(2, 1, 128, false, 0, 300, 5),    // 10 rows
      text(1, 1, 256, true, 64, 64, 64),    // G = 1, history exactly one window
  };
  Case small_ring = text(4, 1, 256, true, 64, 25, 15);  // a cache shorter than the window holding everything
  small_ring.capacity = 40;
  cases.push_back(small_ring);
  Case big_ring = text(4, 2, 128, true, 64, 300, 70);  // a ring longer than the window
  big_ring.capacity = 80;
  cases.push_back(big_ring);
  for (const Case& c : cases) check_tiled(c, rng);
}

TEST_CASE("prefill: the tile loads by cp.async give the synchronous loads' bits", "[cuda][prefill]") {
  // The same inputs through both: text from position 0 and after a wrapped ring, both
  // cache types, both head_dims, images, T G not a multiple of the tile.
  std::vector<Case> cases = {
      text(4, 1, 256, false, 0, 0, 70),
      text(4, 1, 256, true, 64, 130, 200),
      text(4, 2, 128, true, 16, 5, 3),
      text(8, 4, 256, true, 16, 1000, 17),
  };
  Case f16 = text(4, 2, 128, true, 64, 300, 70);
  f16.kv = KvType::f16;
  cases.push_back(f16);
  Case f16_global = text(2, 1, 256, false, 0, 40, 33);
  f16_global.kv = KvType::f16;
  cases.push_back(f16_global);
  cases.push_back(image_cases().front());
  for (const Case& c : cases) {
    INFO(describe(c));
    std::mt19937 rng_a(99), rng_b(99);
    const Result async = run(c, Kernel::tiled, rng_a), sync = run(c, Kernel::tiled_sync, rng_b);
    REQUIRE(async.out.size() == sync.out.size());
    REQUIRE(async.error.non_finite == 0);
    CHECK(async.error.relative <= 1e-2);
    CHECK(std::memcmp(async.out.data(), sync.out.data(), async.out.size() * sizeof(float)) == 0);
    CHECK(sync.guard_intact);
  }
}

TEST_CASE("prefill: 27B shape, softcap, f16 caches", "[cuda][prefill]") {
  std::mt19937 rng(27);
  for (bool sliding : {false, true}) {
    Case c = text(32, 16, 128, sliding, 64, 50, 100);  // 27B: G = 2, head_dim 128, scale 1 / sqrt(168)
    c.scale = float(1.0 / std::sqrt(168.0));
    check_tiled(c, rng);
    c.kv = KvType::f16;
    check_tiled(c, rng);
  }
  for (KvType kv : {KvType::bf16, KvType::f16})
    for (int D : {256, 128}) {
      Case c = text(4, 1, D, true, 16, 20, 70);
      c.softcap = 1.5f;  // small enough that tanh bends the scores
      c.kv = kv;
      check_tiled(c, rng);
      c.sliding = false;
      c.softcap = 50.f;
      check_tiled(c, rng);
    }
}

TEST_CASE("prefill: image groups crossing Q-tile and key-tile edges", "[cuda][prefill]") {
  std::mt19937 rng(314);
  for (const Case& c : image_cases()) check_tiled(c, rng);
}

TEST_CASE("prefill: real size, W 512, T 2048, G 4, head_dim 256", "[cuda][prefill]") {
  std::mt19937 rng(512);
  check_tiled(text(4, 1, 256, true, 512, 0, 2048), rng);
  Case chunk = text(4, 1, 256, true, 512, 1000, 700);  // the next chunk, its ring wrapped
  check_tiled(chunk, rng);
}

TEST_CASE("prefill: a sliding layer's last query equals global attention over the last W keys", "[cuda][prefill]") {
  // FlashInfer's metamorphic check: the window makes the far past invisible.
  std::mt19937 rng(99);
  for (int D : {256, 128}) {
    const int W = 64, T = 300, NH = 4, KV = 2;
    const std::size_t qw = std::size_t(NH) * D, kw = std::size_t(KV) * D;
    const std::vector<float> q = cuda_test::randn(std::size_t(T) * qw, rng);
    const std::vector<float> keys = cuda_test::randn(std::size_t(T) * kw, rng);
    const std::vector<float> values = cuda_test::randn(std::size_t(T) * kw, rng);
    const Result sliding = run(text(NH, KV, D, true, W, 0, T), Kernel::tiled, rng, q, keys, values);

    const auto tail = [](const std::vector<float>& x, std::size_t rows, std::size_t width) {
      return std::vector<float>(x.end() - std::ptrdiff_t(rows * width), x.end());
    };
    const Result global = run(text(NH, KV, D, false, 0, 0, W), Kernel::tiled, rng, tail(q, W, qw), tail(keys, W, kw),
                              tail(values, W, kw));
    REQUIRE(sliding.error.non_finite == 0);
    REQUIRE(global.error.non_finite == 0);
    const std::vector<float> a(sliding.out.end() - std::ptrdiff_t(qw), sliding.out.end());
    const std::vector<float> b(global.out.end() - std::ptrdiff_t(qw), global.out.end());
    const cuda_test::Error e = cuda_test::compare(a, b);
    INFO("D " << D << ": last query, sliding vs global over the last W keys: relative " << e.relative);
    CHECK(e.non_finite == 0);
    CHECK(e.relative <= 1e-2);
    CHECK(sliding.error.relative <= 1e-2);
    CHECK(global.error.relative <= 1e-2);
  }
}

TEST_CASE("prefill version 1 matches the reference", "[cuda][prefill]") {
  std::mt19937 rng(1);
  std::vector<Case> cases = {
      text(4, 1, 256, false, 0, 0, 1),     text(4, 1, 256, false, 0, 0, 65),  text(4, 2, 128, true, 16, 0, 64),
      text(4, 1, 256, true, 64, 200, 50),  text(2, 2, 128, false, 0, 30, 20), text(8, 4, 256, true, 16, 1000, 17),
  };
  Case c27 = text(32, 16, 128, true, 64, 50, 40);
  c27.scale = float(1.0 / std::sqrt(168.0));
  c27.kv = KvType::f16;
  c27.softcap = 1.5f;
  cases.push_back(c27);
  for (const Case& c : image_cases()) cases.push_back(c);
  // any head_dim up to 256: the tiny test models' 8, 16 and 32, and others
  for (int D : {8, 16, 32, 48, 64, 200}) {
    cases.push_back(text(4, 2, D, false, 0, 3, 9));
    cases.push_back(text(2, 1, D, true, 4, 7, 11));
  }
  for (const Case& c : cases) check_v1(c, rng);
}

TEST_CASE("prefill rejects the calls it does not support", "[cuda][prefill]") {
  DeviceBuffer<float> q(4 * 4 * 256), out(4 * 4 * 256), kn(4 * 2 * 256);
  DeviceBuffer<std::uint16_t> cache(64 * 2 * 256);
  AttentionArgs ok = tiny_valid_args(q, out, kn, cache);
  DeviceBuffer<std::uint16_t> workspace(gemma3::cuda::attention_prefill_workspace(ok) / 2 + 8);
  ok.workspace = workspace.get();
  ok.workspace_bytes = gemma3::cuda::attention_prefill_workspace(ok);
  using Fn = void (*)(const AttentionArgs&, cudaStream_t);
  for (Fn f : {Fn(gemma3::cuda::attention_prefill), Fn(gemma3::cuda::attention_prefill_sync_loads),
               Fn(gemma3::cuda::attention_prefill_v1)}) {
    REQUIRE_NOTHROW(f(ok, nullptr));
    cuda_test::sync();
    auto bad = [&](auto change) {
      AttentionArgs a = ok;
      change(a);
      return a;
    };
    const bool tiled = f != Fn(gemma3::cuda::attention_prefill_v1);
    if (tiled) CHECK_THROWS_AS(f(bad([](AttentionArgs& a) { a.head_dim = 64; }), nullptr), std::invalid_argument);
    CHECK_THROWS_AS(f(bad([](AttentionArgs& a) { a.head_dim = 320; }), nullptr), std::invalid_argument);
    CHECK_THROWS_AS(f(bad([](AttentionArgs& a) { a.num_heads = 3; }), nullptr), std::invalid_argument);
    CHECK_THROWS_AS(f(bad([](AttentionArgs& a) { a.batch = 2; }), nullptr), std::invalid_argument);
    CHECK_THROWS_AS(f(bad([](AttentionArgs& a) { a.T = 0; }), nullptr), std::invalid_argument);
    CHECK_THROWS_AS(f(bad([](AttentionArgs& a) { a.capacity = 7; }), nullptr), std::invalid_argument);  // ring < W, < pos0 + T
    CHECK_THROWS_AS(f(bad([](AttentionArgs& a) { a.sliding = false; }), nullptr), std::invalid_argument);  // capacity 8 < pos0 + T = 10
    CHECK_THROWS_AS(f(bad([](AttentionArgs& a) { a.window = 0; }), nullptr), std::invalid_argument);
    CHECK_THROWS_AS(f(bad([](AttentionArgs& a) { a.k_cache = nullptr; }), nullptr), std::invalid_argument);
    CHECK_THROWS_AS(f(bad([](AttentionArgs& a) { a.k_new = nullptr; }), nullptr), std::invalid_argument);
    CHECK_THROWS_AS(f(bad([](AttentionArgs& a) { a.out_bf16 = reinterpret_cast<std::uint16_t*>(a.out); }), nullptr),
                    std::invalid_argument);  // decode's only
    if (tiled)  // version 1 reads single floats: any alignment
      CHECK_THROWS_AS(f(bad([](AttentionArgs& a) { a.q = a.q + 1; }), nullptr), std::invalid_argument);
    CHECK_THROWS_AS(f(bad([&](AttentionArgs& a) { a.group = reinterpret_cast<const int*>(kn.get()); }), nullptr),
                    std::invalid_argument);  // group without last_key
    if (tiled) {  // the staged keys' workspace: given, large enough, 16-byte aligned
      using Catch::Matchers::Contains;
      CHECK_THROWS_WITH(f(bad([](AttentionArgs& a) { a.workspace = nullptr; }), nullptr), Contains("workspace"));
      CHECK_THROWS_WITH(f(bad([](AttentionArgs& a) { a.workspace_bytes -= 16; }), nullptr), Contains("workspace"));
      CHECK_THROWS_WITH(f(bad([](AttentionArgs& a) {
                          a.workspace = static_cast<std::uint16_t*>(a.workspace) + 4;
                        }), nullptr),
                        Contains("workspace"));
    }
  }
}
