// brainspade train spade --config FILE [--resume]: the SPADE VAE-GAN image generator (training/train_spade.h).
#include "app.h"
#include "brainspade/core/distributed.h"
#include "brainspade/training/train_spade.h"

namespace cmd_train_spade {
brainspade::app::CommonFlags flags;
bool resume = false;
brainspade::app::Registrar reg("23-train-spade", [](CLI::App& root) {
  auto* cmd = brainspade::app::group(root, "train", "train one stage from a YAML config")
                  ->add_subcommand("spade", "SPADE VAE-GAN image generator (label map + style image -> MRI slice)");
  brainspade::app::add_common_flags(cmd, flags);
  cmd->add_flag("--resume", resume, "continue from <out>/checkpoints/last.ckpt");
  cmd->callback([] {
    auto cfg = brainspade::app::resolve_config<brainspade::SPADETrainConfig>(flags);
    brainspade::start_training_run(cfg.run, brainspade::dump_config(cfg), "train_spade.log");
    brainspade::train_spade(cfg, resume);
  });
});
}  // namespace cmd_train_spade
