#pragma once
/// `brainspade import-official`: weights saved by the authors' PyTorch code (virginiafdez/brainSPADE_RELEASE) → a
/// brainspade checkpoint, so a lab that trained with their code samples with brainspade. The architecture comes from a
/// brainspade stage config (e.g. configs/paper/vae.yaml, which builds the authors' network); every entry of their
/// state dict must land on a parameter of the same shape and every parameter must be filled (names:
/// models/official_names.h). Imported so far: the label VAE (their final_model.pth / best_model.pth) and the SPADE image
/// generator (their latest_net_G.pth and latest_net_E.pth, optionally latest_net_D.pth).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace brainspade {

struct ImportOfficialJob {
  std::string network;   ///< vae | spade
  std::string weights;   ///< their state dict (.pth, as torch.save writes it): the VAE, or SPADE's generator
  std::string encoder_weights;        ///< spade: their style encoder's state dict (latest_net_E.pth)
  std::string discriminator_weights;  ///< spade, optional: their discriminator's (latest_net_D.pth), for fine-tuning
  /// brainspade config of the stage: `train vae` (its `vae` section) or `train spade` (generator, encoder,
  /// discriminator, data.downsample)
  std::string config;
  std::string out;       ///< checkpoint to write (atomically; parent folders created)
  /// PV channel names in order (empty: the slice config's default background, csf, gm, wm, deep_gm, brainstem)
  std::vector<std::string> channel_names;
  std::vector<std::string> modality_names{"T1", "FLAIR"};  ///< spade: the style classes their model was trained on
  std::array<double, 3> spacing{1.0, 1.0, 1.0};             ///< spade: voxel spacing of their training slices, mm
};

struct ImportOfficialSummary {
  int64_t entries = 0;  ///< state-dict entries mapped
};

/// InputError naming the file, the key and the shapes for anything that does not fit; nothing is written then.
ImportOfficialSummary import_official(const ImportOfficialJob& job);

}  // namespace brainspade
