// libFuzzer target: tokenizer_model (see fuzz_targets.hpp). Build and run: fuzz/run.sh (docs/fuzzing.md).
#include "fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return gemma3_fuzz::tokenizer_model_one_input(data, size);
}
