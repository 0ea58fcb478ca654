#pragma once
/// State-dict names of the authors' networks (virginiafdez/brainSPADE_RELEASE) in brainspade's modules: what an import
/// of their weights maps, and what the parity tests against their modules check (tests/test_label_nets.cpp,
/// tests/test_spade_nets.cpp, tests/test_modality_classifier.cpp; goldens from scripts/parity/make_golden_official.py).
///
/// * SPADE generator, style encoder, multiscale discriminator: the same names (identity).
/// * LDM U-Net (condldm_models/unet_v2_conditioned.py UNetModel): the same names except inside the residual blocks,
///   where theirs are positions in Sequentials: in_layers.0 → norm1, in_layers.2 → conv1, emb_layers.1 → temb_proj,
///   out_layers.0 → norm2, out_layers.3 → conv2, skip_connection → nin_shortcut.
/// * Label VAE (condldm_models/ae_kl_v1.py AutoencoderKL): their encoder and decoder are flat `blocks` lists in
///   execution order; block N is found by position: encoder conv_in, per level its res blocks then (all but the last
///   level) its downsampling, mid block_1, attn_1, block_2, norm_out, conv_out; decoder conv_in, the mid blocks, per
///   level from the deepest its res blocks then (all but level 0) its upsampling, norm_out, conv_out.
///   quant_conv_mu, quant_conv_log_sigma and post_quant_conv keep their names.
/// * Modality/dataset classifier (image_generator/models/modality_discrimination/modisc_v2.py Modisc): their MONAI
///   DenseNet-121 sits under `base_model.` (dropped: features.*, class_layers.out.* as brainspade's); their dataset
///   head's Linear `ds_layer_2` is brainspade's dataset_layers.out (their ds_layer_1, ReLU and pooling, has no
///   weights). Batch-norm buffers (running_mean, running_var, num_batches_tracked) keep their names.
#include <string>

#include "brainspade/models/autoencoder_kl.h"

namespace brainspade {

/// The brainspade name of the authors' U-Net state-dict entry `key`.
std::string official_unet_name(const std::string& key);

/// The brainspade name of the authors' classifier (Modisc) state-dict entry `key`; other keys come back unchanged.
std::string official_classifier_name(const std::string& key);

/// The brainspade name of the authors' VAE state-dict entry `key` for a VAE of `options`; InputError naming the key
/// when it has no counterpart (e.g. a block beyond the architecture, or their per-level attention, which brainspade
/// does not build).
std::string official_vae_name(const std::string& key, const AutoencoderKLOptions& options);

}  // namespace brainspade
