#pragma once
/// Segmenting volumes with a trained segmenter: the checkpoint loader, slice-by-slice prediction of a whole volume,
/// and `brainspade segment`.
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
};
/// Loads a checkpoint of stage "segmenter" (eval mode, on `device`); InputError naming a missing or wrong file.
LoadedSegmenter load_segmenter(const std::string& path, torch::Device device);

/// Slice-by-slice prediction of a whole volume [1, Z, Y, X]: each axial slice is z-scored within the non-zero voxels
/// of the volume (like `slice`), centre-cropped/padded to the model's size, predicted, and put back.
/// Returns class probabilities [K, Z, Y, X] on the input's grid (outside the crop, and on slices whose window holds
/// no non-zero voxel: background, without running the network).
Volume segment_volume(const LoadedSegmenter& seg, const Volume& image, torch::Device device, int64_t batch_size = 16);

/// `brainspade segment`: reads `in`, writes the hard labels (3D, class indices) to `out` on the input's grid and,
/// when `probabilities_out` is not empty, the softmax as a 4D file.
void run_segment(const std::string& model, const std::string& in, const std::string& out,
                 const std::string& probabilities_out, const std::string& device);

}  // namespace brainspade
