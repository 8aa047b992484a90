// cuda/emu/include/gemma3_emu/cuda.hpp -- the CUDA emulator: the part of the CUDA runtime,
// the device language and cuBLAS that gemma3::cuda uses, run on the CPU, so that the
// kernels' index arithmetic, masks, barriers, warp exchanges and tensor-core fragments,
// and the backend's streams, graphs and staging run in `make test` on machines without a
// GPU (cuda/emu/CMakeLists.txt builds cuda/src and cuda/tests against it).
//
// The model of execution:
//   - A launch runs its blocks one after another (in the order GEMMA3_EMU_SCHEDULE
//     says: src/emu.cpp). Every thread of a block is a fiber (its own stack) on one CPU
//     thread; a fiber runs until it reaches __syncthreads or a warp-wide instruction
//     (__shfl_*_sync, ldmatrix, mma), then the next fiber runs. A barrier opens when
//     every thread still running has reached it, as on the device.
//   - __shared__ memory is one copy per kernel (blocks never overlap in time). Each static
//     __shared__ array, and the dynamic part (extern __shared__), ends at an unmapped
//     page, as device memory does (static_shared below).
//   - Streams are queues: work runs when the host waits for it (a stream or device
//     synchronize, a copy to pageable memory, an event wait), in stream order, so a host
//     read that does not wait sees stale data, as it would on a GPU. Streams run in the
//     order they were made; nothing runs concurrently.
//   - Stream capture records the calls into a graph; launching the graph replays them.
//     A graph update fails unless the new graph has the same nodes (kinds and kernels).
//   - Device memory is host memory. Each cudaMalloc block is filled with NaN bytes (0xFF),
//     ends (rounded up to 16 bytes) at an unmapped page and has another before it, so a
//     read past its end faults; copies and cuBLAS calls must stay inside one allocation.
//     The device holds 16 GiB (gemma3_emu::set_device_memory changes it): a cudaMalloc
//     past that fails with cudaErrorMemoryAllocation, which cudaGetLastError then
//     returns, as on a GPU.
//   - Built with AddressSanitizer (the gemma3_cuda_emu_asan_* programs), every byte around
//     device memory and shared memory that the kernel was not given is poisoned, so a
//     read or write just before or just past it is reported, and the fibers' stacks are
//     announced at each switch, so an overrun of a thread's own arrays is reported too.
//   - Warp-wide instructions need all 32 lanes with a full mask; a lane that exits while
//     its warp waits, lanes that reach different warp instructions, or threads waiting at
//     different barriers stop the kernel with a message (cudaErrorLaunchFailure).
//   - ldmatrix and mma.m16n8k16 give each lane the registers the PTX ISA's fragment
//     tables assign it (PTX ISA, "Warp-level matrix fragment for mma.m16n8k16" and
//     "ldmatrix"); products are accumulated in float32 in k order.
//   - A cp.async copy lands in shared memory only when its thread waits for its group,
//     so a read that does not wait (or, in another thread, a read with no barrier after
//     the wait) sees the old bytes; the race check also sees the copy's write at issue.
// What it does not model: timing, occupancy, register or shared-memory limits per SM,
// races between blocks or streams (blocks never overlap), the device's approximate
// intrinsics (__expf is expf), and the GPU's memory model.
#pragma once

#include <math.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#define GEMMA3_CUDA_EMULATOR 1

// ---- the device language -------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static  // code cuda/emu/CMakeLists.txt does not rewrite (none in cuda/src)
#define __constant__ static

struct uint3 { unsigned x, y, z; };
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }

namespace gemma3_emu {
uint3 thread_idx();
uint3 block_idx();
dim3 block_dim();
dim3 grid_dim();
void syncthreads();
unsigned char* dynamic_shared();
// A static __shared__ declaration in a kernel source, `__shared__ [__align__(A)] T name[N];`,
// is rewritten by cuda/emu/CMakeLists.txt into
//   static auto& name = ::gemma3_emu::static_shared<T[N], A (or 0)>();
// memory of its own, made at the first call, whose end meets an unmapped page (and, in the
// AddressSanitizer build, whose every byte outside is poisoned), so an access past the
// array faults, as one past the dynamic part does. One copy per declaration (and template
// instance), as a static has.
void* static_shared_bytes(std::size_t bytes, std::size_t align);
template <class T, std::size_t Align>
T& static_shared() {
  constexpr std::size_t align = Align > alignof(T) ? Align : alignof(T);
  return *static_cast<T*>(static_shared_bytes(sizeof(T), align));
}
[[noreturn]] void fail(const char* what);
// A warp-wide exchange: each lane puts `bytes` (<= 32) bytes in, then reads any lane's
// (slot(l) = lane l's bytes) until it leaves. All 32 lanes must take part.
struct WarpSlots {
  const unsigned char* base;
  template <class T> T get(int lane) const {
    T v;
    std::memcpy(&v, base + 32 * lane, sizeof(T));
    return v;
  }
};
WarpSlots warp_enter(const char* op, unsigned mask, const void* mine, std::size_t bytes);
void warp_leave();
template <class T, class Read>
inline auto warp_exchange(const char* op, unsigned mask, const T& mine, Read read) {
  const WarpSlots slots = warp_enter(op, mask, &mine, sizeof(T));
  auto result = read(slots);
  warp_leave();
  return result;
}
int lane_id();
}  // namespace gemma3_emu

#define threadIdx (::gemma3_emu::thread_idx())
#define blockIdx (::gemma3_emu::block_idx())
#define blockDim (::gemma3_emu::block_dim())
#define gridDim (::gemma3_emu::grid_dim())
constexpr int warpSize = 32;

inline void __syncthreads() { ::gemma3_emu::syncthreads(); }
inline void __syncwarp(unsigned = 0xffffffffu) {}
inline void __threadfence() {}  // blocks never overlap in time: nothing to order
inline void __threadfence_block() {}
template <class T> inline T __ldg(const T* p) { return *p; }
template <class T> inline T __ldcg(const T* p) { return *p; }
inline std::size_t __cvta_generic_to_shared(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  const int lane = ::gemma3_emu::lane_id(), src = lane ^ lane_mask;
  return ::gemma3_emu::warp_exchange("__shfl_xor_sync", mask, v, [&](const ::gemma3_emu::WarpSlots& s) {
    return src / width == lane / width ? s.get<T>(src) : v;
  });
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = ::gemma3_emu::lane_id(), src = lane + int(delta);
  return ::gemma3_emu::warp_exchange("__shfl_down_sync", mask, v, [&](const ::gemma3_emu::WarpSlots& s) {
    return src / width == lane / width && src < 32 ? s.get<T>(src) : v;
  });
}
template <class T>
inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
  const int lane = ::gemma3_emu::lane_id();
  return ::gemma3_emu::warp_exchange("__shfl_sync", mask, v, [&](const ::gemma3_emu::WarpSlots& s) {
    return s.get<T>((lane / width) * width + (src_lane % width));
  });
}

// Atomics: relaxed atomic read-modify-writes (one fiber runs at a time, but the race
// check must see them as atomic, and as ordering nothing, like CUDA's).
namespace gemma3_emu {
template <class T, class F>
inline T atomic_rmw(T* p, F f) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "4- or 8-byte atomics");
  using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  Bits* q = reinterpret_cast<Bits*>(p);
  Bits old_bits = __atomic_load_n(q, __ATOMIC_RELAXED);
  for (;;) {
    T old;
    std::memcpy(&old, &old_bits, sizeof(T));
    const T next = f(old);
    Bits next_bits;
    std::memcpy(&next_bits, &next, sizeof(T));
    if (__atomic_compare_exchange_n(q, &old_bits, next_bits, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return old;
  }
}
}  // namespace gemma3_emu
template <class T> inline T atomicAdd(T* p, T v) { return ::gemma3_emu::atomic_rmw(p, [v](T o) { return T(o + v); }); }
template <class T> inline T atomicMax(T* p, T v) { return ::gemma3_emu::atomic_rmw(p, [v](T o) { return v > o ? v : o; }); }
template <class T> inline T atomicMin(T* p, T v) { return ::gemma3_emu::atomic_rmw(p, [v](T o) { return v < o ? v : o; }); }
template <class T> inline T atomicExch(T* p, T v) { return ::gemma3_emu::atomic_rmw(p, [v](T) { return v; }); }

// Integer min/max as CUDA's device headers give them.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }

// Float bits and the correctly rounded operations (the host's IEEE float32 rounds to
// nearest even, as the _rn intrinsics do; -ffp-contract=off keeps them unfused).
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __frcp_rn(float a) { return 1.f / a; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline float __expf(float a) { return expf(a); }
inline float __logf(float a) { return logf(a); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float a) { return 1.f / sqrtf(a); }
// sin(pi x) and cos(pi x); fmod reduces x exactly, as the device's sincospi does.
inline void sincospi(double x, double* s, double* c) {
  const double r = fmod(x, 2.0);
  const double a = 3.14159265358979323846 * r;
  *s = sin(a);
  *c = cos(a);
}
inline float __saturatef(float a) { return a < 0.f ? 0.f : (a > 1.f ? 1.f : a); }

// ---- 16-bit floats (cuda_bf16.h, cuda_fp16.h) -----------------------------------------
namespace gemma3_emu {
inline std::uint16_t float_to_bf16_bits(float f) {  // round to nearest even; NaN stays NaN
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return std::uint16_t(u >> 16);
}
inline float bf16_bits_to_float(std::uint16_t b) {
  const std::uint32_t u = std::uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
std::uint16_t float_to_half_bits(float f);  // round to nearest even
float half_bits_to_float(std::uint16_t h);
}  // namespace gemma3_emu

struct __nv_bfloat16 {
  unsigned short __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : __x(::gemma3_emu::float_to_bf16_bits(f)) {}
  operator float() const { return ::gemma3_emu::bf16_bits_to_float(__x); }
};
struct __nv_bfloat162 { __nv_bfloat16 x, y; };
struct __half {
  unsigned short __x;
  __half() = default;
  __half(float f) : __x(::gemma3_emu::float_to_half_bits(f)) {}
  operator float() const { return ::gemma3_emu::half_bits_to_float(__x); }
};
struct __half2 { __half x, y; };
using nv_bfloat16 = __nv_bfloat16;
using nv_bfloat162 = __nv_bfloat162;
using half = __half;
using half2 = __half2;

inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 b) { return float(b); }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return {__nv_bfloat16(a), __nv_bfloat16(b)}; }
inline __nv_bfloat162 __float22bfloat162_rn(float2 f) { return __floats2bfloat162_rn(f.x, f.y); }
inline float2 __bfloat1622float2(__nv_bfloat162 b) { return {float(b.x), float(b.y)}; }
inline float __low2float(__nv_bfloat162 b) { return float(b.x); }
inline float __high2float(__nv_bfloat162 b) { return float(b.y); }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { __nv_bfloat16 b; b.__x = u; return b; }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.__x; }
inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline float __half2float(__half h) { return float(h); }
inline __half2 __floats2half2_rn(float a, float b) { return {__half(a), __half(b)}; }
inline float __low2float(__half2 h) { return float(h.x); }
inline float __high2float(__half2 h) { return float(h.y); }
inline __half __ushort_as_half(unsigned short u) { __half h; h.__x = u; return h; }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }

// ---- the tensor-core instructions the prefill kernel uses ---------------------------------
namespace gemma3_emu {
// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: lanes 8i .. 8i + 7 give the row
// addresses (16-byte aligned) of 8x8 matrix i; register i of lane l receives matrix i's
// elements (l / 4, 2 (l % 4)) and (l / 4, 2 (l % 4) + 1), or with .trans the elements
// (2 (l % 4), l / 4) and (2 (l % 4) + 1, l / 4); the lower index in the low half.
void ldmatrix_x4(std::uint32_t r[4], const void* row, bool trans);
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: c (16x8) += a (16x16) b (16x8).
void mma_m16n8k16_bf16(float c[4], const std::uint32_t a[4], std::uint32_t b0, std::uint32_t b1);
// cp.async.cg.shared.global [dst], [src], 16: the thread's 16 bytes from device memory
// (read as it issues) land in the launch's dynamic shared memory only when the thread
// waits for their group, so a read before cp.async.wait_group (and, by the other
// threads, before a barrier after it) sees what dst held before. Both addresses 16-byte
// aligned. cp.async.commit_group closes the thread's open group; cp.async.wait_group n
// lands every committed group but the newest n. A thread may not exit with copies in
// flight.
void cp_async_16(void* dst, const void* src);
void cp_async_commit();
void cp_async_wait(int n);
}  // namespace gemma3_emu

// ---- the runtime -------------------------------------------------------------------------
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDeviceFunction = 98,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
  cudaErrorLaunchFailure = 719,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureWrongThread = 908,
  cudaErrorGraphExecUpdateFailure = 910,
  cudaErrorLaunchOutOfResources = 701,
};
using cudaError = cudaError_t;
enum cudaMemcpyKind { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2,
                      cudaMemcpyDeviceToDevice = 3, cudaMemcpyDefault = 4 };
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1,
                             cudaStreamCaptureModeRelaxed = 2 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDeviceAttr { cudaDevAttrMaxThreadsPerBlock = 1, cudaDevAttrMultiProcessorCount = 16,
                      cudaDevAttrL2CacheSize = 38, cudaDevAttrMaxSharedMemoryPerBlockOptin = 97 };
constexpr unsigned cudaStreamDefault = 0, cudaStreamNonBlocking = 1;
constexpr unsigned cudaHostAllocDefault = 0;

struct cudaDeviceProp {
  char name[256];
  int major, minor, multiProcessorCount;
  std::size_t totalGlobalMem, sharedMemPerBlock, sharedMemPerBlockOptin, l2CacheSize;
  int maxThreadsPerBlock, warpSize, memoryBusWidth, memoryClockRate, clockRate;
};
struct CUstream_st;
struct CUevent_st;
struct CUgraph_st;
struct CUgraphExec_st;
using cudaStream_t = CUstream_st*;
using cudaEvent_t = CUevent_st*;
using cudaGraph_t = CUgraph_st*;
using cudaGraphExec_t = CUgraphExec_st*;
struct cudaGraphExecUpdateResultInfo { int result; void* errorNode; void* errorFromNode; };

const char* cudaGetErrorString(cudaError_t e);
const char* cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaGetDevice(int* d);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d);
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int d);
cudaError_t cudaDeviceSynchronize();
// Forgets every queued call and a sticky error (as after a fault on a GPU, the only way on).
cudaError_t cudaDeviceReset();
cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total_bytes);
cudaError_t cudaMalloc(void** p, std::size_t bytes);
template <class T> inline cudaError_t cudaMalloc(T** p, std::size_t bytes) { return cudaMalloc(reinterpret_cast<void**>(p), bytes); }
cudaError_t cudaFree(void* p);
cudaError_t cudaMallocHost(void** p, std::size_t bytes);
template <class T> inline cudaError_t cudaMallocHost(T** p, std::size_t bytes) { return cudaMallocHost(reinterpret_cast<void**>(p), bytes); }
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, cudaStream_t s = nullptr);
cudaError_t cudaMemset(void* p, int value, std::size_t bytes);
cudaError_t cudaMemsetAsync(void* p, int value, std::size_t bytes, cudaStream_t s = nullptr);
cudaError_t cudaStreamCreate(cudaStream_t* s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* e, cudaGraph_t g, unsigned long long flags = 0);
cudaError_t cudaGraphExecUpdate(cudaGraphExec_t e, cudaGraph_t g, cudaGraphExecUpdateResultInfo* info);
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e);
cudaError_t cudaEventCreate(cudaEvent_t* e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t stop);
cudaError_t cudaFuncSetAttribute(const void* fn, cudaFuncAttribute a, int value);
template <class F> inline cudaError_t cudaFuncSetAttribute(F* fn, cudaFuncAttribute a, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(fn), a, value);
}

namespace gemma3_emu {
// The device's memory in bytes (16 GiB by default), for tests of what a program does when
// an allocation fails. Allocations already made stay.
void set_device_memory(std::size_t bytes);
}  // namespace gemma3_emu

// ---- kernel launches ---------------------------------------------------------------------
// The emulator's build rewrites `kernel<<<grid, block, smem, stream>>>(args)` into
// `kernel | launch_config(grid, block, smem, stream) | launch_args(args)`.
namespace gemma3_emu {
struct LaunchConfig {
  dim3 grid, block;
  std::size_t smem = 0;
  cudaStream_t stream = nullptr;
};
inline LaunchConfig launch_config(dim3 grid, dim3 block, std::size_t smem = 0, cudaStream_t stream = nullptr) {
  return {grid, block, smem, stream};
}
// Queues (or captures) a launch of body on the stream; `fn` names the kernel (for graph
// updates and the dynamic shared memory attribute).
void launch(const void* fn, const LaunchConfig& c, std::function<void()> body);

template <class... P>
struct BoundKernel {
  void (*fn)(P...);
  LaunchConfig config;
};
template <class... P>
inline BoundKernel<P...> operator|(void (*fn)(P...), const LaunchConfig& c) { return {fn, c}; }
template <class... A>
inline std::tuple<std::decay_t<A>...> launch_args(A&&... a) { return std::tuple<std::decay_t<A>...>(std::forward<A>(a)...); }
template <class... P, class... A>
inline void operator|(const BoundKernel<P...>& k, std::tuple<A...> args) {
  static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
  auto params = std::make_shared<std::tuple<std::decay_t<P>...>>(std::move(args));
  auto fn = k.fn;
  launch(reinterpret_cast<const void*>(fn), k.config,
         [fn, params] { std::apply([fn](const auto&... p) { fn(p...); }, *params); });
}
}  // namespace gemma3_emu
