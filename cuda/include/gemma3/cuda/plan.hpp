// gemma3/cuda/plan.hpp -- the index arithmetic of the CUDA attention kernels: which key
// tiles a block of queries visits, how decode splits the keys, where a key lives in the
// ring, and how partial softmaxes merge. Plain C++ on the host, the same functions on
// the device, so tests/test_cuda_plan.cpp checks every rule on the CPU against brute
// force (no GPU needed) and the kernels (cuda/src/) call exactly what was tested.
//
// The mask (include/gemma3/attention_mask.hpp): a query at position p may see keys
//   [first_key(p), p]        first_key(p) = p - W + 1 on sliding layers (W keys, itself
//                            included), 0 on global ones; image soft tokens also see
//                            the later soft tokens of their own image (last_key >= p).
//
// Packed GQA. The G = num_heads / num_kv_heads query heads that read one kv head share
// a tile: packed row r is query t = r / G of the call, head r % G of the group, so one
// K/V tile load serves G heads. A Q tile of M packed rows starting at r0 holds the
// positions pos0 + r0 / G .. pos0 + (r0 + M - 1) / G.
//
// Key tiles. Key tile j holds key positions [j N, (j + 1) N). A Q tile needs the union
// of its rows' windows, and only the tiles inside the intersection of all its rows'
// windows can skip the mask. Drawn for W = 4, N = 2, a Q tile of positions 6..7:
//
//   key tile:      0    1    2    3
//   positions:    0 1  2 3  4 5  6 7
//   q 6            . .  . x  x x  x .      window [3, 6]
//   q 7            . .  . .  x x  x x      window [4, 7]
//   needed (union)        [ tile 1 .. tile 3 ]        key_tiles_needed   = [1, 4)
//   unmasked (intersection)    [tile 2]                key_tiles_unmasked = [2, 3)
//
// So a sliding layer's Q tile visits about (W + M/G) / N tiles whatever the context:
// its cost grows as T x W, not T^2. A loop that masks only the last tile (the causal
// habit) would let q 6 see position 2 here.
//
// Ring. A sliding layer's cache holds C = min(W, max_cache_len) rows, key p in slot
// p mod C (kv_cache.hpp); the kernels read it in place, slot by slot, never reordered.
//
// Decode splits (flash-decoding). One query per sequence has few rows, so the keys are
// cut into `splits` contiguous chunks of tiles, each a CTA that writes its partial
// (m, l, O); a combine kernel merges them with merge_weight(). Scores are kept in the
// log2 domain (score * log2 e) so the kernels use exp2.
#pragma once

#if defined(__CUDACC__)
#define GEMMA3_HD __host__ __device__ __forceinline__
#else
#define GEMMA3_HD inline
#endif

#include <math.h>

namespace gemma3 {
namespace cuda {

GEMMA3_HD int imin(int a, int b) { return a < b ? a : b; }
GEMMA3_HD int imax(int a, int b) { return a > b ? a : b; }
GEMMA3_HD int ceil_div(int a, int b) { return (a + b - 1) / b; }

// [begin, end)
struct Range {
  int begin;
  int end;
  GEMMA3_HD bool empty() const { return begin >= end; }
  GEMMA3_HD int size() const { return end > begin ? end - begin : 0; }
};

// First key a query at `position` may see (attention_mask.hpp's first_visible_key).
GEMMA3_HD int first_key(bool sliding, int window, int position) {
  return sliding ? imax(0, position - window + 1) : 0;
}

// Positions held by packed rows [r0, r0 + M) of a call of T queries with GQA group G
// (rows past T * G are padding and hold no position).
GEMMA3_HD Range tile_positions(int pos0, int T, int G, int r0, int M) {
  const int last_row = imin(r0 + M, T * G) - 1;
  return Range{pos0 + r0 / G, pos0 + last_row / G + 1};
}

// Key tiles (of N keys) that queries at `positions` need: the union of their windows.
// last_key_max: the last key any of them sees (positions.end - 1 for text; later for an
// image's soft tokens).
GEMMA3_HD Range key_tiles_needed(bool sliding, int window, Range positions, int last_key_max, int N) {
  return Range{first_key(sliding, window, positions.begin) / N, last_key_max / N + 1};
}

// Key tiles that no query at `positions` masks: every key of the tile lies in every
// row's [first_key(p), p] (the intersection). Text only: with image groups every tile
// takes the mask. Empty when there is none (begin == end).
GEMMA3_HD Range key_tiles_unmasked(bool sliding, int window, Range positions, int N) {
  const int begin = ceil_div(first_key(sliding, window, positions.end - 1), N);  // j N >= first_key(p_max)
  const int end = (positions.begin + 1) / N;                                     // (j + 1) N - 1 <= p_min
  return Range{begin, imax(begin, end)};
}

// The slot of key position p in a layer's cache: p mod C on a sliding layer's ring.
GEMMA3_HD int cache_slot(bool ring, int capacity, int position) { return ring ? position % capacity : position; }

// A decode batch in one launch reads every sequence's cache as a ring of `capacity` rows
// (the batch's largest). Sequence b's rows were stored at cache_slot(ring, capacity_b, p)
// for every position it holds (p < max_cache_len_b); the shared slot is the same for all
// of them exactly when its ring has the shared length or never wraps (capacity_b =
// max_cache_len_b: a cache shorter than the window). A global layer's slot is p either way.
GEMMA3_HD bool shares_ring_slots(bool ring, int own_capacity, int own_max_cache_len, int capacity) {
  return !ring || own_capacity == capacity || own_capacity >= own_max_cache_len;
}

// The rows t of a call (positions pos0 + t, t < T) the cache keeps afterwards: a ring
// of C rows keeps only the last C.
GEMMA3_HD Range rows_kept(bool ring, int capacity, int T) { return Range{ring ? imax(0, T - capacity) : 0, T}; }

// Chunk s of `splits` contiguous, near-equal chunks of n items (the first n % splits
// chunks one longer). Empty when s >= n.
GEMMA3_HD Range split_range(int n, int splits, int s) {
  const int base = n / splits, extra = n % splits;
  const int begin = s * base + imin(s, extra);
  return Range{begin, begin + base + (s < extra ? 1 : 0)};
}

// How many chunks decode cuts the keys into: enough CTAs for ~2 per SM, never more
// chunks than key tiles or than max_splits. ctas: CTAs without a split (batch x kv heads).
// Decided on the host before launch (a CUDA graph replays it unchanged).
inline int decode_splits(int ctas, int n_tiles, int num_sms, int max_splits) {
  if (n_tiles <= 1 || ctas <= 0) return 1;
  const int want = ceil_div(2 * num_sms, ctas);
  return imax(1, imin(imin(want, n_tiles), max_splits));
}

// QK-norm + RoPE in one warp per head slice (qk_norm_rope.cu). Lane l holds the four
// values at 4 l + 128 c of the slice (c = 0, 1 while below head_dim): the order of
// ops.cu's rms_norm_heads, so the sum of squares is the same sum. RoPE pairs value i
// (i < D/2) with i + D/2. For D = 256 both are in one lane (c = 0 and c = 1); for a
// smaller D they are value j of lanes l and l ^ (D / 8), one warp shuffle apart, and a
// lane past the slice (4 l >= D) is paired with another lane past it. The fused kernel
// takes D = 8, 16, 32, 64, 128 and 256; the backend runs the two kernels for any other.
GEMMA3_HD bool fused_qk_head_dim(int head_dim) {
  return head_dim == 8 || head_dim == 16 || head_dim == 32 || head_dim == 64 || head_dim == 128 || head_dim == 256;
}
GEMMA3_HD int qk_lane_value(int lane, int c, int j) { return 128 * c + 4 * lane + j; }
GEMMA3_HD int rope_partner_lane(int head_dim, int lane) { return head_dim == 256 ? lane : lane ^ (head_dim / 8); }

// A score in the log2 domain: dot * scale, softcapped when softcap > 0
// (softcap * tanh(s / softcap), as the reference backend), times log2(e).
constexpr float kLog2e = 1.4426950408889634f;
GEMMA3_HD float score_log2(float dot, float scale, float softcap) {
  float s = dot * scale;
  if (softcap > 0.f) s = softcap * tanhf(s / softcap);
  return s * kLog2e;
}

// The running max starts finite: a row with no visible key keeps m = kNoScore and
// l = 0, and comes out as 0 (never (-inf) - (-inf) = NaN).
constexpr float kNoScore = -1e30f;

// Weight of a partial softmax with max m_part once the merged max is m_all.
GEMMA3_HD float merge_weight(float m_part, float m_all) { return m_part <= kNoScore ? 0.f : exp2f(m_part - m_all); }

}  // namespace cuda
}  // namespace gemma3
