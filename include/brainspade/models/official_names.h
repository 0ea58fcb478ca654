#pragma once
/// State-dict names of the authors' networks (virginiafdez/brainSPADE_RELEASE) in brainspade's modules: what an import
/// of their weights maps, and what the parity tests against their modules check (tests/test_label_nets.cpp,
/// tests/test_spade_nets.cpp; goldens from scripts/parity/make_golden_official.py).
///
/// * SPADE generator, style encoder, multiscale discriminator: the same names (identity).
/// * LDM U-Net (condldm_models/unet_v2_conditioned.py UNetModel): the same names except inside the residual blocks,
///   where theirs are positions in Sequentials: in_layers.0 → norm1, in_layers.2 → conv1, emb_layers.1 → temb_proj,
///   out_layers.0 → norm2, out_layers.3 → conv2, skip_connection → nin_shortcut.
#include <string>

namespace brainspade {

/// The brainspade name of the authors' U-Net state-dict entry `key`.
std::string official_unet_name(const std::string& key);

}  // namespace brainspade
