#pragma once
/// The segmenter `brainspade quality` measures segmentability with, when the user gives none: a segmenter config
/// (configs/tiny/segmenter.yaml by default) trained on the real slices being compared with.
#include <string>

#include "brainspade/core/config.h"

namespace brainspade {

/// Trains `config_path` on the slice dataset `real` into `out_dir` (device, seed and threads from `run`; resumed, so a
/// second call reuses a finished run) and returns its last checkpoint.
std::string train_reference_segmenter(const std::string& config_path, const std::string& real,
                                      const std::string& out_dir, const RunOptions& run);

}  // namespace brainspade
