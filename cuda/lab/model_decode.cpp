// cuda/lab/model_decode.cpp -- the whole model on the GPU: greedy decode speed against
// the memory-bandwidth floor, and prefill speed.
//
//   model_decode [MODEL.gguf] [--steps N] [--csv FILE]
//
// A decode step reads every weight once: the seven projections of every layer and the
// tied embedding as the LM head, 2 bytes per value as the backend keeps them (bf16).
// Nothing can do a step faster than
//
//   floor = weight bytes / copy bandwidth
//
// where the copy bandwidth is measured here: a device-to-device copy of 1 GiB, counting
// the bytes read and the bytes written. The report gives ms per step, tokens/s, the
// floor and floor / step (1.0 would be a step that only streams the weights; the target
// is 0.70), after a 128-token prompt, and the prefill speed of a 1024-token prompt; then
// the decode step again on a backend that launches QK-norm, RoPE and the cache write as
// separate kernels (Options::fuse_qk_norm_rope = false), for the fusion's gain, on one
// that launches the post-norm, the residual add and the next pre-norm as three kernels
// (Options::fuse_residual_norm = false), on one whose decode attention merges its
// splits without a combine kernel (version 3, Options::fuse_decode_combine), and on one that captures each step as a CUDA graph
// (Options::graphs); decode batches of 4
// and 16 sequences (decode_greedy_batch) against batch 1, and the batch of 16 with its
// steps as CUDA graphs; then a
// profile of 32 steps (Options::profile): per step of the seam, calls, host time inside
// the calls and GPU time between events around them. When the host time per decode step
// is close to the step's wall time, the launches set the pace (CUDA graphs' case).
// The model: a GGUF file, or `--random 1b` (the default; also 270m, 4b): random bf16
// weights in that preset's shapes, made in memory, for a machine that has no model
// file; with `--q4-k-m`, random GGUF blocks of the types a released Q4_K_M file uses
// (cuda/tests/random_model.hpp). A model with GGUF block weights is also timed on a
// backend that keeps them on the device as stored (Options::keep_quantized: the
// dequantizing GEMV), against its own floor: the blocks' bytes / copy bandwidth.
// `--backend cpu` runs the same on the CPU backend (a check of the program itself on a
// machine without a GPU; no bandwidth figure). `--smoke` (lab_timing.hpp) runs every part
// on a tiny random model (cuda_test::small_config_head_dim_256, with --q4-k-m in blocks
// too) with prompts of 8 and 16 tokens, 2 steps each and a copy of 16 MiB.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>

#include "gemma3/backends/cpu.hpp"
#include "gemma3/cuda/backend.hpp"
#include "gemma3/load_model.hpp"
#include "random_model.hpp"

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Device-to-device copy bandwidth in bytes/s, read + write: the best of 10 copies of 1 GiB.
double copy_bandwidth(std::size_t bytes = std::size_t(1) << 30) {
  void *a = nullptr, *b = nullptr;
  check(cudaMalloc(&a, bytes), "cudaMalloc (bandwidth buffer)");
  check(cudaMalloc(&b, bytes), "cudaMalloc (bandwidth buffer)");
  check(cudaMemset(a, 1, bytes), "cudaMemset");
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  check(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice), "cudaMemcpy (warm-up)");
  float best_ms = 1e30f;
  for (int i = 0; i < 10; ++i) {
    check(cudaEventRecord(start), "cudaEventRecord");
    check(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice), "cudaMemcpyAsync");
    check(cudaEventRecord(stop), "cudaEventRecord");
    check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    best_ms = std::min(best_ms, ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(a);
  cudaFree(b);
  return 2.0 * double(bytes) / (double(best_ms) * 1e-3);
}

// Bytes of weights one decode step reads: every projection and the LM head, as bf16
// (2 bytes a value) or as stored (`stored`: GGUF blocks at their size; plain types are
// bf16 on the device either way).
double weight_bytes(const gemma3::Gemma3ForCausalLM& model, bool stored = false) {
  auto bytes = [stored](const gemma3::Weight& w) {
    return stored && gemma3::dtype_is_quantized(w.dtype) ? double(w.row_bytes()) * double(w.rows)
                                                         : 2.0 * double(w.rows) * double(w.cols);
  };
  double total = bytes(model.weights().embed_tokens);  // the tied LM head
  for (const gemma3::Gemma3DecoderLayerWeights& l : model.weights().layers)
    total += bytes(l.self_attn.q_proj) + bytes(l.self_attn.k_proj) + bytes(l.self_attn.v_proj) +
             bytes(l.self_attn.o_proj) + bytes(l.mlp.gate_proj) + bytes(l.mlp.up_proj) + bytes(l.mlp.down_proj);
  return total;
}

std::vector<int> prompt(int n, int vocab) {
  std::vector<int> ids(static_cast<std::size_t>(n));
  ids[0] = 2;  // <bos>
  for (int i = 1; i < n; ++i) ids[std::size_t(i)] = int((1000003LL * i + 12345) % (vocab - 3)) + 3;
  return ids;
}

}  // namespace

int main(int argc, char** argv) {
  std::string path, random = "1b", backend_name = "cuda", csv;
  int steps = 256;
  bool q4_k_m = false, smoke = false;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
        return argv[++i];
      };
      if (a == "--steps") steps = std::max(1, std::atoi(value().c_str()));
      else if (a == "--csv") csv = value();
      else if (a == "--random") random = value();
      else if (a == "--q4-k-m") q4_k_m = true;
      else if (a == "--smoke") smoke = true;
      else if (a == "--backend") backend_name = value();
      else if (a == "-h" || a == "--help") {
        std::printf("usage: model_decode [MODEL.gguf | --random 1b|270m|4b [--q4-k-m]] [--steps N] [--csv FILE] "
                    "[--backend cuda|cpu] [--smoke]\n");
        return 0;
      } else if (!a.empty() && a[0] == '-') throw std::invalid_argument("unknown option " + a);
      else path = a;
    }
    if (backend_name != "cuda" && backend_name != "cpu") throw std::invalid_argument("--backend expects cuda or cpu");
    const bool cpu = backend_name == "cpu";
    if (!cpu && gemma3::cuda::device_count() == 0) {
      std::printf("model_decode: no CUDA device: skipped\n");
      return 77;
    }
    const std::string device = cpu ? std::string("cpu") : gemma3::cuda::device_description(0);
    std::printf("device: %s\n", device.c_str());
    if (smoke) steps = 2;
    const double bandwidth = cpu ? 0.0 : copy_bandwidth(smoke ? std::size_t(16) << 20 : std::size_t(1) << 30);
    if (!cpu) std::printf("copy bandwidth (read + write, %s): %.0f GB/s\n", smoke ? "16 MiB" : "1 GiB", bandwidth / 1e9);

    std::shared_ptr<const gemma3::Backend> backend;
    if (cpu) backend = std::make_shared<const gemma3::CpuBackend>();
    else backend = gemma3::cuda::make_backend();
    if (q4_k_m && !path.empty()) throw std::invalid_argument("--q4-k-m makes a random model: give no MODEL.gguf");
    if (smoke && !path.empty()) throw std::invalid_argument("--smoke makes a tiny random model: give no MODEL.gguf");
    if (smoke) random = "tiny (--smoke: the times mean nothing)";
    const std::string what = path.empty() ? "random " + random + (q4_k_m ? " (Q4_K_M blocks)" : " (bf16)") : path;
    const gemma3::Gemma3ForCausalLM model = [&] {
      if (!path.empty()) return gemma3::load_model(path, nullptr, nullptr, backend);
      const gemma3::Gemma3TextConfig rc = smoke ? cuda_test::small_config_head_dim_256() : gemma3::gemma3_preset(random);
      return gemma3::Gemma3ForCausalLM(
          rc, q4_k_m ? cuda_test::random_q4_k_m_weights(rc) : cuda_test::random_weights(rc), backend);
    }();
    const gemma3::Gemma3TextConfig& c = model.config();
    const double bytes = weight_bytes(model);
    std::printf("model: %s (%d layers, hidden %d, vocab %d), backend %s\n", what.c_str(), c.num_hidden_layers,
                c.hidden_size, c.vocab_size, model.backend().name().c_str());
    std::printf("bf16 weights read per decode step: %.1f MiB\n", bytes / (1024.0 * 1024.0));

    // Warm-up: the first call uploads the weights; one decode step fills the activation pool.
    const int prefill_len = smoke ? 16 : 1024;  // the prefill timed below
    {
      gemma3::KVCache warm = model.new_cache(prefill_len + 8);
      const int id = model.prefill_greedy(prompt(prefill_len, c.vocab_size), warm);
      model.decode_greedy(id, warm);
    }

    // Decode: a 128-token prompt, then `steps` greedy steps (each returns one id, so the
    // GPU has finished when it returns). Seconds per step.
    const int prompt_len = smoke ? 8 : 128, warm_steps = smoke ? 1 : 8;
    auto time_decode = [&](const gemma3::Gemma3ForCausalLM& m) {
      gemma3::KVCache cache = m.new_cache(prompt_len + warm_steps + steps + 1);
      int id = m.prefill_greedy(prompt(prompt_len, c.vocab_size), cache);
      for (int s = 0; s < warm_steps; ++s) id = m.decode_greedy(id, cache);
      const auto t0 = Clock::now();
      for (int s = 0; s < steps; ++s) id = m.decode_greedy(id, cache);
      return seconds_since(t0) / steps;
    };
    const double step_ms = 1e3 * time_decode(model), floor_ms = 1e3 * bytes / bandwidth;

    // Prefill: 1024 tokens in one call.
    gemma3::KVCache long_cache = model.new_cache(prefill_len + 1);
    const auto t1 = Clock::now();
    model.prefill_greedy(prompt(prefill_len, c.vocab_size), long_cache);
    const double prefill_s = seconds_since(t1);

    std::printf("decode after %d tokens: %d steps, %.3f ms/step, %.1f tok/s\n", prompt_len + warm_steps, steps,
                step_ms, 1e3 / step_ms);
    if (!cpu)
      std::printf("floor (weights / copy bandwidth): %.3f ms/step; floor / step = %.2f (target >= 0.70: %s)\n",
                  floor_ms, floor_ms / step_ms, floor_ms / step_ms >= 0.70 ? "met" : "not met");
    std::printf("prefill %d tokens: %.1f ms, %.0f tok/s\n", prefill_len, 1e3 * prefill_s, prefill_len / prefill_s);

    // A decode batch (decode_greedy_batch): B sequences, each after its own 128-token
    // prompt, one token each per step. Tokens/s of the batch against batch 1.
    auto time_batch = [&](const gemma3::Gemma3ForCausalLM& m, int B) {
      std::vector<gemma3::KVCache> caches;
      std::vector<gemma3::KVCache*> ptrs;
      std::vector<int> ids;
      for (int b = 0; b < B; ++b) caches.push_back(m.new_cache(prompt_len + warm_steps + steps + 1));
      for (auto& cache : caches) ptrs.push_back(&cache);
      for (int b = 0; b < B; ++b) ids.push_back(m.prefill_greedy(prompt(prompt_len, c.vocab_size), caches[std::size_t(b)]));
      for (int s = 0; s < warm_steps; ++s) ids = m.decode_greedy_batch(ids, ptrs);
      const auto t0 = Clock::now();
      for (int s = 0; s < steps; ++s) ids = m.decode_greedy_batch(ids, ptrs);
      return seconds_since(t0) / steps;
    };
    std::vector<double> batch_tok_s;
    for (int B : {4, 16}) {
      const double ms = 1e3 * time_batch(model, B);
      batch_tok_s.push_back(B * 1e3 / ms);
      std::printf("decode batch of %d: %.3f ms/step, %.1f tok/s (%.2fx batch 1)\n", B, ms, B * 1e3 / ms,
                  (B * 1e3 / ms) / (1e3 / step_ms));
    }

    // ms per decode step of the same weights on a backend made with `set` applied to its Options.
    const auto time_with = [&](void (*set)(gemma3::cuda::Options&)) {
      gemma3::cuda::Options o;
      set(o);
      return 1e3 * time_decode(model.with_backend(gemma3::cuda::make_backend(o)));
    };
    double unfused_ms = 0, residual_unfused_ms = 0, combine_ms = 0, graphs_ms = 0, blocks_ms = 0, blocks_floor_ms = 0,
           batch16_graphs_ms = 0;
    if (!cpu) {
      // without the QK-norm + RoPE + cache-write fusion
      unfused_ms = time_with([](gemma3::cuda::Options& o) { o.fuse_qk_norm_rope = false; });
      std::printf("decode with QK-norm, RoPE and the cache write unfused: %.3f ms/step; fused / unfused = %.3f\n",
                  unfused_ms, step_ms / unfused_ms);
      // post-norm, residual add and pre-norm as three kernels each
      residual_unfused_ms = time_with([](gemma3::cuda::Options& o) { o.fuse_residual_norm = false; });
      std::printf("decode with the post-norm, the residual add and the pre-norm unfused: %.3f ms/step; "
                  "fused / unfused = %.3f\n",
                  residual_unfused_ms, step_ms / residual_unfused_ms);
      // decode attention as the lab's version 3: no combine kernel
      combine_ms = time_with([](gemma3::cuda::Options& o) { o.fuse_decode_combine = true; });
      std::printf("decode with the split-K combine inside the split kernel (version 3): %.3f ms/step; "
                  "version 3 / split-K = %.3f\n",
                  combine_ms, combine_ms / step_ms);
      // each decode step captured and launched as one CUDA graph
      graphs_ms = time_with([](gemma3::cuda::Options& o) { o.graphs = true; });
      std::printf("decode with each step a CUDA graph: %.3f ms/step, %.1f tok/s; graphs / launches = %.3f; "
                  "floor / step = %.2f\n",
                  graphs_ms, 1e3 / graphs_ms, graphs_ms / step_ms, floor_ms / graphs_ms);
      // a decode batch of 16, each step from the second on a CUDA graph
      {
        gemma3::cuda::Options o;
        o.graphs = true;
        batch16_graphs_ms = 1e3 * time_batch(model.with_backend(gemma3::cuda::make_backend(o)), 16);
        std::printf("decode batch of 16 as CUDA graphs: %.3f ms/step, %.1f tok/s; graphs / launches = %.3f\n",
                    batch16_graphs_ms, 16e3 / batch16_graphs_ms, batch16_graphs_ms / (16e3 / batch_tok_s[1]));
      }
      // the GGUF blocks kept on the device: the dequantizing GEMV reads the stored bytes
      const double stored = weight_bytes(model, true);
      if (stored < bytes) {
        blocks_ms = time_with([](gemma3::cuda::Options& o) { o.keep_quantized = true; });
        blocks_floor_ms = 1e3 * stored / bandwidth;
        std::printf("decode with the GGUF blocks kept on the device (%.1f MiB a step): %.3f ms/step, %.1f tok/s; "
                    "blocks / bf16 = %.3f; its floor %.3f ms, floor / step = %.2f\n",
                    stored / (1024.0 * 1024.0), blocks_ms, 1e3 / blocks_ms, blocks_ms / step_ms, blocks_floor_ms,
                    blocks_floor_ms / blocks_ms);
      }
    }
    if (!cpu) {  // where a decode step's time goes
      gemma3::cuda::Options o;
      o.profile = true;
      const std::shared_ptr<const gemma3::Backend> pb = gemma3::cuda::make_backend(o);
      const gemma3::Gemma3ForCausalLM profiled = model.with_backend(pb);
      const int n = smoke ? 2 : 32;
      gemma3::KVCache cache = profiled.new_cache(prompt_len + warm_steps + n + 1);
      int id = profiled.prefill_greedy(prompt(prompt_len, c.vocab_size), cache);
      for (int s = 0; s < warm_steps; ++s) id = profiled.decode_greedy(id, cache);
      gemma3::cuda::profile(*pb);  // drop the prompt's and the warm-up's records
      const auto t2 = Clock::now();
      for (int s = 0; s < n; ++s) id = profiled.decode_greedy(id, cache);
      const double wall_us = 1e6 * seconds_since(t2) / n;
      const std::vector<gemma3::cuda::StepTime> table = gemma3::cuda::profile(*pb);
      double host = 0, gpu = 0, calls = 0;
      std::printf("profile of %d decode steps (per step; profiling adds an event pair per call): wall %.1f us\n", n,
                  wall_us);
      std::printf("  %-16s %8s %10s %10s\n", "step", "calls", "host us", "gpu us");
      for (const gemma3::cuda::StepTime& t : table) {
        std::printf("  %-16s %8.1f %10.1f %10.1f\n", t.step.c_str(), double(t.calls) / n, t.host_us / n, t.gpu_us / n);
        host += t.host_us / n;
        gpu += t.gpu_us / n;
        calls += double(t.calls) / n;
      }
      std::printf("  %-16s %8.1f %10.1f %10.1f   host / wall = %.2f\n", "total", calls, host, gpu, host / wall_us);
    }

    if (!csv.empty()) {
      std::ofstream f(csv);
      if (!f) throw std::runtime_error(csv + ": cannot write");
      f << "device,model,weight_mib,copy_gbps,decode_steps,ms_per_step,tok_s,floor_ms,floor_ratio,prefill_tokens,"
           "prefill_tok_s,unfused_ms_per_step,graphs_ms_per_step,batch4_tok_s,batch16_tok_s,v3_combine_ms_per_step,"
           "blocks_ms_per_step,blocks_floor_ms,batch16_graphs_ms_per_step,residual_unfused_ms_per_step\n";
      f << '"' << device << "\",\"" << what << "\"," << bytes / (1024.0 * 1024.0) << ',' << bandwidth / 1e9 << ','
        << steps << ',' << step_ms << ',' << 1e3 / step_ms << ',' << floor_ms << ',' << floor_ms / step_ms << ','
        << prefill_len << ',' << prefill_len / prefill_s << ',' << unfused_ms << ',' << graphs_ms << ','
        << batch_tok_s[0] << ',' << batch_tok_s[1] << ',' << combine_ms << ',' << blocks_ms << ','
        << blocks_floor_ms << ',' << batch16_graphs_ms << ',' << residual_unfused_ms << '\n';
      std::printf("wrote %s\n", csv.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "model_decode: %s\n", e.what());
    return 1;
  }
}
