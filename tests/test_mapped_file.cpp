// MappedFile::open on real files: the bytes read back are the file's, for sizes on
// both sides of the 2 MiB huge-page threshold (where open() maps at a 2 MiB-aligned
// address) and for an empty file; huge_mapped_bytes() answers within [0, size] on
// Linux; a missing path or a directory throws FileError naming the path; adopt() takes a
// filled buffer without a copy and releases it once.
#include "catch.hpp"

#include <gemma3/mapped_file.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#if defined(__unix__) && !defined(__EMSCRIPTEN__)
#include <unistd.h>
#endif

namespace {

std::string temp_path(const std::string& name) {
  const char* dir = std::getenv("TMPDIR");
  std::string d = dir && *dir ? dir : "/tmp";
#if defined(__unix__) && !defined(__EMSCRIPTEN__)
  d += "/gemma3_mapped_" + std::to_string(::getpid());
#else
  d += "/gemma3_mapped";
#endif
  return d + "_" + name;
}

std::vector<unsigned char> pattern(std::size_t n) {
  std::vector<unsigned char> v(n);
  std::uint32_t s = 0x12345678u;
  for (auto& b : v) {
    s = s * 1664525u + 1013904223u;
    b = static_cast<unsigned char>(s >> 24);
  }
  return v;
}

void write_file(const std::string& path, const std::vector<unsigned char>& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  REQUIRE(f);
  if (!bytes.empty()) REQUIRE(std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size());
  std::fclose(f);
}

}  // namespace

TEST_CASE("MappedFile: open() reads back every byte, below and above the 2 MiB huge-page size", "[mapped_file]") {
  // 2 MiB - 1 (plain mmap), 2 MiB + 12345 and 5 MiB + 1 (aligned mapping, odd tails).
  for (std::size_t n : {std::size_t(0), std::size_t(1), std::size_t(4095), (std::size_t(2) << 20) - 1,
                        (std::size_t(2) << 20) + 12345, (std::size_t(5) << 20) + 1}) {
    CAPTURE(n);
    const std::string path = temp_path(std::to_string(n) + ".bin");
    const std::vector<unsigned char> bytes = pattern(n);
    write_file(path, bytes);
    {
      const auto f = gemma3::MappedFile::open(path);
      REQUIRE(f->size() == n);
      REQUIRE(f->path() == path);
      bool same = true;
      for (std::size_t i = 0; i < n; ++i) same = same && f->data()[i] == bytes[i];
      CHECK(same);
#if defined(__linux__)
      if (n >= (std::size_t(2) << 20)) {
        CHECK(reinterpret_cast<std::uintptr_t>(f->data()) % (std::uintptr_t(2) << 20) == 0);
      }
      if (n > 0) {
        const std::int64_t huge = f->huge_mapped_bytes();
        CHECK(huge >= 0);  // the mapping is found in /proc/self/smaps
        CHECK(huge <= std::int64_t(n));
      }
#endif
    }
    std::remove(path.c_str());
  }
}

TEST_CASE("MappedFile: huge_mapped_bytes() is -1 for bytes that are not a mapping", "[mapped_file]") {
  const auto f = gemma3::MappedFile::from_bytes(pattern(100), "mem");
  CHECK(f->huge_mapped_bytes() == -1);
}

TEST_CASE("MappedFile: a missing file and a directory throw FileError naming the path", "[mapped_file][errors]") {
  const std::string missing = temp_path("does_not_exist.gguf");
  REQUIRE_THROWS_AS(gemma3::MappedFile::open(missing), gemma3::FileError);
  try {
    gemma3::MappedFile::open(missing);
  } catch (const gemma3::FileError& e) {
    CHECK(std::string(e.what()).find(missing) != std::string::npos);
  }
#if defined(__unix__) && !defined(__EMSCRIPTEN__)
  REQUIRE_THROWS_AS(gemma3::MappedFile::open("/tmp"), gemma3::FileError);
#endif
}

namespace {
int g_released = 0;
void count_and_free(void* p) {
  ++g_released;
  std::free(p);
}
}  // namespace

TEST_CASE("MappedFile: adopt() takes a filled buffer without a copy and releases it once, after its last user",
          "[mapped_file]") {
  const std::vector<unsigned char> bytes = pattern(100000);
  unsigned char* buf = static_cast<unsigned char*>(std::malloc(bytes.size()));
  REQUIRE(buf);
  std::copy(bytes.begin(), bytes.end(), buf);
  g_released = 0;
  {
    std::shared_ptr<const gemma3::MappedFile> f = gemma3::MappedFile::adopt(buf, bytes.size(), count_and_free, "heap.gguf");
    CHECK(f->data() == buf);  // the same memory, not a copy
    CHECK(f->size() == bytes.size());
    CHECK(f->path() == "heap.gguf");
    CHECK(f->huge_mapped_bytes() == -1);
    std::shared_ptr<const gemma3::MappedFile> reader = f;  // e.g. a GgufFile holding it
    f.reset();
    CHECK(g_released == 0);
    CHECK(std::equal(bytes.begin(), bytes.end(), reader->data()));
  }
  CHECK(g_released == 1);

  // Ownership kept by the caller: no release.
  std::vector<unsigned char> mine = bytes;
  { const auto f = gemma3::MappedFile::adopt(mine.data(), mine.size(), nullptr, "borrowed"); }
  CHECK(mine == bytes);
  REQUIRE_THROWS_AS(gemma3::MappedFile::adopt(nullptr, 10, nullptr, "none"), gemma3::FileError);
}
