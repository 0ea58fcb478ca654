#pragma once
/// The segmentation experiments (paper §2.3, §3.1–3.3, A.2): a 2D nnU-Net-style U-Net trained on real slices (R),
/// generated pairs (S) or both (H) — the three are just different `data.sources` lists — and slice-by-slice
/// prediction of whole volumes. nnU-Net defaults kept and changed: docs/segmentation.md.
#include <array>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "brainspade/core/config.h"
#include "brainspade/data/augment.h"
#include "brainspade/io/image_io.h"
#include "brainspade/models/segmenter.h"
#include "brainspade/training/common.h"
#include "brainspade/inference/segment.h"

namespace brainspade {

/// Training data of a segmenter: parallel lists (entry i = sources[i] with weights[i]).
struct SegDataOptions {
  /// Each entry is a slice dataset (a `.pt` file from `brainspade slice`; hard label = argmax of its PV map) or a
  /// folder of generated pairs (`brainspade sample`: manifest.csv, or images/*.nii.gz + labels/*_seg.nii.gz).
  std::vector<std::string> sources{"data/example/slices/dataset.pt"};
  std::vector<double> weights;  ///< sampling weight per source (empty = every source 1); a slice's chance ∝ weight / source size
  /// Source label → training class (e.g. {0,1,2,3,2,0}: deep GM counted as GM, brainstem as background); empty = identity.
  std::vector<int64_t> label_map;
  std::vector<std::string> class_names{"background", "csf", "gm", "wm"};  ///< one per class; its length = model.num_classes
  int64_t downsample = 1;          ///< average-pool images (and one-hot labels, then argmax) by this factor at load time
  /// Pooling factor per source, overriding `downsample` for loading (empty = `downsample` for every source). Pairs made
  /// by generators trained with data.downsample d are already at 1/d of the real slices: give them 1 and keep
  /// `downsample` d, the factor `segment` applies to real volumes.
  std::vector<int64_t> source_downsample;
  std::string layout = "x_rows";   ///< how the volumes were sliced (`slice` data.layout); `segment` slices the same way
  /// Input channels, in order (e.g. [T1, PD]); empty = one channel, every row of a slice dataset a sample whatever its
  /// modality. With modalities, the rows of a slice dataset at one (subject, slice) position become one sample with a
  /// channel per listed modality (positions missing one are dropped), and a pair source is a folder holding one pair
  /// folder per modality (<source>/T1/, <source>/PD/: `brainspade sample` run once per style contrast with the same
  /// seed and label generator), whose pairs share their label maps (checked).
  std::vector<std::string> modalities;
  int64_t channels() const { return modalities.empty() ? 1 : static_cast<int64_t>(modalities.size()); }
  void visit(ConfigVisitor& v);
};

/// nnU-Net's augmentation, reduced to what the 2D slices need.
struct SegAugmentOptions {
  double affine_prob = 0.2;          ///< share of samples warped (nnU-Net: rotation p 0.2, scaling p 0.2)
  RandomAffineOptions affine = [] {
    RandomAffineOptions a;
    a.rotate_range = 3.14159265358979;  // nnU-Net 2D: ±180°
    a.scale_range = 0.3;                // nnU-Net: 0.7–1.4
    a.translate_range = 0.0;
    a.padding = "zeros";
    return a;
  }();
  bool mirror = true;                ///< flip each axis with p 0.5 (nnU-Net mirroring)
  IntensityAugmentOptions intensity = [] {
    IntensityAugmentOptions i;
    i.bias_field_prob = 0.0;
    i.gamma_prob = 0.3;
    i.gamma = {0.7, 1.5};
    i.noise_prob = 0.1;
    i.noise_std = {0.0, 0.1};
    return i;
  }();
  void visit(ConfigVisitor& v);
};

struct SegLossOptions {
  double dice_weight = 1.0;   ///< nnU-Net DC_and_CE_loss: 1
  double ce_weight = 1.0;     ///< 1
  bool batch_dice = true;     ///< soft Dice over the whole batch (nnU-Net 2D plans: true)
  double smooth = 1e-5;       ///< nnU-Net: 1e-5
  void visit(ConfigVisitor& v);
};

struct SegOptimOptions {
  double lr = 1e-2;           ///< SGD, Nesterov (nnU-Net: 1e-2)
  double momentum = 0.99;
  double weight_decay = 3e-5;
  double poly_exponent = 0.9; ///< lr = lr0 · (1 − step/steps)^0.9, per step (nnU-Net: per epoch)
  double oversample_foreground = 0.33;  ///< share of each batch drawn from slices containing the rarest class
  void visit(ConfigVisitor& v);
};

/// Root of `brainspade train segmenter --config`.
struct SegmenterTrainConfig {
  RunOptions run;
  SegDataOptions data;
  SegmenterOptions model;
  SegAugmentOptions augment;
  SegLossOptions loss;
  SegOptimOptions optim;
  TrainLoopOptions train = [] {
    TrainLoopOptions t;
    t.batch_size = 12;
    t.grad_clip = 12.0;  // nnU-Net clips the gradient norm at 12
    return t;
  }();
  void visit(ConfigVisitor& v);
};

/// The slices a segmenter learns from: images [N, C, H, W] float32 (C = data.modalities, or 1), labels [N, H, W] uint8 class indices.
struct SegSlices {
  torch::Tensor images, labels;
  torch::Tensor subject, slice_index;  ///< [N] int64 (a pair folder gives one subject per pair)
  torch::Tensor source;                ///< [N] int64 index into SegDataOptions::sources
  std::array<double, 3> spacing{1.0, 1.0, 1.0};  ///< of the slice datasets among the sources (1 mm for pair folders)
};
/// Reads every source (applying label_map and downsample); InputError naming the source that is missing,
/// empty, of another size, or has labels outside label_map.
SegSlices load_segmentation_data(const SegDataOptions& options);

struct SegValidation {
  std::vector<double> dice;  ///< per class (index 0 = background), hard Dice over all held-out slices; NaN if absent in both
  double mean_foreground_dice = 0;
};

/// nnU-Net's DC_and_CE loss for one output: ce_weight·CE + dice_weight·(−soft Dice over foreground classes).
torch::Tensor loss_dice_ce(const torch::Tensor& logits, const torch::Tensor& target, const SegLossOptions& o);
/// Deep-supervision weights for n outputs: 1, 1/2, 1/4, ..., the lowest resolution 0 (nnU-Net v2), normalised to sum 1.
std::vector<double> deep_supervision_weights(int64_t n);

/// Trains (or, with resume, continues) a segmenter; writes checkpoints, metrics.csv, loss.png, predictions.png.
SegValidation train_segmenter(const SegmenterTrainConfig& cfg, bool resume);

}  // namespace brainspade
