#pragma once
/// `brainspade import-official`: weights saved by the authors' PyTorch code (virginiafdez/brainSPADE_RELEASE) → a
/// brainspade checkpoint, so a lab that trained with their code samples with brainspade. The architecture comes from
/// the options they trained with (`official_config`: their VAE/LDM YAML or SPADE's opt.txt, translated by
/// training/official_config.h) and/or a brainspade stage config (e.g. configs/paper/vae.yaml); every entry of their
/// state dict must land on a parameter of the same shape and every parameter must be filled (names:
/// models/official_names.h). Imported: the label VAE (their final_model.pth / best_model.pth), the LDM (their DDPM
/// wrapper's final_model.pth: `model.diffusion_model.*` is the U-Net, its schedule buffers are checked against the
/// config's scheduler), the SPADE image generator (latest_net_G.pth and latest_net_E.pth, optionally _D) and the
/// modality/dataset classifier (their Modisc's N_net_MD.pth; every batch-norm statistic must be filled too).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace brainspade {

struct ImportOfficialJob {
  std::string network;   ///< vae | ldm | spade | classifier
  /// their state dict (.pth, as torch.save writes it): the VAE, the LDM, SPADE's generator or the classifier
  std::string weights;
  std::string vae_checkpoint;         ///< ldm: the brainspade VAE checkpoint (import-official --network vae) it decodes with
  std::array<int64_t, 2> image_size{192, 256};  ///< ldm: label-map size their LDM was trained at (latent = / VAE factor)
  std::string encoder_weights;        ///< spade: their style encoder's state dict (latest_net_E.pth)
  std::string discriminator_weights;  ///< spade, optional: their discriminator's (latest_net_D.pth), for fine-tuning
  /// brainspade config of the stage: `train vae` (its `vae` section), `train ldm`, `train spade` (generator, encoder,
  /// discriminator, data.downsample) or `train classifier` (its `classifier` section: arch densenet121). With
  /// official_config it is optional and gives the rest (data, training); a network key it sets must agree with theirs.
  std::string config;
  /// vae, ldm: their YAML config (conditioned_ldm/configs/stage1/*.yaml, configs/diffusion/*.yaml); spade: the opt.txt
  /// of their checkpoints folder. Translated into the network sections; what brainspade cannot build is refused.
  std::string official_config;
  std::string out;       ///< checkpoint to write (atomically; parent folders created)
  /// PV channel names in order (empty: the slice config's default background, csf, gm, wm, deep_gm, brainstem)
  std::vector<std::string> channel_names;
  /// spade: the style classes their model was trained on; classifier: its modality classes (their opt.sequences).
  /// Empty: spade takes their `sequences` from official_config; otherwise T1, FLAIR.
  std::vector<std::string> modality_names;
  /// classifier: its dataset classes in their order (their opt.datasets); required
  std::vector<std::string> dataset_names;
  std::array<double, 3> spacing{1.0, 1.0, 1.0};             ///< spade: voxel spacing of their training slices, mm
};

struct ImportOfficialSummary {
  int64_t entries = 0;  ///< state-dict entries mapped
};

/// Writes `out` and, beside it, the resolved stage config (`out` + ".yaml"). InputError naming the
/// file, the key and the shapes (or their option and its value) for anything that does not fit; nothing is written then.
ImportOfficialSummary import_official(const ImportOfficialJob& job);

}  // namespace brainspade
