// gemma3/gemma3.hpp -- everything, in the order of one forward pass.
//
//   concept                         header              entry point
//   config.json, presets            config.hpp          Gemma3TextConfig, gemma3_1b(), ...
//                                   config_json.hpp     parse_config_json, load_config_json
//   embedding * sqrt(hidden_size)   embedding.hpp       embed, embed_scale
//   RMSNorm with (1 + w)            rms_norm.hpp        rms_norm, rms_norm_rows, rms_norm_heads
//   RoPE, local / global            rope.hpp            RotaryEmbedding
//   sliding / causal mask           attention_mask.hpp  may_attend, first_visible_key
//   KV cache (ring for sliding)     kv_cache.hpp        KVCache, kv_cache_bytes
//   attention (GQA, QK-norm)        attention.hpp       gemma3_attention
//   GeGLU MLP                       mlp.hpp             gemma3_mlp, gelu_tanh
//   decoder block                   decoder_layer.hpp   gemma3_decoder_layer
//   the model                       model.hpp           Gemma3ForCausalLM::forward / prefill / decode
//   checkpoint folder               checkpoint.hpp      load_hf_model
//   safetensors                     safetensors.hpp     SafetensorsFile
//   weights and matmul kernels      kernels/            Weight, matvec, matmul, linear
#pragma once

#include "config.hpp"
#include "config_json.hpp"
#include "embedding.hpp"
#include "rms_norm.hpp"
#include "rope.hpp"
#include "attention_mask.hpp"
#include "kv_cache.hpp"
#include "attention.hpp"
#include "mlp.hpp"
#include "decoder_layer.hpp"
#include "model.hpp"
#include "safetensors.hpp"
#include "checkpoint.hpp"
