// The CUDA kernels' index arithmetic (cuda/include/gemma3/cuda/plan.hpp), checked on
// the CPU against brute force, so it needs no GPU and runs in every build:
//   - the key tiles a Q tile visits (the union of its rows' windows) and the tiles it
//     may read unmasked (their intersection), for random windows, tile sizes, GQA
//     packing and image groups, against may_attend() pair by pair;
//   - a sliding layer's ring: after any sequence of chunks, every key a new chunk's
//     queries may see and that precedes the chunk is still in its slot;
//   - the decode splits: they partition the key tiles, and the online softmax run
//     split by split and merged with merge_weight() equals the softmax in float64,
//     with empty splits and rows that see no key (0, never NaN);
//   - the fused QK-norm + RoPE kernel's lanes: a warp simulated lane by lane with
//     qk_lane_value / rope_partner_lane gives rms_norm_heads then RotaryEmbedding::apply;
//   - the backend's notes on its buffers (cuda/src/buffer_notes.hpp): a note is found
//     by address while its buffer lives and never reaches the buffer's next owner.
#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <random>
#include <vector>

#include "catch.hpp"

#include "../cuda/include/gemma3/cuda/plan.hpp"
#include "../cuda/src/buffer_notes.hpp"
#include "gemma3/attention_mask.hpp"
#include "gemma3/rms_norm.hpp"
#include "gemma3/rope.hpp"

namespace plan = gemma3::cuda;

namespace {

// Tiles j (of N keys) that hold a key some row in [p_lo, p_hi] may see (brute force),
// and the tiles all of whose keys every such row may see.
struct BruteTiles {
  int min_needed = 1 << 30, max_needed = -1;
  std::vector<int> needed, unmasked;
};
BruteTiles brute_tiles(const gemma3::AttentionMask& mask, plan::Range positions, int last_key_max, int N) {
  BruteTiles b;
  const int tiles = last_key_max / N + 2;
  for (int j = 0; j < tiles; ++j) {
    bool any = false, all = true;
    for (int k = j * N; k < (j + 1) * N; ++k)
      for (int p = positions.begin; p < positions.end; ++p) {
        const bool ok = mask.allows(p, k);
        any = any || ok;
        all = all && ok;
      }
    if (any) b.needed.push_back(j);
    if (all) b.unmasked.push_back(j);
  }
  return b;
}

}  // namespace

TEST_CASE("cuda plan: a Q tile's packed rows hold the positions tile_positions says", "[cuda][plan]") {
  std::mt19937 rng(7);
  for (int it = 0; it < 2000; ++it) {
    const int G = 1 << (rng() % 4), T = 1 + int(rng() % 300), M = 16 << (rng() % 4), pos0 = int(rng() % 1000);
    for (int r0 = 0; r0 < T * G; r0 += M) {
      int lo = 1 << 30, hi = -1;
      for (int r = r0; r < std::min(r0 + M, T * G); ++r) {
        lo = std::min(lo, pos0 + r / G);
        hi = std::max(hi, pos0 + r / G);
      }
      const plan::Range got = plan::tile_positions(pos0, T, G, r0, M);
      REQUIRE(got.begin == lo);
      REQUIRE(got.end == hi + 1);
    }
  }
}

TEST_CASE("cuda plan: key tiles needed = the union of the rows' windows, unmasked = their intersection", "[cuda][plan]") {
  std::mt19937 rng(11);
  int local_tiles_checked = 0, unmasked_seen = 0;
  for (int it = 0; it < 3000; ++it) {
    const bool sliding = rng() % 3 != 0;
    const int W = 1 + int(rng() % 40), N = 1 << (rng() % 5), G = 1 << (rng() % 3), M = 4 << (rng() % 4);
    const int T = 1 + int(rng() % 60), pos0 = int(rng() % 80);
    const gemma3::AttentionMask mask{sliding, W, pos0, nullptr};
    for (int r0 = 0; r0 < T * G; r0 += M) {
      const plan::Range pos = plan::tile_positions(pos0, T, G, r0, M);
      const BruteTiles b = brute_tiles(mask, pos, pos.end - 1, N);
      const plan::Range need = plan::key_tiles_needed(sliding, W, pos, pos.end - 1, N);
      const plan::Range free = plan::key_tiles_unmasked(sliding, W, pos, N);
      INFO("sliding " << sliding << " W " << W << " N " << N << " G " << G << " M " << M << " T " << T << " pos0 "
                      << pos0 << " r0 " << r0);
      // the union is one contiguous run of tiles, exactly [need.begin, need.end)
      REQUIRE(!b.needed.empty());
      REQUIRE(b.needed.front() == need.begin);
      REQUIRE(b.needed.back() == need.end - 1);
      REQUIRE(int(b.needed.size()) == need.size());
      // the intersection: exactly the tiles of [free.begin, free.end)
      REQUIRE(int(b.unmasked.size()) == free.size());
      if (!b.unmasked.empty()) {
        REQUIRE(b.unmasked.front() == free.begin);
        REQUIRE(b.unmasked.back() == free.end - 1);
        ++unmasked_seen;
      }
      REQUIRE(free.begin >= need.begin);
      REQUIRE((free.empty() || free.end <= need.end));
      if (sliding) {
        // window-limited: a Q tile of positions [lo, hi] visits at most (W + hi - lo) / N + 2 tiles
        REQUIRE(need.size() <= (W + pos.end - 1 - pos.begin) / N + 2);
        ++local_tiles_checked;
      }
    }
  }
  CHECK(local_tiles_checked > 1000);
  CHECK(unmasked_seen > 500);
}

TEST_CASE("cuda plan: with image groups the needed tiles reach the last soft token of each row's image", "[cuda][plan]") {
  std::mt19937 rng(13);
  for (int it = 0; it < 1500; ++it) {
    const bool sliding = rng() % 2 == 0;
    const int W = 2 + int(rng() % 30), N = 1 << (rng() % 4), G = 1 << (rng() % 3), M = 4 << (rng() % 3);
    const int T = 2 + int(rng() % 50), pos0 = int(rng() % 40);
    // token types: runs of text and of soft tokens
    std::vector<int> types(std::size_t(T), 0);
    for (int t = 0; t < T;) {
      const int run = 1 + int(rng() % 12), type = int(rng() % 2);
      for (int i = 0; i < run && t < T; ++i, ++t) types[std::size_t(t)] = type;
    }
    const gemma3::ImageGroups images(gemma3::image_group_ids(types), pos0);
    const gemma3::AttentionMask mask{sliding, W, pos0, &images};
    for (int r0 = 0; r0 < T * G; r0 += M) {
      const plan::Range pos = plan::tile_positions(pos0, T, G, r0, M);
      int last_max = -1;
      for (int p = pos.begin; p < pos.end; ++p) last_max = std::max(last_max, mask.last_key(p));
      const BruteTiles b = brute_tiles(mask, pos, last_max, N);
      const plan::Range need = plan::key_tiles_needed(sliding, W, pos, last_max, N);
      INFO("sliding " << sliding << " W " << W << " N " << N << " G " << G << " T " << T << " pos0 " << pos0);
      REQUIRE(b.needed.front() == need.begin);
      REQUIRE(b.needed.back() == need.end - 1);
      REQUIRE(int(b.needed.size()) == need.size());
    }
  }
}

TEST_CASE("cuda plan: a sliding layer's ring holds every earlier key a chunk's queries may see", "[cuda][plan]") {
  std::mt19937 rng(17);
  for (int it = 0; it < 300; ++it) {
    const int W = 1 + int(rng() % 40), max_len = W + int(rng() % 200);
    const int C = std::min(W, max_len);  // kv_cache.hpp's capacity of a sliding layer
    std::vector<int> slot_holds(std::size_t(C), -1);
    int pos0 = 0;
    while (pos0 < max_len) {
      const int T = std::min(max_len - pos0, 1 + int(rng() % (rng() % 2 ? 3 : 2 * W + 2)));
      // what the kernels read from the cache: keys first_key(pos0) .. pos0 - 1
      for (int k = plan::first_key(true, W, pos0); k < pos0; ++k) REQUIRE(slot_holds[std::size_t(plan::cache_slot(true, C, k))] == k);
      // kv_append keeps rows_kept(...) of the chunk; later rows of one chunk win a slot
      const plan::Range kept = plan::rows_kept(true, C, T);
      REQUIRE(kept.size() == std::min(T, C));
      for (int t = kept.begin; t < kept.end; ++t) slot_holds[std::size_t(plan::cache_slot(true, C, pos0 + t))] = pos0 + t;
      pos0 += T;
    }
  }
  // a global layer keeps every row at slot = position
  REQUIRE(plan::cache_slot(false, 100, 77) == 77);
  REQUIRE(plan::rows_kept(false, 100, 60).begin == 0);
}

TEST_CASE("cuda plan: a decode batch shares one ring length exactly when every held position keeps its slot",
          "[cuda][plan]") {
  // Caches as KVCache makes them: a sliding layer's ring has min(W, max_cache_len) rows.
  int shared = 0, refused = 0;
  for (bool ring : {false, true})
    for (int window : {1, 3, 8})
      for (int len = 1; len <= 12; ++len)
        for (int capacity = 1; capacity <= 12; ++capacity) {
          const int own = ring ? std::min(window, len) : len;
          if (capacity < own) continue;  // the batch's largest
          bool same = true;
          for (int p = 0; p < len; ++p)
            same = same && gemma3::cuda::cache_slot(ring, own, p) == gemma3::cuda::cache_slot(ring, capacity, p);
          INFO("ring " << ring << ", W " << window << ", max_cache_len " << len << ", capacity " << capacity);
          CHECK(gemma3::cuda::shares_ring_slots(ring, own, len, capacity) == same);
          (same ? shared : refused) += 1;
        }
  CHECK(shared > 0);
  CHECK(refused > 0);  // both answers occur
}

TEST_CASE("cuda plan: decode splits partition the key tiles", "[cuda][plan]") {
  for (int n = 0; n < 80; ++n)
    for (int splits = 1; splits < 70; ++splits) {
      int next = 0, smallest = 1 << 30, largest = 0;
      for (int s = 0; s < splits; ++s) {
        const plan::Range r = plan::split_range(n, splits, s);
        REQUIRE(r.begin == next);
        next = std::max(next, r.end);
        smallest = std::min(smallest, r.size());
        largest = std::max(largest, r.size());
      }
      REQUIRE(next == n);
      REQUIRE(largest - smallest <= 1);
    }
  REQUIRE(plan::decode_splits(1, 1, 132, 64) == 1);
  REQUIRE(plan::decode_splits(1, 8, 132, 64) == 8);    // never more chunks than tiles
  REQUIRE(plan::decode_splits(1, 512, 132, 64) == 64);  // capped
  REQUIRE(plan::decode_splits(64, 512, 132, 64) == 5);  // enough CTAs: ~2 per SM
  REQUIRE(plan::decode_splits(1024, 512, 132, 64) == 1);
}

TEST_CASE("cuda plan: split online softmax merged with merge_weight equals the softmax", "[cuda][plan]") {
  std::mt19937 rng(19);
  std::normal_distribution<float> g(0.f, 3.f);
  for (int it = 0; it < 400; ++it) {
    const int n = int(rng() % 300), N = 1 << (rng() % 6), D = 4;
    const float scale = 0.0625f, softcap = (rng() % 3 == 0) ? 50.f : 0.f;
    std::vector<float> dots(static_cast<std::size_t>(n)), vals(static_cast<std::size_t>(n) * D);
    std::vector<bool> visible(static_cast<std::size_t>(n));
    const bool none_visible = rng() % 10 == 0;
    for (int i = 0; i < n; ++i) {
      dots[std::size_t(i)] = 20.f * g(rng);
      visible[std::size_t(i)] = !none_visible && rng() % 4 != 0;
      for (int d = 0; d < D; ++d) vals[std::size_t(i) * D + d] = g(rng);
    }
    // float64 softmax of the visible scores
    double m = -INFINITY, l = 0;
    std::vector<double> want(std::size_t(D), 0.0);
    for (int i = 0; i < n; ++i) {
      if (!visible[std::size_t(i)]) continue;
      double s = double(dots[std::size_t(i)]) * scale;
      if (softcap > 0) s = softcap * std::tanh(s / softcap);
      m = std::max(m, s);
    }
    for (int i = 0; i < n; ++i) {
      if (!visible[std::size_t(i)]) continue;
      double s = double(dots[std::size_t(i)]) * scale;
      if (softcap > 0) s = softcap * std::tanh(s / softcap);
      const double w = std::exp(s - m);
      l += w;
      for (int d = 0; d < D; ++d) want[std::size_t(d)] += w * vals[std::size_t(i) * D + d];
    }
    // as the decode kernel: tiles of N keys, cut into splits, each split an online softmax
    const int tiles = plan::ceil_div(n, N), splits = plan::decode_splits(1, tiles, 132, 64);
    std::vector<float> pm(static_cast<std::size_t>(splits)), pl(static_cast<std::size_t>(splits)),
        po(static_cast<std::size_t>(splits) * D);
    for (int s = 0; s < splits; ++s) {
      float sm = plan::kNoScore, sl = 0.f;
      std::vector<float> so(std::size_t(D), 0.f);
      const plan::Range r = plan::split_range(tiles, splits, s);
      for (int i = r.begin * N; i < std::min(n, r.end * N); ++i) {
        if (!visible[std::size_t(i)]) continue;
        const float x = plan::score_log2(dots[std::size_t(i)], scale, softcap);
        const float m_new = std::max(sm, x), alpha = exp2f(sm - m_new), p = exp2f(x - m_new);
        sl = sl * alpha + p;
        for (int d = 0; d < D; ++d) so[std::size_t(d)] = so[std::size_t(d)] * alpha + p * vals[std::size_t(i) * D + d];
        sm = m_new;
      }
      pm[std::size_t(s)] = sm;
      pl[std::size_t(s)] = sl;
      for (int d = 0; d < D; ++d) po[std::size_t(s) * D + d] = so[std::size_t(d)];
    }
    float m_all = plan::kNoScore;
    for (float x : pm) m_all = std::max(m_all, x);
    float L = 0.f;
    std::vector<float> O(std::size_t(D), 0.f);
    for (int s = 0; s < splits; ++s) {
      const float w = plan::merge_weight(pm[std::size_t(s)], m_all);
      L += w * pl[std::size_t(s)];
      for (int d = 0; d < D; ++d) O[std::size_t(d)] += w * po[std::size_t(s) * D + d];
    }
    INFO("n " << n << " N " << N << " splits " << splits << " softcap " << softcap);
    for (int d = 0; d < D; ++d) {
      const float got = L > 0.f ? O[std::size_t(d)] / L : 0.f;
      REQUIRE(std::isfinite(got));
      if (l == 0) REQUIRE(got == 0.f);
      else REQUIRE(got == Approx(want[std::size_t(d)] / l).margin(1e-4).epsilon(1e-4));
    }
  }
}

TEST_CASE("cuda plan: the fused QK-norm + RoPE lanes hold each value once and find its RoPE pair", "[cuda][plan]") {
  std::mt19937 rng(23);
  std::normal_distribution<float> g(0.f, 1.f);
  for (int D = 2; D <= 512; D *= 2) {
    INFO("head_dim " << D);
    if (!plan::fused_qk_head_dim(D)) {
      REQUIRE((D < 8 || D > 256));
      continue;
    }
    const int half = D / 2;
    // who holds what: every value exactly once, at (lane, c, j)
    std::vector<int> holder(std::size_t(D), -1);
    for (int lane = 0; lane < 32; ++lane)
      for (int c = 0; c < 2; ++c)
        for (int j = 0; j < 4; ++j) {
          const int v = plan::qk_lane_value(lane, c, j);
          if (v - j >= D) continue;  // the kernel loads a float4 only below head_dim
          REQUIRE(holder[std::size_t(v)] == -1);
          holder[std::size_t(v)] = (lane * 2 + c) * 4 + j;
        }
    for (int v = 0; v < D; ++v) REQUIRE(holder[std::size_t(v)] >= 0);
    // a lane past the slice is paired with a lane past it (its shuffled values are never used)
    for (int lane = 0; lane < 32; ++lane) {
      const int partner = plan::rope_partner_lane(D, lane);
      REQUIRE(plan::rope_partner_lane(D, partner) == lane);
      if (4 * lane >= D) REQUIRE(4 * partner >= D);
    }
    // one warp simulated: each lane's values normalised with the warp's sum of squares,
    // then rotated with its partner's value j (c = 1 - c at D = 256)
    gemma3::RopeParameters rp;
    rp.rope_theta = 1e6;
    const gemma3::RotaryEmbedding rope(D, rp);
    const float eps = 1e-6f;
    const int pos = 4093;
    gemma3::Matrix x(1, D);
    gemma3::Vector w(D);
    for (int i = 0; i < D; ++i) {
      x(0, i) = g(rng);
      w(i) = 0.3f * g(rng);
    }
    float ss = 0.f;
    for (int i = 0; i < D; ++i) ss += x(0, i) * x(0, i);
    const float inv_rms = 1.0f / std::sqrt(ss / float(D) + eps);
    auto normed = [&](int v) { return (x(0, v) * inv_rms) * (1.0f + w(v)); };
    std::vector<float> got(std::size_t(D), NAN);
    for (int lane = 0; lane < 32; ++lane)
      for (int c = 0; c < 2; ++c)
        for (int j = 0; j < 4; ++j) {
          const int v = plan::qk_lane_value(lane, c, j);
          if (v - j >= D) continue;
          const int pv = D == 256 ? plan::qk_lane_value(lane, 1 - c, j)
                                  : plan::qk_lane_value(plan::rope_partner_lane(D, lane), c, j);
          REQUIRE(pv == (v < half ? v + half : v - half));
          const int i = v < half ? v : pv;  // the pair's frequency index
          const double angle = double(float(pos) * rope.inv_freq()[std::size_t(i)]);
          const float cs = float(std::cos(angle)), sn = float(std::sin(angle));
          got[std::size_t(v)] = v < half ? normed(v) * cs - normed(pv) * sn : normed(v) * cs + normed(pv) * sn;
        }
    gemma3::Matrix want = x;
    gemma3::rms_norm_heads(want, D, w, eps);
    rope.apply(want, pos);
    for (int v = 0; v < D; ++v) REQUIRE(got[std::size_t(v)] == Approx(want(0, v)).margin(1e-5));
  }
}

TEST_CASE("cuda plan: a buffer's note lives as long as the buffer, and never reaches its next owner", "[cuda][plan]") {
  static float storage[64];  // one address handed out twice, as the pool does
  const auto no_free = [](void*) {};
  plan::BufferNotes<int> notes;
  std::shared_ptr<void> first(storage, no_free);
  notes.put(first, storage, 1);
  REQUIRE(notes.find(storage) != nullptr);
  REQUIRE(*notes.find(storage) == 1);
  REQUIRE(notes.find(storage + 4) == nullptr);
  notes.put(first, storage, 2);  // replaces
  REQUIRE(notes.size() == 1);
  REQUIRE(*notes.find(storage) == 2);
  const std::optional<int> taken = notes.take(storage);
  REQUIRE(taken == 2);
  REQUIRE(notes.find(storage) == nullptr);
  REQUIRE(!notes.take(storage));

  notes.put(first, storage, 3);
  first.reset();  // the buffer goes back to the pool ...
  std::shared_ptr<void> second(storage, no_free);  // ... and out again, at the same address
  REQUIRE(notes.find(storage) == nullptr);
  REQUIRE(!notes.take(storage));
  REQUIRE(notes.size() == 0);

  // slices of one buffer (aliasing shared_ptrs): each its own note, kept while any slice lives
  std::shared_ptr<void> q(second, storage), k(second, storage + 16), v(second, storage + 32);
  second.reset();
  notes.put(q, storage, 10);
  notes.put(k, storage + 16, 11);
  q.reset();
  k.reset();  // v still holds the buffer
  REQUIRE(*notes.find(storage) == 10);
  REQUIRE(*notes.find(storage + 16) == 11);
  notes.drop(storage);
  REQUIRE(notes.find(storage) == nullptr);
  REQUIRE(*notes.find(storage + 16) == 11);
  v.reset();  // the last slice: the buffer is gone
  REQUIRE(notes.find(storage + 16) == nullptr);
  REQUIRE(notes.size() == 0);

  // take_if: the first note, in the order put, that the predicate picks (a residual add
  // that reads another buffer, found by that buffer); none once its buffer is gone
  std::shared_ptr<void> a(storage, no_free), b(storage + 16, no_free), c(storage + 32, no_free);
  notes.put(a, storage, 7);
  notes.put(b, storage + 16, 8);
  notes.put(c, storage + 32, 9);
  REQUIRE(notes.take_if([](int n) { return n % 2 == 1; }) == 7);
  REQUIRE(notes.take_if([](int n) { return n % 2 == 1; }) == 9);
  REQUIRE(!notes.take_if([](int n) { return n % 2 == 1; }));
  b.reset();
  REQUIRE(!notes.take_if([](int n) { return n == 8; }));
  REQUIRE(notes.size() == 0);
}
