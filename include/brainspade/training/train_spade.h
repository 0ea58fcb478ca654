#pragma once
/// The image generator's two training stages (paper §2.2 "Image generator", Appendix A.1):
///   `train classifier`: the modality/dataset classifier D_mod-dat on real slices, later frozen;
///   `train spade`:      the SPADE VAE-GAN with style and content from different slices of the same volume.
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "brainspade/core/config.h"
#include "brainspade/data/augment.h"
#include "brainspade/losses/perceptual.h"
#include "brainspade/models/modality_classifier.h"
#include "brainspade/models/spade_discriminator.h"
#include "brainspade/models/spade_encoder.h"
#include "brainspade/models/spade_generator.h"
#include "brainspade/training/common.h"
#include "brainspade/training/train_classifier.h"
#include "brainspade/inference/image_generator.h"
#include "brainspade/training/train_vae.h"

namespace brainspade {

struct SPADELossOptions {
  double lambda_feat = 10.0;      ///< feature matching (SPADE)
  double lambda_perceptual = 10.0;
  /// none | classifier (the frozen D_mod-dat's features, L1) | vgg19 (the authors' VGG loss; weights from a file)
  std::string perceptual_network = "classifier";
  std::string perceptual_weights;  ///< vgg19: file written by scripts/export_perceptual_weights.py --arch vgg19
  /// One weight per feature level, shallow to deep. classifier: ModalityClassifierImpl::level_names() (4 for the small
  /// trunk with three blocks, 5 for densenet121), empty = the last feature map alone; vgg19: relu1_1 … relu5_1,
  /// empty = the authors' 1/32, 1/16, 1/8, 1/4, 1.
  std::vector<double> perceptual_level_weights;
  double lambda_kld = 0.05;       ///< KLD (SPADE, summed)
  double alpha_mod = 2.5;         ///< modality BCE through the frozen classifier (authors)
  double alpha_dat = 1.0;         ///< dataset BCE (authors); alpha_mod > alpha_dat always
  int64_t mod_dat_start_step = 0; ///< the modality/dataset terms ramp up linearly from here ...
  int64_t mod_dat_ramp_steps = 0; ///< ... over this many steps (0 = full weight at once) ...
  double alpha_mod_start = 0.0;   ///< ... from these weights (the paper's ranges: 0.1 → 2.5 and 0.05 → 0.75)
  double alpha_dat_start = 0.0;
  double lambda_contrastive = 1.0;  ///< 1 − cos(E(i), E(T(i))), T a random affine
  void visit(ConfigVisitor& v);
};

/// The frozen VGG19 of perceptual_network vgg19 with its weights from loss.perceptual_weights (null for other
/// networks or weight 0); InputError naming the key and the export command when the file is not given or missing.
std::shared_ptr<VGG19Features> load_spade_vgg(const SPADELossOptions& L, torch::Device device);

/// InputError naming `loss.perceptual_level_weights` when it is neither empty nor one weight per level of `clf`.
void check_perceptual_levels(const ModalityClassifierImpl& clf, const std::vector<double>& weights);

/// L1 perceptual distance of `fake` to `real` through the frozen classifier: the last feature map when `weights` is
/// empty, else sum_i weights[i] · mean|f_i(fake) − f_i(real)| over its feature levels (a count that differs from
/// the classifier's levels is an InputError naming `loss.perceptual_level_weights`). `fake_out`, when given, receives
/// the classifier's output on `fake` (its logits feed the modality/dataset BCE: one forward for both).
torch::Tensor perceptual_distance(ModalityClassifier& clf, const torch::Tensor& fake, const torch::Tensor& real,
                                  const std::vector<double>& weights, ClassifierOutput* fake_out = nullptr);

/// The modality and dataset weights at `step` (0-based): 0 before mod_dat_start_step, then a linear ramp from
/// alpha_*_start to alpha_* over mod_dat_ramp_steps steps (reached at once when 0).
std::pair<double, double> modality_dataset_weights(const SPADELossOptions& L, int64_t step);

struct SPADEOptimOptions {
  double lr_g = 1e-4;   ///< generator and encoder (TTUR, authors)
  double lr_d = 4e-4;   ///< discriminator (TTUR)
  double beta1 = 0.0;
  double beta2 = 0.9;
  /// exponential learning-rate decay per step for both optimisers; 1 = constant (the authors' code). The paper reports
  /// "5e-4 with decay" without the rate: docs/differences.md.
  double lr_decay = 1.0;
  bool d_gating = false;        ///< discriminator-accuracy gating (authors' train.py)
  double gating_low = 0.65;     ///< running D accuracy below: train only D
  double gating_high = 0.85;    ///< above: train only G
  int64_t gating_window = 20;
  void visit(ConfigVisitor& v);
};

/// Root of `brainspade train spade --config`.
struct SPADETrainConfig {
  RunOptions run;
  DataSource data;
  std::string classifier_checkpoint;  ///< trained classifier (stage classifier); empty = modality/dataset loss off
  SPADEGeneratorOptions generator;
  ConvEncoderOptions encoder;
  MultiscaleDiscriminatorOptions discriminator;
  SPADELossOptions loss;
  SPADEOptimOptions optim;
  RandomAffineOptions affine;                 ///< T of the contrastive loss
  IntensityAugmentOptions intensity_augment;  ///< applied to the style input (Appendix A.1)
  bool augment_style = true;
  /// Draw every batch row's modality uniformly, then a training slice of that modality (default: uniform over slices).
  bool balance_modalities = false;
  TrainLoopOptions train;
  void visit(ConfigVisitor& v);
};

struct SPADEValidation {
  double l1 = 0;  ///< mean |G(seg, E(style)) − real| on held-out slices (style from another slice of the volume)
  /// Share of held-out label maps, each drawn once per modality with a style slice of that modality (the same
  /// subject's where it has one), that the frozen classifier assigns to the style's modality; NaN without a
  /// classifier or with one modality. Low values: the generator draws every style alike (docs/image-generator.md).
  double style_accuracy = NAN;
};
/// The style rows of the style check: for each row and each modality m of `data`, another slice of modality m of
/// the row's subject when there is one, else a slice of modality m from `pool` (-1 when neither has one); result
/// [rows.size()][n_modalities], deterministic per `seed`.
std::vector<std::vector<int64_t>> style_rows_per_modality(const SliceDataset& data, const std::vector<int64_t>& rows,
                                                          const std::vector<int64_t>& pool, uint64_t seed);
SPADEValidation train_spade(const SPADETrainConfig& cfg, bool resume);

/// The generator, style encoder and discriminator that `train spade` trains together.
struct SPADENetworks {
  SPADEGenerator G{nullptr};
  ConvEncoder E{nullptr};
  MultiscaleDiscriminator D{nullptr};
  std::shared_ptr<VGG19Features> vgg;  ///< frozen loss network of perceptual_network vgg19 (null otherwise; not saved)
};

/// The generator + encoder loss of one `train spade` step (D frozen by the caller): hinge GAN, feature matching, KLD,
/// the modality/dataset BCE and perceptual terms through the frozen classifier (`clf`, may be null), the contrastive
/// style term (its affine transform drawn from `gen`), with the weights and schedules of cfg.loss at `step`. `fake` is
/// G(seg, z) with z from `enc`; `style_in` the encoder's input. Adds each term to `row` (g_gan, g_feat, kld, ...).
torch::Tensor spade_generator_loss(SPADENetworks& nets, ModalityClassifierBundle* clf, const SPADETrainConfig& cfg,
                                   int64_t step, const EncoderOutput& enc, const torch::Tensor& fake,
                                   const torch::Tensor& seg, const torch::Tensor& real, const torch::Tensor& style_in,
                                   const torch::Tensor& style_modality, const torch::Tensor& style_dataset,
                                   torch::Generator& gen, std::map<std::string, double>& row);


}  // namespace brainspade
