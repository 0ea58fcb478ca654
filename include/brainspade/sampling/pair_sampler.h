#pragma once
/// Joint generation (the project's main job): label generator → image generator → labelled synthetic pairs.
/// Per pair: a NIfTI image, a NIfTI partial-volume map and a NIfTI hard segmentation; manifest.csv, montage.png.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "brainspade/core/config.h"
#include "brainspade/core/shard.h"
#include "brainspade/sampling/label_sampler.h"
#include "brainspade/sampling/randomized_images.h"
#include "brainspade/inference/image_generator.h"

namespace brainspade {

/// Reads a style image — PNG, or a NIfTI slice (a 3D volume gives its axial slice `z`, or the middle one when
/// z < 0) — average-pools it by `downsample` (the factor the generator was trained with), z-scores it within the
/// non-zero pixels and centre-crops/pads it to height × width → [1, H, W]. `brain_stats`, when given, receives the
/// mean and standard deviation used for the z-scoring (the style's brain intensity scale). A volume of another voxel
/// spacing than `spacing` (the generator's training slices) is resampled to it first (the slice index `z` counts
/// in the resampled volume); a PNG is taken as it is.
torch::Tensor load_style_image(const std::string& path, int64_t height, int64_t width, int64_t downsample = 1,
                               int64_t z = -1, std::pair<double, double>* brain_stats = nullptr,
                               const std::array<double, 3>& spacing = {1.0, 1.0, 1.0});

/// Expands files and folders (every .png/.nii/.nii.gz inside, sorted) into a list of style image paths.
std::vector<std::string> expand_style_paths(const std::vector<std::string>& entries);

/// SPADE synthesis of seg [B, C, H, W] with style images [B, 1, H, W]: z = encoder mean (or a sample from
/// `gen` when sample_style) → generator. Returns [B, 1, H, W] on CPU.
torch::Tensor synthesize_images(ImageGenerator& g, const torch::Tensor& seg, const torch::Tensor& style, bool sample_style,
                                at::Generator& gen, torch::Device device);

/// Root of `brainspade sample` (pairs).
struct PairSampleJob {
  RunOptions run;
  std::string ldm_checkpoint;
  std::string vae_checkpoint;      ///< empty = the one stored in the LDM checkpoint
  /// spade (learned images from style images) | randomized (domain-randomisation baseline: no SPADE, style or
  /// classifier; see sampling/randomized_images.h)
  std::string image_generator = "spade";
  std::string spade_checkpoint;
  std::string classifier_checkpoint;  ///< for rejection; empty = no rejection
  std::string target_modality;     ///< modality the classifier must predict (rejection); empty = the style's
  int64_t max_style_redraws = 20;  ///< authors: up to 20 attempts
  std::vector<std::string> styles; ///< files or folders of real images of the target contrast
  bool sample_style = false;       ///< z sampled from the style posterior instead of its mean
  /// SPADE images are set to exactly 0 where the label map's argmax is background, as in skull-stripped training
  /// images (authors: off; SPADE's learned background is near 0 but noisy).
  bool mask_background = false;
  int64_t num = 16;
  std::string format = "native";   ///< native | nnunet (nnU-Net v2 raw layout)
  std::string nnunet_name = "Dataset500_brainspade";
  /// nnU-Net dataset folder (empty = <out_dir>/<nnunet_name>). Several runs from the same seed and label generator
  /// with other styles can share one, each writing its own input channel (nnunet_channel): a multi-contrast dataset.
  std::string nnunet_dir;
  int64_t nnunet_channel = 0;      ///< input channel this run writes (images *_000N.nii.gz; dataset.json channel N)
  int64_t montage_pairs = 8;
  /// A finished `sample` folder whose label maps (labels_pv/, and the conditions in records/) this run takes instead of
  /// drawing its own: pair i gets pair i's map. Several image generators over one set of label maps (exp3's T1, PD and
  /// randomized pairs) then pay for the label sampling — with its lesion redraws — once. The LDM checkpoint is still
  /// read, for the channel and condition names; the sampler section is not used. Empty = draw the maps.
  std::string label_pairs;
  LabelSamplerOptions sampler;
  RandomizedImageOptions randomized;  ///< used when image_generator is randomized
  void visit(ConfigVisitor& v);
};

struct PairSampleSummary {
  int64_t written = 0, skipped = 0, rejections = 0;
  int64_t label_redraws = 0, lesions_disagreeing = 0;  ///< sampler.lesion_redraw: redraws, maps still disagreeing
  int64_t implausible = 0;  ///< maps written that implausible_maps flags (after sampler.implausible_redraw, if on)
  double seconds = 0;
};
/// Generates the pairs of `shard` into run.out_dir (resumable: finished pairs are skipped; see docs/sampling.md).
PairSampleSummary run_pair_sampling(const PairSampleJob& job, const Shard& shard = {});

}  // namespace brainspade

namespace brainspade {

/// `brainspade sample images`: SPADE synthesis for given label maps and style images.
struct ImageSampleJob {
  RunOptions run;
  std::string spade_checkpoint;
  /// label NIfTI files (C channels, one slice), folders of *_pv.nii.gz, or slice datasets (.pt, from `brainspade
  /// slice`: their real label maps, pooled to the generator's size)
  std::vector<std::string> labels;
  std::vector<int64_t> label_rows;  ///< rows taken from each .pt in `labels` (empty: every row)
  std::vector<std::string> styles;  ///< style images; label i gets style i mod count
  bool sample_style = false;
  void visit(ConfigVisitor& v);
};

/// Tissue contrast of one slice: mean intensity of the pixels whose argmax label is grey / white matter, after the
/// slice is mapped by x·scale + shift. For a SPADE output the mapping is the style image's brain standard deviation
/// and mean, which undoes the z-scoring the style got on input: the output then sits on the style's intensity scale
/// and its GM/WM ratio compares with the style's own. T1: GM/WM < 1; PD: GM/WM > 1.
struct TissueContrast {
  double gm = 0, wm = 0;
  double ratio() const { return gm / wm; }
};
/// `image` [H, W], `pv` [C, H, W]; `gm`/`wm` are channel indices. NaN means when a tissue is absent.
TissueContrast tissue_contrast(const torch::Tensor& image, const torch::Tensor& pv, int64_t gm, int64_t wm,
                               double scale = 1.0, double shift = 0.0);

/// Writes <out>/images/<label name>_image.nii.gz, <out>/contrast.csv (per output: GM, WM and GM/WM of the output on
/// its style's intensity scale, see tissue_contrast) and <out>/montage.png (label | style | output rows); logs the mean GM/WM ratio at the end.
void run_image_sampling(const ImageSampleJob& job);

}  // namespace brainspade
