#pragma once
/// `brainspade import-official`: weights saved by the authors' PyTorch code (virginiafdez/brainSPADE_RELEASE) → a
/// brainspade checkpoint, so a lab that trained with their code samples with brainspade. The architecture comes from a
/// brainspade stage config (e.g. configs/paper/vae.yaml, which builds the authors' network); every entry of their
/// state dict must land on a parameter of the same shape and every parameter must be filled (names:
/// models/official_names.h). Imported so far: the label VAE (their final_model.pth / best_model.pth).
#include <string>
#include <vector>

namespace brainspade {

struct ImportOfficialJob {
  std::string network;   ///< vae
  std::string weights;   ///< their state dict (.pth, as torch.save writes it)
  std::string config;    ///< brainspade config of the stage (its `vae` section gives the architecture)
  std::string out;       ///< checkpoint to write (atomically; parent folders created)
  /// PV channel names in order (empty: the slice config's default background, csf, gm, wm, deep_gm, brainstem)
  std::vector<std::string> channel_names;
};

struct ImportOfficialSummary {
  int64_t entries = 0;  ///< state-dict entries mapped
};

/// InputError naming the file, the key and the shapes for anything that does not fit; nothing is written then.
ImportOfficialSummary import_official(const ImportOfficialJob& job);

}  // namespace brainspade
