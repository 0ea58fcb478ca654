// brainspade import-official --network vae --weights FILE.pth --config STAGE.yaml --out FILE.ckpt [--channels a,b,..]:
// weights saved by the authors' PyTorch code → a brainspade checkpoint (library: inference/import_official.h).
#include "app.h"
#include "brainspade/inference/import_official.h"

namespace {
brainspade::ImportOfficialJob job;
brainspade::app::Registrar reg("95-import-official", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("import-official",
                                  "the authors' PyTorch weights (.pth) -> a brainspade checkpoint (networks: vae)");
  cmd->add_option("--network", job.network, "vae")->required();
  cmd->add_option("--weights", job.weights, "their state dict, e.g. final_model.pth")->required();
  cmd->add_option("--config", job.config, "brainspade stage config whose network section matches theirs")->required();
  cmd->add_option("--out", job.out, "checkpoint to write")->required();
  cmd->add_option("--channels", job.channel_names, "PV channel names in order (default: the six healthy tissues)")
      ->delimiter(',');
  cmd->callback([] { brainspade::import_official(job); });
});
}  // namespace
