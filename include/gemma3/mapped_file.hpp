// gemma3/mapped_file.hpp -- a read-only view of a whole file.
//
// Natively the file is mmap'd: loading a 1 GB checkpoint maps 1 GB of pages that
// the OS reads on first touch and may drop under pressure; nothing is copied.
// Under Emscripten (no mmap of user files) or on other platforms the bytes are
// read into one heap buffer of the file's size. Bytes already in memory come in
// through from_bytes (a vector, moved) or adopt (a buffer, taken without a copy).
// Either way the model's weights are views into it.
//
// Huge pages (Linux). A decode step streams every weight once, so TLB misses on
// 4 KiB pages cost memory bandwidth (measured on a 2-vCPU Zen 4 VM: 1-thread
// reads of the 270M file 17.7 GB/s with 4 KiB pages, 26-29 GB/s with 2 MiB ones).
// The kernel maps a file with 2 MiB page-table entries only where (a) the page
// cache holds the file in 2 MiB folios and (b) the mapping's address is 2 MiB
// aligned with the file offset. So open() places files of 2 MiB or more at a
// 2 MiB-aligned address and asks madvise(MADV_HUGEPAGE), which makes page faults
// on not-yet-cached parts read them in 2 MiB folios. Pages that are cached
// already in small folios (a file just written or copied) stay small until they
// leave the cache; scripts/page-cache.py --evict re-reads a file so they do not.
// huge_mapped_bytes() tells how much of the mapping has 2 MiB entries now.
// Pinned by tests/test_loader_errors.cpp (through the safetensors reader) and
// tests/test_mapped_file.cpp.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#if (defined(__unix__) || defined(__APPLE__)) && !defined(__EMSCRIPTEN__)
#define GEMMA3_HAVE_MMAP 1
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace gemma3 {

struct FileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class MappedFile {
 public:
  const unsigned char* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  static std::shared_ptr<const MappedFile> open(const std::string& path) {
    std::shared_ptr<MappedFile> f(new MappedFile());
    f->path_ = path;
#ifdef GEMMA3_HAVE_MMAP
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw FileError(path + ": cannot open the file (" + std::strerror(errno) + ")");
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      throw FileError(path + ": not a regular file");
    }
    f->size_ = std::size_t(st.st_size);
    if (f->size_ > 0) {
      void* p = map_aligned(fd, f->size_);
      if (p == MAP_FAILED) {
        ::close(fd);
        throw FileError(path + ": mmap failed (" + std::strerror(errno) + ")");
      }
#ifdef MADV_HUGEPAGE
      if (f->size_ >= kHugePage) ::madvise(p, f->size_, MADV_HUGEPAGE);  // a hint: failure is harmless
#endif
      f->mapped_ = p;
      f->data_ = static_cast<const unsigned char*>(p);
    }
    ::close(fd);
#else
    // One buffer of the file's size, read in one go (not zero-filled first, not grown).
    std::FILE* fp = std::fopen(path.c_str(), "rb");
    if (!fp) throw FileError(path + ": cannot open the file (" + std::strerror(errno) + ")");
    long end = -1;
    if (std::fseek(fp, 0, SEEK_END) == 0) end = std::ftell(fp);
    if (end < 0 || std::fseek(fp, 0, SEEK_SET) != 0) {
      std::fclose(fp);
      throw FileError(path + ": cannot find the file's size (not a regular file?)");
    }
    unsigned char* buf = static_cast<unsigned char*>(std::malloc(end > 0 ? std::size_t(end) : 1));
    if (!buf) {
      std::fclose(fp);
      throw FileError(path + ": cannot allocate " + std::to_string(end) + " bytes to read the file into");
    }
    f->owned_ = buf;
    f->release_ = std::free;
    const std::size_t got = std::fread(buf, 1, std::size_t(end), fp);
    std::fclose(fp);
    if (got != std::size_t(end))
      throw FileError(path + ": read " + std::to_string(got) + " of its " + std::to_string(end) + " bytes");
    f->data_ = buf;
    f->size_ = got;
#endif
    return f;
  }

  // Bytes the caller has already placed in one buffer, adopted without a copy: the
  // browser streams a download straight into the wasm heap, then hands it over.
  // release(data) is called once, when the last model and reader using it are gone
  // (std::free for a buffer from malloc; nullptr to keep ownership).
  static std::shared_ptr<const MappedFile> adopt(unsigned char* data, std::size_t size, void (*release)(void*),
                                                 const std::string& name) {
    if (!data && size > 0) throw FileError(name + ": adopt() was given no buffer for " + std::to_string(size) + " bytes");
    std::shared_ptr<MappedFile> f(new MappedFile());
    f->path_ = name;
    f->data_ = data;
    f->size_ = size;
    f->owned_ = data;
    f->release_ = release;
    return f;
  }

  // A "file" already in memory (tests, fuzzing, the browser's heap).
  static std::shared_ptr<const MappedFile> from_bytes(std::vector<unsigned char> bytes, const std::string& name) {
    std::shared_ptr<MappedFile> f(new MappedFile());
    f->path_ = name;
    f->buffer_ = std::move(bytes);
    f->data_ = f->buffer_.data();
    f->size_ = f->buffer_.size();
    return f;
  }

  // Bytes of this mapping that the kernel maps with 2 MiB page-table entries right
  // now (the FilePmdMapped lines of /proc/self/smaps), or -1 where that cannot be
  // read (not Linux, not mmap'd, no /proc). Pages not touched yet count as not huge.
  std::int64_t huge_mapped_bytes() const {
    return mapped_ ? smaps_file_pmd_bytes(reinterpret_cast<std::uintptr_t>(mapped_)) : -1;
  }

  // The same summed over every file mapping of the process (all models loaded).
  static std::int64_t process_huge_mapped_bytes() { return smaps_file_pmd_bytes(0); }

  ~MappedFile() {
#ifdef GEMMA3_HAVE_MMAP
    if (mapped_) ::munmap(mapped_, size_);
#endif
    if (release_ && owned_) release_(owned_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

 private:
  MappedFile() = default;
  static constexpr std::size_t kHugePage = std::size_t(2) << 20;

  // Sum of FilePmdMapped over the mapping that starts at `start` (every mapping if
  // start is 0) in /proc/self/smaps; -1 if unreadable or no such mapping.
  static std::int64_t smaps_file_pmd_bytes(std::uintptr_t start) {
#ifdef GEMMA3_HAVE_MMAP
    std::FILE* fp = std::fopen("/proc/self/smaps", "r");
    if (!fp) return -1;
    char line[512];
    bool inside = false, found = false;
    std::int64_t kib = 0;
    while (std::fgets(line, sizeof line, fp)) {
      unsigned long long lo = 0, hi = 0;
      char dash = 0;
      // A mapping's header line starts "lo-hi perms ..."; field lines start with a name.
      if (std::sscanf(line, "%llx%c%llx", &lo, &dash, &hi) == 3 && dash == '-') {
        inside = start == 0 || lo == start;
        found = found || inside;
        continue;
      }
      long long v = 0;
      if (inside && std::sscanf(line, "FilePmdMapped: %lld kB", &v) == 1) kib += v;
    }
    std::fclose(fp);
    return found ? kib * 1024 : -1;
#else
    (void)start;
    return -1;
#endif
  }

#ifdef GEMMA3_HAVE_MMAP
  // mmap(fd) read-only at a kHugePage-aligned address when the file is at least
  // that big: reserve size + kHugePage bytes of address space, map the file over
  // its aligned start (MAP_FIXED replaces the reservation there) and give the
  // rest of the reservation back. Falls back to a plain mmap if any step fails.
  static void* map_aligned(int fd, std::size_t size) {
    if (size >= kHugePage) {
      const std::size_t span = size + kHugePage;
      void* r = ::mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (r != MAP_FAILED) {
        const auto base = reinterpret_cast<std::uintptr_t>(r);
        const std::uintptr_t aligned = (base + kHugePage - 1) & ~std::uintptr_t(kHugePage - 1);
        void* p = ::mmap(reinterpret_cast<void*>(aligned), size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
        if (p != MAP_FAILED) {
          const std::size_t page = std::size_t(::sysconf(_SC_PAGESIZE));
          const std::uintptr_t end = aligned + (size + page - 1) / page * page;
          if (aligned > base) ::munmap(r, aligned - base);
          if (base + span > end) ::munmap(reinterpret_cast<void*>(end), base + span - end);
          return p;
        }
        ::munmap(r, span);
      }
    }
    return ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  }
#endif

  std::string path_;
  const unsigned char* data_ = nullptr;
  std::size_t size_ = 0;
  void* mapped_ = nullptr;
  std::vector<unsigned char> buffer_;  // from_bytes
  void* owned_ = nullptr;              // adopt, and open() without mmap: freed by release_
  void (*release_)(void*) = nullptr;
};

}  // namespace gemma3
