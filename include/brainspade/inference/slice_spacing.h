#pragma once
/// The voxel spacing a stage trained on slices stores in its checkpoints (`slice_spacing`, written since geometry was
/// recorded; older checkpoints: 1 mm, what `slice` produced then).
#include <array>
#include <string>

#include "brainspade/core/checkpoint.h"
#include "brainspade/core/error.h"

namespace brainspade {

inline std::array<double, 3> read_slice_spacing(const Checkpoint& ck, const std::string& path) {
  std::array<double, 3> spacing{1.0, 1.0, 1.0};
  if (!ck.has("slice_spacing")) return spacing;
  auto sp = ck.tensor("slice_spacing").to(torch::kDouble);
  BRAINSPADE_CHECK_INPUT(sp.numel() == 3 && (sp > 0).all().item<bool>(), path,
                         ": 'slice_spacing' is not 3 positive numbers");
  for (int i = 0; i < 3; ++i) spacing[i] = sp[i].item<double>();
  return spacing;
}

}  // namespace brainspade
