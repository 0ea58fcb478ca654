#pragma once
/// Stage 1 of the label generator: the spatial VAE on partial-volume label maps (paper §2.2, "Label Generator";
/// losses and optimiser settings from the authors' `train_ae_kl_pv_v1.py`, see docs/label-generator.md).
#include <cmath>
#include <string>

#include "brainspade/core/config.h"
#include "brainspade/data/augment.h"
#include "brainspade/data/data_source.h"
#include "brainspade/inference/label_generator.h"
#include "brainspade/data/slice_dataset.h"
#include "brainspade/models/autoencoder_kl.h"
#include "brainspade/models/patch_discriminator.h"
#include "brainspade/training/common.h"

namespace brainspade {

/// Loss weights of the VAE (defaults: the authors' values).
struct VAELossOptions {
  /// Reconstruction term: "l1" (mean |x̂ − x| on the PV maps; the authors' default) or "gdice" (the authors'
  /// --loss_fct gdice: generalised Dice + Dice on softmax(x̂) + 0.1·L1 on the raw output; needs vae.output: softmax).
  std::string reconstruction = "l1";
  double l1_weight = 1.0;  ///< weight of the reconstruction term (either kind)
  /// gdice: weight of a tissue absent from a sample in the generalised Dice: "max" (MONAI's and the authors': the
  /// sample's largest weight) or "zero" (left out; the soft Dice term still penalises predicting it)
  std::string gdice_absent = "max";
  /// gdice: weight of a soft-target cross-entropy on the raw output (the logits) added to the reconstruction term;
  /// 0 = off (the authors' loss). The Dice terms' gradient through the softmax vanishes for a tissue whose
  /// probability they have driven to ~0 (the soft Dice's absent-tissue term does that on every slice without it);
  /// CE's does not. docs/label-generator.md, "The lesion VAE's lost tissues".
  double ce_weight = 0.0;
  /// per-channel weight of the L1 term, rescaled to mean 1 (empty = uniform, the authors' loss). Thin tissues that the
  /// reconstruction shrinks (sulcal CSF) can be weighted up: docs/label-generator.md.
  std::vector<double> channel_weights;
  double kl_weight = 1e-6;
  double adv_weight = 0.005;               ///< generator LSGAN weight; the discriminator loss uses the same weight
  std::string adversarial = "least_squares";  ///< least_squares | hinge | bce
  int64_t adv_start_step = 0;              ///< adversarial terms start at this step (authors: 0)
  double perceptual_weight = 0.002;        ///< used when perceptual.network != none
  std::string perceptual_network = "none"; ///< none | squeeze | vgg16 (weights from perceptual_weights)
  std::string perceptual_weights;          ///< file written by scripts/export_perceptual_weights.py
  void visit(ConfigVisitor& v);
};

struct VAEOptimOptions {
  double lr = 5e-5;        ///< generator (VAE) learning rate
  double lr_d = 1e-4;      ///< discriminator learning rate
  double lr_decay = 0.999995;  ///< exponential decay per step (authors' ExponentialLR)
  /// EMA of the VAE's weights, used for validation and by every later stage (load_vae); 0 = off (authors: off).
  /// At the tiny config's learning rate the argmax of thin tissues (CSF, deep GM) flips between 0 and ~1x their real
  /// volume from one validation to the next; the average smooths the flicker but did not keep a seed that never
  /// learns CSF from losing it (measured over 3 seeds: docs/quality.md, "Label-side levers").
  double ema_decay = 0.0;
  void visit(ConfigVisitor& v);
};

/// Root of `brainspade train vae --config`.
struct VAETrainConfig {
  RunOptions run;
  DataSource data;
  AutoencoderKLOptions vae;
  PatchDiscriminatorOptions discriminator;
  VAELossOptions loss;
  VAEOptimOptions optim;
  LabelAugmentOptions augment;  ///< spatial augmentation of each training batch (off by default)
  TrainLoopOptions train;
  void visit(ConfigVisitor& v);
};

/// Reconstruction quality on held-out slices: Dice of the argmax per channel, and L1.
struct VAEValidation {
  std::vector<double> dice;  ///< per channel (NaN when a channel is absent from reference and reconstruction)
  /// per channel: pixels whose argmax is the channel in the reconstruction / in the reference (NaN when the reference
  /// has none). Below 1 = the VAE shrinks that tissue (thin sulcal CSF is the first to go).
  std::vector<double> volume_ratio;
  /// Tissue-boundary length per brain pixel (brainspade quality's boundary density) of the reconstructions' argmax
  /// over that of the references: below 1 = the VAE smooths away fine structure (sulci) that no LDM can then draw.
  double boundary_ratio = NAN;
  double l1 = 0;
};

/// Trains (or, with resume, continues) the VAE; writes checkpoints, metrics.csv, montages into run.out_dir.
/// Returns the final validation. Ctrl-C saves a checkpoint and returns early.
VAEValidation train_vae(const VAETrainConfig& cfg, bool resume);


/// Dice of argmax(pred) vs argmax(ref) per channel over a batch [B, C, H, W].
std::vector<double> argmax_dice(const torch::Tensor& pred, const torch::Tensor& ref);

/// Per channel, the count of pixels whose argmax is that channel in `pred` divided by the count in `ref`, over a
/// batch [B, C, H, W] (NaN where `ref` has none).
std::vector<double> argmax_volume_ratio(const torch::Tensor& pred, const torch::Tensor& ref);

}  // namespace brainspade
