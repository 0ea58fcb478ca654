#pragma once
// The tiny VAE, LDM and SPADE configs the pipeline tests train on phantom slices (seconds on a CPU).
#include <cstdint>
#include <string>

#include "brainspade/training/train_ldm.h"
#include "brainspade/training/train_spade.h"
#include "brainspade/training/train_vae.h"

namespace brainspade::testutil {

/// A 2-level VAE (8, 16 channels) on 6-channel maps, batch 4, no validation.
VAETrainConfig tiny_vae(const std::string& dataset, const std::string& out, int64_t steps);
/// A 2-level hybrid-conditioned U-Net (16 channels) on that VAE's latents, EMA 0.9, batch 4, no validation.
LDMTrainConfig tiny_ldm(const std::string& dataset, const std::string& vae, const std::string& out, int64_t steps);

/// A SPADE of 4 generator filters at 32x48 on 6-channel maps (instance norm, "less" upsampling), batch 4, a quarter
/// of the slices for validation; `clf` empty = no modality/dataset loss.
SPADETrainConfig tiny_spade(const std::string& dataset, const std::string& clf, const std::string& out, int64_t steps);

}  // namespace brainspade::testutil
