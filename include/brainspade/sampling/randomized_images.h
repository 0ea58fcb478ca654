#pragma once
/// Domain-randomisation baseline image generator, in the manner of SynthSeg (Billot et al., 2023): an image is drawn
/// from a partial-volume label map with a random Gaussian intensity per tissue (its mean and its within-tissue spread),
/// mixed by the PV weights, then a random smooth bias field, a random Gaussian blur and random noise. No learned
/// model: it lets every experiment compare SPADE images against random-contrast images made from the same labels.
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "brainspade/core/config.h"

namespace brainspade {

/// Ranges the per-image parameters are drawn from (config section "randomized" of `brainspade sample`).
struct RandomizedImageOptions {
  std::vector<double> mean_range{0.0, 1.0};  ///< tissue mean ~ U(lo, hi), independently per tissue channel
  std::vector<double> sd_range{0.0, 0.1};    ///< within-tissue standard deviation ~ U(lo, hi), per tissue channel
  std::vector<double> bias_field_coeff{-0.3, 0.3};  ///< Legendre bias-field coefficients ~ U(lo, hi)
  int64_t bias_field_degree = 3;             ///< degree of the Legendre bias field (0 = none)
  std::vector<double> blur_sigma{0.0, 1.0};  ///< Gaussian blur σ in pixels ~ U(lo, hi) (0 = no blur)
  std::vector<double> noise_sd{0.0, 0.05};   ///< additive Gaussian noise σ ~ U(lo, hi), inside the brain
  /// Z-score each image within the brain (pixels whose background weight is < 0.5), as `slice` normalises real
  /// images; the background stays 0.
  bool normalise = true;
  /// Which independent draw of contrasts a pair gets (0 = the original one): folders sampled with the same seed and
  /// streams 0 and 1 hold the same label maps in two unrelated random contrasts (the channels of a multi-contrast DR
  /// baseline). Not used by randomized_image itself: `sample` mixes it into each pair's seed.
  int64_t stream = 0;
  void visit(ConfigVisitor& v);
};

/// One randomized image and the parameters drawn for it.
struct RandomizedImage {
  torch::Tensor image;  ///< [1, H, W] float32
  std::vector<double> means, sds;  ///< per label channel (channel 0, the background, is 0 / 0)
  double blur_sigma = 0, noise_sd = 0;
};

/// Draws an image from a PV map pv [C, H, W] (channel 0 = background; weights sum to 1 per pixel):
///   x = Σ_c w_c (μ_c + σ_c n_c),  n_c ~ N(0, 1) per pixel and tissue, μ_0 = σ_0 = 0;
///   x ← x · bias field; x ← blur(x); x ← x + noise inside the brain; x ← x · (1 − w_0) (background 0);
///   then, when `normalise`, z-scored within the brain.
/// Everything is drawn from `seed` alone: the same seed and map give the same bytes.
RandomizedImage randomized_image(const torch::Tensor& pv, const RandomizedImageOptions& options, uint64_t seed);

}  // namespace brainspade
