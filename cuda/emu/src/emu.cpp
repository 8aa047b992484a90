// cuda/emu/src/emu.cpp -- the CUDA emulator's runtime: fibers for the threads of a block,
// barriers and warp exchanges, streams as queues, stream capture and graphs, device
// memory with a guard page, and cublasGemmEx. The model is described in
// include/gemma3_emu/cuda.hpp.
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "gemma3_emu/cublas.hpp"
#include "gemma3_emu/cuda.hpp"

// GEMMA3_EMU_TSAN: this file is linked into code built with -fsanitize=thread (and is
// itself built without it: its bookkeeping is not what the race check is about).
#ifdef GEMMA3_EMU_TSAN
#include <sanitizer/tsan_interface.h>
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
extern "C" void __tsan_read2(void* addr);
extern "C" void __tsan_read16(void* addr);
extern "C" void __tsan_write16(void* addr);
#endif
// GEMMA3_EMU_ASAN: linked into code built with -fsanitize=address (this file is built
// without it): the fibers' stack switches are announced to AddressSanitizer, and the
// bytes around each piece of device and shared memory are poisoned (map_guarded below).
#ifdef GEMMA3_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace gemma3_emu {
namespace {

// ---- the race check (built with -fsanitize=thread) ---------------------------------------
// ThreadSanitizer sees each fiber as a thread of its own. Switches between fibers carry
// no ordering; what orders the threads of a block is what orders them on a GPU: the
// block's start (after everything the host did before the launch), __syncthreads, the
// warp instructions among the lanes of a warp, and the block's end (before anything the
// host does after waiting). So an access to shared or global memory that another thread
// of the block makes with no barrier between is reported as a data race, as CUDA's
// racecheck would. Blocks are ordered one after another, so races between blocks are not
// checked.
#ifdef GEMMA3_EMU_TSAN
void hb_release(const void* sync) { __tsan_release(const_cast<void*>(sync)); }
void hb_acquire(const void* sync) { __tsan_acquire(const_cast<void*>(sync)); }
// A read the emulator makes for the kernel (ldmatrix), shown to the race check.
void kernel_read2(const void* p) { __tsan_read2(const_cast<void*>(p)); }
// A cp.async's 16 bytes: read from global memory, written to shared memory.
void kernel_read16(const void* p) { __tsan_read16(const_cast<void*>(p)); }
void kernel_write16(void* p) { __tsan_write16(p); }
#else
void hb_release(const void*) {}
void hb_acquire(const void*) {}
void kernel_read2(const void*) {}
void kernel_read16(const void*) {}
void kernel_write16(void*) {}
#endif

// ---- fibers ------------------------------------------------------------------------------
// A fiber switch saves the callee-saved registers on the old stack and loads them from
// the new one. On x86-64 this is the few instructions below (no system call); elsewhere
// it is swapcontext.
#if defined(__x86_64__) && defined(__linux__)
#define GEMMA3_EMU_FAST_SWITCH 1
}  // namespace
}  // namespace gemma3_emu
extern "C" void gemma3_emu_switch(void** save_sp, void* load_sp);
asm(R"(
.text
.globl gemma3_emu_switch
.type gemma3_emu_switch,@function
gemma3_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size gemma3_emu_switch, .-gemma3_emu_switch
.section .note.GNU-stack,"",@progbits
.text
)");
namespace gemma3_emu {
namespace {
#endif

constexpr std::size_t kStackBytes = 256 * 1024;
constexpr std::size_t kDeviceBytes = std::size_t(16) << 30;
std::size_t g_device_bytes = kDeviceBytes;  // set_device_memory
constexpr int kMaxThreads = 1024;

enum class State { ready, at_block_barrier, at_warp_barrier, done };

struct Context {
#ifdef GEMMA3_EMU_FAST_SWITCH
  void* sp = nullptr;
#else
  ucontext_t uc;
#endif
#ifdef GEMMA3_EMU_TSAN
  void* tsan = nullptr;  // the fiber's ThreadSanitizer state
#endif
#ifdef GEMMA3_EMU_ASAN
  const void* stack_bottom = nullptr;  // the context's stack, for AddressSanitizer
  std::size_t stack_bytes = 0;
  void* fake_stack = nullptr;  // its fake stack while another context runs
#endif
};
// `last`: `from` is never resumed (a fiber that exited or failed).
void switch_context(Context* from, Context* to, bool last = false) {
#ifdef GEMMA3_EMU_TSAN
  __tsan_switch_to_fiber(to->tsan, __tsan_switch_to_fiber_no_sync);
#endif
#ifdef GEMMA3_EMU_ASAN
  __sanitizer_start_switch_fiber(last ? nullptr : &from->fake_stack, to->stack_bottom, to->stack_bytes);
#else
  (void)last;
#endif
#ifdef GEMMA3_EMU_FAST_SWITCH
  gemma3_emu_switch(&from->sp, to->sp);
#else
  swapcontext(&from->uc, &to->uc);
#endif
#ifdef GEMMA3_EMU_ASAN
  __sanitizer_finish_switch_fiber(from->fake_stack, nullptr, nullptr);
#endif
}

// A cp.async issued and not yet waited for: its 16 bytes as read when it was issued,
// and the group it belongs to (the count of commits before it).
struct PendingCopy {
  unsigned char* dst;
  unsigned char bytes[16];
  unsigned group;
};

struct Fiber {
  Context ctx;
  uint3 tid;
  int warp = 0, lane = 0;
  State state = State::ready;
  std::vector<PendingCopy> copies;  // cp.async in flight, oldest first
  unsigned commits = 0;             // cp.async.commit_group so far
};

// Threads that wait for each other (a block at __syncthreads, a warp's lanes at a warp
// instruction): the barrier opens when every live one has arrived.
struct Barrier {
  int live = 0, arrived = 0;
  unsigned gen = 0;  // times opened; sync[gen % 2]: the race check's object for the next
  char sync[2];
};

struct Warp {
  Barrier bar;
  const char* op = nullptr;
  alignas(16) unsigned char slots[32][32];
};

struct KernelError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Block {
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  Barrier bar;  // __syncthreads
  char start_sync, end_sync;
  uint3 bidx{};
  dim3 bdim, gdim;
  const std::function<void()>* body = nullptr;
  unsigned char* smem = nullptr;
  std::size_t smem_bytes = 0;
  Fiber* cur = nullptr;
  Context main;
  std::string error;
};

Block* g_block = nullptr;

char* stack_of(int i) {
  static std::vector<char*> stacks(kMaxThreads, nullptr);
  if (!stacks[std::size_t(i)]) {
    void* p = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    mprotect(p, std::size_t(sysconf(_SC_PAGESIZE)), PROT_NONE);  // a fiber that overflows its stack faults
    stacks[std::size_t(i)] = static_cast<char*>(p);
  }
  return stacks[std::size_t(i)];
}

Block& block() {
  if (!g_block || !g_block->cur) throw std::logic_error("gemma3_emu: a device function was called outside a kernel");
  return *g_block;
}

void yield(Block& b, Fiber& f, bool last = false) { switch_context(&f.ctx, &b.main, last); }

void release(Block& b, State waiting, int warp) {
  for (Fiber& f : b.fibers)
    if (f.state == waiting && (warp < 0 || f.warp == warp)) f.state = State::ready;
}

// Opens `bar` when it has arrivals and every live thread is among them: the threads
// waiting at it (state `waiting`; of warp `warp`, or all when -1) run again.
bool try_open(Block& b, Barrier& bar, State waiting, int warp) {
  if (bar.arrived == 0 || bar.arrived != bar.live) return false;
  bar.arrived = 0;
  ++bar.gen;
  release(b, waiting, warp);
  return true;
}

// The calling thread arrives at `bar` and waits until it opens.
void wait_at(Block& b, Fiber& f, Barrier& bar, State waiting, int warp) {
  const unsigned gen = bar.gen;
  hb_release(&bar.sync[gen % 2]);
  ++bar.arrived;
  if (!try_open(b, bar, waiting, warp)) {
    f.state = waiting;
    yield(b, f);
  }
  hb_acquire(&bar.sync[gen % 2]);
}

void warp_wait(Block& b, Fiber& f, Warp& w) { wait_at(b, f, w.bar, State::at_warp_barrier, f.warp); }

// Stops the kernel: the block's launcher reports `what`. The calling fiber is never
// resumed, so it holds nothing that needs freeing (the message is moved out of it).
[[noreturn]] void fail_with(std::string what) {
  if (!g_block || !g_block->cur) throw std::logic_error("gemma3_emu: " + what);
  Block& b = *g_block;
  b.error = std::move(what);
  yield(b, *b.cur, true);
  std::abort();  // never resumed
}

[[noreturn]] void fiber_entry() {
#ifdef GEMMA3_EMU_ASAN
  // the switch from the block's launcher ends here, on this fiber's stack; its stack is
  // the launcher's, where the fibers return to
  __sanitizer_finish_switch_fiber(nullptr, &g_block->main.stack_bottom, &g_block->main.stack_bytes);
#endif
  Block& b = *g_block;
  Fiber& f = *b.cur;
  hb_acquire(&b.start_sync);
  std::string thrown;  // the exception is freed before the fiber stops
  try {
    (*b.body)();
  } catch (const std::exception& e) {
    thrown = e.what();
  } catch (...) {
    thrown = "an exception";
  }
  if (!thrown.empty()) fail_with(std::move(thrown));
  if (!f.copies.empty()) fail_with("a thread exited with cp.async copies it never waited for (cp.async.wait_group)");
  f.state = State::done;
  --b.bar.live;
  Warp& w = b.warps[std::size_t(f.warp)];
  --w.bar.live;
  if (w.bar.arrived > 0) fail_with(std::string("lane exited while its warp waits at ") + w.op);
  try_open(b, b.bar, State::at_block_barrier, -1);  // the others may wait only for this one
  hb_release(&b.end_sync);
  yield(b, f, true);  // never resumed
  std::abort();
}

// A context that starts fiber_entry on the given stack when switched to.
void start_context(Context& c, char* stack) {
#ifdef GEMMA3_EMU_FAST_SWITCH
  // gemma3_emu_switch pops (from low to high): mxcsr and the x87 control word, r15, r14,
  // r13, r12, rbx, rbp, then returns to fiber_entry with rsp = 8 mod 16, as after a call.
  auto* top = reinterpret_cast<std::uint64_t*>(
      (reinterpret_cast<std::uintptr_t>(stack + kStackBytes) & ~std::uintptr_t(15)) - 16);
  top[0] = reinterpret_cast<std::uint64_t>(&fiber_entry);  // the return address
  top[1] = 0;
  std::uint64_t* sp = top - 7;
  for (int k = 1; k < 7; ++k) sp[k] = 0;  // r15 .. rbp
  const std::uint32_t mxcsr = 0x1f80u, fpcw = 0x037fu;
  std::memcpy(reinterpret_cast<char*>(sp), &mxcsr, 4);
  std::memcpy(reinterpret_cast<char*>(sp) + 4, &fpcw, 4);
  c.sp = sp;
#else
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = kStackBytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, fiber_entry, 0);
#endif
#ifdef GEMMA3_EMU_ASAN
  // The stack may hold the poisoned frames of a fiber that never returned (one that
  // failed); the new fiber starts on clean bytes.
  const std::size_t page = std::size_t(sysconf(_SC_PAGESIZE));
  c.stack_bottom = stack + page;
  c.stack_bytes = kStackBytes - page;
  __asan_unpoison_memory_region(stack + page, kStackBytes - page);
  c.fake_stack = nullptr;
#endif
}

std::string describe(const Block& b) {
  int at_block = 0, at_warp = 0;
  for (const Fiber& f : b.fibers) {
    at_block += f.state == State::at_block_barrier;
    at_warp += f.state == State::at_warp_barrier;
  }
  return std::to_string(at_block) + " threads at __syncthreads, " + std::to_string(at_warp) +
         " at a warp instruction, " + std::to_string(b.bar.live) + " not exited";
}

// The order threads and blocks run in: GEMMA3_EMU_SCHEDULE = forward (the default:
// thread 0 first, each to its next barrier or warp instruction; block (0, 0, 0) first, x
// fastest), reverse (the last thread first, the last block first), or shuffle (any
// thread that can run, at random, at every step; the blocks in a random order; seed
// GEMMA3_EMU_SEED). A kernel that reads memory another thread wrote without a barrier
// between, or that counts on one block running before another, can give other results
// under reverse or shuffle.
enum class Schedule { forward, reverse, shuffle };
Schedule schedule() {
  static const Schedule s = [] {
    const char* e = std::getenv("GEMMA3_EMU_SCHEDULE");
    if (!e || !*e || std::strcmp(e, "forward") == 0) return Schedule::forward;
    if (std::strcmp(e, "reverse") == 0) return Schedule::reverse;
    if (std::strcmp(e, "shuffle") == 0) return Schedule::shuffle;
    std::fprintf(stderr, "gemma3_emu: GEMMA3_EMU_SCHEDULE=%s is not forward, reverse or shuffle\n", e);
    std::exit(2);
  }();
  return s;
}
std::mt19937& schedule_rng() {
  static std::mt19937 rng([] {
    const char* e = std::getenv("GEMMA3_EMU_SEED");
    return e ? unsigned(std::strtoul(e, nullptr, 10)) : 1u;
  }());
  return rng;
}

// A grid's blocks in the order the schedule says.
std::vector<uint3> block_order(const dim3& grid) {
  std::vector<uint3> order;
  order.reserve(std::size_t(grid.x) * grid.y * grid.z);
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) order.push_back(uint3{x, y, z});
  if (schedule() == Schedule::reverse) std::reverse(order.begin(), order.end());
  if (schedule() == Schedule::shuffle) std::shuffle(order.begin(), order.end(), schedule_rng());
  return order;
}

void run_block(const dim3& grid, const dim3& bdim, uint3 bidx, unsigned char* smem, std::size_t smem_bytes,
               const std::function<void()>& body) {
  Block b;
  const int n = int(bdim.x * bdim.y * bdim.z);
  b.fibers.resize(std::size_t(n));
  b.warps.resize(std::size_t((n + 31) / 32));
  b.bidx = bidx;
  b.bdim = bdim;
  b.gdim = grid;
  b.body = &body;
  b.smem = smem;
  b.smem_bytes = smem_bytes;
  b.bar.live = n;
  for (int i = 0; i < n; ++i) {
    Fiber& f = b.fibers[std::size_t(i)];
    f.tid = uint3{unsigned(i) % bdim.x, (unsigned(i) / bdim.x) % bdim.y, unsigned(i) / (bdim.x * bdim.y)};
    f.warp = i / 32;
    f.lane = i % 32;
    ++b.warps[std::size_t(f.warp)].bar.live;
    start_context(f.ctx, stack_of(i));
#ifdef GEMMA3_EMU_TSAN
    static std::vector<void*> tsan_fibers(kMaxThreads, nullptr);
    if (!tsan_fibers[std::size_t(i)]) tsan_fibers[std::size_t(i)] = __tsan_create_fiber(0);
    f.ctx.tsan = tsan_fibers[std::size_t(i)];
#endif
  }
  Block* outer = g_block;
  g_block = &b;
#ifdef GEMMA3_EMU_TSAN
  b.main.tsan = __tsan_get_current_fiber();
#endif
  hb_release(&b.start_sync);
  // forward / reverse: rounds through the threads in that order, each running until it
  // waits or exits; shuffle: any ready thread, drawn at random, at every step.
  std::vector<int> ready;
  int next = 0;
  const Schedule order = schedule();
  while (b.bar.live > 0) {
    int pick = -1;
    if (order == Schedule::shuffle) {
      ready.clear();
      for (int i = 0; i < n; ++i)
        if (b.fibers[std::size_t(i)].state == State::ready) ready.push_back(i);
      if (!ready.empty())
        pick = ready[std::uniform_int_distribution<std::size_t>(0, ready.size() - 1)(schedule_rng())];
    } else {
      for (int k = 0; k < n; ++k, ++next) {
        if (next == n) next = 0;
        const int i = order == Schedule::reverse ? n - 1 - next : next;
        if (b.fibers[std::size_t(i)].state == State::ready) { pick = i; break; }
      }
    }
    if (pick < 0) {
      b.error = "deadlock: " + describe(b);
      break;
    }
    b.cur = &b.fibers[std::size_t(pick)];
    switch_context(&b.main, &b.cur->ctx);
    if (!b.error.empty()) break;
    ++next;
  }
  hb_acquire(&b.end_sync);
  g_block = outer;
  if (!b.error.empty())
    throw KernelError("block (" + std::to_string(bidx.x) + ", " + std::to_string(bidx.y) + ", " +
                      std::to_string(bidx.z) + "): " + b.error);
}

// ---- guarded memory ----------------------------------------------------------------------
// Memory a kernel addresses (a cudaMalloc block, shared memory) has a mapping of its own:
// an unmapped page, then the data pages, then another unmapped page. The `bytes`, rounded
// up to `granule`, end where the second unmapped page begins, so an access past the
// rounded end faults, and one far enough before the start meets the first page.
// All bytes are 0xFF at first (NaN as float, bf16 and f16: a value never written shows).
// Built with AddressSanitizer (GEMMA3_EMU_ASAN), the mapping's bytes outside
// [data, data + bytes) are poisoned as well, so any access outside is reported, however
// near.
struct Guarded {
  unsigned char* map = nullptr;  // nullptr: the mapping failed
  std::size_t map_bytes = 0;
  unsigned char* data = nullptr;
};
Guarded map_guarded(std::size_t bytes, std::size_t granule, int extra_flags) {
  const std::size_t page = std::size_t(sysconf(_SC_PAGESIZE));
  const std::size_t rounded = (std::max<std::size_t>(bytes, 1) + granule - 1) / granule * granule;
  const std::size_t data_pages = (rounded + page - 1) / page * page;
  Guarded g;
  g.map_bytes = data_pages + 2 * page;
  void* m = mmap(nullptr, g.map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
  if (m == MAP_FAILED) return Guarded{};
  g.map = static_cast<unsigned char*>(m);
  mprotect(g.map, page, PROT_NONE);
  mprotect(g.map + page + data_pages, page, PROT_NONE);
  g.data = g.map + page + data_pages - rounded;
  std::memset(g.data, 0xff, rounded);
#ifdef GEMMA3_EMU_ASAN
  __asan_poison_memory_region(g.map + page, std::size_t(g.data - (g.map + page)));
  __asan_poison_memory_region(g.data + bytes, rounded - bytes);
#endif
  return g;
}
void unmap_guarded(const Guarded& g) {
#ifdef GEMMA3_EMU_ASAN
  __asan_unpoison_memory_region(g.map, g.map_bytes);  // the next mapping there starts clean
#endif
  munmap(g.map, g.map_bytes);
}

// ---- memory ------------------------------------------------------------------------------

struct Allocation {
  Guarded mapping;
  std::size_t bytes;
};
std::map<std::uintptr_t, Allocation>& device_allocations() {
  static std::map<std::uintptr_t, Allocation> m;
  return m;
}
std::map<std::uintptr_t, std::size_t>& pinned_allocations() {
  static std::map<std::uintptr_t, std::size_t> m;
  return m;
}
// The allocation [begin, end) that holds p, or nullptr.
template <class M>
bool find_range(const M& m, const void* p, std::uintptr_t* begin, std::size_t* bytes) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  auto it = m.upper_bound(a);
  if (it == m.begin()) return false;
  --it;
  std::size_t n;
  if constexpr (std::is_same_v<typename M::mapped_type, Allocation>) n = it->second.bytes;
  else n = it->second;
  if (a >= it->first + std::max<std::size_t>(n, 1)) return false;
  *begin = it->first;
  *bytes = n;
  return true;
}
bool is_device(const void* p) { std::uintptr_t b; std::size_t n; return find_range(device_allocations(), p, &b, &n); }
bool is_pinned(const void* p) { std::uintptr_t b; std::size_t n; return find_range(pinned_allocations(), p, &b, &n); }
// A device range must lie inside one allocation.
bool device_range_ok(const void* p, std::size_t bytes) {
  std::uintptr_t b;
  std::size_t n;
  if (!find_range(device_allocations(), p, &b, &n)) return false;
  return reinterpret_cast<std::uintptr_t>(p) + bytes <= b + n;
}

// ---- streams, graphs, errors -------------------------------------------------------------

enum class OpKind { kernel, copy, memset, gemm, event, graph };
struct Op {
  OpKind kind;
  const void* fn;  // the kernel, for graph updates
  std::function<void()> run;
};

cudaError_t g_last = cudaSuccess;
cudaError_t g_sticky = cudaSuccess;
std::map<const void*, int>& smem_attribute() {
  static std::map<const void*, int> m;
  return m;
}

cudaError_t set_last(cudaError_t e) {
  if (e != cudaSuccess) g_last = e;
  return e;
}

}  // namespace
}  // namespace gemma3_emu

struct CUgraph_st {
  std::vector<gemma3_emu::Op> ops;
};
struct CUgraphExec_st {
  std::vector<gemma3_emu::Op> ops;
};
struct CUstream_st {
  std::deque<gemma3_emu::Op> queue;
  unsigned flags = 0;
  bool capturing = false, invalidated = false;
  CUgraph_st* graph = nullptr;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point t;
  bool done = false;
};
struct cublasContext {
  cudaStream_t stream = nullptr;
};

namespace gemma3_emu {
namespace {

CUstream_st g_legacy;
std::vector<CUstream_st*>& streams() {
  static std::vector<CUstream_st*> s{&g_legacy};
  return s;
}
CUstream_st* stream_of(cudaStream_t s) { return s ? s : &g_legacy; }

void run_op(Op& op) {
  if (g_sticky != cudaSuccess) return;
  try {
    op.run();
  } catch (const KernelError& e) {
    std::fprintf(stderr, "gemma3_emu: kernel failed: %s\n", e.what());
    g_sticky = g_last = cudaErrorLaunchFailure;
  }
}
cudaError_t flush(CUstream_st* s) {
  while (!s->queue.empty()) {
    Op op = std::move(s->queue.front());
    s->queue.pop_front();
    run_op(op);
  }
  return g_sticky;
}
cudaError_t flush_all() {
  for (CUstream_st* s : streams()) flush(s);
  return g_sticky;
}
// The legacy stream waits for the blocking streams (made without cudaStreamNonBlocking).
cudaError_t flush_legacy() {
  for (CUstream_st* s : streams())
    if (s->flags == cudaStreamDefault) flush(s);
  return g_sticky;
}
void submit(cudaStream_t stream, Op op) {
  CUstream_st* s = stream_of(stream);
  if (s->capturing) s->graph->ops.push_back(std::move(op));
  else s->queue.push_back(std::move(op));
}
bool any_capturing() {
  for (CUstream_st* s : streams())
    if (s->capturing) return true;
  return false;
}
void invalidate_captures() {
  for (CUstream_st* s : streams())
    if (s->capturing) s->invalidated = true;
}

}  // namespace

// ---- the device side -----------------------------------------------------------------------

uint3 thread_idx() { return block().cur->tid; }
uint3 block_idx() { return block().bidx; }
dim3 block_dim() { return block().bdim; }
dim3 grid_dim() { return block().gdim; }
int lane_id() { return block().cur->lane; }
unsigned char* dynamic_shared() { return block().smem; }

void* static_shared_bytes(std::size_t bytes, std::size_t align) {
#ifdef GEMMA3_EMU_ASAN
  const std::size_t granule = std::max<std::size_t>(align, 8);  // AddressSanitizer's: the tail is poisoned
#else
  const std::size_t granule = align;  // the end meets the unmapped page
#endif
  const Guarded g = map_guarded(bytes, granule, 0);
  if (!g.map) {
    std::fprintf(stderr, "gemma3_emu: cannot map %zu bytes of static shared memory\n", bytes);
    std::abort();
  }
  return g.data;  // lives as long as the program, as a static does
}

void fail(const char* what) { fail_with(what); }

void syncthreads() {
  Block& b = block();
  Fiber& f = *b.cur;
  wait_at(b, f, b.bar, State::at_block_barrier, -1);
}

WarpSlots warp_enter(const char* op, unsigned mask, const void* mine, std::size_t bytes) {
  Block& b = block();
  Fiber& f = *b.cur;
  Warp& w = b.warps[std::size_t(f.warp)];
  if (mask != 0xffffffffu) fail_with(std::string(op) + ": the emulator takes only the full mask 0xffffffff");
  if (bytes > sizeof(w.slots[0])) fail_with(std::string(op) + ": more than 32 bytes per lane");
  if (w.bar.live != 32) fail_with(std::string(op) + ": a warp without all 32 lanes (some exited, or the block is not whole warps)");
  if (w.bar.arrived == 0) w.op = op;
  else if (std::strcmp(w.op, op) != 0)
    fail_with(std::string("lanes of one warp at different warp instructions: ") + op + " and " + w.op);
  std::memcpy(w.slots[f.lane], mine, bytes);
  warp_wait(b, f, w);
  return WarpSlots{&w.slots[0][0]};
}

void warp_leave() {
  Block& b = block();
  Fiber& f = *b.cur;
  Warp& w = b.warps[std::size_t(f.warp)];
  w.op = "(leaving a warp instruction)";
  warp_wait(b, f, w);  // every lane has read before any lane writes again
}

namespace {
float bf16_lo(std::uint32_t r) { return bf16_bits_to_float(std::uint16_t(r & 0xffffu)); }
float bf16_hi(std::uint32_t r) { return bf16_bits_to_float(std::uint16_t(r >> 16)); }
}  // namespace

void ldmatrix_x4(std::uint32_t r[4], const void* row, bool trans) {
  if (reinterpret_cast<std::uintptr_t>(row) % 16 != 0) fail("ldmatrix: a row address that is not 16-byte aligned");
  const int lane = lane_id();
  warp_exchange(trans ? "ldmatrix.trans" : "ldmatrix", 0xffffffffu, row, [&](const WarpSlots& rows) {
    for (int i = 0; i < 4; ++i) {
      std::uint16_t e[2];
      for (int k = 0; k < 2; ++k) {
        const int rr = trans ? 2 * (lane % 4) + k : lane / 4;  // row of matrix i
        const int cc = trans ? lane / 4 : 2 * (lane % 4) + k;  // column
        const unsigned char* src = static_cast<const unsigned char*>(rows.get<const void*>(8 * i + rr)) + 2 * cc;
        kernel_read2(src);
        std::memcpy(&e[k], src, 2);
      }
      r[i] = std::uint32_t(e[0]) | (std::uint32_t(e[1]) << 16);
    }
    return 0;
  });
}

void cp_async_16(void* dst, const void* src) {
  Block& b = block();
  Fiber& f = *b.cur;
  auto* d = static_cast<unsigned char*>(dst);
  if (reinterpret_cast<std::uintptr_t>(dst) % 16 != 0 || reinterpret_cast<std::uintptr_t>(src) % 16 != 0)
    fail("cp.async: a shared or global address that is not 16-byte aligned");
  if (d < b.smem || d + 16 > b.smem + b.smem_bytes)
    fail("cp.async: a destination outside the launch's dynamic shared memory");
  if (!device_range_ok(src, 16)) fail("cp.async: a source outside every device allocation");
  kernel_read16(src);
  kernel_write16(d);  // the copy may land at any time from here until the wait
  PendingCopy c;
  c.dst = d;
  std::memcpy(c.bytes, src, 16);
  c.group = f.commits;
  f.copies.push_back(c);
}

void cp_async_commit() { ++block().cur->commits; }

void cp_async_wait(int n) {
  Fiber& f = *block().cur;
  // Committed groups are 0 .. commits - 1; all but the newest n must land. Copies not yet
  // committed are not waited for.
  const unsigned keep_from = f.commits >= unsigned(n) ? f.commits - unsigned(n) : 0u;
  std::size_t kept = 0;
  for (std::size_t i = 0; i < f.copies.size(); ++i) {
    PendingCopy& c = f.copies[i];
    if (c.group < keep_from) {
      std::memcpy(c.dst, c.bytes, 16);
      kernel_write16(c.dst);
    } else {
      f.copies[kept++] = c;
    }
  }
  f.copies.resize(kept);
}

void mma_m16n8k16_bf16(float c[4], const std::uint32_t a[4], std::uint32_t b0, std::uint32_t b1) {
  struct Regs { std::uint32_t a[4], b[2]; };
  Regs mine{{a[0], a[1], a[2], a[3]}, {b0, b1}};
  // A (16 x 16, row): element (row, k) is in lane (row % 8) * 4 + (k % 8) / 2, register
  // (row >= 8) + 2 (k >= 8), half k % 2. B (16 x 8, col): element (k, n) is in lane
  // n * 4 + (k % 8) / 2, register k >= 8, half k % 2. C: lane g * 4 + t holds
  // (g, 2t), (g, 2t + 1), (g + 8, 2t), (g + 8, 2t + 1).
  const int lane = lane_id(), g = lane / 4, t = lane % 4;
  warp_exchange("mma.m16n8k16", 0xffffffffu, mine, [&](const WarpSlots& slots) {
    Regs all[32];
    for (int l = 0; l < 32; ++l) all[l] = slots.get<Regs>(l);
    auto A = [&](int row, int k) {
      const std::uint32_t r = all[(row % 8) * 4 + (k % 8) / 2].a[(row >= 8) + 2 * (k >= 8)];
      return k % 2 ? bf16_hi(r) : bf16_lo(r);
    };
    auto B = [&](int k, int n) {
      const std::uint32_t r = all[n * 4 + (k % 8) / 2].b[k >= 8];
      return k % 2 ? bf16_hi(r) : bf16_lo(r);
    };
    for (int i = 0; i < 4; ++i) {
      const int row = g + 8 * (i / 2), col = 2 * t + i % 2;
      float acc = c[i];
      for (int k = 0; k < 16; ++k) acc += A(row, k) * B(k, col);
      c[i] = acc;
    }
    return 0;
  });
}

std::uint16_t float_to_half_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  const std::uint16_t sign = std::uint16_t((u >> 16) & 0x8000u);
  const std::uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return std::uint16_t(sign | 0x7e00u);  // NaN
  if (a >= 0x477ff000u) return std::uint16_t(sign | 0x7c00u);  // rounds to infinity
  if (a < 0x38800000u) {  // below 2^-14: a subnormal half (or 0), in units of 2^-24
    float abs_f;
    std::memcpy(&abs_f, &a, 4);
    return std::uint16_t(sign | std::uint16_t(std::nearbyint(abs_f * 16777216.0f)));
  }
  std::uint32_t h = (((a >> 23) - 127u + 15u) << 10) | ((a & 0x7fffffu) >> 13);
  const std::uint32_t rest = a & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return std::uint16_t(sign | h);
}

float half_bits_to_float(std::uint16_t h) {
  const float sign = (h & 0x8000u) ? -1.f : 1.f;
  const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0) return sign * std::ldexp(float(m), -24);
  if (e == 31) return m ? NAN : sign * INFINITY;
  return sign * std::ldexp(float(1024 + m), e - 25);
}

// A kernel's dynamic shared memory: `bytes`, 16-byte aligned, guarded as above.
class GuardedBytes {
 public:
  explicit GuardedBytes(std::size_t bytes) : g_(map_guarded(bytes, 16, 0)) {
    if (!g_.map) {
      std::fprintf(stderr, "gemma3_emu: cannot map %zu bytes of shared memory\n", bytes);
      std::abort();
    }
  }
  GuardedBytes(const GuardedBytes&) = delete;
  GuardedBytes& operator=(const GuardedBytes&) = delete;
  ~GuardedBytes() { unmap_guarded(g_); }
  unsigned char* data() const { return g_.data; }

 private:
  Guarded g_;
};

void launch(const void* fn, const LaunchConfig& c, std::function<void()> body) {
  const unsigned long long threads = 1ull * c.block.x * c.block.y * c.block.z;
  if (threads == 0 || threads > 1024 || c.block.z > 64 || c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0 ||
      c.grid.y > 65535 || c.grid.z > 65535 || c.grid.x > 0x7fffffffu) {
    set_last(cudaErrorInvalidConfiguration);
    return;
  }
  const auto attr = smem_attribute().find(fn);
  const std::size_t allowed = attr == smem_attribute().end() ? 48 * 1024 : std::size_t(attr->second);
  if (c.smem > allowed) {
    set_last(cudaErrorInvalidValue);  // more than 48 KiB needs cudaFuncSetAttribute first
    return;
  }
  auto shared_body = std::make_shared<std::function<void()>>(std::move(body));
  const LaunchConfig cfg = c;
  submit(c.stream, Op{OpKind::kernel, fn, [cfg, shared_body] {
                        const GuardedBytes smem(cfg.smem);
                        unsigned char* base = smem.data();
                        for (const uint3& bidx : block_order(cfg.grid)) {
                          std::memset(base, 0xff, cfg.smem);  // NaN bytes: a value never written shows
                          run_block(cfg.grid, cfg.block, bidx, base, cfg.smem, *shared_body);
                        }
                      }});
}

}  // namespace gemma3_emu

// ---- the runtime API -------------------------------------------------------------------------
using namespace gemma3_emu;

const char* cudaGetErrorName(cudaError_t e) { return cudaGetErrorString(e); }
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error (CUDA emulator)";
    case cudaErrorInvalidValue: return "invalid argument (CUDA emulator)";
    case cudaErrorMemoryAllocation: return "out of memory (CUDA emulator)";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument (CUDA emulator)";
    case cudaErrorInvalidDeviceFunction: return "invalid device function (CUDA emulator)";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected (CUDA emulator)";
    case cudaErrorInvalidDevice: return "invalid device ordinal (CUDA emulator)";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle (CUDA emulator)";
    case cudaErrorNotReady: return "device not ready (CUDA emulator)";
    case cudaErrorLaunchFailure: return "unspecified launch failure (CUDA emulator: see its message on stderr)";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch (CUDA emulator)";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing (CUDA emulator)";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture (CUDA emulator)";
    case cudaErrorStreamCaptureWrongThread: return "capture on another thread (CUDA emulator)";
    case cudaErrorGraphExecUpdateFailure: return "the graph update was not performed (CUDA emulator)";
  }
  return "unknown error (CUDA emulator)";
}
cudaError_t cudaGetLastError() {
  const cudaError_t e = g_last;
  g_last = g_sticky;
  return e;
}
cudaError_t cudaPeekAtLastError() { return g_last; }
cudaError_t cudaGetDeviceCount(int* n) { *n = 1; return cudaSuccess; }
cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
cudaError_t cudaSetDevice(int d) { return set_last(d == 0 ? cudaSuccess : cudaErrorInvalidDevice); }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  if (d != 0) return set_last(cudaErrorInvalidDevice);
  *p = cudaDeviceProp{};
  std::snprintf(p->name, sizeof(p->name), "CUDA emulator on the CPU (gemma3 cuda/emu), shaped as an H100");
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 132;
  p->totalGlobalMem = g_device_bytes;
  p->sharedMemPerBlock = 48 * 1024;
  p->sharedMemPerBlockOptin = 227 * 1024;
  p->l2CacheSize = 50 << 20;
  p->maxThreadsPerBlock = 1024;
  p->warpSize = 32;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int d) {
  if (d != 0) return set_last(cudaErrorInvalidDevice);
  switch (a) {
    case cudaDevAttrMultiProcessorCount: *v = 132; return cudaSuccess;
    case cudaDevAttrMaxThreadsPerBlock: *v = 1024; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = 227 * 1024; return cudaSuccess;
    case cudaDevAttrL2CacheSize: *v = 50 << 20; return cudaSuccess;
  }
  return set_last(cudaErrorInvalidValue);
}
cudaError_t cudaDeviceSynchronize() {
  if (any_capturing()) {
    invalidate_captures();
    return set_last(cudaErrorStreamCaptureUnsupported);
  }
  return set_last(flush_all());
}

cudaError_t cudaDeviceReset() {
  for (CUstream_st* s : streams()) {
    s->queue.clear();
    if (s->capturing) {
      s->capturing = false;
      delete s->graph;
      s->graph = nullptr;
    }
  }
  g_sticky = g_last = cudaSuccess;
  return cudaSuccess;
}

// The device memory the emulator reports (host memory backs it, so less than an H100's).
cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total_bytes) {
  std::size_t used = 0;
  for (const auto& a : device_allocations()) used += a.second.bytes;
  *total_bytes = g_device_bytes;
  *free_bytes = used < g_device_bytes ? g_device_bytes - used : 0;
  return cudaSuccess;
}

void gemma3_emu::set_device_memory(std::size_t bytes) { g_device_bytes = bytes; }

cudaError_t cudaMalloc(void** out, std::size_t bytes) {
  if (!out) return set_last(cudaErrorInvalidValue);
  *out = nullptr;
  if (g_sticky) return g_sticky;
  std::size_t used = 0;
  for (const auto& a : device_allocations()) used += a.second.bytes;
  if (bytes > g_device_bytes || used > g_device_bytes - bytes) return set_last(cudaErrorMemoryAllocation);
  // The block starts 16-byte aligned (what vector loads need; cudaMalloc gives 256) and
  // ends, rounded up to 16 bytes, where an unmapped page begins (map_guarded); it is
  // filled with 0xFF bytes, as a GPU's memory holds whatever was there.
  const Guarded g = map_guarded(bytes, 16, MAP_NORESERVE);
  if (!g.map) return set_last(cudaErrorMemoryAllocation);
  unsigned char* p = g.data;
  device_allocations()[reinterpret_cast<std::uintptr_t>(p)] = Allocation{g, bytes};
  *out = p;
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  auto& m = device_allocations();
  auto it = m.find(reinterpret_cast<std::uintptr_t>(p));
  if (it == m.end()) return set_last(cudaErrorInvalidValue);
  flush_all();  // cudaFree waits for the device
  unmap_guarded(it->second.mapping);
  m.erase(it);
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void** out, std::size_t bytes) {
  void* p = std::aligned_alloc(256, (std::max<std::size_t>(bytes, 1) + 255) & ~std::size_t(255));
  if (!p) return set_last(cudaErrorMemoryAllocation);
  pinned_allocations()[reinterpret_cast<std::uintptr_t>(p)] = bytes;
  *out = p;
  return cudaSuccess;
}
cudaError_t cudaFreeHost(void* p) {
  if (!p) return cudaSuccess;
  if (!pinned_allocations().erase(reinterpret_cast<std::uintptr_t>(p))) return set_last(cudaErrorInvalidValue);
  flush_all();
  std::free(p);
  return cudaSuccess;
}

namespace {
// Checks the device side(s) of a copy against the allocations.
cudaError_t check_copy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  if (bytes == 0) return cudaSuccess;
  if ((src_dev && !device_range_ok(src, bytes)) || (dst_dev && !device_range_ok(dst, bytes))) {
    std::fprintf(stderr, "gemma3_emu: a copy of %zu bytes outside a device allocation\n", bytes);
    return cudaErrorInvalidValue;
  }
  if ((!src_dev && is_device(src)) || (!dst_dev && is_device(dst))) {
    std::fprintf(stderr, "gemma3_emu: a copy whose kind names device memory as host memory\n");
    return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}
}  // namespace

cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  if (const cudaError_t e = check_copy(dst, src, bytes, kind)) return set_last(e);
  if (const cudaError_t e = flush_legacy()) return e;
  if (bytes) std::memmove(dst, src, bytes);
  return g_sticky;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  if (const cudaError_t e = check_copy(dst, src, bytes, kind)) return set_last(e);
  if (g_sticky) return g_sticky;
  CUstream_st* s = stream_of(stream);
  const bool host_src = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyHostToHost;
  const bool host_dst = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyHostToHost;
  if (s->capturing && ((host_src && !is_pinned(src)) || (host_dst && !is_pinned(dst)))) {
    std::fprintf(stderr, "gemma3_emu: a captured copy from or to pageable host memory\n");
    s->invalidated = true;
    return set_last(cudaErrorStreamCaptureUnsupported);
  }
  if (host_dst && !is_pinned(dst)) {  // to pageable memory: returns when done
    flush(s);
    if (bytes) std::memmove(dst, src, bytes);
    return g_sticky;
  }
  if (host_src && !is_pinned(src)) {  // from pageable memory: staged when called
    auto staged = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(src),
                                                               static_cast<const unsigned char*>(src) + bytes);
    submit(stream, Op{OpKind::copy, nullptr, [dst, staged] { if (!staged->empty()) std::memcpy(dst, staged->data(), staged->size()); }});
    return cudaSuccess;
  }
  submit(stream, Op{OpKind::copy, nullptr, [dst, src, bytes] { if (bytes) std::memmove(dst, src, bytes); }});
  return cudaSuccess;
}
cudaError_t cudaMemset(void* p, int value, std::size_t bytes) {
  if (bytes && !device_range_ok(p, bytes)) return set_last(cudaErrorInvalidValue);
  flush_legacy();
  if (bytes) std::memset(p, value, bytes);
  return g_sticky;
}
cudaError_t cudaMemsetAsync(void* p, int value, std::size_t bytes, cudaStream_t stream) {
  if (bytes && !device_range_ok(p, bytes)) return set_last(cudaErrorInvalidValue);
  submit(stream, Op{OpKind::memset, nullptr, [p, value, bytes] { if (bytes) std::memset(p, value, bytes); }});
  return g_sticky;
}

cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  *s = new CUstream_st;
  (*s)->flags = flags;
  streams().push_back(*s);
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (!s) return set_last(cudaErrorInvalidResourceHandle);
  flush(s);
  auto& all = streams();
  all.erase(std::remove(all.begin(), all.end(), s), all.end());
  delete s->graph;
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  CUstream_st* s = stream_of(stream);
  if (s->capturing) {
    s->invalidated = true;
    return set_last(cudaErrorStreamCaptureUnsupported);
  }
  return set_last(flush(s));
}
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
  CUstream_st* s = stream_of(stream);
  if (s == &g_legacy || s->capturing) return set_last(cudaErrorStreamCaptureUnsupported);
  s->capturing = true;
  s->invalidated = false;
  s->graph = new CUgraph_st;
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* g) {
  CUstream_st* s = stream_of(stream);
  if (!s->capturing) return set_last(cudaErrorInvalidValue);
  s->capturing = false;
  CUgraph_st* graph = s->graph;
  s->graph = nullptr;
  if (s->invalidated) {
    delete graph;
    *g = nullptr;
    return set_last(cudaErrorStreamCaptureInvalidated);
  }
  *g = graph;
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* e, cudaGraph_t g, unsigned long long) {
  if (!g) return set_last(cudaErrorInvalidValue);
  *e = new CUgraphExec_st{g->ops};
  return cudaSuccess;
}
cudaError_t cudaGraphExecUpdate(cudaGraphExec_t e, cudaGraph_t g, cudaGraphExecUpdateResultInfo* info) {
  if (!e || !g) return set_last(cudaErrorInvalidValue);
  bool same = e->ops.size() == g->ops.size();
  for (std::size_t i = 0; same && i < g->ops.size(); ++i)
    same = e->ops[i].kind == g->ops[i].kind && e->ops[i].fn == g->ops[i].fn;
  if (info) *info = cudaGraphExecUpdateResultInfo{same ? 0 : 1, nullptr, nullptr};
  if (!same) return set_last(cudaErrorGraphExecUpdateFailure);
  e->ops = g->ops;
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t stream) {
  if (!e) return set_last(cudaErrorInvalidValue);
  auto ops = std::make_shared<std::vector<Op>>(e->ops);
  submit(stream, Op{OpKind::graph, nullptr, [ops] { for (Op& op : *ops) run_op(op); }});
  return g_sticky;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) { delete g; return cudaSuccess; }
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) { delete e; return cudaSuccess; }

cudaError_t cudaEventCreate(cudaEvent_t* e) { *e = new CUevent_st; return cudaSuccess; }
cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t stream) {
  if (!e) return set_last(cudaErrorInvalidResourceHandle);
  e->done = false;
  submit(stream, Op{OpKind::event, nullptr, [e] { e->t = std::chrono::steady_clock::now(); e->done = true; }});
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return set_last(flush_all()); }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t stop) {
  if (!start || !stop) return set_last(cudaErrorInvalidResourceHandle);
  if (!start->done || !stop->done) return set_last(cudaErrorNotReady);
  *ms = std::chrono::duration<float, std::milli>(stop->t - start->t).count();
  return cudaSuccess;
}
cudaError_t cudaFuncSetAttribute(const void* fn, cudaFuncAttribute a, int value) {
  if (a != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || value > 227 * 1024)
    return set_last(cudaErrorInvalidValue);
  smem_attribute()[fn] = value;
  return cudaSuccess;
}

// ---- cuBLAS ------------------------------------------------------------------------------------

cublasStatus_t cublasCreate(cublasHandle_t* h) { *h = new cublasContext; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasDestroy(cublasHandle_t h) { delete h; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) { h->stream = s; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetWorkspace(cublasHandle_t, void*, std::size_t) { return CUBLAS_STATUS_SUCCESS; }
const char* cublasGetStatusString(cublasStatus_t s) {
  return s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS (emulator)" : "CUBLAS_STATUS_INVALID_VALUE (emulator)";
}

namespace {
float load(const void* p, cudaDataType_t t, std::size_t i) {
  switch (t) {
    case CUDA_R_32F: return static_cast<const float*>(p)[i];
    case CUDA_R_16BF: return bf16_bits_to_float(static_cast<const std::uint16_t*>(p)[i]);
    case CUDA_R_16F: return half_bits_to_float(static_cast<const std::uint16_t*>(p)[i]);
  }
  return NAN;
}
void store(void* p, cudaDataType_t t, std::size_t i, float v) {
  switch (t) {
    case CUDA_R_32F: static_cast<float*>(p)[i] = v; return;
    case CUDA_R_16BF: static_cast<std::uint16_t*>(p)[i] = float_to_bf16_bits(v); return;
    case CUDA_R_16F: static_cast<std::uint16_t*>(p)[i] = float_to_half_bits(v); return;
  }
}
std::size_t type_bytes(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }
}  // namespace

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void* alpha, const void* A, cudaDataType_t at, int lda, const void* B,
                            cudaDataType_t bt, int ldb, const void* beta, void* C, cudaDataType_t ct, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t) {
  if (!h || m < 0 || n < 0 || k < 0 || compute != CUBLAS_COMPUTE_32F || ta == CUBLAS_OP_C || tb == CUBLAS_OP_C)
    return CUBLAS_STATUS_INVALID_VALUE;
  if (lda < std::max(1, ta == CUBLAS_OP_N ? m : k) || ldb < std::max(1, tb == CUBLAS_OP_N ? k : n) ||
      ldc < std::max(1, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  // Every element the product reads or writes must lie in one device allocation.
  const std::size_t a_cols = ta == CUBLAS_OP_N ? std::size_t(k) : std::size_t(m);
  const std::size_t b_cols = tb == CUBLAS_OP_N ? std::size_t(n) : std::size_t(k);
  const std::size_t a_rows = ta == CUBLAS_OP_N ? std::size_t(m) : std::size_t(k);
  const std::size_t b_rows = tb == CUBLAS_OP_N ? std::size_t(k) : std::size_t(n);
  if ((k > 0 && !device_range_ok(A, ((a_cols - 1) * std::size_t(lda) + a_rows) * type_bytes(at))) ||
      (k > 0 && !device_range_ok(B, ((b_cols - 1) * std::size_t(ldb) + b_rows) * type_bytes(bt))) ||
      !device_range_ok(C, ((std::size_t(n) - 1) * std::size_t(ldc) + std::size_t(m)) * type_bytes(ct))) {
    std::fprintf(stderr, "gemma3_emu: cublasGemmEx reads or writes outside a device allocation\n");
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  submit(h->stream, Op{OpKind::gemm, nullptr, [=] {
    // op(A) row i and op(B) column j as contiguous float vectors, then float32 dots.
    std::vector<float> bj(std::size_t(n) * std::size_t(k));
    for (int j = 0; j < n; ++j)
      for (int l = 0; l < k; ++l)
        bj[std::size_t(j) * std::size_t(k) + std::size_t(l)] =
            load(B, bt, tb == CUBLAS_OP_N ? std::size_t(l) + std::size_t(j) * std::size_t(ldb)
                                           : std::size_t(j) + std::size_t(l) * std::size_t(ldb));
    std::vector<float> ai(static_cast<std::size_t>(k));
    for (int i = 0; i < m; ++i) {
      for (int l = 0; l < k; ++l)
        ai[std::size_t(l)] = load(A, at, ta == CUBLAS_OP_N ? std::size_t(i) + std::size_t(l) * std::size_t(lda)
                                                          : std::size_t(l) + std::size_t(i) * std::size_t(lda));
      for (int j = 0; j < n; ++j) {
        const float* b = &bj[std::size_t(j) * std::size_t(k)];
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int l = 0;
        for (; l + 8 <= k; l += 8)
          for (int u = 0; u < 8; ++u) acc[u] += ai[std::size_t(l + u)] * b[l + u];
        for (; l < k; ++l) acc[0] += ai[std::size_t(l)] * b[l];
        const float dot = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        const std::size_t ci = std::size_t(i) + std::size_t(j) * std::size_t(ldc);
        store(C, ct, ci, be == 0.f ? al * dot : al * dot + be * load(C, ct, ci));
      }
    }
  }});
  return CUBLAS_STATUS_SUCCESS;
}
