// libFuzzer entry point: one executable per target (BRAINSPADE_FUZZ_TARGET names the function in fuzz_targets.h).
// Built only with -DBRAINSPADE_FUZZ=ON under clang; scripts/fuzz.sh builds and runs them.
#include <cstddef>
#include <cstdint>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);  // a refused input is not news
  torch::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return brainspade::BRAINSPADE_FUZZ_TARGET(data, size);
}
