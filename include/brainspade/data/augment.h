#pragma once
/// Random spatial and intensity augmentations for the image generator, each driven by an explicit torch::Generator
/// so a run is reproducible and independent of call order.
///   - affine: the transform T of the contrastive style loss (paper section 2.2; authors: MONAI RandAffine(prob 1,
///     rotate_range 0.75 rad, scale_range 0.2, translate_range 3 px, bilinear, padding border));
///   - bias field, gamma contrast, Gaussian noise: paper Appendix A.1 (MONAI RandBiasField coeff 0.2–0.6,
///     RandAdjustContrast γ 0.85–1.25, RandGaussianNoise σ 0.05–0.15).
/// Random values are drawn per sample of the batch on the generator's device (use a CPU generator for scalars; noise
/// is drawn there and moved to the images' device).
#include <string>
#include <vector>

#include <torch/torch.h>

#include "brainspade/core/config.h"
#include "brainspade/core/runtime.h"

namespace brainspade {

/// One 2D similarity transform in pixel units, about the image centre ((W−1)/2, (H−1)/2):
/// p_out = c + scale·R(rotation)·(p_in − c) + (tx, ty), with R = [[cos, −sin], [sin, cos]] acting on (x, y).
struct AffineParams {
  double rotation = 0.0;  ///< radians
  double scale = 1.0;     ///< magnification (> 1 enlarges the content)
  double tx = 0.0;        ///< pixels along x (width)
  double ty = 0.0;        ///< pixels along y (height)
};

/// Ranges of the random affine transform (config section "affine").
struct RandomAffineOptions {
  double rotate_range = 0.75;   ///< rotation ~ U(−r, r) radians
  double scale_range = 0.2;     ///< scale ~ 1 + U(−s, s)
  double translate_range = 3.0; ///< tx, ty ~ U(−t, t) pixels
  std::string padding = "border";  ///< zeros | border | reflection
  std::string mode = "bilinear";   ///< bilinear | nearest
  void visit(ConfigVisitor& v);
};

/// The [2, 3] matrix for torch affine_grid (align_corners false) that realises `p` on an H×W image.
torch::Tensor affine_theta(const AffineParams& p, int64_t height, int64_t width);
/// Warps images [B, C, H, W] with one transform per sample (params.size() == B).
torch::Tensor apply_affine(const torch::Tensor& images, const std::vector<AffineParams>& params,
                           const std::string& padding = "border", const std::string& mode = "bilinear");
/// Draws one transform from the ranges.
AffineParams sample_affine(const RandomAffineOptions& options, torch::Generator& generator);
/// Draws a transform per sample and applies it.
torch::Tensor random_affine(const torch::Tensor& images, const RandomAffineOptions& options,
                            torch::Generator& generator);

/// Ranges of the intensity augmentations of Appendix A.1 (config section "intensity_augment").
struct IntensityAugmentOptions {
  double bias_field_prob = 1.0;
  std::vector<double> bias_field_coeff{0.2, 0.6};  ///< coefficient range (MONAI coeff_range)
  int64_t bias_field_degree = 3;
  double gamma_prob = 1.0;
  std::vector<double> gamma{0.85, 1.25};
  double noise_prob = 1.0;
  std::vector<double> noise_std{0.05, 0.15};
  void visit(ConfigVisitor& v);
};

/// Multiplies each image by exp(Σ_{i+j≤degree} c_ij P_i(y) P_j(x)), Legendre polynomials on [−1, 1] grids and
/// c_ij ~ U(lo, hi) per sample (MONAI RandBiasField). images: [B, C, H, W].
torch::Tensor random_bias_field(const torch::Tensor& images, double lo, double hi, int64_t degree,
                                torch::Generator& generator);
/// Per sample: ((x − min)/(range + 1e-7))^γ · range + min, γ ~ U(lo, hi) (MONAI AdjustContrast).
torch::Tensor random_gamma_contrast(const torch::Tensor& images, double lo, double hi, torch::Generator& generator);
/// Per sample: x + N(0, σ²), σ ~ U(lo, hi).
torch::Tensor random_gaussian_noise(const torch::Tensor& images, double lo, double hi, torch::Generator& generator);
/// Bias field, gamma and noise in that order, each applied to the whole batch with its probability.
torch::Tensor intensity_augment(const torch::Tensor& images, const IntensityAugmentOptions& options,
                                torch::Generator& generator);

/// Spatial augmentation of partial-volume label maps for the label generator (config section "augment" of
/// `train vae` and `train ldm`; MONAI's RandFlip / RandAffine / Rand2DElastic, applied identically to every channel).
/// Bilinear resampling of a PV map is a convex combination of voxels, so every pixel still sums to 1; border padding
/// repeats the background that surrounds every slice. Defaults: off (the authors train without it).
struct LabelAugmentOptions {
  double flip_prob = 0.0;   ///< per sample: mirror along flip_axis
  int64_t flip_axis = 0;    ///< spatial axis of [H, W]: 0 = H, which is left-right in brainspade's axial slices
  double affine_prob = 0.0; ///< per sample: a small similarity transform from `affine`
  RandomAffineOptions affine = [] {
    RandomAffineOptions a;
    a.rotate_range = 0.1;
    a.scale_range = 0.1;
    a.translate_range = 4.0;
    return a;
  }();
  double elastic_prob = 0.0;       ///< per sample: a smooth random displacement field
  double elastic_magnitude = 2.0;  ///< largest displacement of a control point, pixels
  int64_t elastic_grid = 5;        ///< control points per side, interpolated bicubically to the image
  bool enabled() const { return flip_prob > 0 || affine_prob > 0 || elastic_prob > 0; }
  void visit(ConfigVisitor& v);
};

/// Flip, then affine and elastic warps in one resampling, each drawn per sample from `generator`. maps: [B, C, H, W]
/// on the CPU (float); returns a new tensor (samples that draw nothing come back unchanged, bit for bit).
torch::Tensor augment_label_maps(const torch::Tensor& maps, const LabelAugmentOptions& options,
                                 torch::Generator& generator);


}  // namespace brainspade
