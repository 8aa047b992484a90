// cuda/src/backend.cpp -- CudaBackend: every step of backend.hpp on one GPU, so the
// activations and the KV cache never leave it. Plain C++ on the CUDA runtime and cuBLAS;
// the kernels are in ops.cu and attention_*.cu.
//
//   activations  float32 [rows, cols] device buffers (Activations::device()), from a
//                caching pool: free lists by size, refilled by each buffer's deleter, so a
//                decode step allocates nothing once the first step has run
//   weights      on first use: dequantized / widened on the host, rounded to bfloat16
//                (gemma3::f32_to_bf16), copied once, kept by Weight::data (+ shape, dtype);
//                norm weights and RoPE inv_freq as float32, kept by their data. With
//                Options::keep_quantized, a GGUF block type is copied as stored instead
//                (quantized.hpp): up to kGemvMaxTokens rows of X multiply it by the
//                dequantizing GEMV (float32 X, never rounded), more rows by cuBLAS on a
//                bf16 copy made a chunk of rows at a time in a pooled scratch buffer
//                (linear_many's blocks, a few rows: every W's GEMV in one launch,
//                gemv_blocks_many); the embedding and the LM head read the same blocks
//   linear       Y [T, out] = X [T, in] . W^T, W [out, in] row-major, as one cuBLAS GEMM:
//                cuBLAS is column-major, and a row-major [r, c] matrix is a column-major
//                [c, r] one with leading dimension c, so
//                  Y^T [out, T] = (W^T)^T [out, in] . X^T [in, T]
//                  = GemmEx(op(A) = T, op(B) = N, m = out, n = T, k = in,
//                           A = W (lda = in), B = X (ldb = in), C = Y (ldc = out))
//                X rounded to bf16 first (by the kernel that made X when it was
//                rms_norm or gelu_tanh_mul: State::bf16_copies, dropped as soon as
//                anything else touches X); bf16 x bf16 products, float32 sums and output.
//                linear_many's weights are stacked in one buffer [sum of out, in] (the
//                Ws of q/k/v, of gate/up): for one token a single GEMM over the stack,
//                each Y a slice of its output (the aliasing shared_ptr); for more, one
//                GEMM per W on its rows of the stack
//   attention    the cache's rows are bf16 (or f16) on the device (new_cache): a prompt
//                chunk (T > 1) attends over the cached keys and its own, then appends;
//                a decode step (T = 1) appends, then attends over the cache. head_dim
//                128 and 256 (every released Gemma 3) run the tuned kernels
//                (attention_prefill, attention_decode), any other the plain version 1
//                kernels (the tiny test models)
//   QK-norm,     rms_norm_heads and rope on a head_dim qk_norm_rope.cu takes record
//   RoPE         the step on the buffer (State::pending) instead of launching it; the
//                layer's attention() then runs both on q and k, and in decode the cache
//                write, as one kernel. Any other use of a buffer with a step waiting
//                (every kernel argument goes through ptr() or read_ptr()) runs it first,
//                as the two kernels the calls would have launched, so the results are the same bits
//                either way (Options::fuse_qk_norm_rope = false launches at each call)
//   residual     the steps between two GEMMs of a decoder block, post-norm (in place),
//   path         add into h, the next pre-norm of h, as one kernel: rms_norm in place
//                records the norm on its buffer x (State::residual) instead of
//                launching it; add(h, x) then records "h += norm(x)" on h, x left as it
//                is; the rms_norm of h that follows runs both with its own norm
//                (ops.hpp residual_rms_norm). As with QK-norm, any other use of h or x
//                runs what waits on it first (an add that reads x before x's own
//                norm), so the results are the same bits either way
//                (Options::fuse_residual_norm = false launches at each call)
//   LM head      the tied embedding as a GEMM on the last row; lm_head_argmax keeps
//                the logits on the device and sends back the one id
//   graphs       Options::graphs: a decode step's work, from the embedding of its one
//                token (or of a decode batch's B tokens, once a batch of B has run) to
//                the first call that needs the host (the LM head's copy back, a
//                download), is captured from the stream into a CUDA graph and
//                launched as one; the graph of the step before is updated in place
//                (cudaGraphExecUpdate), not instantiated again. The token ids (and a
//                batch's positions) reach the graph through page-locked memory, a
//                slice of State::staging per upload, read by the graph's copy nodes. A call
//                that throws during a captured step drops the step's work (the model's
//                call fails as a whole, as without graphs).
//
// One stream and one cuBLAS handle per backend; download(), lm_head_*() and every
// host-to-device copy wait for the stream, so no host buffer is read after its call
// returns. A backend serves one thread at a time.
#include "gemma3/cuda/backend.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "attention.hpp"
#include "buffer_notes.hpp"
#include "decode_versions.hpp"
#include "gemma3/cuda/plan.hpp"
#include "gemma3/kernels/argmax.hpp"
#include "gemma3/quant/quant.hpp"
#include "ops.hpp"
#include "prefill_versions.hpp"
#include "quantized.hpp"

namespace gemma3 {
namespace cuda {

namespace {

// A failed call's error is also kept for cudaGetLastError, where the next kernel launch's
// check would find it: it is taken from there too (a sticky error, a fault, stays).
void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  cudaGetLastError();
  throw std::runtime_error(std::string("gemma3::cuda: ") + what + ": " + cudaGetErrorString(e));
}
void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("gemma3::cuda: ") + what + ": " + cublasGetStatusString(s));
}
#define GEMMA3_CUDA_CHECK(x) check((x), #x)

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

int to_int(Eigen::Index n, const char* what) {
  if (n < 0 || n > std::numeric_limits<int>::max())
    throw std::invalid_argument(std::string("cuda backend: ") + what + " = " + std::to_string(n) + " is out of range");
  return int(n);
}

// ---- device memory -----------------------------------------------------------------------

// A failed cudaMalloc's exception: what the bytes were for, and what the device has.
// cudaMalloc also leaves its error for cudaGetLastError, which would fail the next kernel
// launch's check long after the allocation was handled: it is cleared here, so the
// backend goes on working once memory is freed.
[[noreturn]] void throw_allocation_failed(std::size_t bytes, const char* what, cudaError_t e) {
  cudaGetLastError();
  std::size_t free_b = 0, total_b = 0;
  std::string room;
  if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
    room = " (" + std::to_string(free_b >> 20) + " MiB free of " + std::to_string(total_b >> 20) + " MiB)";
  else
    cudaGetLastError();
  throw std::runtime_error("gemma3::cuda: cudaMalloc of " + std::to_string(bytes) + " bytes for " + what +
                           " failed: " + cudaGetErrorString(e) + room);
}

class DevicePool;
// cudaMalloc; a device found full first gets `pool`'s idle buffers back and is asked once
// more (defined below the pool).
cudaError_t malloc_or_release(void** p, std::size_t bytes, DevicePool* pool);

// ---- the activation pool ----------------------------------------------------------------

// Device buffers by size (rounded up to 256 bytes). A buffer handed out comes back to
// its free list when its last owner lets go; the pool lives as long as any of them (the
// deleter holds it). Every use of a buffer is on the backend's one stream, so a buffer
// given back while kernels still read it is only reused by work queued after them.
class DevicePool : public std::enable_shared_from_this<DevicePool> {
 public:
  explicit DevicePool(int device) : device_(device) {}
  DevicePool(const DevicePool&) = delete;
  DevicePool& operator=(const DevicePool&) = delete;
  ~DevicePool() {
    cudaSetDevice(device_);
    for (auto& [bytes, list] : free_)
      for (void* p : list) cudaFree(p);
  }

  // Frees every idle buffer (for an allocation that found the device full).
  void release_idle() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [bytes, list] : free_)
      for (void* p : list) cudaFree(p);  // cudaFree waits for the device
    free_.clear();
  }

  std::shared_ptr<void> get(std::size_t bytes) {
    bytes = round_up(std::max<std::size_t>(bytes, 1), 256);
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
      }
    }
    if (!p) p = allocate(bytes);
    std::shared_ptr<DevicePool> self = shared_from_this();
    return std::shared_ptr<void>(p, [self, bytes](void* q) { self->give_back(q, bytes); });
  }

 private:
  void* allocate(std::size_t bytes) {
    void* p = nullptr;
    const cudaError_t e = malloc_or_release(&p, bytes, this);
    if (e != cudaSuccess) throw_allocation_failed(bytes, "activations", e);
    return p;
  }
  void give_back(void* p, std::size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_[bytes].push_back(p);
  }

  int device_;
  std::mutex mutex_;
  std::unordered_map<std::size_t, std::vector<void*>> free_;
};

cudaError_t malloc_or_release(void** p, std::size_t bytes, DevicePool* pool) {
  cudaError_t e = cudaMalloc(p, bytes);
  if (e == cudaErrorMemoryAllocation && pool) {
    cudaGetLastError();
    pool->release_idle();
    e = cudaMalloc(p, bytes);
  }
  return e;
}

// ---- one layer's cache rows on the device --------------------------------------------------

struct CacheRows {
  int device = 0;
  KvType type = KvType::bf16;
  int capacity = 0;       // rows (LayerKVCache::capacity)
  int width = 0;          // num_key_value_heads * head_dim
  int max_cache_len = 0;  // the KVCache's
  void* k = nullptr;      // [capacity, width] bf16 or f16
  void* v = nullptr;      // [capacity, width]
  CacheRows() = default;
  CacheRows(const CacheRows&) = delete;
  CacheRows& operator=(const CacheRows&) = delete;
  ~CacheRows() {
    cudaSetDevice(device);
    if (k) cudaFree(k);
    if (v) cudaFree(v);
  }
};
// The deleter type marks a LayerKVCache::device made here (std::get_deleter finds it).
struct CacheRowsDeleter {
  void operator()(CacheRows* p) const { delete p; }
};

// ---- what the backend holds ------------------------------------------------------------------

// The first and last bytes of a host weight: a different weight at a reused address is seen.
struct WeightSample {
  std::array<unsigned char, 64> head{};
  std::array<unsigned char, 64> tail{};
  std::size_t sample = 0;
};
// One weight, or several that read the same input (linear_many) stacked row after row.
struct DeviceWeight {
  std::shared_ptr<void> data;         // bf16 [sum of rows, cols]
  std::vector<WeightSample> samples;  // one per weight
};
// A block-type weight as stored (Options::keep_quantized).
struct DeviceBlocks {
  std::shared_ptr<void> data;  // rows * row_bytes
  WeightSample sample;
};
struct DeviceVector {
  std::vector<float> host;     // the values uploaded (compared on every use)
  std::shared_ptr<void> data;  // float32 [n]
};
// QK-norm (and RoPE) recorded on a buffer of heads, not yet launched.
struct PendingHeads {
  float* data = nullptr;  // [rows, heads * head_dim]
  int rows = 0, heads = 0, head_dim = 0;
  const float* norm = nullptr;  // [head_dim], device
  float eps = 0.f;
  const float* inv_freq = nullptr;  // [head_dim / 2], device; null: RoPE not yet asked for
  int pos0 = 0;
};

// Options::fuse_residual_norm: a step of the residual path recorded on a buffer, not yet
// launched.
//   norm (add = false)  data [rows, n] = RMSNorm(data) * (1 + w), in place (rms_norm
//                       with out = x); bf16: also its bf16 copy, as rms_norm would write
//   add (add = true)    data [rows, n] += RMSNorm(x) * (1 + w), recorded by add(h, x)
//                       while x's norm waited: x keeps its own norm note, and its values,
//                       until every add that reads it has run (run_residual)
struct PendingResidual {
  bool add = false;
  float* data = nullptr;
  int rows = 0, n = 0;
  const float* w = nullptr;  // [n], device: the norm's weight (add: x's norm's)
  float eps = 0.f;
  bool bf16 = false;
  std::shared_ptr<void> x_owner;  // add: keeps x's buffer alive
  const float* x = nullptr;
};

// A buffer's values rounded to bf16, written by the kernel that made them (rms_norm,
// gelu_tanh_mul) for the GEMM that reads them next, so that GEMM needs no conversion.
struct Bf16Copy {
  std::size_t n = 0;           // values
  std::shared_ptr<void> bf16;  // [n] bf16, pooled
};

// Options::profile: each outermost call of the seam, its host time and two events on the stream.
struct ProfileRecord {
  const char* step;
  cudaEvent_t start, stop;
  double host_s;
};
struct Profile {
  int depth = 0;  // calls under way (linear calls linear_many: only the outer one is recorded)
  std::vector<ProfileRecord> records;
  std::vector<cudaEvent_t> spare;
  Profile() = default;
  Profile(const Profile&) = delete;
  Profile& operator=(const Profile&) = delete;
  ~Profile() {
    for (const ProfileRecord& r : records) {
      cudaEventDestroy(r.start);
      cudaEventDestroy(r.stop);
    }
    for (cudaEvent_t e : spare) cudaEventDestroy(e);
  }
  cudaEvent_t event() {
    if (!spare.empty()) {
      cudaEvent_t e = spare.back();
      spare.pop_back();
      return e;
    }
    cudaEvent_t e = nullptr;
    const cudaError_t err = cudaEventCreate(&e);
    if (err != cudaSuccess) throw std::runtime_error(std::string("gemma3::cuda: cudaEventCreate: ") + cudaGetErrorString(err));
    return e;
  }
};

using WeightKey = std::tuple<const void*, std::int64_t, std::int64_t, int>;  // data, rows, cols, dtype
using VectorKey = std::pair<const float*, std::size_t>;

// Options::keep_quantized, more tokens than the GEMV takes: W is widened to bf16 at most
// this many bytes of rows at a time (a 1B LM head, 262144 x 1152, in ten chunks).
constexpr std::size_t kDequantizeChunkBytes = std::size_t(64) << 20;

struct State {
  int device = 0;
  DType kv_dtype = DType::BF16;
  cudaDeviceProp props{};
  int num_sms = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  std::shared_ptr<DevicePool> pool;
  bool fuse = true;                   // Options::fuse_qk_norm_rope
  bool fuse_residual = true;          // Options::fuse_residual_norm
  bool fuse_combine = false;          // Options::fuse_decode_combine
  bool keep_quantized = false;        // Options::keep_quantized
  unsigned* counters = nullptr;       // its counters, zero between calls (cudaMalloc'd, grown as asked)
  std::size_t counters_n = 0;
  std::unique_ptr<Profile> profile;   // Options::profile
  std::shared_ptr<void> cublas_workspace;  // cuBLAS's, set once (no allocation inside a capture)

  bool graphs = false;                 // Options::graphs
  bool capturing = false;              // a decode step is being captured on `stream`
  cudaGraphExec_t step_graph = nullptr;  // the last step's, updated by the next capture
  // Page-locked ints the captured step's uploads (token ids, positions) copy from: each
  // upload takes the next slice, so none is overwritten before the graph has run.
  int* staging = nullptr;
  std::size_t staging_n = 0, staging_used = 0;
  int batch_rows = 0;                  // rows of the last rope_at (a decode batch), 0 after rope
  BufferNotes<PendingHeads> pending;  // at most q's and k's of one layer
  BufferNotes<PendingResidual> residual;  // a few per layer, gone with their buffers
  BufferNotes<Bf16Copy> bf16_copies;  // valid until the buffer may be written (ptr())
  std::vector<int> positions;           // a decode batch's positions as last uploaded (rope_at)
  std::shared_ptr<void> positions_dev;  // the same on the device, int [positions.size()]
  // A decode batch's cache rows, one table per layer: its sequences' k rows then v rows
  // (void* [2 B] on the device), keyed by those pointers (so never stale), uploaded once.
  std::map<std::vector<void*>, std::shared_ptr<void>> cache_tables;

  std::mutex store_mutex;  // the three maps below
  std::map<std::vector<WeightKey>, DeviceWeight> weights;
  std::map<WeightKey, DeviceBlocks> blocks;
  std::map<VectorKey, DeviceVector> vectors;

  State() = default;
  State(const State&) = delete;
  State& operator=(const State&) = delete;

  // The captured step, launched: its graph replaces the last step's in step_graph.
  void end_capture() {
    if (!capturing) return;
    capturing = false;
    cudaGraph_t graph = nullptr;
    cudaError_t ended = cudaStreamEndCapture(stream, &graph);
    if (ended != cudaSuccess) forget_staged();
    GEMMA3_CUDA_CHECK(ended);
    if (step_graph) {
      cudaGraphExecUpdateResultInfo info{};
      if (cudaGraphExecUpdate(step_graph, graph, &info) != cudaSuccess) {  // another shape of graph
        cudaGetLastError();
        cudaGraphExecDestroy(step_graph);
        step_graph = nullptr;
      }
    }
    cudaError_t e = cudaSuccess;
    if (!step_graph) e = cudaGraphInstantiate(&step_graph, graph, 0);
    cudaGraphDestroy(graph);
    if (e == cudaSuccess) e = cudaGraphLaunch(step_graph, stream);
    if (e != cudaSuccess) forget_staged();
    GEMMA3_CUDA_CHECK(e);
  }
  // A capture given up (a call threw): its work never runs.
  void abort_capture() noexcept {
    if (!capturing) return;
    capturing = false;
    cudaGraph_t graph = nullptr;
    if (cudaStreamEndCapture(stream, &graph) == cudaSuccess && graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    forget_staged();
  }
  // A captured step that never ran never wrote what it uploaded: the positions kept as
  // "on the device" are not, so the next batch step uploads them again.
  void forget_staged() noexcept {
    positions.clear();
    positions_dev.reset();
  }

  ~State() {
    cudaSetDevice(device);
    abort_capture();
    if (stream) cudaStreamSynchronize(stream);
    profile.reset();
    if (step_graph) cudaGraphExecDestroy(step_graph);
    if (staging) cudaFreeHost(staging);
    if (counters) cudaFree(counters);
    cublas_workspace.reset();
    weights.clear();
    blocks.clear();
    vectors.clear();
    if (cublas) cublasDestroy(cublas);
    if (stream) cudaStreamDestroy(stream);
  }
};

// `bytes` of device memory for `what`, freed with its last owner. With `pool`, a device
// found full first gets the pool's idle buffers back and is asked once more.
std::shared_ptr<void> device_alloc(std::size_t bytes, int device, const char* what, DevicePool* pool = nullptr) {
  void* p = nullptr;
  const cudaError_t e = malloc_or_release(&p, std::max<std::size_t>(bytes, 1), pool);
  if (e != cudaSuccess) throw_allocation_failed(bytes, what, e);
  return std::shared_ptr<void>(p, [device](void* q) {
    cudaSetDevice(device);
    cudaFree(q);
  });
}

// The first and last bytes of W's data, to see another weight at the same address.
WeightSample sample_of(const Weight& W) {
  const std::size_t bytes = W.row_bytes() * std::size_t(W.rows);
  const auto* host = static_cast<const unsigned char*>(W.data);
  WeightSample ws;
  ws.sample = std::min<std::size_t>(64, bytes);
  std::memcpy(ws.head.data(), host, ws.sample);
  std::memcpy(ws.tail.data(), host + bytes - ws.sample, ws.sample);
  return ws;
}
bool same_sample(const WeightSample& a, const WeightSample& b) {
  return a.sample == b.sample && a.head == b.head && a.tail == b.tail;
}

// W as bf16 [rows, cols] on the host: each row dequantized (or widened) to float32,
// then rounded; the rows split over the host's threads.
std::vector<std::uint16_t> weight_to_bf16(const Weight& W) {
  const std::size_t rows = std::size_t(W.rows), cols = std::size_t(W.cols);
  std::vector<std::uint16_t> out(rows * cols);
  const std::size_t threads =
      std::max<std::size_t>(1, std::min<std::size_t>({std::thread::hardware_concurrency(), 16, rows / 64 + 1}));
  auto work = [&](std::size_t r0, std::size_t r1) {
    std::vector<float> row(cols);
    for (std::size_t r = r0; r < r1; ++r) {
      dequantize_row(W, std::int64_t(r), row.data());
      std::uint16_t* dst = out.data() + r * cols;
      for (std::size_t c = 0; c < cols; ++c) dst[c] = f32_to_bf16(row[c]);
    }
  };
  if (threads == 1) {
    work(0, rows);
    return out;
  }
  std::vector<std::thread> pool;
  std::vector<std::exception_ptr> errors(threads);
  for (std::size_t i = 0; i < threads; ++i)
    pool.emplace_back([&, i] {
      try {
        work(rows * i / threads, rows * (i + 1) / threads);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  for (std::thread& t : pool) t.join();
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
  return out;
}

// ---- the backend ------------------------------------------------------------------------------

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const Options& o) : s_(std::make_shared<State>()) {
    if (o.kv_dtype && *o.kv_dtype != DType::BF16 && *o.kv_dtype != DType::F16)
      throw std::invalid_argument(std::string("cuda backend: kv_dtype must be BF16 or F16, got ") +
                                  dtype_name(*o.kv_dtype));
    State& s = *s_;
    s.device = o.device;
    s.kv_dtype = o.kv_dtype.value_or(DType::BF16);
    s.fuse = o.fuse_qk_norm_rope;
    s.fuse_residual = o.fuse_residual_norm;
    s.fuse_combine = o.fuse_decode_combine;
    s.keep_quantized = o.keep_quantized;
    if (o.profile && o.graphs)
      throw std::invalid_argument("cuda backend: Options::profile times each call, which a graph does not have; "
                                  "set profile or graphs, not both");
    if (o.profile) s.profile = std::make_unique<Profile>();
    s.graphs = o.graphs;
    GEMMA3_CUDA_CHECK(cudaSetDevice(s.device));
    GEMMA3_CUDA_CHECK(cudaGetDeviceProperties(&s.props, s.device));
    s.num_sms = s.props.multiProcessorCount;
    GEMMA3_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
    GEMMA3_CUDA_CHECK(cublasCreate(&s.cublas));
    GEMMA3_CUDA_CHECK(cublasSetStream(s.cublas, s.stream));
    // float32 sums all the way (no split-K partials kept in 16 bits)
    GEMMA3_CUDA_CHECK(cublasSetMathMode(
        s.cublas, cublasMath_t(CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
    s.pool = std::make_shared<DevicePool>(s.device);
    // cuBLAS's workspace, given once: it then allocates nothing while a step is captured
    // (the same workspace with graphs or without, so both pick the same GEMM algorithms)
    const std::size_t workspace = std::size_t(32) << 20;
    s.cublas_workspace = device_alloc(workspace, s.device, "the cuBLAS workspace");
    GEMMA3_CUDA_CHECK(cublasSetWorkspace(s.cublas, s.cublas_workspace.get(), workspace));
  }

  std::string name() const override {
    return std::string("cuda ") + s_->props.name +
           (s_->keep_quantized ? ", GGUF block weights as stored" : ", bf16 weights") + ", " +
           dtype_name(s_->kv_dtype) + " cache";
  }

  // ---- the small steps ----

  void embed(const Weight& table, const std::vector<int>& ids, float scale, Activations& out) const override {
    const Step step(*this, "embed");
    for (std::size_t t = 0; t < ids.size(); ++t)  // embedding.hpp's check and message
      if (ids[t] < 0 || ids[t] >= table.rows)
        throw std::out_of_range("token id " + std::to_string(ids[t]) + " at position " + std::to_string(t) +
                                " is outside the vocabulary [0, " + std::to_string(table.rows) + ")");
    const int T = to_int(Eigen::Index(ids.size()), "tokens"), H = to_int(table.cols, "hidden_size");
    const void* blocks = as_blocks(table) ? block_weight(table) : nullptr;  // uploads before any capture
    const std::uint16_t* rows = blocks ? nullptr : weight(table);
    const std::shared_ptr<void> ids_dev = s_->pool->get(ids.size() * sizeof(int));
    // a decode step (one token, or a batch the size of the last one): capture it (see the top)
    if (s_->graphs && !s_->capturing && (ids.size() == 1 || int(ids.size()) == s_->batch_rows)) {
      reserve_staging(2 * ids.size() + 64);  // the ids and a batch's positions, before the capture begins
      GEMMA3_CUDA_CHECK(cudaStreamBeginCapture(s_->stream, cudaStreamCaptureModeRelaxed));
      s_->capturing = true;
      s_->staging_used = 0;
    }
    upload_small(ids_dev.get(), ids);
    Activations h = make(T, H);  // [T, H]
    if (blocks)
      embed_blocks(table.dtype, blocks, H, static_cast<const int*>(ids_dev.get()), T, scale, ptr(h), s_->stream);
    else
      cuda::embed(rows, to_int(table.rows, "vocab_size"), H, static_cast<const int*>(ids_dev.get()), T, scale, ptr(h),
                  s_->stream);
    out = std::move(h);
  }

  void set_rows(Activations& h, const std::vector<int>& rows, const Matrix& values) const override {
    const Step step(*this, "set_rows");
    if (Eigen::Index(rows.size()) != values.rows() || values.cols() != h.cols())
      throw std::invalid_argument("cuda backend: set_rows: " + std::to_string(rows.size()) + " rows for values [" +
                                  std::to_string(values.rows()) + ", " + std::to_string(values.cols()) +
                                  "] into activations of width " + std::to_string(h.cols()));
    for (int r : rows)
      if (r < 0 || r >= h.rows())
        throw std::out_of_range("cuda backend: set_rows: row " + std::to_string(r) + " outside [0, " +
                                std::to_string(h.rows()) + ")");
    if (rows.empty()) return;
    const std::shared_ptr<void> rows_dev = s_->pool->get(rows.size() * sizeof(int));
    const std::shared_ptr<void> values_dev = s_->pool->get(std::size_t(values.size()) * sizeof(float));
    copy_to_device(rows_dev.get(), rows.data(), rows.size() * sizeof(int));
    copy_to_device(values_dev.get(), values.data(), std::size_t(values.size()) * sizeof(float));
    cuda::set_rows(ptr(h), to_int(h.cols(), "cols"), static_cast<const int*>(rows_dev.get()), int(rows.size()),
                   static_cast<const float*>(values_dev.get()), s_->stream);
  }

  void rms_norm(const Activations& x, const Vector& w, float eps, Activations& out) const override {
    const Step step(*this, "rms_norm");
    if (w.size() != x.cols())
      throw std::invalid_argument("cuda backend: rms_norm: weight of " + std::to_string(w.size()) +
                                  " values for rows of " + std::to_string(x.cols()));
    const float* wd = vector(w.data(), std::size_t(w.size()));
    const int rows = to_int(x.rows(), "rows"), n = to_int(x.cols(), "cols");
    const std::size_t count = std::size_t(rows) * std::size_t(n);
    if (s_->fuse_residual && count > 0 && residual_norm(x, wd, eps, out)) return;
    std::shared_ptr<void> copy;  // its bf16 for the next GEMM (a GEMV reads float32)
    if (wants_bf16_copy(rows)) copy = s_->pool->get(count * sizeof(std::uint16_t));
    auto* copy16 = static_cast<std::uint16_t*>(copy.get());
    if (&out == &x) {
      cuda::rms_norm(ptr(x), wd, eps, ptr(x), rows, n, s_->stream, copy16);
    } else {
      Activations y = make(rows, n);
      cuda::rms_norm(ptr(x), wd, eps, ptr(y), rows, n, s_->stream, copy16);
      out = std::move(y);
    }
    if (copy) keep_bf16(out, std::move(copy));
  }

  void rms_norm_heads(Activations& x, int head_dim, const Vector& w, float eps) const override {
    const Step step(*this, "rms_norm_heads");
    if (head_dim <= 0 || x.cols() % head_dim != 0 || w.size() != head_dim)
      throw std::invalid_argument("cuda backend: rms_norm_heads: rows of " + std::to_string(x.cols()) +
                                  " values, head_dim " + std::to_string(head_dim) + ", weight of " +
                                  std::to_string(w.size()));
    float* xd = ptr(x);  // runs a step already waiting on x
    const float* wd = vector(w.data(), std::size_t(w.size()));
    const int rows = to_int(x.rows(), "rows"), heads = to_int(x.cols() / head_dim, "heads");
    if (s_->fuse && fused_qk_head_dim(head_dim) && aligned16(xd) && aligned16(wd)) {
      PendingHeads p;
      p.data = xd;
      p.rows = rows;
      p.heads = heads;
      p.head_dim = head_dim;
      p.norm = wd;
      p.eps = eps;
      s_->pending.put(x.device_buffer(), xd, std::move(p));
      return;
    }
    cuda::rms_norm_heads(xd, rows, heads, head_dim, wd, eps, s_->stream);
  }

  void rope(Activations& x, const RotaryEmbedding& rope, int pos0) const override {
    const Step step(*this, "rope");
    s_->batch_rows = 0;  // not a decode batch
    const int D = rope.head_dim();
    if (D <= 0 || x.cols() % D != 0)
      throw std::invalid_argument("cuda backend: rope: rows of " + std::to_string(x.cols()) +
                                  " values are not whole heads of " + std::to_string(D));
    if (pos0 < 0 || x.rows() > Eigen::Index(std::numeric_limits<int>::max() - pos0))
      throw std::invalid_argument("cuda backend: rope: positions out of range");
    const std::vector<float>& f = rope.inv_freq();
    const float* fd = vector(f.data(), f.size());
    if (PendingHeads* p = x.on_device() ? s_->pending.find(x.device()) : nullptr; p && !p->inv_freq && p->head_dim == D) {
      // after the QK-norm: RoPE waits too
      p->inv_freq = fd;
      p->pos0 = pos0;
      return;
    }
    cuda::rope(ptr(x), to_int(x.rows(), "rows"), to_int(x.cols() / D, "heads"), D, fd, pos0, s_->stream);
  }

  // A decode batch: row b at positions[b]. The positions go up once per step (every
  // layer asks with the same ones).
  void rope_at(Activations& x, const RotaryEmbedding& rope, const std::vector<int>& positions) const override {
    const Step step(*this, "rope_at");
    const int D = rope.head_dim();
    if (D <= 0 || x.cols() % D != 0)
      throw std::invalid_argument("cuda backend: rope_at: rows of " + std::to_string(x.cols()) +
                                  " values are not whole heads of " + std::to_string(D));
    require_batch(x.rows(), positions.size(), "cuda backend: rope_at");
    for (int p : positions)
      if (p < 0) throw std::invalid_argument("cuda backend: rope_at: position " + std::to_string(p));
    const std::vector<float>& f = rope.inv_freq();
    const float* fd = vector(f.data(), f.size());
    s_->batch_rows = to_int(x.rows(), "rows");
    cuda::rope(ptr(x), to_int(x.rows(), "rows"), to_int(x.cols() / D, "heads"), D, fd, 0, s_->stream,
               device_positions(positions));
  }

  void add(Activations& h, const Activations& x) const override {
    const Step step(*this, "add");
    require_same_shape(h, x, "add");
    if (s_->fuse_residual && h.on_device() && x.on_device() && h.device() != x.device() && h.rows() > 0) {
      // x's norm waiting: record h += norm(x) on h, for the rms_norm of h that follows
      float* hd = ptr(h);  // h's own waiting steps first
      const auto* xd = static_cast<const float*>(x.device());
      const PendingResidual* r = s_->residual.find(xd);
      const int rows = to_int(h.rows(), "rows"), n = to_int(h.cols(), "cols");
      if (r && !r->add && r->rows == rows && r->n == n &&
          residual_rms_norm_fits(xd, r->w, hd, nullptr, nullptr, nullptr, n)) {
        PendingResidual a;
        a.add = true;
        a.data = hd;
        a.rows = rows;
        a.n = n;
        a.w = r->w;
        a.eps = r->eps;
        a.x_owner = x.device_buffer();
        a.x = xd;
        s_->residual.put(h.device_buffer(), hd, std::move(a));
        return;
      }
    }
    cuda::add(ptr(h), ptr(x), std::size_t(h.rows()) * std::size_t(h.cols()), s_->stream);
  }

  Activations upload(const Matrix& x) const override {
    const Step step(*this, "upload");
    Activations a = make(x.rows(), x.cols());
    copy_to_device(a.device(), x.data(), std::size_t(x.size()) * sizeof(float));
    return a;
  }

  Matrix download(const Activations& x) const override {
    const Step step(*this, "download");
    Matrix m(x.rows(), x.cols());
    copy_to_host(m.data(), ptr(x), std::size_t(m.size()) * sizeof(float));
    return m;
  }

  // ---- the heavy steps ----

  void linear(const Weight& W, const Activations& X, Activations& Y) const override {
    const Step step(*this, "linear");
    linear_many(X, {{&W, &Y}});
  }

  // X is rounded to bf16 once for every W that reads it.
  void linear_many(const Activations& X,
                   std::initializer_list<std::pair<const Weight*, Activations*>> jobs) const override {
    const Step step(*this, "linear_many");
    const int T = to_int(X.rows(), "rows"), in = to_int(X.cols(), "cols");
    for (const auto& j : jobs)
      if (j.first->cols != in)
        throw std::invalid_argument("cuda backend: linear: a weight [" + std::to_string(j.first->rows) + ", " +
                                    std::to_string(j.first->cols) + "] for activations [" + std::to_string(T) +
                                    ", " + std::to_string(in) + "]");
    std::vector<Activations> outs;
    outs.reserve(jobs.size());
    const std::size_t block_weights = std::size_t(
        std::count_if(jobs.begin(), jobs.end(), [&](const auto& j) { return as_blocks(*j.first); }));
    if (block_weights == jobs.size() && T <= kGemvMaxTokens && jobs.size() > 1 && jobs.size() <= std::size_t(kGemvMaxJobs)) {
      // Options::keep_quantized, a few tokens: every W's GEMV in one launch
      std::vector<GemvJob> gemv;
      const float* x = read_ptr(X);
      for (const auto& j : jobs) {
        outs.push_back(make(T, j.first->rows));  // [T, out]
        gemv.push_back(GemvJob{j.first->dtype, block_weight(*j.first), to_int(j.first->rows, "out_features"),
                               ptr(outs.back())});
      }
      gemv_blocks_many(gemv.data(), int(gemv.size()), in, x, T, s_->stream);
    } else if (block_weights > 0) {
      // Options::keep_quantized: each W on its own (the GEMV, or the GEMM on a bf16 copy)
      for (const auto& j : jobs) {
        Activations y = make(T, j.first->rows);  // [T, out]
        multiply(*j.first, read_ptr(X), T, ptr(y), [&] { return bf16_of(X); });
        outs.push_back(std::move(y));
      }
    } else {
      std::vector<const Weight*> Ws;
      std::vector<int> first_row;  // of each W in the stack
      int total = 0;
      bool aligned = true;  // every W's output starts 16 bytes in line (the kernels' float4 loads)
      for (const auto& j : jobs) {
        first_row.push_back(total);
        aligned = aligned && total % 4 == 0;
        Ws.push_back(j.first);
        if (j.first->rows > std::numeric_limits<int>::max() - total)
          throw std::invalid_argument("cuda backend: linear: too many output features");
        total += to_int(j.first->rows, "out_features");
      }
      const std::uint16_t* stack = weights(Ws);  // [total, in]
      const std::shared_ptr<void> xb = bf16_of(X);  // [T, in] bf16
      const auto* xbp = static_cast<const std::uint16_t*>(xb.get());
      if (T == 1 && jobs.size() > 1 && aligned) {
        // One token: one GEMM over the stack, y [1, total]; each output is its slice of y.
        Activations y = make(1, total);
        gemm(stack, xbp, ptr(y), total, 1, in);
        const std::shared_ptr<void>& buffer = y.device_buffer();
        for (std::size_t i = 0; i < Ws.size(); ++i)
          outs.emplace_back(std::shared_ptr<void>(buffer, static_cast<float*>(buffer.get()) + first_row[i]), 1,
                            Ws[i]->rows);
      } else {
        for (std::size_t i = 0; i < Ws.size(); ++i) {
          Activations y = make(T, Ws[i]->rows);  // [T, out]
          gemm(stack + std::size_t(first_row[i]) * std::size_t(in), xbp, ptr(y), int(Ws[i]->rows), T, in);
          outs.push_back(std::move(y));
        }
      }
    }
    std::size_t i = 0;
    for (const auto& j : jobs) *j.second = std::move(outs[i++]);  // after every product: a Y may be X
  }

  void gelu_tanh_mul(Activations& gate, const Activations& up) const override {
    const Step step(*this, "gelu_tanh_mul");
    require_same_shape(gate, up, "gelu_tanh_mul");
    const std::size_t n = std::size_t(gate.rows()) * std::size_t(gate.cols());
    std::shared_ptr<void> copy;  // its bf16 for down_proj (a GEMV reads float32)
    if (wants_bf16_copy(to_int(gate.rows(), "rows"))) copy = s_->pool->get(n * sizeof(std::uint16_t));
    cuda::gelu_tanh_mul(ptr(gate), ptr(up), n, s_->stream, static_cast<std::uint16_t*>(copy.get()));
    if (copy) keep_bf16(gate, std::move(copy));
  }

  KVCache new_cache(const Gemma3TextConfig& config, int max_cache_len, std::optional<DType> kv_dtype) const override {
    const Step step(*this, "new_cache");
    const DType dtype = kv_dtype.value_or(s_->kv_dtype);
    if (dtype != DType::BF16 && dtype != DType::F16)
      throw std::invalid_argument(std::string("cuda backend: the KV cache holds BF16 or F16 values, not ") +
                                  dtype_name(dtype));
    s_->end_capture();  // it waits for the stream
    KVCache cache(config, max_cache_len, dtype, /*host_rows=*/false);
    const int width = config.num_key_value_heads * config.head_dim;
    for (int i = 0; i < cache.num_layers(); ++i) {
      LayerKVCache& layer = cache.layer(i);
      std::shared_ptr<CacheRows> rows(new CacheRows, CacheRowsDeleter{});
      rows->device = s_->device;
      rows->type = dtype == DType::BF16 ? KvType::bf16 : KvType::f16;
      rows->capacity = layer.capacity;
      rows->width = width;
      rows->max_cache_len = max_cache_len;
      const std::size_t bytes = std::size_t(layer.capacity) * std::size_t(width) * 2;  // [capacity, width] x 2 bytes
      for (void** p : {&rows->k, &rows->v}) {
        const cudaError_t e = malloc_or_release(p, bytes, s_->pool.get());
        if (e != cudaSuccess)
          throw_allocation_failed(bytes, ("layer " + std::to_string(i) + "'s KV cache rows").c_str(), e);
        GEMMA3_CUDA_CHECK(cudaMemsetAsync(*p, 0, bytes, s_->stream));
      }
      layer.device = std::move(rows);
    }
    GEMMA3_CUDA_CHECK(cudaStreamSynchronize(s_->stream));
    return cache;
  }

  void attention(const AttentionShape& shape, const AttentionMask& mask, const Activations& q, const Activations& k,
                 const Activations& v, LayerKVCache& cache, Activations& context) const override {
    const Step step(*this, "attention");
    const CacheRows& rows = device_rows(cache);
    const int NH = shape.num_attention_heads, KV = shape.num_key_value_heads, D = shape.head_dim;
    const int T = to_int(q.rows(), "tokens"), pos0 = mask.pos0;
    if (NH <= 0 || KV <= 0 || D <= 0 || NH % KV != 0 || q.cols() != Eigen::Index(NH) * D ||
        k.cols() != Eigen::Index(KV) * D || v.cols() != Eigen::Index(KV) * D || k.rows() != T || v.rows() != T ||
        rows.width != KV * D)
      throw std::invalid_argument("cuda backend: attention: q [" + std::to_string(q.rows()) + ", " +
                                  std::to_string(q.cols()) + "], k [" + std::to_string(k.rows()) + ", " +
                                  std::to_string(k.cols()) + "], v [" + std::to_string(v.rows()) + ", " +
                                  std::to_string(v.cols()) + "] do not fit " + std::to_string(NH) + " heads, " +
                                  std::to_string(KV) + " kv heads of " + std::to_string(D) +
                                  " and cache rows of " + std::to_string(rows.width));
    if (T < 1 || pos0 < 0 || pos0 > rows.max_cache_len - T)
      throw std::length_error("cuda backend: attention: " + std::to_string(T) + " tokens at position " +
                              std::to_string(pos0) + " run past the KV cache's " + std::to_string(rows.max_cache_len) +
                              " positions");
    if (cache.capacity != rows.capacity || cache.sliding != mask.sliding)
      throw std::invalid_argument("cuda backend: attention: the cache layer does not match the layer type");

    // An image's soft tokens see the later ones of their image: each query's last key.
    std::vector<int> group, last;  // [T] each, with images
    if (mask.images) {
      group.assign(std::size_t(T), -1);
      last.assign(std::size_t(T), 0);
      for (int t = 0; t < T; ++t) {
        group[std::size_t(t)] = mask.images->group_at(pos0 + t);
        last[std::size_t(t)] = mask.last_key(pos0 + t);
      }
      if (*std::max_element(last.begin(), last.end()) > rows.max_cache_len - 1)
        throw std::length_error("cuda backend: attention: an image's soft tokens run past the KV cache");
    }

    // Nothing below throws but a CUDA error.
    // QK-norm and RoPE waiting on q and k (rms_norm_heads, rope): run here, fused, when
    // they are this layer's (the shape and position of this call); else as two kernels each.
    std::optional<PendingHeads> pq = s_->pending.take(q.device()), pk = s_->pending.take(k.device());
    const bool fused = pq && pk && pq->inv_freq && pk->inv_freq && pq->inv_freq == pk->inv_freq &&
                       pq->pos0 == pos0 && pk->pos0 == pos0 && pq->head_dim == D && pk->head_dim == D &&
                       pq->rows == T && pk->rows == T && pq->heads == NH && pk->heads == KV;
    if (!fused) {
      if (pq) run_pending(*pq);
      if (pk) run_pending(*pk);
    }
    QkNormRope qk;
    if (fused) {
      qk.q = pq->data;
      qk.k = pk->data;
      qk.q_norm = pq->norm;
      qk.q_eps = pq->eps;
      qk.k_norm = pk->norm;
      qk.k_eps = pk->eps;
      qk.inv_freq = pq->inv_freq;
    }

    Activations out = make(T, Eigen::Index(NH) * D);  // [T, NH * D]
    AttentionArgs a = layer_args(shape, mask.sliding, mask.sliding_window, rows.type);
    a.batch = 1;
    a.T = T;
    a.q = ptr(q);
    a.out = ptr(out);
    a.pos0 = pos0;
    a.max_position = pos0 + T - 1;
    a.k_cache = rows.k;
    a.v_cache = rows.v;
    a.capacity = rows.capacity;
    a.seq_stride = (long long)rows.capacity * KV * D;

    if (T == 1 && !mask.images) {  // decode: append, then read the cache alone
      if (fused) qk_norm_rope(a, qk, ptr(v), s_->stream);  // QK-norm, RoPE and the append
      else kv_append(a, ptr(k), ptr(v), s_->stream);
      decode(a, out);
    } else {  // prefill: the cached keys and this chunk's, then append
      a.k_new = ptr(k);
      a.v_new = ptr(v);
      std::shared_ptr<void> group_dev, last_dev;
      if (mask.images) {
        group_dev = s_->pool->get(std::size_t(T) * sizeof(int));
        last_dev = s_->pool->get(std::size_t(T) * sizeof(int));
        copy_to_device(group_dev.get(), group.data(), std::size_t(T) * sizeof(int));
        copy_to_device(last_dev.get(), last.data(), std::size_t(T) * sizeof(int));
        a.group = static_cast<const int*>(group_dev.get());
        a.last_key = static_cast<const int*>(last_dev.get());
        a.last_key_max = *std::max_element(last.begin(), last.end());
      } else {
        a.last_key_max = pos0 + T - 1;
      }
      if (fused) qk_norm_rope(a, qk, nullptr, s_->stream);
      if (tuned_shape(a)) {
        const std::size_t bytes = attention_prefill_workspace(a);  // the chunk's keys, staged in bf16
        const std::shared_ptr<void> workspace = s_->pool->get(bytes);
        a.workspace = workspace.get();
        a.workspace_bytes = bytes;
        attention_prefill(a, s_->stream);
      } else {
        attention_prefill_v1(a, s_->stream);
      }
      kv_append(a, ptr(k), ptr(v), s_->stream);
    }
    context = std::move(out);
  }

  // A decode batch: row b of q, k, v is sequence b's token at positions[b], against its
  // own cache. One kv_append and one decode launch serve every sequence: the kernels find
  // each sequence's rows through a table of its cache pointers (AttentionArgs::k_caches).
  // Caches one launch cannot share (element types that differ, or a sliding layer whose
  // ring wraps at a shorter length than another's) run sequence by sequence instead.
  void attention_batch(const AttentionShape& shape, bool sliding, int sliding_window,
                       const std::vector<int>& positions, const Activations& q, const Activations& k,
                       const Activations& v, const std::vector<LayerKVCache*>& caches,
                       Activations& context) const override {
    const Step step(*this, "attention_batch");
    require_batch(q.rows(), positions.size(), "cuda backend: attention_batch");
    require_batch(q.rows(), caches.size(), "cuda backend: attention_batch");
    const int NH = shape.num_attention_heads, KV = shape.num_key_value_heads, D = shape.head_dim;
    if (NH <= 0 || KV <= 0 || D <= 0 || NH % KV != 0 || q.cols() != Eigen::Index(NH) * D ||
        k.cols() != Eigen::Index(KV) * D || v.cols() != Eigen::Index(KV) * D || k.rows() != q.rows() ||
        v.rows() != q.rows())
      throw std::invalid_argument("cuda backend: attention_batch: q [" + std::to_string(q.rows()) + ", " +
                                  std::to_string(q.cols()) + "], k [" + std::to_string(k.rows()) + ", " +
                                  std::to_string(k.cols()) + "], v [" + std::to_string(v.rows()) + ", " +
                                  std::to_string(v.cols()) + "] do not fit " + std::to_string(NH) + " heads, " +
                                  std::to_string(KV) + " kv heads of " + std::to_string(D));
    const int B = to_int(q.rows(), "sequences");
    std::vector<const CacheRows*> rows(std::size_t(B), nullptr);
    int capacity = 0, max_position = 0;
    for (int b = 0; b < B; ++b) {
      const LayerKVCache* c = caches[std::size_t(b)];
      if (!c) throw std::invalid_argument("cuda backend: attention_batch: sequence " + std::to_string(b) +
                                          " has no KV cache");
      const CacheRows& r = device_rows(*c);
      const int p = positions[std::size_t(b)];
      if (r.width != KV * D || c->sliding != sliding || c->capacity != r.capacity)
        throw std::invalid_argument("cuda backend: attention_batch: sequence " + std::to_string(b) +
                                    "'s cache layer does not match the layer");
      if (p < 0 || p >= r.max_cache_len)
        throw std::length_error("cuda backend: attention_batch: sequence " + std::to_string(b) + "'s position " +
                                std::to_string(p) + " is outside its KV cache of " +
                                std::to_string(r.max_cache_len) + " positions");
      rows[std::size_t(b)] = &r;
      capacity = std::max(capacity, r.capacity);
      max_position = std::max(max_position, p);
    }
    // One launch reads every ring as one of `capacity` rows (plan.hpp shares_ring_slots).
    bool shared = true;
    for (const CacheRows* r : rows)
      shared = shared && r->type == rows[0]->type &&
               shares_ring_slots(sliding, r->capacity, r->max_cache_len, capacity);
    if (!shared) {
      attention_each(shape, sliding, sliding_window, positions, q, k, v, caches, context);
      return;
    }

    // Nothing below throws but a CUDA error.
    Activations out = make(q.rows(), q.cols());  // [B, NH * D]
    AttentionArgs a = layer_args(shape, sliding, sliding_window, rows[0]->type);
    a.batch = B;
    a.T = 1;
    a.q = ptr(q);  // QK-norm and RoPE ran before (rope_at)
    a.out = ptr(out);
    a.positions = device_positions(positions);
    a.max_position = max_position;
    void* const* table = cache_table(rows);  // [k rows of each sequence, v rows of each]
    a.k_caches = table;
    a.v_caches = table + B;
    a.capacity = capacity;
    kv_append(a, ptr(k), ptr(v), s_->stream);
    decode(a, out);
    context = std::move(out);
  }

  // A decode batch sequence by sequence: each row through attention(), gathered.
  void attention_each(const AttentionShape& shape, bool sliding, int sliding_window,
                      const std::vector<int>& positions, const Activations& q, const Activations& k,
                      const Activations& v, const std::vector<LayerKVCache*>& caches, Activations& context) const {
    const std::size_t qc = std::size_t(q.cols()), kc = std::size_t(k.cols()), vc = std::size_t(v.cols());
    float *qd = ptr(q), *kd = ptr(k), *vd = ptr(v);
    Activations out = make(q.rows(), q.cols());  // [B, NH * D]
    float* od = ptr(out);
    for (std::size_t b = 0; b < positions.size(); ++b) {
      const Activations qb(std::shared_ptr<void>(q.device_buffer(), qd + b * qc), 1, q.cols());
      const Activations kb(std::shared_ptr<void>(k.device_buffer(), kd + b * kc), 1, k.cols());
      const Activations vb(std::shared_ptr<void>(v.device_buffer(), vd + b * vc), 1, v.cols());
      const AttentionMask mask{sliding, sliding_window, positions[b], nullptr};
      Activations ob;
      attention(shape, mask, qb, kb, vb, *caches[b], ob);
      GEMMA3_CUDA_CHECK(cudaMemcpyAsync(od + b * qc, ptr(ob), qc * sizeof(float), cudaMemcpyDeviceToDevice,
                                        s_->stream));
    }
    context = std::move(out);
  }

  // A decode batch's greedy ids: one GEMM for the B rows, an argmax per row, B ids back.
  std::vector<int> lm_head_argmax_rows(const Weight& W, const Activations& h) const override {
    const Step step(*this, "lm_head_argmax_rows");
    if (h.rows() < 1 || W.cols != h.cols())
      throw std::invalid_argument("cuda backend: lm_head_argmax_rows: weight [" + std::to_string(W.rows) + ", " +
                                  std::to_string(W.cols) + "] for hidden states [" + std::to_string(h.rows()) +
                                  ", " + std::to_string(h.cols()) + "]");
    const int B = to_int(h.rows(), "rows"), vocab = to_int(W.rows, "vocab_size");
    const std::shared_ptr<void> y = s_->pool->get(std::size_t(B) * std::size_t(vocab) * sizeof(float));  // [B, vocab]
    multiply(W, read_ptr(h), B, static_cast<float*>(y.get()), [&] { return bf16_of(h); });  // h's bf16: the final norm's
    const std::shared_ptr<void> workspace = s_->pool->get(argmax_workspace_bytes(B));
    const std::shared_ptr<void> ids_dev = s_->pool->get(std::size_t(B) * sizeof(int));
    cuda::argmax_rows(static_cast<const float*>(y.get()), B, vocab, static_cast<int*>(ids_dev.get()), workspace.get(),
                      s_->stream);
    std::vector<int> ids(static_cast<std::size_t>(B));
    copy_to_host(ids.data(), ids_dev.get(), ids.size() * sizeof(int));
    return ids;
  }

  void lm_head_last(const Weight& W, const Activations& h, float* logits) const override {
    const Step step(*this, "lm_head_last");
    const std::shared_ptr<void> y = lm_head(W, h);  // [vocab] float32
    copy_to_host(logits, y.get(), std::size_t(W.rows) * sizeof(float));
  }

  int lm_head_argmax(const Weight& W, const Activations& h) const override {
    const Step step(*this, "lm_head_argmax");
    const std::shared_ptr<void> y = lm_head(W, h);  // [vocab] float32
    const std::shared_ptr<void> workspace = s_->pool->get(argmax_workspace_bytes());
    const std::shared_ptr<void> id_dev = s_->pool->get(sizeof(int));
    cuda::argmax(static_cast<const float*>(y.get()), to_int(W.rows, "vocab_size"), static_cast<int*>(id_dev.get()),
                 workspace.get(), s_->stream);
    int id = 0;
    copy_to_host(&id, id_dev.get(), sizeof(int));
    return id;
  }

  // On the host, as ReferenceBackend: the first of the largest; NaN never wins.
  int argmax(const float* x, std::size_t n) const override { return int(gemma3::kernels::argmax_scalar(x, n)); }

 // Options::profile's table (see backend.hpp), the records then dropped when `reset`.
  std::vector<StepTime> profile_report(bool reset) const {
    Profile* p = s_->profile.get();
    if (!p) throw std::invalid_argument("gemma3::cuda::profile: this backend was made without Options::profile");
    use_device();
    GEMMA3_CUDA_CHECK(cudaStreamSynchronize(s_->stream));
    std::vector<StepTime> table;
    for (const ProfileRecord& r : p->records) {
      float ms = 0.f;
      GEMMA3_CUDA_CHECK(cudaEventElapsedTime(&ms, r.start, r.stop));
      auto it = std::find_if(table.begin(), table.end(), [&](const StepTime& t) { return t.step == r.step; });
      if (it == table.end()) it = table.insert(table.end(), StepTime{r.step, 0, 0.0, 0.0});
      it->calls += 1;
      it->host_us += 1e6 * r.host_s;
      it->gpu_us += 1e3 * double(ms);
    }
    if (reset) {
      for (const ProfileRecord& r : p->records) {
        p->spare.push_back(r.start);
        p->spare.push_back(r.stop);
      }
      p->records.clear();
    }
    std::sort(table.begin(), table.end(), [](const StepTime& a, const StepTime& b) { return a.gpu_us > b.gpu_us; });
    return table;
  }

 private:
  // One call of the seam: makes the backend's device current and, with Options::profile,
  // times the outermost call on the host and between two events on the stream (which
  // also count the time the GPU waits for the call's launches).
  class Step {
   public:
    Step(const CudaBackend& b, const char* name) : s_(*b.s_), exceptions_(std::uncaught_exceptions()) {
      b.use_device();
      Profile* p = s_.profile.get();
      if (!p) return;
      if (p->depth == 0) {  // the outermost call: timed
        start_ = p->event();
        stop_ = p->event();
        GEMMA3_CUDA_CHECK(cudaEventRecord(start_, s_.stream));
        name_ = name;
        t0_ = std::chrono::steady_clock::now();
      }
      ++p->depth;  // last: a constructor that throws has changed nothing
    }
    Step(const Step&) = delete;
    Step& operator=(const Step&) = delete;
    ~Step() {
      if (std::uncaught_exceptions() > exceptions_) s_.abort_capture();  // this call threw
      Profile* p = s_.profile.get();
      if (!p) return;
      --p->depth;
      if (!name_) return;
      cudaEventRecord(stop_, s_.stream);  // no throw from a destructor: an error shows in the report
      const double host = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
      p->records.push_back(ProfileRecord{name_, start_, stop_, host});
    }

   private:
    State& s_;
    int exceptions_;
    const char* name_ = nullptr;
    cudaEvent_t start_ = nullptr, stop_ = nullptr;
    std::chrono::steady_clock::time_point t0_;
  };

  void use_device() const {
    int current = -1;
    GEMMA3_CUDA_CHECK(cudaGetDevice(&current));
    if (current != s_->device) GEMMA3_CUDA_CHECK(cudaSetDevice(s_->device));
  }

  // Activations [rows, cols] from the pool (contents undefined until a kernel writes them).
  Activations make(Eigen::Index rows, Eigen::Index cols) const {
    return Activations(s_->pool->get(std::size_t(rows) * std::size_t(cols) * sizeof(float)), rows, cols);
  }

  // a's buffer, for a kernel: a step waiting on it (rms_norm_heads, rope) is launched first.
  float* ptr(const Activations& a) const {
    float* p = const_cast<float*>(read_ptr(a));
    s_->bf16_copies.drop(a.device());  // the caller may write it
    return p;
  }
  // The same for a kernel that only reads a: a bf16 copy of a stays valid.
  const float* read_ptr(const Activations& a) const {
    if (!a.on_device())
      throw std::invalid_argument("cuda backend: given host activations; make them with this backend (upload)");
    if (std::optional<PendingHeads> p = s_->pending.take(a.device())) {
      run_pending(*p);
      s_->bf16_copies.drop(a.device());
    }
    if (s_->residual.size() > 0) run_residual(a);
    return static_cast<const float*>(a.device());
  }

  // a's values as bf16 [rows, cols] (pooled): the copy its maker wrote when it is still
  // valid, else a conversion.
  std::shared_ptr<void> bf16_of(const Activations& a) const {
    if (std::shared_ptr<void> c = kept_bf16(a)) return c;
    return bf16_copy(ptr(a), std::size_t(a.rows()) * std::size_t(a.cols()));
  }
  // The bf16 copy its maker wrote of a, or null (a step waiting on a runs first: an
  // in-place rms_norm writes its copy then).
  std::shared_ptr<void> kept_bf16(const Activations& a) const {
    read_ptr(a);
    const Bf16Copy* c = s_->bf16_copies.find(a.device());
    return c && c->n == std::size_t(a.rows()) * std::size_t(a.cols()) ? c->bf16 : nullptr;
  }
  // Remember `copy` as a's values in bf16 (just written by the kernel that wrote a).
  void keep_bf16(const Activations& a, std::shared_ptr<void> copy) const {
    s_->bf16_copies.put(a.device_buffer(), a.device(),
                        Bf16Copy{std::size_t(a.rows()) * std::size_t(a.cols()), std::move(copy)});
  }

  static bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

  // A layer's attention arguments: its shape, mask kind and cache type (the call's
  // queries, positions and cache rows are the caller's to set).
  static AttentionArgs layer_args(const AttentionShape& shape, bool sliding, int window, KvType type) {
    AttentionArgs a;
    a.num_heads = shape.num_attention_heads;
    a.num_kv_heads = shape.num_key_value_heads;
    a.head_dim = shape.head_dim;
    a.scale = shape.scale;
    a.softcap = shape.softcap ? float(*shape.softcap) : 0.f;
    a.sliding = sliding;
    a.window = window;
    a.kv_type = type;
    return a;
  }

  // The tuned kernels' shapes (head_dim 128 / 256, GQA group 1, 2, 4 or 8: every Gemma 3);
  // the v1 kernels take any other (the tiny test models' head_dims 8, 16, 32).
  static bool tuned_shape(const AttentionArgs& a) {
    const int G = a.num_heads / a.num_kv_heads;
    return (a.head_dim == 128 || a.head_dim == 256) && (G == 1 || G == 2 || G == 4 || G == 8);
  }

  // Decode attention for `a` (the keys already appended): split-K with its workspace, or v1.
  // Decode attention into out (a.out), and its bf16 copy for the o_proj GEMM after it
  // (the kernel that writes out rounds it too, so that GEMM converts nothing).
  void decode(AttentionArgs& a, const Activations& out) const {
    std::shared_ptr<void> copy;
    if (wants_bf16_copy(a.batch))
      copy = s_->pool->get(std::size_t(out.rows()) * std::size_t(out.cols()) * sizeof(std::uint16_t));
    a.out_bf16 = static_cast<std::uint16_t*>(copy.get());
    if (!tuned_shape(a)) {
      attention_decode_v1(a, s_->stream);
    } else {
      const std::size_t bytes = attention_decode_workspace(a, s_->num_sms);
      const std::shared_ptr<void> workspace = s_->pool->get(bytes);
      a.workspace = workspace.get();
      a.workspace_bytes = bytes;
      if (s_->fuse_combine)
        attention_decode_fused(a, s_->num_sms, counters(std::size_t(a.batch) * a.num_kv_heads), s_->stream);
      else
        attention_decode(a, s_->num_sms, s_->stream);
    }
    if (copy) keep_bf16(out, std::move(copy));
  }

  // Options::fuse_decode_combine's counters: n of them, zero. Every call leaves them zero,
  // so they are set once, when first asked for that many.
  unsigned* counters(std::size_t n) const {
    if (n > s_->counters_n) {
      s_->end_capture();  // no allocation inside a capture
      GEMMA3_CUDA_CHECK(cudaStreamSynchronize(s_->stream));
      if (s_->counters) GEMMA3_CUDA_CHECK(cudaFree(s_->counters));
      s_->counters = nullptr;
      s_->counters_n = 0;
      void* p = nullptr;
      GEMMA3_CUDA_CHECK(cudaMalloc(&p, n * sizeof(unsigned)));
      s_->counters = static_cast<unsigned*>(p);
      GEMMA3_CUDA_CHECK(cudaMemsetAsync(p, 0, n * sizeof(unsigned), s_->stream));
      s_->counters_n = n;
    }
    return s_->counters;
  }

  // A cache layer's device rows; refuses a cache made by another backend or on another device.
  const CacheRows& device_rows(const LayerKVCache& cache) const {
    if (!cache.device || !std::get_deleter<CacheRowsDeleter>(cache.device))
      throw std::invalid_argument(
          "cuda backend: this KV cache was made by another backend (its rows are not on a CUDA device); make the "
          "cache with the model's own new_cache()");
    const CacheRows& rows = *static_cast<const CacheRows*>(cache.device.get());
    if (rows.device != s_->device)
      throw std::invalid_argument("cuda backend: this KV cache is on CUDA device " + std::to_string(rows.device) +
                                  ", the backend on device " + std::to_string(s_->device));
    return rows;
  }

  // A decode batch's positions on the device: uploaded when they change (once per step;
  // every layer asks with the same ones).
  const int* device_positions(const std::vector<int>& positions) const {
    if (positions != s_->positions || !s_->positions_dev) {
      std::shared_ptr<void> dev = s_->pool->get(positions.size() * sizeof(int));
      upload_small(dev.get(), positions);
      s_->positions_dev = std::move(dev);
      s_->positions = positions;
    }
    return static_cast<const int*>(s_->positions_dev.get());
  }

  // Page-locked staging for at least n ints (not while a step is being captured: it
  // waits for the stream before it frees the old buffer).
  void reserve_staging(std::size_t n) const {
    if (n <= s_->staging_n) return;
    GEMMA3_CUDA_CHECK(cudaStreamSynchronize(s_->stream));
    if (s_->staging) GEMMA3_CUDA_CHECK(cudaFreeHost(s_->staging));
    s_->staging = nullptr;
    s_->staging_n = 0;
    void* p = nullptr;
    GEMMA3_CUDA_CHECK(cudaMallocHost(&p, n * sizeof(int)));
    s_->staging = static_cast<int*>(p);
    s_->staging_n = n;
  }

  // values (ints) to dst on the device. While a step is captured: through the next
  // slice of the staging buffer, a copy node of the graph (the slice is read when the
  // graph runs); without room there, or without a capture, a copy finished on return.
  void upload_small(void* dst, const std::vector<int>& values) const {
    if (values.empty()) return;
    if (s_->capturing && s_->staging_used + values.size() <= s_->staging_n) {
      int* slice = s_->staging + s_->staging_used;
      s_->staging_used += values.size();
      std::memcpy(slice, values.data(), values.size() * sizeof(int));
      GEMMA3_CUDA_CHECK(
          cudaMemcpyAsync(dst, slice, values.size() * sizeof(int), cudaMemcpyHostToDevice, s_->stream));
      return;
    }
    copy_to_device(dst, values.data(), values.size() * sizeof(int));
  }

  // The device table void* [2 B] of these sequences' k rows then v rows, uploaded the
  // first time this set of rows is asked for. The tables are few (one per layer and
  // batch); past kMaxTables they are all dropped and made again as asked.
  void* const* cache_table(const std::vector<const CacheRows*>& rows) const {
    constexpr std::size_t kMaxTables = 1024;
    std::vector<void*> key;
    key.reserve(2 * rows.size());
    for (const CacheRows* r : rows) key.push_back(r->k);
    for (const CacheRows* r : rows) key.push_back(r->v);
    auto it = s_->cache_tables.find(key);
    if (it == s_->cache_tables.end()) {
      if (s_->cache_tables.size() >= kMaxTables) s_->cache_tables.clear();  // the stream orders any reader first
      std::shared_ptr<void> dev = s_->pool->get(key.size() * sizeof(void*));
      copy_to_device(dev.get(), key.data(), key.size() * sizeof(void*));
      it = s_->cache_tables.emplace(std::move(key), std::move(dev)).first;
    }
    return static_cast<void* const*>(it->second.get());
  }

  // A waiting step as the calls asked for it: rms_norm_heads, then rope.
  void run_pending(const PendingHeads& p) const {
    cuda::rms_norm_heads(p.data, p.rows, p.heads, p.head_dim, p.norm, p.eps, s_->stream);
    if (p.inv_freq) cuda::rope(p.data, p.rows, p.heads, p.head_dim, p.inv_freq, p.pos0, s_->stream);
  }

  // ---- Options::fuse_residual_norm (see the top) ----

  // rms_norm(x, w, eps, out) on the residual path; false when it is not one (the caller
  // launches the plain kernel). x holding a waiting add (h += norm(x')): the add and this
  // norm as one kernel. Else an in-place norm waits, for the add that usually reads it.
  bool residual_norm(const Activations& x, const float* wd, float eps, Activations& out) const {
    if (!x.on_device()) return false;
    const int rows = to_int(x.rows(), "rows"), n = to_int(x.cols(), "cols");
    const std::size_t count = std::size_t(rows) * std::size_t(n);
    auto* hd = static_cast<float*>(x.device());
    if (const PendingResidual* r = s_->residual.find(hd); r && r->add) {
      std::shared_ptr<void> copy;
      if (wants_bf16_copy(rows)) copy = s_->pool->get(count * sizeof(std::uint16_t));
      auto* copy16 = static_cast<std::uint16_t*>(copy.get());
      Activations y = &out == &x ? Activations() : make(rows, n);
      float* od = &out == &x ? hd : static_cast<float*>(y.device());
      if (!residual_rms_norm_fits(r->x, r->w, hd, wd, od, copy16, n)) return false;  // ptr(x) runs the add alone
      const PendingResidual a = *s_->residual.take(hd);  // x' keeps its own note: its values did not change
      residual_rms_norm(a.x, a.w, a.eps, hd, rows, n, s_->stream, wd, eps, od, copy16);
      s_->bf16_copies.drop(hd);
      if (&out != &x) out = std::move(y);
      if (copy) keep_bf16(out, std::move(copy));
      return true;
    }
    if (&out != &x || n % 4 != 0 || !aligned16(wd)) return false;
    float* xd = ptr(x);  // what waits on x runs first
    if (!aligned16(xd)) return false;
    PendingResidual r;
    r.data = xd;
    r.rows = rows;
    r.n = n;
    r.w = wd;
    r.eps = eps;
    r.bf16 = wants_bf16_copy(rows);
    s_->residual.put(x.device_buffer(), xd, std::move(r));
    return true;
  }

  // Before a's buffer is used: every add that reads a (with a's values as they are), then
  // a's own waiting step.
  void run_residual(const Activations& a) const {
    const void* p = a.device();
    while (std::optional<PendingResidual> r =
               s_->residual.take_if([p](const PendingResidual& n) { return n.add && n.x == p; }))
      residual_rms_norm(r->x, r->w, r->eps, r->data, r->rows, r->n, s_->stream);
    std::optional<PendingResidual> r = s_->residual.take(p);
    if (!r) return;
    s_->bf16_copies.drop(p);
    if (r->add) {
      residual_rms_norm(r->x, r->w, r->eps, r->data, r->rows, r->n, s_->stream);
      return;
    }
    std::shared_ptr<void> copy;
    if (r->bf16) copy = s_->pool->get(std::size_t(r->rows) * std::size_t(r->n) * sizeof(std::uint16_t));
    cuda::rms_norm(r->data, r->w, r->eps, r->data, r->rows, r->n, s_->stream, static_cast<std::uint16_t*>(copy.get()));
    if (copy) keep_bf16(a, std::move(copy));
  }

  static void require_same_shape(const Activations& a, const Activations& b, const char* what) {
    if (a.rows() != b.rows() || a.cols() != b.cols())
      throw std::invalid_argument(std::string("cuda backend: ") + what + ": shapes [" + std::to_string(a.rows()) +
                                  ", " + std::to_string(a.cols()) + "] and [" + std::to_string(b.rows()) + ", " +
                                  std::to_string(b.cols()) + "] differ");
  }

  // Host -> device, finished when it returns (the host buffer may go at once).
  void copy_to_device(void* dst, const void* src, std::size_t bytes) const {
    if (bytes == 0) return;
    s_->end_capture();
    GEMMA3_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s_->stream));
    GEMMA3_CUDA_CHECK(cudaStreamSynchronize(s_->stream));
  }
  // Device -> host after everything queued before it.
  void copy_to_host(void* dst, const void* src, std::size_t bytes) const {
    if (bytes == 0) return;
    s_->end_capture();
    GEMMA3_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s_->stream));
    GEMMA3_CUDA_CHECK(cudaStreamSynchronize(s_->stream));
  }

  // x [n] float32 (device) as bf16 in a pooled buffer.
  std::shared_ptr<void> bf16_copy(const float* x, std::size_t n) const {
    std::shared_ptr<void> b = s_->pool->get(n * sizeof(std::uint16_t));
    to_bf16(x, static_cast<std::uint16_t*>(b.get()), n, s_->stream);
    return b;
  }

  // Y [n, m] (row-major) = X [n, k] . W^T, W [m, k] bf16, X bf16, Y float32 (see the top);
  // Y's rows ldy >= m floats apart (default m).
  void gemm(const std::uint16_t* W, const std::uint16_t* X, float* Y, int m, int n, int k, int ldy = 0) const {
    const float one = 1.0f, zero = 0.0f;
    GEMMA3_CUDA_CHECK(cublasGemmEx(s_->cublas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, W, CUDA_R_16BF, k, X,
                                   CUDA_R_16BF, k, &zero, Y, CUDA_R_32F, ldy > 0 ? ldy : m, CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT));
  }

  // ---- Options::keep_quantized ----

  // W stays in its GGUF blocks on the device.
  bool as_blocks(const Weight& W) const { return s_->keep_quantized && is_block_type(W.dtype); }

  // rms_norm and gelu_tanh_mul write a bf16 copy of `rows` rows for the GEMM after them,
  // except where the next product is likely the GEMV, which reads float32 (a GEMM that
  // still wants one converts: bf16_of).
  bool wants_bf16_copy(int rows) const { return !(s_->keep_quantized && rows <= kGemvMaxTokens); }

  // y [T, W.rows] = x [T, W.cols] . W^T for one weight: linear_blocks when W is kept in
  // blocks, else one GEMM on W's bf16 rows (x_bf16(): x's bf16 rows, asked for only then).
  template <class XBf16>
  void multiply(const Weight& W, const float* x, int T, float* y, XBf16&& x_bf16) const {
    if (as_blocks(W)) {
      linear_blocks(W, x, T, y, x_bf16);
      return;
    }
    const std::shared_ptr<void> xb = x_bf16();
    gemm(weight(W), static_cast<const std::uint16_t*>(xb.get()), y, to_int(W.rows, "out_features"), T,
         to_int(W.cols, "in_features"));
  }

  // y [T, W.rows] = x [T, W.cols] . W^T, W kept in blocks: the GEMV for up to
  // kGemvMaxTokens rows; more multiply a bf16 copy of W made kDequantizeChunkBytes
  // at a time (x_bf16(): X's bf16 rows) with cuBLAS, each chunk's columns of y in place.
  template <class XBf16>
  void linear_blocks(const Weight& W, const float* x, int T, float* y, XBf16&& x_bf16) const {
    const int rows = to_int(W.rows, "out_features"), cols = to_int(W.cols, "in_features");
    const void* blocks = block_weight(W);
    if (T <= kGemvMaxTokens) {
      gemv_blocks(W.dtype, blocks, rows, cols, x, T, y, s_->stream);
      return;
    }
    const std::shared_ptr<void> xb = x_bf16();  // [T, cols] bf16
    const std::size_t row_bytes = std::size_t(cols) * sizeof(std::uint16_t);
    const int chunk =
        int(std::max<std::size_t>(1, std::min<std::size_t>(std::size_t(rows), kDequantizeChunkBytes / row_bytes)));
    const std::shared_ptr<void> scratch = s_->pool->get(std::size_t(chunk) * row_bytes);
    auto* w16 = static_cast<std::uint16_t*>(scratch.get());
    for (int r0 = 0; r0 < rows; r0 += chunk) {  // the stream orders each chunk's reuse of the scratch
      const int n = std::min(chunk, rows - r0);
      dequantize_bf16(W.dtype, blocks, r0, n, cols, w16, s_->stream);
      gemm(w16, static_cast<const std::uint16_t*>(xb.get()), y + r0, n, T, cols, rows);
    }
  }

  // W's blocks on the device as the file stores them, uploaded on first use.
  const void* block_weight(const Weight& W) const {
    if (!W.data || W.rows <= 0 || W.cols <= 0 || W.cols % dtype_block_size(W.dtype) != 0)
      throw std::invalid_argument(std::string("cuda backend: a ") + dtype_name(W.dtype) + " weight [" +
                                  std::to_string(W.rows) + ", " + std::to_string(W.cols) + "] that is empty or not "
                                  "whole blocks");
    const WeightKey key(W.data, W.rows, W.cols, int(W.dtype));
    std::lock_guard<std::mutex> lock(s_->store_mutex);
    DeviceBlocks& d = s_->blocks[key];
    const WeightSample now = sample_of(W);
    if (d.data && same_sample(now, d.sample)) return d.data.get();
    s_->end_capture();  // the upload waits for the stream
    const std::size_t bytes = W.row_bytes() * std::size_t(W.rows);
    d.data.reset();
    d.data = device_alloc(bytes, s_->device, "weights", s_->pool.get());
    GEMMA3_CUDA_CHECK(cudaMemcpyAsync(d.data.get(), W.data, bytes, cudaMemcpyHostToDevice, s_->stream));
    GEMMA3_CUDA_CHECK(cudaStreamSynchronize(s_->stream));
    d.sample = now;
    return d.data.get();
  }

  // logits [W.rows] (device, pooled) = W . h's last row.
  std::shared_ptr<void> lm_head(const Weight& W, const Activations& h) const {
    if (h.rows() < 1 || W.cols != h.cols())
      throw std::invalid_argument("cuda backend: lm_head: weight [" + std::to_string(W.rows) + ", " +
                                  std::to_string(W.cols) + "] for hidden states [" + std::to_string(h.rows()) + ", " +
                                  std::to_string(h.cols()) + "]");
    const int H = to_int(h.cols(), "hidden_size"), vocab = to_int(W.rows, "vocab_size");
    const std::size_t last_row = std::size_t(h.rows() - 1) * std::size_t(H);
    if (as_blocks(W)) {  // the GEMV on the last row, float32
      std::shared_ptr<void> y = s_->pool->get(std::size_t(vocab) * sizeof(float));
      gemv_blocks(W.dtype, block_weight(W), vocab, H, read_ptr(h) + last_row, 1, static_cast<float*>(y.get()),
                  s_->stream);
      return y;
    }
    std::shared_ptr<void> hb = kept_bf16(h);  // [rows, H] bf16 from the final norm
    const std::uint16_t* last = nullptr;      // [H]
    if (hb) {
      last = static_cast<const std::uint16_t*>(hb.get()) + last_row;
    } else {
      hb = bf16_copy(ptr(h) + last_row, std::size_t(H));
      last = static_cast<const std::uint16_t*>(hb.get());
    }
    std::shared_ptr<void> y = s_->pool->get(std::size_t(vocab) * sizeof(float));
    gemm(weight(W), last, static_cast<float*>(y.get()), vocab, 1, H);
    return y;
  }

  // W's bf16 rows on the device, uploaded on first use.
  const std::uint16_t* weight(const Weight& W) const { return weights({&W}); }

  // The bf16 rows of Ws (all of one width) stacked in one device buffer [sum of rows,
  // cols], uploaded on first use: W_i starts sum_{j<i} rows_j rows in, so linear_many
  // reads a stack with one GEMM at decode.
  const std::uint16_t* weights(const std::vector<const Weight*>& Ws) const {
    std::vector<WeightKey> key;
    for (const Weight* W : Ws) {
      if (!W->data || W->rows <= 0 || W->cols <= 0 || W->cols != Ws[0]->cols)
        throw std::invalid_argument("cuda backend: an empty weight [" + std::to_string(W->rows) + ", " +
                                    std::to_string(W->cols) + "], or a stack of different widths");
      key.emplace_back(W->data, W->rows, W->cols, int(W->dtype));
    }
    std::lock_guard<std::mutex> lock(s_->store_mutex);
    DeviceWeight& d = s_->weights[key];
    bool same = d.data && d.samples.size() == Ws.size();
    for (std::size_t i = 0; same && i < Ws.size(); ++i) {
      same = same_sample(sample_of(*Ws[i]), d.samples[i]);
    }
    if (same) return static_cast<const std::uint16_t*>(d.data.get());
    // First use (or another weight now at this address): convert and copy.
    std::vector<std::uint16_t> rows;  // [sum of rows, cols]
    d.samples.clear();
    for (const Weight* W : Ws) {
      const std::vector<std::uint16_t> one = weight_to_bf16(*W);
      rows.insert(rows.end(), one.begin(), one.end());
      d.samples.push_back(sample_of(*W));
    }
    s_->end_capture();  // the upload waits for the stream
    d.data.reset();
    d.data = device_alloc(rows.size() * sizeof(std::uint16_t), s_->device, "weights", s_->pool.get());
    GEMMA3_CUDA_CHECK(cudaMemcpyAsync(d.data.get(), rows.data(), rows.size() * sizeof(std::uint16_t),
                                      cudaMemcpyHostToDevice, s_->stream));
    GEMMA3_CUDA_CHECK(cudaStreamSynchronize(s_->stream));
    return static_cast<const std::uint16_t*>(d.data.get());
  }

  // x [n] (host, float32) on the device; uploaded again if its values changed.
  const float* vector(const float* x, std::size_t n) const {
    if (n == 0) throw std::invalid_argument("cuda backend: an empty weight vector");
    std::lock_guard<std::mutex> lock(s_->store_mutex);
    DeviceVector& d = s_->vectors[VectorKey{x, n}];
    if (d.data && std::memcmp(d.host.data(), x, n * sizeof(float)) == 0) return static_cast<const float*>(d.data.get());
    s_->end_capture();  // the upload waits for the stream
    if (!d.data) d.data = device_alloc(n * sizeof(float), s_->device, "norm weights", s_->pool.get());
    d.host.assign(x, x + n);
    GEMMA3_CUDA_CHECK(
        cudaMemcpyAsync(d.data.get(), d.host.data(), n * sizeof(float), cudaMemcpyHostToDevice, s_->stream));
    GEMMA3_CUDA_CHECK(cudaStreamSynchronize(s_->stream));
    return static_cast<const float*>(d.data.get());
  }

  std::shared_ptr<State> s_;
};

}  // namespace

std::vector<StepTime> profile(const Backend& backend, bool reset) {
  const auto* b = dynamic_cast<const CudaBackend*>(&backend);
  if (!b) throw std::invalid_argument("gemma3::cuda::profile: not a CUDA backend (" + backend.name() + ")");
  return b->profile_report(reset);
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear it: no driver or no device is an answer, not an error
    return 0;
  }
  return n;
}

std::string device_description(int device) {
  cudaDeviceProp p{};
  const cudaError_t e = cudaGetDeviceProperties(&p, device);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return "no CUDA device " + std::to_string(device) + ": " + cudaGetErrorString(e);
  }
  return std::string(p.name) + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " +
         std::to_string(p.multiProcessorCount) + " SMs)";
}

std::shared_ptr<const Backend> make_backend(const Options& options) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw std::runtime_error(std::string("gemma3::cuda::make_backend: no usable CUDA device: ") +
                             cudaGetErrorString(e));
  }
  if (options.device < 0 || options.device >= n)
    throw std::runtime_error("gemma3::cuda::make_backend: CUDA device " + std::to_string(options.device) +
                             " does not exist (" + std::to_string(n) + " visible)");
  return std::make_shared<const CudaBackend>(options);
}

}  // namespace cuda
}  // namespace gemma3
