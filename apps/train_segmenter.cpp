// brainspade train segmenter --config FILE [--resume]: the 2D nnU-Net-style segmenter (library: training/train_segmenter.h).
#include "app.h"
#include "brainspade/core/distributed.h"
#include "brainspade/training/train_segmenter.h"

namespace cmd_train_segmenter {
brainspade::app::CommonFlags flags;
bool resume = false;
brainspade::app::Registrar reg("24-train-segmenter", [](CLI::App& root) {
  auto* cmd = brainspade::app::group(root, "train", "train one stage from a YAML config")
                  ->add_subcommand("segmenter", "2D U-Net (nnU-Net defaults) on real slices and/or generated pairs");
  brainspade::app::add_common_flags(cmd, flags);
  cmd->add_flag("--resume", resume, "continue from <out>/checkpoints/last.ckpt");
  cmd->callback([] {
    auto cfg = brainspade::app::resolve_config<brainspade::SegmenterTrainConfig>(flags);
    brainspade::start_training_run(cfg.run, brainspade::dump_config(cfg), "train_segmenter.log");
    brainspade::train_segmenter(cfg, resume);
  });
});
}  // namespace cmd_train_segmenter
