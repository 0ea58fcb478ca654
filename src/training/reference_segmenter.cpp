#include "brainspade/training/reference_segmenter.h"

#include <spdlog/spdlog.h>

#include "brainspade/training/train_segmenter.h"

namespace brainspade {

std::string train_reference_segmenter(const std::string& config_path, const std::string& real,
                                      const std::string& out_dir, const RunOptions& run) {
  ConfigSource src{config_path, {}, {}};
  src.values.emplace_back("data.sources", YAML::Node(std::vector<std::string>{real}));
  src.values.emplace_back("run.out_dir", YAML::Node(out_dir));
  src.values.emplace_back("run.device", YAML::Node(run.device));
  src.values.emplace_back("run.seed", YAML::Node(run.seed));
  auto cfg = load_config<SegmenterTrainConfig>(src);
  spdlog::info("no segmenter given: training {} on the real slices {} into {} (reused when already trained)",
               config_path, real, out_dir);
  train_segmenter(cfg, true);
  return out_dir + "/checkpoints/last.ckpt";
}

}  // namespace brainspade
