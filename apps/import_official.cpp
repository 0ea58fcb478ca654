// brainspade import-official --network vae|ldm|spade|classifier --weights FILE.pth [--encoder-weights E.pth]
//   [--official-config THEIRS] [--config STAGE.yaml] --out FILE.ckpt [--channels a,b,..] [--modalities a,b --datasets c,d]:
// weights saved by the authors' PyTorch code → a brainspade checkpoint (library: training/import_official.h).
#include "app.h"
#include "brainspade/training/import_official.h"

namespace cmd_import_official {
brainspade::ImportOfficialJob job;
brainspade::app::Registrar reg("95-import-official", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("import-official", "the authors' PyTorch weights (.pth) -> a brainspade checkpoint "
                                                     "(networks: vae, ldm, spade, classifier)");
  cmd->add_option("--network", job.network, "vae | ldm | spade | classifier")->required();
  cmd->add_option("--weights", job.weights,
                  "their state dict: the VAE's final_model.pth, SPADE's latest_net_G.pth, the classifier's "
                  "N_net_MD.pth")
      ->required();
  cmd->add_option("--vae", job.vae_checkpoint, "ldm: the brainspade VAE checkpoint it decodes with (import it first)");
  cmd->add_option("--image-size", job.image_size, "ldm: label-map size their LDM was trained at (default 192 256)");
  cmd->add_option("--encoder-weights", job.encoder_weights, "spade: their style encoder's latest_net_E.pth");
  cmd->add_option("--discriminator-weights", job.discriminator_weights,
                  "spade, optional: their latest_net_D.pth (kept for fine-tuning)");
  cmd->add_option("--modalities", job.modality_names,
                  "spade: style classes; classifier: modality classes; in their order (default: spade their "
                  "sequences from --official-config, else T1,FLAIR)")
      ->delimiter(',');
  cmd->add_option("--datasets", job.dataset_names, "classifier: dataset classes in their order (their opt.datasets)")
      ->delimiter(',');
  cmd->add_option("--spacing", job.spacing, "spade: voxel spacing of their training slices in mm (default 1 1 1)");
  cmd->add_option("--official-config", job.official_config,
                  "vae, ldm: their YAML config (configs/stage1/*.yaml, configs/diffusion/*.yaml); spade: the opt.txt of "
                  "their checkpoints folder. Sets the network sections; --config becomes optional");
  cmd->add_option("--config", job.config,
                  "brainspade stage config (data, training; its network keys must match theirs); required without "
                  "--official-config and for the classifier");
  cmd->add_option("--out", job.out, "checkpoint to write")->required();
  cmd->add_option("--channels", job.channel_names, "PV channel names in order (default: the six healthy tissues)")
      ->delimiter(',');
  cmd->callback([] { brainspade::import_official(job); });
});
}  // namespace cmd_import_official
