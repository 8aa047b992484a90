// gemma3/kernels/thread_pool.hpp -- a small fixed pool of threads for the kernels.
//
//   ThreadPool pool(n);                      n threads in all: the caller + n - 1 workers
//   pool.parallel_for(begin, end, fn);       fn(chunk_begin, chunk_end) over disjoint
//                                            chunks covering [begin, end); returns when
//                                            every chunk is done
//   gemma3::default_pool();                  the pool of the kernel overloads that take
//                                            none (1 thread, or GEMMA3_NUM_THREADS); the
//                                            model's backend owns its own (backends/cpu.hpp)
//
// How it works: parallel_for publishes the job (a type-erased fn and the range cut
// into at most 4 chunks per thread) and bumps a generation counter; the workers and
// the caller claim chunks from one atomic word until none is left, and the caller
// returns when every chunk is done. A worker that is not scheduled in time (a busy
// machine, a browser tab in the background) costs nothing: the caller does its
// chunks. Idle workers spin for a short while (spin_us, 100 us by default: the gap
// between two matvecs of one decode step) before they sleep on a condition
// variable, so back-to-back kernels do not pay a futex wake each.
//
// Rules:
// - size 1: fn(begin, end) runs inline on the caller; no thread is ever created.
// - A parallel_for issued from inside a chunk (nested), or while another thread is
//   running one on the same pool, runs inline on its caller: never a deadlock.
// - An exception thrown by fn stops the remaining chunks and is rethrown by
//   parallel_for on the caller.
// - Only std::thread, std::mutex, std::condition_variable and std::atomic: no
//   OpenMP. Under Emscripten it needs -pthread and a pre-spawned worker pool
//   (-sPTHREAD_POOL_SIZE=n, or the pool's constructor blocks a browser main thread);
//   built without -pthread, every pool has size 1.
// Pinned by tests/test_quant.cpp ("thread pool") and tests/wasm/.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace gemma3 {

class ThreadPool {
 public:
  // threads: how many run a job, the caller included (values < 1 mean 1).
  explicit ThreadPool(int threads, int spin_us = 100) : spin_us_(spin_us) {
#if defined(__EMSCRIPTEN__) && !defined(__EMSCRIPTEN_PTHREADS__)
    threads = 1;  // no threads in a wasm build without -pthread
#endif
    size_ = std::max(1, threads);
    workers_.reserve(std::size_t(size_ - 1));
    for (int i = 1; i < size_; ++i) workers_.emplace_back([this] { worker_loop(); });
  }

  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_.store(true, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    for (std::thread& t : workers_) t.join();
  }

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return size_; }

  // fn(chunk_begin, chunk_end) over chunks of at least min_chunk items (the last
  // may be shorter), at most 4 per thread.
  template <class F>
  void parallel_for(std::int64_t begin, std::int64_t end, F&& fn, std::int64_t min_chunk = 1) {
    if (end <= begin) return;
    const std::int64_t n = end - begin;
    min_chunk = std::max<std::int64_t>(1, min_chunk);
    std::int64_t n_chunks = std::min<std::int64_t>((n + min_chunk - 1) / min_chunk, 4 * std::int64_t(size_));
    const std::int64_t chunk = (n + n_chunks - 1) / n_chunks;
    n_chunks = (n + chunk - 1) / chunk;  // rounding the chunk up may leave fewer, none empty
    if (size_ == 1 || n_chunks <= 1 || in_worker() || busy_.exchange(true, std::memory_order_acquire)) {
      fn(begin, end);
      return;
    }
    using Fn = std::remove_reference_t<F>;
    job_.ctx = const_cast<void*>(static_cast<const void*>(&fn));
    job_.call = [](void* ctx, std::int64_t b, std::int64_t e) { (*static_cast<Fn*>(ctx))(b, e); };
    job_.begin = begin;
    job_.end = end;
    job_.chunk = chunk;
    error_ = nullptr;
    cancelled_.store(false, std::memory_order_relaxed);
    done_chunks_.store(0, std::memory_order_relaxed);
    const std::uint64_t ticket = ++ticket_ & kTicketMask;
    state_.store(ticket << kTicketShift | std::uint64_t(n_chunks) << kCountShift, std::memory_order_release);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      generation_.fetch_add(1, std::memory_order_release);  // wakes the workers
    }
    wake_.notify_all();  // cheap when every worker is still spinning (no waiter)

    run_chunks();  // the caller works too; if no worker shows up it does every chunk
    auto all_done = [&] { return done_chunks_.load(std::memory_order_acquire) == n_chunks; };
    if (!spin_until(all_done)) {
      std::unique_lock<std::mutex> lock(mutex_);
      done_.wait(lock, all_done);
    }
    std::exception_ptr error = error_;
    busy_.store(false, std::memory_order_release);
    if (error) std::rethrow_exception(error);
  }

 private:
  struct Job {
    void (*call)(void*, std::int64_t, std::int64_t) = nullptr;
    void* ctx = nullptr;
    std::int64_t begin = 0, end = 0, chunk = 1;
  };

  // state_ packs the job's ticket, its chunk count and the next chunk to hand out, so
  // that claiming a chunk is one compare-exchange that also checks it belongs to the
  // current job: a worker that wakes late can never take a chunk of a finished job.
  static constexpr int kCountShift = 20, kTicketShift = 40;
  static constexpr std::uint64_t kFieldMask = (1u << 20) - 1, kTicketMask = (std::uint64_t(1) << 24) - 1;

  static bool& in_worker() {
    thread_local bool flag = false;
    return flag;
  }

  static void pause() {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    __builtin_ia32_pause();
#endif
  }

  // Claim and run chunks of the current job until none is left. job_ is read only
  // after a successful claim, and the caller rewrites it only once every claimed
  // chunk is done, so the two never overlap.
  void run_chunks() {
    std::uint64_t s = state_.load(std::memory_order_acquire);
    for (;;) {
      const std::uint64_t next = s & kFieldMask, count = (s >> kCountShift) & kFieldMask;
      if (next >= count) return;
      if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
      if (!cancelled_.load(std::memory_order_relaxed)) {
        const std::int64_t b = job_.begin + std::int64_t(next) * job_.chunk;
        const std::int64_t e = std::min(job_.end, b + job_.chunk);
        try {
          job_.call(job_.ctx, b, e);
        } catch (...) {
          std::lock_guard<std::mutex> lock(mutex_);
          if (!error_) error_ = std::current_exception();
          cancelled_.store(true, std::memory_order_relaxed);  // the remaining chunks are skipped
        }
      }
      if (done_chunks_.fetch_add(1, std::memory_order_acq_rel) + 1 == std::int64_t(count)) {
        std::lock_guard<std::mutex> lock(mutex_);  // the last chunk wakes the caller if it sleeps
        done_.notify_one();
      }
      s = state_.load(std::memory_order_acquire);
    }
  }

  // Spin up to spin_us for pred() to hold; true if it did.
  template <class Pred>
  bool spin_until(Pred pred) const {
    if (spin_us_ <= 0) return pred();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us_);
    for (int i = 0;; ++i) {
      if (pred()) return true;
      pause();
      if ((i & 255) == 255 && std::chrono::steady_clock::now() > deadline) return pred();
    }
  }

  void worker_loop() {
    in_worker() = true;
    std::uint64_t seen = 0;
    for (;;) {
      auto new_job = [&] { return generation_.load(std::memory_order_acquire) != seen; };
      if (!spin_until(new_job)) {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, new_job);
      }
      seen = generation_.load(std::memory_order_acquire);
      if (stop_.load(std::memory_order_relaxed)) return;  // ordered by the generation load
      run_chunks();
    }
  }

  int size_ = 1;
  int spin_us_ = 100;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;  // workers: a new job (or stop)
  std::condition_variable done_;  // caller: every chunk done
  Job job_;
  std::uint64_t ticket_ = 0;                  // caller side: jobs issued
  std::atomic<std::uint64_t> state_{0};       // ticket | chunk count | next chunk
  std::atomic<std::uint64_t> generation_{0};  // bumped per job: wakes the workers
  std::atomic<std::int64_t> done_chunks_{0};
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> busy_{false};
  std::atomic<bool> stop_{false};
  std::exception_ptr error_;
};

namespace detail {
inline std::mutex& default_pool_mutex() {
  static std::mutex m;
  return m;
}
inline std::unique_ptr<ThreadPool>& default_pool_slot() {
  static std::unique_ptr<ThreadPool> p;
  return p;
}
inline int threads_from_env() {
  const char* s = std::getenv("GEMMA3_NUM_THREADS");
  const int n = s ? std::atoi(s) : 0;
  return n > 0 ? n : 1;
}
}  // namespace detail

// The pool of the kernel overloads that take none (matvec(W, x, y), ...).
inline ThreadPool& default_pool() {
  std::lock_guard<std::mutex> lock(detail::default_pool_mutex());
  std::unique_ptr<ThreadPool>& p = detail::default_pool_slot();
  if (!p) p = std::make_unique<ThreadPool>(detail::threads_from_env());
  return *p;
}

}  // namespace gemma3
