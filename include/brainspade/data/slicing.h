#pragma once
/// Slicing 3D volumes into the 2D dataset of the paper (section 2.1, "Slicing process"): axial slices of
/// partial-volume label maps (and their images) cropped/padded to 192 x 256, keeping only slices with at least
/// 10% brain pixels, optionally balancing lesion slices (2/3 with at least 20 lesion pixels, 1/3 with none).
///
/// The volumes are listed as parallel lists (the config system has lists of values, not lists of maps):
/// entry i is images[i] (optional), labels[i], subjects[i], modalities[i], datasets[i]; a list of length 1
/// applies to every volume.
#include <cstdint>
#include <string>
#include <vector>

#include "brainspade/core/config.h"
#include "brainspade/data/slice_dataset.h"
#include "brainspade/io/image_io.h"

namespace brainspade {

struct SliceOptions {
  std::vector<std::string> images;      ///< image volumes (empty list = labels-only dataset)
  std::vector<std::string> labels;      ///< 4D PV maps [C, Z, Y, X], or 3D integer maps (one-hot encoded)
  std::vector<std::string> subjects;    ///< subject name per volume (empty = the label file's name)
  std::vector<std::string> modalities{"T1"};  ///< modality per volume, or one for all
  std::vector<std::string> datasets{"example"};  ///< dataset name per volume, or one for all
  std::vector<std::string> channel_names{"background", "csf", "gm", "wm", "deep_gm", "brainstem"};
  std::vector<std::string> lesion_channels;  ///< names in channel_names that are lesions (e.g. tumour, edema)
  /// voxel spacing (mm, X Y Z) every volume is resampled to before slicing (linear for images and PV maps, which are
  /// renormalised to sum to 1; nearest for integer labels); volumes already at it are used as they are
  std::vector<double> spacing{1.0, 1.0, 1.0};
  int64_t height = 192;                 ///< output rows (centre crop / pad)
  int64_t width = 256;                  ///< output columns
  std::string layout = "x_rows";        ///< x_rows: rows run L-R, columns A-P (the authors' 192x256); y_rows: rows A-P
  double min_brain_fraction = 0.10;     ///< keep slices whose non-background share of H x W is at least this
  int64_t min_lesion_pixels = 20;       ///< a lesion slice has at least this many pixels with lesion PV > 0.5
  bool balance_lesions = true;          ///< with lesion_channels: keep lesion_share lesion slices, the rest lesion-free
  double lesion_share = 2.0 / 3.0;      ///< share of lesion slices after balancing
  int64_t slices_per_volume = 0;        ///< random subset of the kept slices per volume (0 = all)
  std::string normalisation = "volume"; ///< z-score of the image inside the brain: volume | slice | none
  bool renormalise_labels = false;      ///< clamp to [0,1] and divide by the sum instead of refusing bad PV maps
  double label_tolerance = 1e-3;        ///< allowed excess outside [0,1] and deviation of the channel sum from 1
  int64_t min_slices = 1;               ///< fewer slices left is an error
  /// slice position (the LDM's slice condition) = slice index / this; 0 = the volume's depth, so positions span [0, 1)
  /// whatever the depth. The authors divide by a fixed 256 (their slice_no); set 256 to condition as they did.
  double slice_position_divisor = 0.0;
  void visit(ConfigVisitor& v);
};

/// One volume ready to slice (already read from disk).
struct SliceInput {
  Volume image;   ///< [1, Z, Y, X]; data undefined for labels-only
  Volume labels;  ///< [C, Z, Y, X] PV maps or [1, Z, Y, X] integer labels
  std::string subject, modality, dataset;
  std::string image_path, label_path;  ///< for messages
};

/// Slices in-memory volumes; `seed` drives the lesion balancing and per-volume subsets. InputError (naming the
/// files) for mismatched grids, bad PV maps, non-integer hard labels, NaN, or too few slices left.
/// The lesion rule at another size: `min_pixels` counted at 192×256 scaled by area to H×W (at least 1; 20 → 5 at
/// 96×128). `quality` and the sampler's lesion redraw judge a map with it.
double lesion_min_pixels_at(int64_t min_pixels, int64_t H, int64_t W);
/// [N] bool: which maps pv [N, C, H, W] hold the lesion of `channel` (≥ min_px pixels with PV > 0.5).
torch::Tensor lesion_present(const torch::Tensor& pv, int64_t channel, double min_px);

SliceDataset slice_volumes(const std::vector<SliceInput>& inputs, const SliceOptions& options, uint64_t seed);

/// Reads the volumes listed in `options` and slices them. Nothing is written.
SliceDataset build_slice_dataset(const SliceOptions& options, uint64_t seed);

/// An axial slice [Y, X] in the dataset's layout and size, exactly as slice_volumes lays it out (x_rows
/// transposes; centre crop/pad with zeros to o.height x o.width) → [H, W].
torch::Tensor slice_to_dataset_plane(const torch::Tensor& slice_yx, const SliceOptions& o);

/// A PNG with up to `count` slices spread over the dataset: images on the upper row, label colours below.
void write_dataset_montage(const std::string& path, const SliceDataset& ds, int64_t count = 8);

}  // namespace brainspade
