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
// window one wider failing the reference. For text the allowed keys of every query
// form one range [first_key, q], so attention.hpp works with that range rather
// than a mask matrix.
//
// Images (multimodal prompts only). The soft tokens of one image -- or of one
// Pan-and-Scan crop -- form an "image group" and see each other both ways, so a
// soft token may also look FORWARD to the later soft tokens of its own group:
//
//   may_attend = in_window AND (k <= q OR same_image_group(q, k))
//   in_window  = true on global layers, k > q - W on sliding layers
//
// Drawn for a global layer, t = text, a/b = the soft tokens of two images:
//
//         k: t a a t b b t
//   q  t     x . . . . . .
//      a     x x x . . . .      <- a sees the whole of image a ...
//      a     x x x . . . .
//      t     x x x x . . .
//      b     x x x x x x .      <- ... b sees a (earlier) and all of b,
//      b     x x x x x x .         but a never sees b (later image)
//      t     x x x x x x x
//
// This is transformers 5.24 (Gemma3Model.forward -> create_masks_for_vision_model):
// global layers OR(causal, blockwise); sliding layers AND(sliding_window, OR(causal,
// blockwise)) -- the window still bounds how far BACK an image token sees. Other
// spellings of the rule: (causal AND window) OR same_image, the image rule ORed last;
// JAX ANDs a symmetric window |q - k| < W. All three agree whenever an image group
// is no longer than the window (256 soft tokens < W = 512 or 1024 in every real
// Gemma 3); the tiny fixture has W = 3 < 4 soft tokens, so it pins HF's spelling
// (tests/test_vision_model.cpp; the OR-last spelling is 3 % off there).
// Without token_type_ids HF silently falls back to the causal rule; transformers
// 4.50 put all images in one group, so images saw later images. Both are wrong and
// both are held off by tests/test_vision_model.cpp.
//
// Mirrors transformers' masking_utils (causal_mask_function, sliding_window_overlay,
// blockwise_overlay). Pinned by tests/test_kv_cache.cpp, the model fixtures and
// tests/test_vision_model.cpp.
#pragma once

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace gemma3 {

// First key position a query at `query_pos` may see.
inline int first_visible_key(bool sliding, int sliding_window, int query_pos) {
  return sliding ? std::max(0, query_pos - sliding_window + 1) : 0;
}

inline bool may_attend(bool sliding, int sliding_window, int query_pos, int key_pos, bool same_image_group = false) {
  const bool in_window = key_pos >= first_visible_key(sliding, sliding_window, query_pos);
  return in_window && (key_pos <= query_pos || same_image_group);
}

// The image group of every token of one forward call (HF's block_sequence_ids):
// -1 for a text token, g >= 0 for a soft token of image group g. All soft tokens of
// a group must be in the same forward call (a prompt's prefill), since they see
// each other.
class ImageGroups {
 public:
  // group_ids [T] for the tokens at positions pos0 .. pos0 + T - 1.
  ImageGroups(std::vector<int> group_ids, int pos0) : group_(std::move(group_ids)), pos0_(pos0) {
    for (std::size_t t = 0; t < group_.size(); ++t) {
      const int g = group_[t];
      if (g < -1) throw std::invalid_argument("image group id " + std::to_string(g) + " at token " +
                                              std::to_string(t) + ": expected -1 (text) or a group >= 0");
      if (g >= 0) {
        if (std::size_t(g) >= last_.size()) last_.resize(std::size_t(g) + 1, -1);
        last_[std::size_t(g)] = pos0_ + int(t);
      }
    }
  }

  // The group of the token at `pos` (a position of this call), -1 for text.
  int group_at(int pos) const { return pos >= pos0_ && pos < pos0_ + int(group_.size()) ? group_[std::size_t(pos - pos0_)] : -1; }

  bool same_group(int query_pos, int key_pos) const {
    const int g = group_at(query_pos);
    return g >= 0 && group_at(key_pos) == g;
  }

  // Last key position a query may see: itself, or its group's last soft token.
  int last_visible_key(int query_pos) const {
    const int g = group_at(query_pos);
    return g >= 0 ? std::max(query_pos, last_[std::size_t(g)]) : query_pos;
  }

 private:
  std::vector<int> group_;  // [T]
  int pos0_;
  std::vector<int> last_;   // [number of groups]: position of each group's last token
};

// The whole rule for the queries of one forward call on one layer, in one value:
// which key positions the query at position q may see. Backends ask it and nothing
// else (backends/reference.hpp reads it key by key; backends/cpu.hpp uses the ranges).
struct AttentionMask {
  bool sliding = false;                 // a sliding_attention layer (else full_attention)
  int sliding_window = 0;               // W
  int pos0 = 0;                         // position of the call's first token
  const ImageGroups* images = nullptr;  // the call's image groups (multimodal prefill), else null

  // First and last key position the query at q may see (the last is q itself, or the
  // last soft token of q's image).
  int first_key(int q) const { return first_visible_key(sliding, sliding_window, q); }
  int last_key(int q) const { return images ? images->last_visible_key(q) : q; }

  // in_window AND (causal OR same image)
  bool allows(int q, int k) const {
    return k >= first_key(q) && (k <= q || (images && images->same_group(q, k)));
  }
};

// HF's get_block_sequence_ids_for_mask: a new group starts at every soft token
// (token_type_ids == 1) whose predecessor is not one.
//   token_type_ids [T] (0 text, 1 image soft token)  ->  group ids [T]
inline std::vector<int> image_group_ids(const std::vector<int>& token_type_ids) {
  std::vector<int> groups(token_type_ids.size(), -1);
  int next = 0;
  for (std::size_t t = 0; t < token_type_ids.size(); ++t) {
    if (token_type_ids[t] != 1) continue;
    const bool starts = t == 0 || token_type_ids[t - 1] != 1;
    groups[t] = starts ? next++ : next - 1;
  }
  return groups;
}

}  // namespace gemma3
