// Catch2 shim: test files write `#include "catch.hpp"` and get the same macros
// (TEST_CASE, SECTION, REQUIRE, Approx, matchers such as WithinAbs/WithinRel,
// GENERATE) from Catch2 v2 (single header, Debian 12's 2.13.10) or v3 (split
// headers). tests/CMakeLists.txt defines GEMMA3_CATCH2_MAJOR to the version it
// linked; without it, __has_include decides.
#pragma once

#if defined(GEMMA3_CATCH2_MAJOR)
#  define GEMMA3_CATCH2_V3 (GEMMA3_CATCH2_MAJOR >= 3)
#elif defined(__has_include)
#  if __has_include(<catch2/catch_test_macros.hpp>)
#    define GEMMA3_CATCH2_V3 1
#  else
#    define GEMMA3_CATCH2_V3 0
#  endif
#else
#  define GEMMA3_CATCH2_V3 0
#endif

#if GEMMA3_CATCH2_V3
#  include <catch2/catch_approx.hpp>
#  include <catch2/catch_test_macros.hpp>
#  include <catch2/generators/catch_generators_all.hpp>
#  include <catch2/matchers/catch_matchers_all.hpp>
using Catch::Approx;
#else
#  include <catch2/catch.hpp>
#endif
