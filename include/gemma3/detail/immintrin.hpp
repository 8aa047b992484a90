// gemma3/detail/immintrin.hpp -- <immintrin.h> without GCC 12's false warnings.
//
// GCC 12's AVX-512 intrinsics initialise their "undefined" operands from themselves
// (__Y = __Y), which -Wuninitialized reports once inlined (GCC bug 105593). The
// warning state is tied to the header's own lines, so the include is wrapped in a
// diagnostic push / ignore / pop here. The first include of <immintrin.h> in a
// translation unit is the one that counts (the header guard skips the others):
// kernels/isa.hpp includes this for the SIMD kernels, and tensor.hpp includes it
// before <Eigen/Core>, which includes <immintrin.h> itself when the build enables
// AVX (e.g. -march=native on an AVX-512 machine).
// Off x86 (or with a compiler that is neither GCC nor clang) it includes nothing.
// No test pins it; building the examples with -march=native shows the warning if it
// comes back.
#pragma once

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#  if defined(__GNUC__) && !defined(__clang__)
#    pragma GCC diagnostic push
#    pragma GCC diagnostic ignored "-Wuninitialized"
#    pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#  endif
#  include <immintrin.h>
#  if defined(__GNUC__) && !defined(__clang__)
#    pragma GCC diagnostic pop
#  endif
#endif
