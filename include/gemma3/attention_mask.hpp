// gemma3/attention_mask.hpp -- which keys a query may attend to.
//
//   global ("full_attention") layers:   k <= q                       (causal)
//   sliding ("sliding_attention") layers: q - sliding_window < k <= q
//
// So a sliding layer's query sees at most W = sliding_window keys, itself
// included. Drawn for W = 3 (x = may attend), query rows, key columns:
//
//      causal (global)        sliding, W = 3
//      k: 0 1 2 3 4 5         k: 0 1 2 3 4 5
//   q 0   x . . . . .            x . . . . .
//     1   x x . . . .            x x . . . .
//     2   x x x . . .            x x x . . .
//     3   x x x x . .            . x x x . .
//     4   x x x x x .            . . x x x .
//     5   x x x x x x            . . . x x x
//
// The common off-by-one is W+1 keys (k >= q - W); tests/test_gemma_rules.cpp shows a
// window one wider failing the reference. Because the allowed keys of every query
// form one contiguous range, attention.hpp works with that range [first_key, q]
// rather than a mask matrix.
//
// Mirrors transformers' masking_utils (causal_mask_function, sliding_window_overlay).
// Pinned by tests/test_kv_cache.cpp and the model fixtures.
#pragma once

#include <algorithm>

namespace gemma3 {

// First key position a query at `query_pos` may see.
inline int first_visible_key(bool sliding, int sliding_window, int query_pos) {
  return sliding ? std::max(0, query_pos - sliding_window + 1) : 0;
}

inline bool may_attend(bool sliding, int sliding_window, int query_pos, int key_pos) {
  return key_pos <= query_pos && key_pos >= first_visible_key(sliding, sliding_window, query_pos);
}

}  // namespace gemma3
