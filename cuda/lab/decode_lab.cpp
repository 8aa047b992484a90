// cuda/lab/decode_lab.cpp -- the decode attention lab: each version of the decode kernel
// (src/decode_versions.hpp) checked against the float64 CPU reference, then timed on the
// benchmark shapes next to two yardsticks measured in the same run: the device's copy
// bandwidth and the launch-latency floor.
//
//   id  shape (Gemma 3)                             B    context  what it shows
//   D1  1B local  NH 4 KV 1 head_dim 256 W 512      1    4K, 32K  flat in context (W keys)
//   D2  1B local                                    64   4K       a batch of rings
//   D3  1B global                                   1    32K      one long sequence: splits
//   D4  1B global                                   16   32K
//   D5  4B local  NH 8 KV 4 head_dim 256 W 1024     1    4K
//   D6  4B global                                   1    128K     512 MiB of K + V
//
//   GB/s   = K + V bytes the call must read (B x keys x KV x head_dim x 2 bytes x 2) / time
//   % copy = GB/s over the copy bandwidth (a 1 GiB device-to-device copy, read + write bytes)
//   floor  = one tiny kernel (one 4-byte read and write), replayed in a CUDA graph
//
// Versions: v1, split-K, "fused" (version 3: split-K whose last CTA merges the splits,
// no combine kernel), and "tables": split-K with each sequence's cache found through the
// pointer tables (AttentionArgs::k_caches, what the model's decode batches use) on the
// same rows, so the row beside split-K shows what the indirection costs.
//
// Timing: a CUDA graph of `iters` calls, call i on cache set i mod n_sets (separate
// caches, together over 5x the L2, so each call reads from memory: "cold"; a row that
// cannot afford that says "warm"), replayed between two events; the median of the
// repeats, divided by iters. A slow version (v1 on long contexts) runs fewer iterations
// to keep the lab short; the iters column says how many.
//
//   decode_lab [--quick | --smoke] [--csv FILE]   exit status 1 when a version fails its check
//
// --smoke: the checks, then S1-S3 (D1, D2 and D3 with W = 64, contexts of 256 and 2048,
// B = 2) timed once on at most 2 cache sets (lab_timing.hpp)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>

#include "cuda_test_util.hpp"
#include "decode_versions.hpp"
#include "lab_timing.hpp"

using cuda_test::DeviceBuffer;
using gemma3::cuda::AttentionArgs;
using gemma3::cuda::KvType;

namespace {

enum class Version { v1, split, fused, tables };
const Version kVersions[] = {Version::v1, Version::split, Version::fused, Version::tables};
const char* name(Version v) {
  switch (v) {
    case Version::v1: return "v1";
    case Version::split: return "split-K";
    case Version::fused: return "fused";
    default: return "tables";
  }
}

// The pointer tables of `sets` cache sets of B sequences, seq_stride apart in each set's
// allocation of set_elems (k and v): per set, k rows of each sequence then v rows.
DeviceBuffer<void*> cache_tables(std::uint16_t* k, std::uint16_t* v, int sets, std::size_t set_elems, int B,
                                 long long seq_stride) {
  std::vector<void*> t;
  for (int i = 0; i < sets; ++i) {
    for (int b = 0; b < B; ++b) t.push_back(k + std::size_t(i) * set_elems + std::size_t(b) * std::size_t(seq_stride));
    for (int b = 0; b < B; ++b) t.push_back(v + std::size_t(i) * set_elems + std::size_t(b) * std::size_t(seq_stride));
  }
  return DeviceBuffer<void*>(t);
}

// Points `a` at set i's tables instead of one allocation.
void use_tables(AttentionArgs& a, const DeviceBuffer<void*>& tables, int i, int B) {
  a.k_cache = a.v_cache = nullptr;
  a.seq_stride = 0;
  a.k_caches = tables.get() + std::size_t(i) * 2 * std::size_t(B);
  a.v_caches = a.k_caches + B;
}

struct Options {
  bool quick = false;
  bool smoke = false;  // lab_timing.hpp
  std::string csv;
};

struct Device {
  std::string name;
  int sms = 0;
  std::size_t l2 = 0;
};

// counters: version 3's, zeroed, [batch * num_kv_heads] (it leaves them zero).
void launch(Version v, const AttentionArgs& a, int sms, unsigned* counters, cudaStream_t stream) {
  if (v == Version::v1) gemma3::cuda::attention_decode_v1(a, stream);
  else if (v == Version::fused) gemma3::cuda::attention_decode_fused(a, sms, counters, stream);
  else gemma3::cuda::attention_decode(a, sms, stream);
}


using lab::graph_time_us;
using lab::time_ms;

// ---- checks: each version against the float64 reference on small cases

struct Check {
  const char* what;
  int num_heads, num_kv_heads, head_dim;
  float scale;
  bool sliding;
  int window;
  KvType kv;
  std::vector<int> positions;  // one per sequence
};

// Max relative error of `v` on `c` (inf when an output is not finite).
double check_version(Version v, const Check& c, const Device& dev, std::mt19937& rng) {
  const int B = int(c.positions.size()), row = c.num_kv_heads * c.head_dim;
  const int max_pos = *std::max_element(c.positions.begin(), c.positions.end());
  const int capacity = c.sliding ? c.window : max_pos + 1;
  const long long seq_stride = (long long)capacity * row;
  DeviceBuffer<std::uint16_t> kc(std::size_t(B * seq_stride)), vc(std::size_t(B * seq_stride));
  AttentionArgs a;
  a.num_heads = c.num_heads;
  a.num_kv_heads = c.num_kv_heads;
  a.head_dim = c.head_dim;
  a.scale = c.scale;
  a.sliding = c.sliding;
  a.window = c.window;
  a.kv_type = c.kv;
  a.k_cache = kc.get();
  a.v_cache = vc.get();
  a.seq_stride = seq_stride;
  a.capacity = capacity;

  std::vector<float> want;
  std::vector<std::vector<float>> keys(static_cast<std::size_t>(B)), values(static_cast<std::size_t>(B));
  const std::vector<float> q = cuda_test::randn(std::size_t(B) * c.num_heads * c.head_dim, rng);
  for (int b = 0; b < B; ++b) {  // each sequence's keys 0 .. p in one kv_append
    const int p = c.positions[std::size_t(b)];
    keys[std::size_t(b)] = cuda_test::randn(std::size_t(p + 1) * row, rng);
    values[std::size_t(b)] = cuda_test::randn(std::size_t(p + 1) * row, rng);
    DeviceBuffer<float> kd(keys[std::size_t(b)]), vd(values[std::size_t(b)]);
    AttentionArgs ab = a;
    ab.batch = 1;
    ab.T = p + 1;
    ab.pos0 = 0;
    ab.k_cache = kc.get() + std::size_t(b) * std::size_t(seq_stride);
    ab.v_cache = vc.get() + std::size_t(b) * std::size_t(seq_stride);
    gemma3::cuda::kv_append(ab, kd.get(), vd.get(), nullptr);
    cuda_test::sync();
    cuda_test::round_all(c.kv, keys[std::size_t(b)]);
    cuda_test::round_all(c.kv, values[std::size_t(b)]);
    const std::size_t qw = std::size_t(c.num_heads) * c.head_dim;
    const std::vector<float> qb(q.begin() + std::ptrdiff_t(b * qw), q.begin() + std::ptrdiff_t((b + 1) * qw));
    const std::vector<float> o = cuda_test::reference_attention(c.num_heads, c.num_kv_heads, c.head_dim, c.scale, 0.f,
                                                                c.sliding, c.window, p, 1, qb, keys[std::size_t(b)],
                                                                values[std::size_t(b)], p + 1);
    want.insert(want.end(), o.begin(), o.end());
  }

  DeviceBuffer<float> qd(q), out(want.size());
  DeviceBuffer<int> pos(c.positions);
  a.batch = B;
  a.T = 1;
  a.q = qd.get();
  a.out = out.get();
  a.positions = pos.get();
  a.max_position = max_pos;
  const std::size_t ws_bytes = gemma3::cuda::attention_decode_workspace(a, dev.sms);
  DeviceBuffer<unsigned char> ws(ws_bytes);
  a.workspace = ws.get();
  a.workspace_bytes = ws_bytes;
  const DeviceBuffer<void*> tables = cache_tables(kc.get(), vc.get(), 1, std::size_t(B * seq_stride), B, seq_stride);
  if (v == Version::tables) use_tables(a, tables, 0, B);
  const DeviceBuffer<unsigned> counters(std::vector<unsigned>(std::size_t(B) * std::size_t(c.num_kv_heads), 0u));
  launch(v, a, dev.sms, counters.get(), nullptr);
  cuda_test::sync();
  const cuda_test::Error e = cuda_test::compare(out.download(), want);
  return e.non_finite ? INFINITY : e.relative;
}

// ---- the benchmark shapes

struct Bench {
  const char* id;
  int num_heads, num_kv_heads, head_dim, window;
  bool sliding;
  int batch, context;
};

const Bench kBenches[] = {
    {"D1", 4, 1, 256, 512, true, 1, 4096},   {"D1", 4, 1, 256, 512, true, 1, 32768},
    {"D2", 4, 1, 256, 512, true, 64, 4096},  {"D3", 4, 1, 256, 512, false, 1, 32768},
    {"D4", 4, 1, 256, 512, false, 16, 32768}, {"D5", 8, 4, 256, 1024, true, 1, 4096},
    {"D6", 8, 4, 256, 1024, false, 1, 131072},
};
const Bench kSmokeBenches[] = {
    {"S1", 4, 1, 256, 64, true, 1, 256}, {"S1", 4, 1, 256, 64, true, 1, 2048},
    {"S2", 4, 1, 256, 64, true, 2, 256}, {"S3", 4, 1, 256, 64, false, 2, 256},
};

struct Row {
  std::string id, shape, version, l2;
  int batch = 0, context = 0, splits = 0, sets = 0, iters = 0;
  double us = 0, gbps = 0, pct = 0;
};

// The rows of one benchmark shape: every version on the same caches.
std::vector<Row> run_bench(const Bench& bn, const Device& dev, double copy_gbps, const Options& opt,
                           cudaStream_t stream) {
  const int keys = bn.sliding ? std::min(bn.window, bn.context) : bn.context;
  const int capacity = bn.sliding ? bn.window : bn.context;
  const long long row = (long long)bn.num_kv_heads * bn.head_dim;
  const long long seq_stride = capacity * row;
  const std::size_t set_elems = std::size_t(bn.batch) * std::size_t(seq_stride);  // per K or V
  const double set_bytes = 2.0 * double(set_elems) * 2;                           // K + V, 2 bytes each
  const double needed = 2.0 * 2 * double(bn.batch) * keys * double(row);          // what one call reads

  std::size_t free_b = 0, total_b = 0;
  CUDA_TEST_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const double budget = std::min(0.6 * double(free_b), 8.0 * (1ull << 30));
  char shape[96];
  std::snprintf(shape, sizeof shape, "NH %d KV %d D %d %s", bn.num_heads, bn.num_kv_heads, bn.head_dim,
                bn.sliding ? ("local W " + std::to_string(bn.window)).c_str() : "global");
  if (set_bytes > budget) {
    std::printf("%s %s: skipped, needs %.0f MiB and %.0f MiB are free\n", bn.id, shape, set_bytes / (1 << 20),
                double(free_b) / (1 << 20));
    return {};
  }
  const int want_sets = int(std::ceil(5.0 * double(dev.l2) / set_bytes));
  const int sets = std::max(1, std::min({want_sets, int(budget / set_bytes), opt.smoke ? 2 : 2000}));
  const bool cold = double(sets) * set_bytes >= 5.0 * double(dev.l2);

  // Cache contents do not change the time: a constant (0x3C3C: bf16 0.0115), finite.
  DeviceBuffer<std::uint16_t> kc(set_elems * std::size_t(sets)), vc(set_elems * std::size_t(sets));
  CUDA_TEST_CHECK(cudaMemset(kc.get(), 0x3C, kc.size() * 2));
  CUDA_TEST_CHECK(cudaMemset(vc.get(), 0x3C, vc.size() * 2));
  std::mt19937 rng(7);
  DeviceBuffer<float> q(cuda_test::randn(std::size_t(bn.batch) * bn.num_heads * bn.head_dim, rng));
  DeviceBuffer<float> out(std::size_t(bn.batch) * bn.num_heads * bn.head_dim);
  DeviceBuffer<int> pos(std::vector<int>(std::size_t(bn.batch), bn.context - 1));

  AttentionArgs a;
  a.num_heads = bn.num_heads;
  a.num_kv_heads = bn.num_kv_heads;
  a.head_dim = bn.head_dim;
  a.scale = 0.0625f;
  a.sliding = bn.sliding;
  a.window = bn.window;
  a.kv_type = KvType::bf16;
  a.batch = bn.batch;
  a.T = 1;
  a.q = q.get();
  a.out = out.get();
  a.positions = pos.get();
  a.max_position = bn.context - 1;
  a.seq_stride = seq_stride;
  a.capacity = capacity;
  const std::size_t ws_bytes = gemma3::cuda::attention_decode_workspace(a, dev.sms);
  DeviceBuffer<unsigned char> ws(ws_bytes);
  a.workspace = ws.get();
  a.workspace_bytes = ws_bytes;
  CUDA_TEST_CHECK(cudaDeviceSynchronize());  // the buffers' fills (default stream) are done

  const DeviceBuffer<void*> tables = cache_tables(kc.get(), vc.get(), sets, set_elems, bn.batch, seq_stride);
  const DeviceBuffer<unsigned> counters(std::vector<unsigned>(std::size_t(bn.batch) * std::size_t(bn.num_kv_heads), 0u));
  std::vector<Row> rows;
  for (Version v : kVersions) {
    if (v == Version::tables && bn.batch == 1) continue;  // the same call as split-K
    const auto call = [&](int i) {
      AttentionArgs c = a;
      c.k_cache = kc.get() + std::size_t(i % sets) * set_elems;
      c.v_cache = vc.get() + std::size_t(i % sets) * set_elems;
      if (v == Version::tables) use_tables(c, tables, i % sets, bn.batch);
      launch(v, c, dev.sms, counters.get(), stream);
    };
    call(0);  // warm-up, and one call's time to size the run
    CUDA_TEST_CHECK(cudaStreamSynchronize(stream));
    const double one_ms = time_ms(stream, [&] { call(1); });
    const int repeats = opt.smoke ? 1 : opt.quick ? 3 : 5;
    const double budget_ms = opt.quick ? 300 : 2000;  // per row
    int iters = std::max(opt.quick ? 20 : 100, std::min(sets, 2000));
    if (one_ms * iters * repeats > budget_ms) iters = std::max(3, int(budget_ms / (one_ms * repeats)));
    if (opt.smoke) iters = 2;
    Row r;
    r.id = bn.id;
    r.shape = shape;
    r.version = name(v);
    r.batch = bn.batch;
    r.context = bn.context;
    r.splits = v == Version::v1 ? 1 : gemma3::cuda::attention_decode_splits(a, dev.sms);
    r.sets = sets;
    r.l2 = cold ? "cold" : "warm";
    r.iters = iters;
    r.us = graph_time_us(stream, iters, repeats, call);
    r.gbps = needed / (r.us * 1e-6) / 1e9;
    r.pct = 100.0 * r.gbps / copy_gbps;
    rows.push_back(r);
  }
  return rows;
}

// Device-to-device copy of 1 GiB (or what fits), read + write bytes per second.
double copy_bandwidth_gbps(const Options& opt, cudaStream_t stream) {
  if (opt.smoke) return lab::copy_bandwidth_gbps(stream, 1, 1, std::size_t(16) << 20);
  return lab::copy_bandwidth_gbps(stream, opt.quick ? 2 : 5, opt.quick ? 3 : 5);
}

double latency_floor_us(const Options& opt, cudaStream_t stream) {
  DeviceBuffer<float> x(std::vector<float>{1.f}), y(1);
  CUDA_TEST_CHECK(cudaDeviceSynchronize());
  return graph_time_us(stream, opt.smoke ? 10 : 100, opt.smoke ? 1 : opt.quick ? 3 : 7,
                       [&](int) { gemma3::cuda::decode_latency_probe(x.get(), y.get(), stream); });
}

int run(const Options& opt) {
  Device dev;
  {
    int d = 0, l2 = 0;
    cudaDeviceProp p{};
    CUDA_TEST_CHECK(cudaGetDevice(&d));
    CUDA_TEST_CHECK(cudaGetDeviceProperties(&p, d));
    CUDA_TEST_CHECK(cudaDeviceGetAttribute(&dev.sms, cudaDevAttrMultiProcessorCount, d));
    CUDA_TEST_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, d));
    dev.name = p.name;
    dev.l2 = std::size_t(l2);
  }
  std::printf("decode_lab on %s: %d SMs, L2 %.0f MiB, key tile %d%s\n", dev.name.c_str(), dev.sms,
              double(dev.l2) / (1 << 20), gemma3::cuda::decode_key_tile(),
              opt.smoke ? " (--smoke: the times mean nothing)" : opt.quick ? " (--quick)" : "");

  // 1. Every version against the float64 reference.
  const Check checks[] = {
      {"1B global, B 3", 4, 1, 256, 0.0625f, false, 512, KvType::bf16, {999, 500, 0}},
      {"1B local (ring wrapped), B 3", 4, 1, 256, 0.0625f, true, 512, KvType::bf16, {2000, 700, 100}},
      {"4B global f16, B 2", 8, 4, 256, 0.0625f, false, 1024, KvType::f16, {1200, 3}},
      {"27B local, B 1", 32, 16, 128, 1.f / std::sqrt(168.f), true, 1024, KvType::bf16, {1500}},
  };
  bool ok = true;
  std::mt19937 rng(2024);
  for (Version v : kVersions)
    for (const Check& c : checks) {
      const double err = check_version(v, c, dev, rng);
      const bool pass = err <= 1e-4;
      ok = ok && pass;
      std::printf("check %-8s %-30s relative error %.2e  %s\n", name(v), c.what, err, pass ? "ok" : "FAILED");
    }
  if (!ok) {
    std::printf("a version failed its check: no timings\n");
    return 1;
  }

  // 2. The yardsticks.
  cudaStream_t stream;
  CUDA_TEST_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const double copy_gbps = copy_bandwidth_gbps(opt, stream);
  const double floor_us = latency_floor_us(opt, stream);
  std::printf("copy bandwidth %.0f GB/s (1 GiB device-to-device, read + write); latency floor %.2f us per kernel\n",
              copy_gbps, floor_us);

  // 3. The benchmark shapes.
  std::vector<Row> rows;
  for (const Bench& bn : kBenches)
    if (!opt.smoke)
      for (const Row& r : run_bench(bn, dev, copy_gbps, opt, stream)) rows.push_back(r);
  for (const Bench& bn : kSmokeBenches)
    if (opt.smoke)
      for (const Row& r : run_bench(bn, dev, copy_gbps, opt, stream)) rows.push_back(r);
  CUDA_TEST_CHECK(cudaStreamDestroy(stream));

  std::printf("\n%-3s %-29s %4s %7s %-8s %6s %5s %-4s %5s %10s %8s %7s\n", "id", "shape", "B", "context", "version",
              "splits", "sets", "L2", "iters", "time us", "GB/s", "% copy");
  for (const Row& r : rows)
    std::printf("%-3s %-29s %4d %7d %-8s %6d %5d %-4s %5d %10.2f %8.0f %6.1f%%\n", r.id.c_str(), r.shape.c_str(),
                r.batch, r.context, r.version.c_str(), r.splits, r.sets, r.l2.c_str(), r.iters, r.us, r.gbps, r.pct);
  // D1 must be flat in context: a local layer reads W keys whatever the context.
  double d1_4k = 0, d1_32k = 0;
  for (const Row& r : rows)
    if ((r.id == "D1" || r.id == "S1") && r.version == name(Version::split))
      (r.context == (opt.smoke ? 256 : 4096) ? d1_4k : d1_32k) = r.us;
  if (d1_4k > 0 && d1_32k > 0)
    std::printf("D1 split-K time at %s / at %s: %.2f (flat: ~1)\n", opt.smoke ? "2048" : "32K", opt.smoke ? "256" : "4K",
                d1_32k / d1_4k);

  if (!opt.csv.empty()) {
    FILE* f = std::fopen(opt.csv.c_str(), "w");
    if (!f) throw std::runtime_error("cannot write " + opt.csv);
    std::fprintf(f, "id,shape,batch,context,version,splits,sets,l2,iters,time_us,gbps,pct_copy,copy_gbps,floor_us\n");
    for (const Row& r : rows)
      std::fprintf(f, "%s,%s,%d,%d,%s,%d,%d,%s,%d,%.3f,%.1f,%.2f,%.1f,%.3f\n", r.id.c_str(), r.shape.c_str(), r.batch,
                   r.context, r.version.c_str(), r.splits, r.sets, r.l2.c_str(), r.iters, r.us, r.gbps, r.pct,
                   copy_gbps, floor_us);
    std::fclose(f);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") {
      opt.quick = true;
    } else if (arg == "--smoke") {
      opt.smoke = true;
    } else if (arg == "--csv" && i + 1 < argc) {
      opt.csv = argv[++i];
    } else {
      std::fprintf(stderr, "usage: decode_lab [--quick | --smoke] [--csv FILE]\n");
      return 2;
    }
  }
  if (!cuda_test::have_device()) {
    std::printf("decode_lab: no CUDA device: nothing to measure\n");
    return 77;
  }
  try {
    return run(opt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "decode_lab: %s\n", e.what());
    return 1;
  }
}
