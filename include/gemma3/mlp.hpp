// gemma3/mlp.hpp -- the GeGLU feed-forward block.
//
//   MLP(x) = down_proj( gelu_tanh(gate_proj(x)) * up_proj(x) )
//   gelu_tanh(u) = 0.5 u (1 + tanh( sqrt(2/pi) (u + 0.044715 u^3) ))
//
//   gate_proj, up_proj: [intermediate_size, hidden_size]; down_proj: [hidden_size, intermediate_size]
// The tanh approximation ("gelu_pytorch_tanh") is what every Gemma 3 config names;
// the exact erf GELU is the common wrong choice.
// gelu_tanh and the fused gelu_tanh(gate) * up kernel (scalar twin + AVX2 / WASM
// SIMD128 twins, split over the thread pool) live in kernels/gelu.hpp.
//
// Mirrors Gemma3MLP. Pinned by tests/test_components.cpp.
#pragma once

#include "kernels/gelu.hpp"
#include "kernels/matmul.hpp"
#include "tensor.hpp"

namespace gemma3 {

struct Gemma3MLPWeights {
  Weight gate_proj;  // [intermediate_size, hidden_size]
  Weight up_proj;    // [intermediate_size, hidden_size]
  Weight down_proj;  // [hidden_size, intermediate_size]
};

// out [T, hidden] = MLP(x [T, hidden])
inline void gemma3_mlp(const Gemma3MLPWeights& w, const Matrix& x, Matrix& out) {
  Matrix gate, up;       // [T, intermediate_size]
  linear_many(x, {{&w.gate_proj, &gate}, {&w.up_proj, &up}});  // = linear(gate_proj, x, gate); linear(up_proj, x, up)
  gelu_tanh_mul(gate.data(), up.data(), gate.size());  // gate = gelu_tanh(gate) * up
  linear(w.down_proj, gate, out);
}

}  // namespace gemma3
