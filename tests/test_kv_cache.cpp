// The KV cache: ring slots for sliding layers, full rows for global ones, the
// mask edge, and the memory arithmetic of docs/architecture.md ("KV-cache arithmetic").
#include "catch.hpp"

#include "gemma3/attention_mask.hpp"
#include "gemma3/backends/cpu.hpp"
#include "gemma3/kv_cache.hpp"

#include <cmath>
#include <vector>

TEST_CASE("sliding mask: W keys including the query, global mask: causal", "[kv]") {
  const int W = 3;
  for (int q = 0; q < 10; ++q)
    for (int k = 0; k < 10; ++k) {
      CHECK(gemma3::may_attend(false, W, q, k) == (k <= q));
      CHECK(gemma3::may_attend(true, W, q, k) == (k <= q && k > q - W));
    }
  // A window of 1: each token sees only itself.
  CHECK(gemma3::may_attend(true, 1, 7, 7));
  CHECK(!gemma3::may_attend(true, 1, 7, 6));
}

TEST_CASE("cache rows: a ring of sliding_window slots on sliding layers, one row per position on global", "[kv]") {
  gemma3::Gemma3TextConfig c = gemma3::gemma3_1b();
  gemma3::KVCache cache(c, 2048);
  CHECK(cache.layer(0).sliding);
  CHECK(cache.layer(0).capacity == 512);
  CHECK(!cache.layer(5).sliding);
  CHECK(cache.layer(5).capacity == 2048);
  CHECK(cache.layer(0).slot(511) == 511);
  CHECK(cache.layer(0).slot(512) == 0);  // position 512 overwrites position 0, which no query >= 512 sees
  CHECK(cache.layer(0).slot(1000) == 1000 - 512);
  CHECK(cache.layer(5).slot(1000) == 1000);
  // A cache shorter than the window needs no more rows than the cache length.
  gemma3::KVCache small(c, 100);
  CHECK(small.layer(0).capacity == 100);
}

TEST_CASE("cache bytes: allocated, used, and the all-global comparison", "[kv]") {
  const gemma3::Gemma3TextConfig c = gemma3::gemma3_1b();
  const int T = 4096;
  gemma3::KVCache cache(c, T);
  const std::size_t row = 2 * 1 * 256 * sizeof(float);  // K and V, 1 kv head, head_dim 256, float32
  CHECK(cache.bytes_allocated() == (4 * std::size_t(T) + 22 * 512) * row);
  CHECK(cache.bytes_all_global() == 26 * std::size_t(T) * row);
  CHECK(cache.bytes_used() == 0);
  cache.advance(1000);
  CHECK(cache.bytes_used() == (4 * 1000 + 22 * 512) * row);
  CHECK(double(cache.bytes_allocated()) == gemma3::kv_cache_bytes(c, T, 4, true));
  CHECK(double(cache.bytes_all_global()) == gemma3::kv_cache_bytes(c, T, 4, false));
}

TEST_CASE("KV memory arithmetic reproduces the table of docs/architecture.md (bf16)", "[kv]") {
  // Bytes, from the spec's table: global-only vs 5:1 interleaved.
  CHECK(gemma3::kv_cache_bytes(gemma3::gemma3_1b(), 32768, 2, false) == 26.0 * 32768 * 1024);
  CHECK(gemma3::kv_cache_bytes(gemma3::gemma3_1b(), 32768, 2, true) == 4.0 * 32768 * 1024 + 22.0 * 512 * 1024);
  CHECK(gemma3::kv_cache_bytes(gemma3::gemma3_4b(), 32768, 2, false) / double(1 << 20) == 4352);
  CHECK(gemma3::kv_cache_bytes(gemma3::gemma3_12b(), 32768, 2, false) / double(1 << 20) == 12288);
  CHECK(gemma3::kv_cache_bytes(gemma3::gemma3_27b(), 32768, 2, false) / double(1 << 20) == 15872);
  CHECK(gemma3::kv_cache_bytes(gemma3::gemma3_27b(), 131072, 2, false) / double(1 << 20) == 63488);
  CHECK(gemma3::kv_cache_bytes(gemma3::gemma3_27b(), 32768, 2, true) == 10.0 * 32768 * 8192 + 52.0 * 1024 * 8192);
  const double ratio_1b = gemma3::kv_cache_bytes(gemma3::gemma3_1b(), 32768, 2, false) /
                          gemma3::kv_cache_bytes(gemma3::gemma3_1b(), 32768, 2, true);
  CHECK(ratio_1b == Approx(5.99).margin(0.005));
}

TEST_CASE("a cache longer than the model's context is refused", "[kv]") {
  CHECK_THROWS_AS(gemma3::KVCache(gemma3::gemma3_1b(), 32769), std::invalid_argument);
  CHECK_THROWS_AS(gemma3::KVCache(gemma3::gemma3_1b(), 0), std::invalid_argument);
}

TEST_CASE("a float16 cache: half the bytes, rows come back rounded to float16", "[kv]") {
  const gemma3::Gemma3TextConfig c = gemma3::gemma3_1b();
  const gemma3::KVCache f32(c, 4096), f16(c, 4096, gemma3::DType::F16);
  CHECK(f16.dtype() == gemma3::DType::F16);
  CHECK(f16.bytes_allocated() * 2 == f32.bytes_allocated());
  CHECK(f16.bytes_all_global() * 2 == f32.bytes_all_global());
  CHECK(double(f16.bytes_allocated()) == gemma3::kv_cache_bytes(c, 4096, 2, true));
  CHECK_THROWS_AS(gemma3::KVCache(c, 16, gemma3::DType::BF16), std::invalid_argument);

  // store -> load keeps exactly the float16 rounding of each value; round() gives the same.
  gemma3::KVRowStore store(gemma3::DType::F16, 3, 40);
  gemma3::Matrix x(3, 40);
  for (int r = 0; r < 3; ++r)
    for (int i = 0; i < 40; ++i) x(r, i) = std::ldexp(1.0f + 0.0123f * float(i * 7 + r), i % 30 - 20) * (i % 2 ? -1.0f : 1.0f);
  for (int r = 0; r < 3; ++r) store.store(r, x.row(r).data());
  gemma3::Matrix rounded = x;
  store.round(rounded);
  std::vector<float> back(40);
  bool some_changed = false;
  for (int r = 0; r < 3; ++r) {
    store.load(r, back.data());
    for (int i = 0; i < 40; ++i) {
      const float want = gemma3::round_to_dtype(x(r, i), gemma3::DType::F16);
      CHECK(back[std::size_t(i)] == want);
      CHECK(rounded(r, i) == want);
      some_changed = some_changed || want != x(r, i);
    }
  }
  CHECK(some_changed);
  // The CPU backend's SIMD conversions keep the same bits: a view of the rows widened
  // in place, a row written and read back, a matrix rounded.
  const gemma3::KVView v = store.view(1, 2);
  CHECK(v.rows == 2);
  for (gemma3::Isa isa : {gemma3::Isa::scalar, gemma3::Isa::avx2, gemma3::Isa::avx512}) {
    if (!gemma3::isa_available(isa)) continue;
    INFO(gemma3::isa_name(isa));
    gemma3::Matrix buf;
    const gemma3::Matrix m = gemma3::cpu::as_f32(v.block(0, 8, 2, 16), buf, isa);
    CHECK(m == rounded.block(1, 8, 2, 16));
    gemma3::KVRowStore simd(gemma3::DType::F16, 1, 40);
    gemma3::cpu::store_row(simd, 0, x.row(2).data(), isa);
    std::vector<float> row(40);
    gemma3::cpu::load_row(simd, 0, row.data(), isa);
    for (int i = 0; i < 40; ++i) CHECK(row[std::size_t(i)] == rounded(2, i));
    gemma3::Matrix r = x;
    gemma3::cpu::round_to_store(simd, r, isa);
    CHECK(r == rounded);
  }
}

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>

// Resident bytes of [p, p + n) (whole pages), from mincore().
static std::size_t resident_bytes(const void* p, std::size_t n) {
  const std::size_t page = std::size_t(sysconf(_SC_PAGESIZE));
  const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(p) / page * page;
  const std::size_t len = reinterpret_cast<std::uintptr_t>(p) + n - a;
  std::vector<unsigned char> in((len + page - 1) / page);
  REQUIRE(mincore(reinterpret_cast<void*>(a), len, in.data()) == 0);
  std::size_t pages = 0;
  for (unsigned char c : in) pages += c & 1;
  return pages * page;
}

TEST_CASE("a long cache is resident only where rows are written", "[kv]") {
  // 1B shapes at a 32768-token context: a global layer reserves 32768 rows of 256 floats
  // (32 MiB for K); writing 100 positions makes only their 100 KiB resident.
  const gemma3::Gemma3TextConfig c = gemma3::gemma3_1b();
  gemma3::KVCache cache(c, 32768, gemma3::DType::F32);
  gemma3::LayerKVCache& global = cache.layer(5);
  REQUIRE(!global.sliding);
  const std::size_t total = global.k.bytes();
  CHECK(total == std::size_t(32768) * 256 * 4);
  CHECK(resident_bytes(global.k.row_data(0), total) == 0);
  const std::vector<float> row(256, 1.0f);
  for (int p = 0; p < 100; ++p) global.k.store(p, row.data());
  const std::size_t resident = resident_bytes(global.k.row_data(0), total);
  INFO("resident " << resident << " of " << total << " bytes");
  CHECK(resident >= std::size_t(100) * 256 * 4);
  // the written rows, to the page; where transparent huge pages are always on, to 2 MiB
  CHECK(resident <= std::size_t(100) * 256 * 4 + std::size_t(2) * 1024 * 1024);
  std::vector<float> back(256);
  global.k.load(99, back.data());
  CHECK(back[255] == 1.0f);
  global.k.load(100, back.data());  // never written: zero
  CHECK(back[0] == 0.0f);
}
#endif
