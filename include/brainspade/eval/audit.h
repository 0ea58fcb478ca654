#pragma once
/// `brainspade audit`: does a synthetic dataset carry its training patients? An empirical check before sharing
/// (docs/privacy.md): not a formal guarantee such as differential privacy.
///
/// 1. Nearest neighbours. Every synthetic label map (argmax) is compared with every training slice by the mean Dice
///    over the tissues either holds, every synthetic image by normalised cross-correlation, each at its best shift
///    within ± max_shift pixels. The baseline is the same for every held-out real slice: a generator that does not
///    copy sits where held-out real data sits. "Near copies" are synthetic samples more similar to a training slice
///    than all but `near_copy_percentile` % of the held-out slices are.
/// 2. Membership inference on the LDM. The denoising loss of each slice's latent at fixed timesteps and fixed noise:
///    a model that memorised its training slices denoises them better than held-out ones. ROC AUC of training vs
///    held-out (0.5: no signal) with a bootstrap interval. The same on SPADE: each real slice's image rebuilt from its
///    own label map and its own style code; a model that memorised its training images rebuilds them better.
///
/// Every per-sample number is independent of the others, so the work splits over processes (`--shard i/n`: samples
/// and slices k with k mod n = i); each shard writes its part, and the report is written once every part is there.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "brainspade/core/config.h"
#include "brainspade/core/shard.h"

namespace brainspade {

class Progress;
struct ImageGenerator;

// ---- the measures, each usable alone (tests check them against hand-computed cases) ----

/// For each query map a [M, H, W] (int64 classes 0..K-1, 0 = background): the highest similarity to any reference map
/// b [N, H, W], over shifts of the query by (dy, dx) in [−s, s]² (pixels shifted in from outside are background).
/// Similarity = mean Dice over the tissue classes 1..K-1 present in either map (1 when both are empty).
/// Returns {best similarity [M], index of the reference that gave it [M]}. Memory stays bounded whatever M and N (queries
/// in blocks of 64, references in blocks of 256); `progress`, when given, advances by one per query.
std::pair<torch::Tensor, torch::Tensor> nearest_label_maps(const torch::Tensor& a, const torch::Tensor& b,
                                                           int64_t num_classes, int64_t max_shift,
                                                           Progress* progress = nullptr);
/// The same for images a [M, H, W] against b [N, H, W] by normalised cross-correlation of the mean-free images
/// (pixels shifted in from outside are 0 after the mean is removed).
std::pair<torch::Tensor, torch::Tensor> nearest_images(const torch::Tensor& a, const torch::Tensor& b,
                                                       int64_t max_shift, Progress* progress = nullptr);
/// ROC AUC of scores: P(a positive scores above a negative), ties counted ½ (the Mann–Whitney U / (n₊·n₋)).
double roc_auc(const torch::Tensor& positive, const torch::Tensor& negative);
/// Percentile bootstrap interval [lo, hi] of the AUC (each side resampled with replacement, `rounds` times).
std::pair<double, double> roc_auc_interval(const torch::Tensor& positive, const torch::Tensor& negative,
                                           int64_t rounds, double level, uint64_t seed);

/// How far the held-out slices sit from the training slices' positions: the median over held-out slices of the
/// distance to the nearest training position, in units of the training positions' median spacing. About 0–1 for
/// held-out subjects (their slices interleave with the training ones); the slab's half-width and more for a held-out
/// slab, whose positions a position-conditioned LDM never saw — its denoising loss there is higher whether or not it
/// memorised, so the membership AUC mixes the two.
double held_out_position_gap(const torch::Tensor& train_positions, const torch::Tensor& holdout_positions);

/// SPADE's reconstruction error of real slices: each image [N, 1, H, W] rebuilt by the generator from its own PV map
/// [N, C, H, W] and its own style code (the encoder's posterior mean); mean |generated − real| over the brain (pixels
/// whose background PV is below ½). Inputs at the generator's size, on the training data's scale.
torch::Tensor spade_reconstruction_errors(ImageGenerator& g, const torch::Tensor& labels, const torch::Tensor& images,
                                          torch::Device device, Progress* progress = nullptr);

// ---- the command ----

struct AuditThresholds {
  /// near copies: synthetic samples above this percentile of the held-out slices' nearest-neighbour similarity
  double near_copy_percentile = 95.0;
  /// the check fails when more than this share of synthetic samples are near copies (a generator that does not copy
  /// gives about 1 − near_copy_percentile/100)
  double near_copy_max = 0.10;
  /// membership: the check fails when the lower end of the AUC interval exceeds this
  double auc_max = 0.60;
  /// membership: above this held_out_position_gap the check's verdict carries the caveat that it is confounded
  double position_gap_max = 2.0;
  void visit(ConfigVisitor& v);
};

/// Root of `brainspade audit`.
struct AuditJob {
  RunOptions run;               ///< out_dir receives audit.md, audit.json, audit_montage.png
  std::string pairs;            ///< folder of `sample` (manifest.csv) or `sample labels` (conditions.csv / labels/)
  std::string train;            ///< slice dataset (.pt) the generators were trained on
  std::string holdout;          ///< slice dataset (.pt) of real slices no generator saw (the baseline)
  std::string modality;         ///< image rows compared (empty: each dataset's most frequent modality)
  std::string ldm_checkpoint;   ///< LDM to test for membership (empty: that check is skipped)
  std::string spade_checkpoint;  ///< SPADE to test for membership (empty: that check is skipped)
  int64_t max_shift = 2;        ///< nearest-neighbour shift search, pixels (at the search size)
  /// the nearest-neighbour search compares maps and images average-pooled by this factor (1 = at the synthetic size;
  /// 2 at paper scale's 192x256 costs a quarter; max_shift counts pixels at the pooled size)
  int64_t search_downsample = 1;
  std::vector<int64_t> membership_timesteps{25, 100, 250, 500};  ///< timesteps of the denoising loss
  int64_t membership_noise_draws = 4;  ///< fixed noise draws per timestep and slice
  int64_t bootstrap_rounds = 1000;
  AuditThresholds thresholds;
  void visit(ConfigVisitor& v);
};

/// One verdict line of the report.
struct AuditCheck {
  std::string name;
  double value = NAN;
  std::string threshold;
  bool pass = false;
  std::string caveat;  ///< why the verdict may not mean what it says (empty: none)
};

struct AuditReport {
  int64_t n_synthetic = 0, n_train = 0, n_holdout = 0;
  torch::Tensor label_synthetic, label_holdout;  ///< nearest-training-slice similarity per sample [M], [R]
  torch::Tensor image_synthetic, image_holdout;  ///< the same for images (undefined without images)
  double label_threshold = NAN, image_threshold = NAN;  ///< near_copy_percentile of the held-out similarities
  double label_near_copies = NAN, image_near_copies = NAN;  ///< share of synthetic samples above the threshold
  torch::Tensor loss_train, loss_holdout;  ///< LDM denoising loss per slice (undefined without an LDM)
  double auc = NAN, auc_lo = NAN, auc_hi = NAN;
  double position_gap = NAN;  ///< held_out_position_gap of the two datasets (membership checks only)
  torch::Tensor spade_train, spade_holdout;  ///< SPADE reconstruction error per slice (undefined without SPADE)
  double spade_auc = NAN, spade_auc_lo = NAN, spade_auc_hi = NAN;
  bool complete = true;  ///< false for a shard run whose other parts are not all written yet (no report then)
  std::vector<AuditCheck> checks;
  double seconds = 0;
};

/// Reads the three inputs, measures, writes <out>/audit.md, audit.json and audit_montage.png (the closest synthetic
/// maps beside their nearest training slices); InputError naming the file or key that cannot be used.
/// With a shard of n > 1: measures only that shard's samples and slices into <out>/shards/part-i-of-n.json (kept: a
/// rerun skips the measuring), and writes the report when all n parts are present (whichever shard finishes last; or
/// rerun any shard). A part measured from other inputs or settings is refused, naming it.
AuditReport run_audit(const AuditJob& job, const Shard& shard = {});

}  // namespace brainspade
