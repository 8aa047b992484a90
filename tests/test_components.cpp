// Single components against transformers' own modules run on random inputs
// (tests/fixtures/components, written by tests/reference/make_fixtures.py), and,
// for each Gemma-specific rule, the common wrong way shown failing the reference.
// Model-level wrong ways (the 168 scale, the window edge, local vs global RoPE
// inside a whole model) are in tests/test_gemma_rules.cpp.
#include <cmath>

#include "catch.hpp"
#include "fixture_helpers.hpp"

#include "gemma3/backends/cpu.hpp"
#include "gemma3/backends/reference.hpp"
#include "gemma3/embedding.hpp"
#include "gemma3/mlp.hpp"
#include "gemma3/rms_norm.hpp"
#include "gemma3/rope.hpp"

using gemma3::Matrix;

namespace {
constexpr double kTol = 1e-4;
const gemma3::SafetensorsFile& components() {
  static const gemma3::SafetensorsFile f(fixtures::path("components/components.safetensors"));
  return f;
}
gemma3::Weight f32_weight(const Matrix& m) {
  gemma3::Weight w;
  w.dtype = gemma3::DType::F32;
  w.data = m.data();
  w.rows = m.rows();
  w.cols = m.cols();
  return w;
}
}  // namespace

TEST_CASE("RMSNorm scales by (1 + w), in float32, like Gemma3RMSNorm", "[components][rules]") {
  const Matrix x = fixtures::matrix(components(), "rms_norm.x");
  const gemma3::Vector w = fixtures::matrix(components(), "rms_norm.weight").row(0).transpose();
  const Matrix ref = fixtures::matrix(components(), "rms_norm.y");

  Matrix ours = x;
  gemma3::rms_norm_rows(ours, w, 1e-6f);
  const fixtures::Diff d = fixtures::compare(ours, ref);
  INFO("(1 + w): " << d.str());
  CHECK(d.rel <= kTol);

  // The Llama way, x_hat * w, is wrong for Gemma.
  Matrix llama = x;
  const gemma3::Vector w_minus_one = (w.array() - 1.0f).matrix();  // so that (1 + w') == w
  gemma3::rms_norm_rows(llama, w_minus_one, 1e-6f);
  const fixtures::Diff wrong = fixtures::compare(llama, ref);
  INFO("x_hat * w: " << wrong.str());
  CHECK(wrong.rel > 100 * kTol);
}

TEST_CASE("the embedding scale is float32 sqrt(hidden_size), and bf16-rounded for a bf16 model", "[components][rules]") {
  for (int H : {640, 1152, 2560, 3840, 5376}) {
    const std::string h = std::to_string(H);
    const float hf_f32 = fixtures::matrix(components(), "embed_scale." + h)(0, 0);
    const float hf_bf16 = fixtures::matrix(components(), "embed_scale_bf16." + h)(0, 0);
    const float hf_f16 = fixtures::matrix(components(), "embed_scale_f16." + h)(0, 0);
    INFO("hidden_size " << H);
    CHECK(gemma3::embed_scale(H) == hf_f32);
    CHECK(gemma3::embed_scale(H, gemma3::DType::BF16) == hf_bf16);
    CHECK(gemma3::embed_scale(H, gemma3::DType::F16) == hf_f16);
    // The rounding is real: the bf16 value is not the float32 one.
    CHECK(hf_bf16 != hf_f32);
  }
  CHECK(gemma3::embed_scale(1152, gemma3::DType::BF16) == 34.0f);
  CHECK(gemma3::embed_scale(5376, gemma3::DType::BF16) == 73.5f);
}

TEST_CASE("RoPE: half-split pairs, base 10k on local layers, 1M on global, scaling only global", "[components][rules]") {
  const gemma3::SafetensorsFile& f = components();
  const gemma3::TensorView& xv = f.at("rope.x");  // [T, heads, D]
  const int T = int(xv.shape[0]), heads = int(xv.shape[1]), D = int(xv.shape[2]);
  const Matrix x = fixtures::matrix(f, "rope.x");  // [T, heads * D]
  const std::vector<int> positions = fixtures::ids(f, "rope.positions");
  REQUIRE(*std::max_element(positions.begin(), positions.end()) >= 131000);

  auto rotate = [&](const gemma3::RotaryEmbedding& rope) {
    Matrix y = x;
    for (int t = 0; t < T; ++t) rope.rotate(y.row(t).data(), heads, positions[std::size_t(t)]);
    return y;
  };
  const gemma3::RopeParameters local{"default", 10000.0, 1.0};
  const gemma3::RopeParameters global{"default", 1000000.0, 1.0};
  const gemma3::RopeParameters global_scaled{"linear", 1000000.0, 8.0};

  SECTION("inv_freq equals HF's float32 values exactly") {
    const Matrix l = fixtures::matrix(f, "rope.local_inv_freq");
    CHECK(gemma3::RotaryEmbedding(D, local).inv_freq() == std::vector<float>(l.data(), l.data() + D / 2));
    const Matrix g = fixtures::matrix(f, "rope.global_scaled_inv_freq");
    CHECK(gemma3::RotaryEmbedding(D, global_scaled).inv_freq() == std::vector<float>(g.data(), g.data() + D / 2));
  }
  SECTION("outputs match, and the common wrong ways do not") {
    const Matrix local_ref = fixtures::matrix(f, "rope.local_y");
    const Matrix global_ref = fixtures::matrix(f, "rope.global_y");
    const Matrix scaled_ref = fixtures::matrix(f, "rope.global_scaled_y");
    const fixtures::Diff dl = fixtures::compare(rotate(gemma3::RotaryEmbedding(D, local)), local_ref);
    const fixtures::Diff dg = fixtures::compare(rotate(gemma3::RotaryEmbedding(D, global)), global_ref);
    const fixtures::Diff ds = fixtures::compare(rotate(gemma3::RotaryEmbedding(D, global_scaled)), scaled_ref);
    INFO("local " << dl.str() << "\nglobal " << dg.str() << "\nglobal x8 " << ds.str());
    CHECK(dl.rel <= kTol);
    CHECK(dg.rel <= kTol);
    CHECK(ds.rel <= kTol);

    // Wrong: the global base on a local layer, or the x8 scaling applied to local layers too.
    CHECK(fixtures::compare(rotate(gemma3::RotaryEmbedding(D, global)), local_ref).rel > 100 * kTol);
    const gemma3::RopeParameters local_scaled{"linear", 10000.0, 8.0};
    CHECK(fixtures::compare(rotate(gemma3::RotaryEmbedding(D, local_scaled)), local_ref).rel > 100 * kTol);
    // Wrong: forgetting the scaling on global layers.
    CHECK(fixtures::compare(rotate(gemma3::RotaryEmbedding(D, global)), scaled_ref).rel > 100 * kTol);

    // Wrong: interleaved pairs (2i, 2i+1) instead of (i, i + D/2).
    Matrix interleaved = x;
    const gemma3::RotaryEmbedding rope(D, local);
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < heads; ++h)
        for (int i = 0; i < D / 2; ++i) {
          float* v = interleaved.row(t).data() + h * D;
          const float angle = float(positions[std::size_t(t)]) * rope.inv_freq()[std::size_t(i)];
          const float a = v[2 * i], b = v[2 * i + 1];
          v[2 * i] = a * std::cos(angle) - b * std::sin(angle);
          v[2 * i + 1] = b * std::cos(angle) + a * std::sin(angle);
        }
    CHECK(fixtures::compare(interleaved, local_ref).rel > 100 * kTol);
  }
}

TEST_CASE("GeGLU MLP uses the tanh GELU, like Gemma3MLP", "[components][rules]") {
  const Matrix x = fixtures::matrix(components(), "mlp.x");
  const Matrix gate = fixtures::matrix(components(), "mlp.gate_proj");
  const Matrix up = fixtures::matrix(components(), "mlp.up_proj");
  const Matrix down = fixtures::matrix(components(), "mlp.down_proj");
  const Matrix ref = fixtures::matrix(components(), "mlp.y");
  const gemma3::Gemma3MLPWeights w{f32_weight(gate), f32_weight(up), f32_weight(down)};

  const gemma3::ReferenceBackend reference;
  const gemma3::CpuBackend cpu;
  for (const gemma3::Backend* backend : {static_cast<const gemma3::Backend*>(&reference),
                                         static_cast<const gemma3::Backend*>(&cpu)}) {
    INFO(backend->name());
    gemma3::Activations out;
    gemma3::gemma3_mlp(*backend, w, gemma3::Activations(x), out);
    const Matrix& ours = out.host();
    const fixtures::Diff d = fixtures::compare(ours, ref);
    INFO(d.str());
    CHECK(d.rel <= kTol);

    // One token (matvec on the CPU backend) gives the same as the batched path.
    gemma3::Activations one;
    gemma3::gemma3_mlp(*backend, w, gemma3::Activations(x.topRows(1)), one);
    CHECK(fixtures::compare(one.host(), ref.topRows(1)).rel <= kTol);
  }

  // Wrong: the exact erf GELU.
  const Matrix g = x * gate.transpose();
  const Matrix u = x * up.transpose();
  const Matrix erf_gelu = g.unaryExpr([](float v) { return 0.5f * v * (1.0f + std::erf(v / std::sqrt(2.0f))); });
  const Matrix wrong = erf_gelu.cwiseProduct(u) * down.transpose();
  const fixtures::Diff dw = fixtures::compare(wrong, ref);
  INFO("erf GELU: " << dw.str());
  CHECK(dw.rel > kTol);
}
