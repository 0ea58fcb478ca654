// brainspade train classifier|spade --config FILE [--resume]: the image generator's stages (training/train_spade.h).
#include "app.h"
#include "brainspade/core/distributed.h"
#include "brainspade/training/train_spade.h"

namespace {
brainspade::app::CommonFlags clf_flags, spade_flags;
bool clf_resume = false, spade_resume = false;
brainspade::app::Registrar reg("22-train-spade", [](CLI::App& root) {
  auto* train = brainspade::app::group(root, "train", "train one stage from a YAML config");
  auto* clf = train->add_subcommand("classifier", "modality/dataset classifier D_mod-dat on real slices (frozen later)");
  brainspade::app::add_common_flags(clf, clf_flags);
  clf->add_flag("--resume", clf_resume, "continue from <out>/checkpoints/last.ckpt");
  clf->callback([] {
    auto cfg = brainspade::app::resolve_config<brainspade::ClassifierTrainConfig>(clf_flags);
    brainspade::start_training_run(cfg.run, brainspade::dump_config(cfg), "train_classifier.log");
    brainspade::train_classifier(cfg, clf_resume);
  });
  auto* spade = train->add_subcommand("spade", "SPADE VAE-GAN image generator (label map + style image -> MRI slice)");
  brainspade::app::add_common_flags(spade, spade_flags);
  spade->add_flag("--resume", spade_resume, "continue from <out>/checkpoints/last.ckpt");
  spade->callback([] {
    auto cfg = brainspade::app::resolve_config<brainspade::SPADETrainConfig>(spade_flags);
    brainspade::start_training_run(cfg.run, brainspade::dump_config(cfg), "train_spade.log");
    brainspade::train_spade(cfg, spade_resume);
  });
});
}  // namespace
