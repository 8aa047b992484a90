// gemma3/gemma3.hpp -- everything, in the order of one forward pass.
//
//   concept                         header              entry point
//   config.json, presets            config.hpp          Gemma3TextConfig, gemma3_1b(), ...
//                                   config_json.hpp     parse_config_json, load_config_json
//   embedding * sqrt(hidden_size)   embedding.hpp       embed, embed_scale
//   RMSNorm with (1 + w)            rms_norm.hpp        rms_norm, rms_norm_rows, rms_norm_heads
//   RoPE, local / global            rope.hpp            RotaryEmbedding
//   sliding / causal / image mask   attention_mask.hpp  AttentionMask, may_attend, first_visible_key
//   KV cache (ring for sliding)     kv_cache.hpp        KVCache, kv_cache_bytes
//   the backend seam                backend.hpp         Backend
//   plain attention (mask, scale,   backends/reference.hpp  ReferenceBackend
//     softmax, GQA), float32
//   attention (GQA, QK-norm)        attention.hpp       gemma3_attention
//   GeGLU MLP                       mlp.hpp             gemma3_mlp
//   decoder block                   decoder_layer.hpp   gemma3_decoder_layer
//   what a token attended to        attention_weights.hpp last_token_attention_weights
//   the model                       model.hpp           Gemma3ForCausalLM::forward / prefill / decode
//   checkpoint folder               checkpoint.hpp      load_hf_model
//   safetensors                     safetensors.hpp     SafetensorsFile
//   the fast CPU backend            backends/cpu.hpp    CpuBackend, CpuBackend::Options
//   weights and matmul kernels      kernels/            Weight, matvec, matmul, linear, linear_many, ThreadPool
//   GGUF blocks (Q4_K, Q8_0, ...)   quant/              dequantize_row_*, dot products
//   int16 activations (AVX-512)     quant/q16.hpp       Q16Row, quantize_row_q16_scalar, dot_q16_scalar
//                                   kernels/dot_q16.hpp quantize_row_q16, split_q16_bytes, q16_dot
//   prefill GEMM on int16           kernels/gemm_q16.hpp matmul_q16_avx512
//   GELU-tanh, softmax exp (SIMD)   kernels/gelu.hpp    gelu_tanh, gelu_tanh_mul;  kernels/softmax.hpp exp_shift_sum
//   GGUF files                      gguf.hpp            GgufFile
//                                   gguf_model.hpp      load_gguf_model, vocabulary_from_gguf
//   GGUF file or HF folder          load_model.hpp      load_model
//   float32 copy of the weights     dequantize.hpp      dequantize_to_f32
//   tokenizer (SentencePiece BPE)   tokenizer.hpp       Tokenizer::encode / decode
//                                   tokenizer_files.hpp tokenizer_from_vocabulary, load_sentencepiece_model
//   chat template                   chat.hpp            apply_chat_template, encode_chat
//   sampling                        sampler.hpp         Sampler, SamplingOptions
//   greedy argmax (SIMD)            kernels/argmax.hpp  argmax
//   generation loop, streaming      generate.hpp        generate
//   vision (4B and up)              vision/vision.hpp   (its own umbrella; needs nothing extra)
#pragma once

#include "config.hpp"
#include "config_json.hpp"
#include "embedding.hpp"
#include "rms_norm.hpp"
#include "rope.hpp"
#include "attention_mask.hpp"
#include "kv_cache.hpp"
#include "backend.hpp"
#include "backends/reference.hpp"
#include "backends/cpu.hpp"
#include "attention.hpp"
#include "mlp.hpp"
#include "decoder_layer.hpp"
#include "attention_weights.hpp"
#include "model.hpp"
#include "safetensors.hpp"
#include "checkpoint.hpp"
#include "kernels/thread_pool.hpp"
#include "gguf.hpp"
#include "gguf_model.hpp"
#include "load_model.hpp"
#include "dequantize.hpp"
#include "tokenizer.hpp"
#include "tokenizer_files.hpp"
#include "chat.hpp"
#include "sampler.hpp"
#include "generate.hpp"
