// gemma3/mlp.hpp -- the GeGLU feed-forward block.
//
//   MLP(x) = down_proj( gelu_tanh(gate_proj(x)) * up_proj(x) )
//   gelu_tanh(u) = 0.5 u (1 + tanh( sqrt(2/pi) (u + 0.044715 u^3) ))
//
//   gate_proj, up_proj: [intermediate_size, hidden_size]; down_proj: [hidden_size, intermediate_size]
// The tanh approximation ("gelu_pytorch_tanh") is what every Gemma 3 config names;
// the exact erf GELU is the common wrong choice.
// The projections and the elementwise gelu_tanh(gate) * up run on the backend
// (backend.hpp): plainly in backends/reference.hpp, with the SIMD twins of
// kernels/gelu.hpp in backends/cpu.hpp.
//
// Mirrors Gemma3MLP. Pinned by tests/test_components.cpp.
#pragma once

#include "backend.hpp"
#include "weight.hpp"
#include "tensor.hpp"

namespace gemma3 {

struct Gemma3MLPWeights {
  Weight gate_proj;  // [intermediate_size, hidden_size]
  Weight up_proj;    // [intermediate_size, hidden_size]
  Weight down_proj;  // [hidden_size, intermediate_size]
};

// out [T, hidden] = MLP(x [T, hidden])
inline void gemma3_mlp(const Backend& backend, const Gemma3MLPWeights& w, const Activations& x, Activations& out) {
  Activations gate, up;  // [T, intermediate_size]
  backend.linear_many(x, {{&w.gate_proj, &gate}, {&w.up_proj, &up}});
  backend.gelu_tanh_mul(gate, up);  // gate = gelu_tanh(gate) * up
  backend.linear(w.down_proj, gate, out);
}

}  // namespace gemma3
