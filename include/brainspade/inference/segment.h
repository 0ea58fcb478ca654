#pragma once
/// Segmenting volumes with a trained segmenter: the checkpoint loader, slice-by-slice prediction of a whole volume,
/// and `brainspade segment`.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "brainspade/io/image_io.h"
#include "brainspade/models/segmenter.h"

namespace brainspade {

/// A trained segmenter with what prediction needs to slice volumes like its training data.
struct LoadedSegmenter {
  Segmenter model{nullptr};
  std::vector<std::string> class_names;
  int64_t height = 0, width = 0;  ///< slice size before downsampling (crop/pad size)
  int64_t downsample = 1;
  std::string layout = "x_rows";
  std::array<double, 3> spacing{1.0, 1.0, 1.0};  ///< voxel spacing of the training slices (1 mm for old checkpoints)
  /// the training images had a zero background (brain-extracted scans): a head with skull needs a brain mask
  bool zero_background = true;
  /// the input channels in order (data.modalities of the training config); empty = one channel
  std::vector<std::string> modalities;
};
/// Loads a checkpoint of stage "segmenter" (eval mode, on `device`); InputError naming a missing or wrong file.
LoadedSegmenter load_segmenter(const std::string& path, torch::Device device);

/// Slice-by-slice prediction of a whole volume [C, Z, Y, X] (C = the model's input channels): each channel is z-scored
/// within its non-zero voxels (like `slice`), centre-cropped/padded to the model's size, predicted, and put back.
/// Returns class probabilities [K, Z, Y, X] on the input's grid (outside the crop, and on slices whose window holds
/// no non-zero voxel: background, without running the network).
Volume segment_volume(const LoadedSegmenter& seg, const Volume& image, torch::Device device, int64_t batch_size = 16);

/// What `brainspade segment` reads and writes.
struct SegmentRequest {
  std::string model;              ///< segmenter checkpoint
  /// 3D images, one per input channel of the model in its order (data.modalities), co-registered on one grid; any
  /// spacing and orientation
  std::vector<std::string> in;
  std::string out;                ///< hard labels (uint8), on the input's grid, header equal to the input's
  std::string probabilities_out;  ///< optional softmax per class (float32, 4D), on the input's grid
  std::string mask;               ///< optional brain mask on the input's grid, applied before normalisation
  bool resample = true;           ///< false: predict at the file's own spacing (the behaviour before resampling)
  std::string device = "auto";
};

/// `brainspade segment`: reads the image (and mask), brings it to the training layout (LPS index order) and spacing,
/// predicts, and resamples the probabilities back onto the input's grid as stored (labels = their argmax there), so
/// that the output lies on the input's grid voxel for voxel; the log says what was done ("2x2x3 mm LSA -> 1 mm;
/// back to the input grid"). InputError (exit 2) for a volume of more than 3 dimensions, an empty or mismatched mask,
/// or a brain that does not fit the model's field of view; a warning when a model trained on brain-extracted slices
/// is given a volume without a zero background (a head with skull: give --mask).
void run_segment(const SegmentRequest& request);

}  // namespace brainspade
