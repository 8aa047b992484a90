// gemma3/kernels/isa.hpp -- which instruction set the kernels use, chosen at run time.
//
// Every kernel exists as a plain scalar function (the readable twin every test
// holds the others to) and, where the compiler targets it, as
//   avx2          x86-64 AVX2 + FMA + F16C, compiled with
//                 __attribute__((target("avx2,fma,f16c"))) inside an otherwise portable
//                 build (no -march needed), and used only when the CPU reports all
//                 three (every x86 CPU with AVX2 has FMA and F16C: Haswell, Zen and later);
//   avx512        x86-64 AVX-512 F/BW/VL/DQ + VNNI (Ice Lake, Zen 4 and later), on top
//                 of everything avx2 has, compiled with a target attribute the same
//                 way. Its kernels read int16 activations (kernels/dot_q16.hpp); where a
//                 kernel has no avx512 twin the avx2 one is used;
//   wasm_simd128  WebAssembly SIMD128, compiled when the build uses -msimd128.
//
// Which one runs is chosen by the caller: CpuBackend (backends/cpu.hpp) holds an Isa,
// best_isa() by default, and hands it to every kernel; the kernel overloads that take
// no Isa use best_isa(). Nothing here is a process-wide switch.
// Pinned by tests/test_quant.cpp (every Isa available here against scalar) and
// tests/wasm/ (wasm_simd128 under node).
#pragma once

#include <cstdlib>
#include <stdexcept>
#include <string>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#  define GEMMA3_HAVE_X86_SIMD 1
#  include <cpuid.h>
#  include "../detail/immintrin.hpp"  // <immintrin.h>, without GCC 12's false warnings
// Functions compiled for AVX2 + FMA + F16C whatever the build's -march says.
#  define GEMMA3_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
// ... and for AVX-512 with VNNI (a superset, so avx2 helpers inline into these).
#  define GEMMA3_TARGET_AVX512 \
    __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#else
#  define GEMMA3_HAVE_X86_SIMD 0
#endif

#if defined(__wasm_simd128__)
#  define GEMMA3_HAVE_WASM_SIMD 1
#  include <wasm_simd128.h>
#else
#  define GEMMA3_HAVE_WASM_SIMD 0
#endif

namespace gemma3 {

enum class Isa { scalar, avx2, wasm_simd128, avx512 };

inline const char* isa_name(Isa i) {
  switch (i) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::wasm_simd128: return "wasm_simd128";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

// AVX2, FMA and F16C, with the OS saving the YMM registers (false off x86).
// (__builtin_cpu_supports checks the OS part; clang 14 does not know "f16c", so
// that bit is read from CPUID leaf 1, ECX bit 29.)
inline bool cpu_has_avx2() {
#if GEMMA3_HAVE_X86_SIMD
  static const bool yes = [] {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return false;
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) != 0;
  }();
  return yes;
#else
  return false;
#endif
}

// AVX-512 F, BW, VL, DQ and VNNI with the OS saving the ZMM registers, on top of avx2.
inline bool cpu_has_avx512() {
#if GEMMA3_HAVE_X86_SIMD
  static const bool yes = [] {
    __builtin_cpu_init();
    return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vnni");
  }();
  return yes;
#else
  return false;
#endif
}

// Whether kernels compiled for avx2 may run under Isa i (avx512 includes avx2).
inline bool isa_has_avx2(Isa i) { return i == Isa::avx2 || i == Isa::avx512; }

// Whether this build and this machine can run kernels for `i`.
inline bool isa_available(Isa i) {
  switch (i) {
    case Isa::scalar: return true;
    case Isa::avx2: return cpu_has_avx2();
    case Isa::wasm_simd128: return GEMMA3_HAVE_WASM_SIMD != 0;
    case Isa::avx512: return cpu_has_avx512();
  }
  return false;
}

// The fastest available.
inline Isa best_isa() {
  if (isa_available(Isa::wasm_simd128)) return Isa::wasm_simd128;
  if (isa_available(Isa::avx512)) return Isa::avx512;
  if (isa_available(Isa::avx2)) return Isa::avx2;
  return Isa::scalar;
}

}  // namespace gemma3
