// brainspade train classifier --config FILE [--resume]: the modality/dataset classifier that SPADE's loss and the
// sampler's rejection step read (training/train_classifier.h).
#include "app.h"
#include "brainspade/core/distributed.h"
#include "brainspade/training/train_classifier.h"

namespace cmd_train_classifier {
brainspade::app::CommonFlags flags;
bool resume = false;
brainspade::app::Registrar reg("22-train-classifier", [](CLI::App& root) {
  auto* cmd = brainspade::app::group(root, "train", "train one stage from a YAML config")
                  ->add_subcommand("classifier", "modality/dataset classifier D_mod-dat on real slices (frozen later)");
  brainspade::app::add_common_flags(cmd, flags);
  cmd->add_flag("--resume", resume, "continue from <out>/checkpoints/last.ckpt");
  cmd->callback([] {
    auto cfg = brainspade::app::resolve_config<brainspade::ClassifierTrainConfig>(flags);
    brainspade::start_training_run(cfg.run, brainspade::dump_config(cfg), "train_classifier.log");
    brainspade::train_classifier(cfg, resume);
  });
});
}  // namespace cmd_train_classifier
