// gemma3/mapped_file.hpp -- a read-only view of a whole file.
//
// Natively the file is mmap'd: loading a 1 GB checkpoint maps 1 GB of pages that
// the OS reads on first touch and may drop under pressure; nothing is copied.
// Under Emscripten (no mmap of user files) or on other platforms the bytes are
// read into one heap buffer. Either way the model's weights are views into it.
// Pinned by tests/test_loader_errors.cpp (through the safetensors reader).
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
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
      void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        throw FileError(path + ": mmap failed (" + std::strerror(errno) + ")");
      }
      f->mapped_ = p;
      f->data_ = static_cast<const unsigned char*>(p);
    }
    ::close(fd);
#else
    std::FILE* fp = std::fopen(path.c_str(), "rb");
    if (!fp) throw FileError(path + ": cannot open the file (" + std::strerror(errno) + ")");
    std::vector<unsigned char> buf;
    unsigned char chunk[1 << 16];
    std::size_t n;
    while ((n = std::fread(chunk, 1, sizeof chunk, fp)) > 0) buf.insert(buf.end(), chunk, chunk + n);
    std::fclose(fp);
    f->buffer_ = std::move(buf);
    f->data_ = f->buffer_.data();
    f->size_ = f->buffer_.size();
#endif
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

  ~MappedFile() {
#ifdef GEMMA3_HAVE_MMAP
    if (mapped_) ::munmap(mapped_, size_);
#endif
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

 private:
  MappedFile() = default;
  std::string path_;
  const unsigned char* data_ = nullptr;
  std::size_t size_ = 0;
  void* mapped_ = nullptr;
  std::vector<unsigned char> buffer_;
};

}  // namespace gemma3
