// gemma3/detail/zeroed_pages.hpp -- a zero-filled byte buffer whose memory the OS commits
// only where it is written.
//
// The KV cache is sized for the longest sequence it may hold (a global layer keeps one
// row per position: at --context 32768 the 270M's three global layers reserve ~100 MB),
// while a conversation uses a few hundred positions. On Linux and macOS a large buffer
// is an anonymous private mapping: its pages read as zero and become resident when
// first written, so resident memory follows the positions in use. Small buffers, and
// platforms without mmap (Windows, Emscripten, whose mmap allocates up front), use
// calloc.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#if (defined(__unix__) || defined(__APPLE__)) && !defined(__EMSCRIPTEN__)
#include <sys/mman.h>
#define GEMMA3_HAVE_MMAP_ANON 1
#endif

namespace gemma3::detail {

class ZeroedPages {
 public:
  static constexpr std::size_t kMapAtLeast = std::size_t(1) << 20;  // smaller: calloc

  ZeroedPages() = default;
  explicit ZeroedPages(std::size_t n) : size_(n) {
    if (n == 0) return;
#ifdef GEMMA3_HAVE_MMAP_ANON
    if (n >= kMapAtLeast) {
      void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) throw std::bad_alloc();
      data_ = static_cast<unsigned char*>(p);
      mapped_ = true;
      return;
    }
#endif
    data_ = static_cast<unsigned char*>(std::calloc(n, 1));
    if (!data_) throw std::bad_alloc();
  }
  ZeroedPages(const ZeroedPages& o) : ZeroedPages(o.size_) {
    if (size_) std::memcpy(data_, o.data_, size_);
  }
  ZeroedPages(ZeroedPages&& o) noexcept { swap(o); }
  ZeroedPages& operator=(ZeroedPages o) noexcept {
    swap(o);
    return *this;
  }
  ~ZeroedPages() { release(); }

  unsigned char* data() { return data_; }
  const unsigned char* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  void swap(ZeroedPages& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(mapped_, o.mapped_);
  }
  void release() noexcept {
    if (!data_) return;
#ifdef GEMMA3_HAVE_MMAP_ANON
    if (mapped_) {
      munmap(data_, size_);
      return;
    }
#endif
    std::free(data_);
  }

  unsigned char* data_ = nullptr;
  std::size_t size_ = 0;
  bool mapped_ = false;
};

}  // namespace gemma3::detail
