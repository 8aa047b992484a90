// cuda/lab/prefill_lab.cpp -- the prefill attention lab: validates version 1 and the
// tiled kernel against the float64 brute force on small cases, then times them on
// model-shaped prefills of S tokens from position 0.
//
//   P1  1B-shaped  (num_heads 4, num_kv_heads 1, head_dim 256)  S = 8192   global (causal)
//   P2  the same, sliding window W = 512
//   P3  4B-shaped  (num_heads 8, num_kv_heads 4, head_dim 256)  S = 32768  global
//   P4  the same, sliding window W = 1024                          (P3, P4: not with --quick)
//   P5  4B-shaped                                                 S = 8192   global
//   P6  the same, sliding window W = 1024 (the 4B+ window at 8K tokens)
//
// Kernels timed: tiled (what the backend runs: cp.async tile loads overlapping the
// tensor cores), tiled-sync (the same kernel loading its tiles through registers: the
// difference is what the overlap gives) and v1 (the 1B rows at S = 8192 only). The tiled kernels'
// times include staging the call's keys in bf16.
//
// Time: cudaEvent around each call, the median of 20 after 3 warm-up calls.
// Useful TFLOP/s = 4 head_dim num_heads pairs / time, pairs = the (query, key) pairs the
// mask allows: S (S + 1) / 2 causal, W S - W (W - 1) / 2 sliding (S >= W). Work a kernel
// spends on masked keys does not count.
//
// Then Gemma 3 1B's attention at S = 32768 (S = 8192 with --quick): its 26 layers are 4
// global + 22 sliding (W = 512), so the windowed model costs 4 t_global + 22 t_sliding
// against 26 t_global were every layer global; the ratio is what the window saves.
//
//   prefill_lab [--quick | --smoke] [--csv FILE]      exit 1 when a validation fails
//
// --smoke: the validation, then P1, P2 and the estimate at S = 256 (W = 64), each call
// timed once after one warm-up (lab_timing.hpp)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>

#include "attention.hpp"
#include "cuda_test_util.hpp"
#include "gemma3/cuda/plan.hpp"
#include "prefill_versions.hpp"

namespace {

using gemma3::cuda::AttentionArgs;
using gemma3::cuda::KvType;
using cuda_test::DeviceBuffer;

using Launcher = void (*)(const AttentionArgs&, cudaStream_t);

float to_bf16(float x) { return gemma3::bf16_to_f32(gemma3::f32_to_bf16(x)); }

// ---- validation ------------------------------------------------------------------------

struct Check {
  const char* what;
  int num_heads, num_kv_heads, head_dim;
  bool sliding;
  int window, pos0, T;
  KvType kv;
  float softcap, scale;
  bool images;
};

// Runs one small case on `run` (tiled: true for attention_prefill) and returns its error
// against the reference; the history (positions < pos0) is written into the cache at its
// slots, every other cache row is NaN bytes.
cuda_test::Error validate(const Check& c, bool tiled, std::mt19937& rng) {
  const int NH = c.num_heads, KV = c.num_kv_heads, D = c.head_dim, P = c.pos0 + c.T;
  const std::size_t qw = std::size_t(NH) * D, kw = std::size_t(KV) * D;
  std::vector<float> q = cuda_test::randn(std::size_t(c.T) * qw, rng);
  std::vector<float> keys = cuda_test::randn(std::size_t(P) * kw, rng);
  std::vector<float> values = cuda_test::randn(std::size_t(P) * kw, rng);
  const int cap = c.sliding ? c.window : P;
  std::vector<std::uint16_t> kc(std::size_t(cap) * kw, 0xFFFF), vc(std::size_t(cap) * kw, 0xFFFF);
  for (int p = c.sliding ? std::max(0, c.pos0 - cap) : 0; p < c.pos0; ++p) {
    const std::size_t slot = std::size_t(gemma3::cuda::cache_slot(c.sliding, cap, p));
    for (std::size_t i = 0; i < kw; ++i) {
      kc[slot * kw + i] = cuda_test::encode(c.kv, keys[std::size_t(p) * kw + i]);
      vc[slot * kw + i] = cuda_test::encode(c.kv, values[std::size_t(p) * kw + i]);
    }
  }
  DeviceBuffer<float> d_q(q), d_out(std::size_t(c.T) * qw);
  DeviceBuffer<float> d_kn(std::vector<float>(keys.begin() + std::ptrdiff_t(std::size_t(c.pos0) * kw), keys.end()));
  DeviceBuffer<float> d_vn(std::vector<float>(values.begin() + std::ptrdiff_t(std::size_t(c.pos0) * kw), values.end()));
  DeviceBuffer<std::uint16_t> d_kc(kc), d_vc(vc);

  // Images: soft tokens at t in [T / 5, T / 2] and [3 T / 5, 3 T / 4].
  std::vector<int> group(std::size_t(c.T), -1), last_key;
  std::unique_ptr<gemma3::ImageGroups> images;
  DeviceBuffer<int> d_group, d_last;
  if (c.images) {
    for (int t = c.T / 5; t <= c.T / 2; ++t) group[std::size_t(t)] = 0;
    for (int t = 3 * c.T / 5; t <= 3 * c.T / 4; ++t) group[std::size_t(t)] = 1;
    images = std::make_unique<gemma3::ImageGroups>(group, c.pos0);
    for (int t = 0; t < c.T; ++t) last_key.push_back(images->last_visible_key(c.pos0 + t));
    d_group = DeviceBuffer<int>(group);
    d_last = DeviceBuffer<int>(last_key);
  }

  AttentionArgs a;
  a.num_heads = NH;
  a.num_kv_heads = KV;
  a.head_dim = D;
  a.scale = c.scale;
  a.softcap = c.softcap;
  a.sliding = c.sliding;
  a.window = c.window;
  a.kv_type = c.kv;
  a.T = c.T;
  a.q = d_q.get();
  a.out = d_out.get();
  a.pos0 = c.pos0;
  a.k_new = d_kn.get();
  a.v_new = d_vn.get();
  a.k_cache = d_kc.get();
  a.v_cache = d_vc.get();
  a.seq_stride = (long long)cap * (long long)kw;
  a.capacity = cap;
  a.last_key_max = P - 1;
  if (c.images) {
    a.group = d_group.get();
    a.last_key = d_last.get();
    a.last_key_max = *std::max_element(last_key.begin(), last_key.end());
  }
  // the tiled kernel's staged keys (NaN bytes until it writes them)
  DeviceBuffer<std::uint16_t> d_workspace(gemma3::cuda::attention_prefill_workspace(a) / 2);
  a.workspace = d_workspace.get();
  a.workspace_bytes = gemma3::cuda::attention_prefill_workspace(a);
  if (tiled) gemma3::cuda::attention_prefill(a, nullptr);
  else gemma3::cuda::attention_prefill_v1(a, nullptr);
  cuda_test::sync();
  const std::vector<float> got = d_out.download();

  for (float& x : q) x = to_bf16(x);
  cuda_test::round_all(c.kv, keys);
  cuda_test::round_all(c.kv, values);
  if (tiled) {  // the tensor cores' bf16 inputs
    for (float& x : keys) x = to_bf16(x);
    for (float& x : values) x = to_bf16(x);
  }
  const std::vector<float> want = cuda_test::reference_attention(NH, KV, D, c.scale, c.softcap, c.sliding, c.window,
                                                                 c.pos0, c.T, q, keys, values, P, images.get());
  return cuda_test::compare(got, want);
}

bool validate_all() {
  const float s27 = float(1.0 / std::sqrt(168.0));
  const std::vector<Check> checks = {
      {"1B global, from 0", 4, 1, 256, false, 0, 0, 200, KvType::bf16, 0.f, 0.0625f, false},
      {"4B sliding W 64, wrapped ring, f16", 8, 4, 256, true, 64, 100, 150, KvType::f16, 0.f, 0.0625f, false},
      {"27B sliding W 64, softcap", 32, 16, 128, true, 64, 30, 120, KvType::bf16, 1.5f, s27, false},
      {"1B global, images", 4, 1, 256, false, 0, 20, 180, KvType::bf16, 0.f, 0.0625f, true},
      {"27B sliding W 16, images", 32, 16, 128, true, 16, 0, 100, KvType::bf16, 0.f, s27, true},
  };
  std::mt19937 rng(2024);
  bool ok = true;
  std::printf("validation against the float64 reference (tiled <= 1e-2, version 1 <= 1e-4, no NaN):\n");
  for (const Check& c : checks)
    for (bool tiled : {false, true}) {
      const cuda_test::Error e = validate(c, tiled, rng);
      const double tol = tiled ? 1e-2 : 1e-4;
      const bool pass = e.non_finite == 0 && e.relative <= tol;
      ok = ok && pass;
      std::printf("  %-7s %-40s relative %.2e  non-finite %zu  %s\n", tiled ? "tiled" : "v1", c.what, e.relative,
                  e.non_finite, pass ? "ok" : "FAILED");
    }
  return ok;
}

// ---- timing ------------------------------------------------------------------------------

struct Shape {
  std::string name, model;
  int num_heads, num_kv_heads, head_dim, S;
  bool sliding;
  int window;
};

double pairs(const Shape& s) {
  const double S = s.S, W = s.window;
  if (!s.sliding || s.window >= s.S) return S * (S + 1) / 2;
  return W * S - W * (W - 1) / 2;
}

// Fills a device buffer with a repeated block of N(0, 1) draws (cheap for 10^8 values).
void fill_random(DeviceBuffer<float>& buf, std::mt19937& rng) {
  const std::vector<float> block = cuda_test::randn(std::size_t(1) << 20, rng, 0.0);
  for (std::size_t at = 0; at < buf.size(); at += block.size()) {
    const std::size_t n = std::min(block.size(), buf.size() - at);
    CUDA_TEST_CHECK(cudaMemcpy(buf.get() + at, block.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  }
}

struct Timing {
  double ms = 0, tflops = 0;
  bool finite = true;
};

Timing time_prefill(const Shape& s, Launcher run, std::mt19937& rng, int warm = 3, int timed = 20) {
  const std::size_t qn = std::size_t(s.S) * s.num_heads * s.head_dim, kn = std::size_t(s.S) * s.num_kv_heads * s.head_dim;
  DeviceBuffer<float> q(qn), out(qn), k(kn), v(kn);
  fill_random(q, rng);
  fill_random(k, rng);
  fill_random(v, rng);
  AttentionArgs a;
  a.num_heads = s.num_heads;
  a.num_kv_heads = s.num_kv_heads;
  a.head_dim = s.head_dim;
  a.scale = 0.0625f;
  a.sliding = s.sliding;
  a.window = s.window;
  a.T = s.S;
  a.q = q.get();
  a.out = out.get();
  a.pos0 = 0;  // the whole prompt in one call: every key comes from k_new / v_new
  a.k_new = k.get();
  a.v_new = v.get();
  a.capacity = s.sliding ? s.window : s.S;
  a.last_key_max = s.S - 1;
  // the tiled kernel stages the keys in bf16 here (its timing includes that launch)
  DeviceBuffer<std::uint16_t> workspace(gemma3::cuda::attention_prefill_workspace(a) / 2);
  a.workspace = workspace.get();
  a.workspace_bytes = gemma3::cuda::attention_prefill_workspace(a);

  for (int i = 0; i < warm; ++i) run(a, nullptr);
  cuda_test::sync();
  cudaEvent_t start, stop;
  CUDA_TEST_CHECK(cudaEventCreate(&start));
  CUDA_TEST_CHECK(cudaEventCreate(&stop));
  std::vector<double> ms;
  for (int i = 0; i < timed; ++i) {
    CUDA_TEST_CHECK(cudaEventRecord(start, nullptr));
    run(a, nullptr);
    CUDA_TEST_CHECK(cudaEventRecord(stop, nullptr));
    CUDA_TEST_CHECK(cudaEventSynchronize(stop));
    float t = 0;
    CUDA_TEST_CHECK(cudaEventElapsedTime(&t, start, stop));
    ms.push_back(t);
  }
  cuda_test::sync();
  CUDA_TEST_CHECK(cudaEventDestroy(start));
  CUDA_TEST_CHECK(cudaEventDestroy(stop));
  std::sort(ms.begin(), ms.end());
  Timing r;
  r.ms = ms[ms.size() / 2];
  r.tflops = 4.0 * s.head_dim * s.num_heads * pairs(s) / (r.ms * 1e-3) / 1e12;
  for (float x : out.download())
    if (!std::isfinite(x)) { r.finite = false; break; }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, smoke = false;
  std::string csv;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") quick = true;
    else if (arg == "--smoke") smoke = true;
    else if (arg == "--csv" && i + 1 < argc) csv = argv[++i];
    else {
      std::fprintf(stderr, "usage: prefill_lab [--quick | --smoke] [--csv FILE]\n");
      return 2;
    }
  }
  if (!cuda_test::have_device()) {
    std::printf("prefill_lab: no CUDA device: nothing to measure\n");
    return 77;  // skipped, as the other labs say it
  }
  try {
    cudaDeviceProp prop{};
    CUDA_TEST_CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("prefill_lab on %s (sm_%d%d, %d SMs)%s\n\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount,
                smoke ? " (--smoke: the times mean nothing)" : "");
    if (!validate_all()) {
      std::printf("\nprefill_lab: validation FAILED\n");
      return 1;
    }

    const int SE = smoke ? 256 : quick ? 8192 : 32768;  // the whole-model estimate's context
    std::vector<Shape> shapes = {
        {"P1", "1B", 4, 1, 256, 8192, false, 0},
        {"P2", "1B", 4, 1, 256, 8192, true, 512},
        {"P5", "4B", 8, 4, 256, 8192, false, 0},
        {"P6", "4B", 8, 4, 256, 8192, true, 1024},
    };
    if (smoke) shapes = {{"P1", "1B", 4, 1, 256, SE, false, 0}, {"P2", "1B", 4, 1, 256, SE, true, 64}};
    if (!quick && !smoke) {
      shapes.push_back({"P3", "4B", 8, 4, 256, 32768, false, 0});
      shapes.push_back({"P4", "4B", 8, 4, 256, 32768, true, 1024});
      shapes.push_back({"E1", "1B", 4, 1, 256, SE, false, 0});
      shapes.push_back({"E2", "1B", 4, 1, 256, SE, true, 512});
    }
    std::mt19937 rng(11);
    std::ofstream out_csv;
    if (!csv.empty()) {
      out_csv.open(csv);
      if (!out_csv) throw std::runtime_error("cannot write " + csv);
      out_csv << "row,kernel,model,num_heads,num_kv_heads,head_dim,S,window,ms,useful_tflops,note\n";
    }
    std::printf("\n%-4s %-10s %-5s %5s %4s %5s %7s %6s %10s %14s\n", "row", "kernel", "model", "heads", "kv", "dim", "S",
                "window", "ms", "useful TFLOP/s");
    bool finite = true;
    double t_global = 0, t_sliding = 0;
    // tiled, the same kernel loading its tiles through registers (what cp.async gives), v1
    const struct {
      const char* name;
      Launcher run;
    } kernels[] = {{"tiled", gemma3::cuda::attention_prefill},
                   {"tiled-sync", gemma3::cuda::attention_prefill_sync_loads},
                   {"v1", gemma3::cuda::attention_prefill_v1}};
    for (const Shape& s : shapes)
      for (const auto& k : kernels) {
        const bool tiled = k.run == Launcher(gemma3::cuda::attention_prefill);
        if (k.run == Launcher(gemma3::cuda::attention_prefill_v1) && (s.S > 8192 || s.model != "1B"))
          continue;  // version 1 at 32K tokens takes seconds per call; the 1B rows show it
        const Timing t = time_prefill(s, k.run, rng, smoke ? 1 : 3, smoke ? 1 : 20);
        finite = finite && t.finite;
        const char* kernel = k.name;
        std::printf("%-4s %-10s %-5s %5d %4d %5d %7d %6s %10.3f %14.1f%s\n", s.name.c_str(), kernel, s.model.c_str(),
                    s.num_heads, s.num_kv_heads, s.head_dim, s.S, s.sliding ? std::to_string(s.window).c_str() : "-",
                    t.ms, t.tflops, t.finite ? "" : "  NON-FINITE OUTPUT");
        if (out_csv)
          out_csv << s.name << ',' << kernel << ',' << s.model << ',' << s.num_heads << ',' << s.num_kv_heads << ','
                  << s.head_dim << ',' << s.S << ',' << (s.sliding ? s.window : 0) << ',' << t.ms << ',' << t.tflops
                  << ",\n";
        if (tiled && s.model == "1B" && s.S == SE) (s.sliding ? t_sliding : t_global) = t.ms;
      }

    // Gemma 3 1B: 4 global + 22 sliding layers against 26 global ones.
    const double windowed = 4 * t_global + 22 * t_sliding, all_global = 26 * t_global;
    std::printf("\nGemma 3 1B attention, S = %d, tiled kernel: 4 global + 22 sliding layers %.2f ms, "
                "26 global layers %.2f ms: the window saves %.2fx\n",
                SE, windowed, all_global, all_global / windowed);
    if (out_csv) {
      out_csv << "1B-windowed,tiled,1B,4,1,256," << SE << ",512," << windowed << ",,4 global + 22 sliding layers\n";
      out_csv << "1B-all-global,tiled,1B,4,1,256," << SE << ",0," << all_global << ",,26 global layers; speedup "
              << all_global / windowed << "\n";
    }
    if (!finite) {
      std::printf("prefill_lab: a timed output had NaN or Inf\n");
      return 1;
    }
  } catch (const std::exception& e) {
    std::printf("prefill_lab: %s\n", e.what());
    return 1;
  }
  return 0;
}
