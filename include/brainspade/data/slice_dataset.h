#pragma once
/// The 2D slice dataset every training stage reads: images, partial-volume label maps and per-slice records.
///
/// On disk it is one `torch::pickle_save` archive (`dataset.pt`), a dict that Python opens with
/// `torch.load("dataset.pt")`: "images" [N,1,H,W] float32 (z-scored within the brain; zeros outside),
/// "labels" [N,C,H,W] float32 partial-volume maps (each pixel sums to 1; channel 0 = background),
/// "subject" [N] int64, "slice_index" [N] int64, "slice_position" [N] float32 (index / depth, in [0,1]),
/// "modality" [N] int64, "dataset" [N] int64, "lesion_flags" [N,L] float32, and the name lists
/// "channel_names", "subject_names", "modality_names", "dataset_names", "lesion_names" (lists of strings).
#include <cstdint>
#include <random>
#include <array>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace brainspade {

struct SliceDataset {
  torch::Tensor images;          ///< [N, 1, H, W] float32; may be undefined for a labels-only dataset
  torch::Tensor labels;          ///< [N, C, H, W] float32 PV maps
  torch::Tensor subject;         ///< [N] int64 index into subject_names
  torch::Tensor slice_index;     ///< [N] int64 axial index in the source volume
  torch::Tensor slice_position;  ///< [N] float32 relative position in [0,1] (the LDM's slice condition)
  torch::Tensor modality;        ///< [N] int64 index into modality_names
  torch::Tensor dataset;         ///< [N] int64 index into dataset_names
  torch::Tensor lesion_flags;    ///< [N, L] float32 0/1 per lesion type in lesion_names (L may be 0)
  std::vector<std::string> channel_names, subject_names, modality_names, dataset_names, lesion_names;
  /// Voxel spacing (mm along the volumes' X, Y, Z in LPS index order) of the volumes the slices were cut from, and
  /// their orientation: every volume is brought to it by `slice` (data.spacing). Datasets written before these
  /// fields existed load as 1 mm.
  std::array<double, 3> spacing{1.0, 1.0, 1.0};
  std::string orientation = "LPS";

  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  int64_t channels() const { return labels.size(1); }
  int64_t height() const { return labels.size(2); }
  int64_t width() const { return labels.size(3); }

  /// Atomic write of dataset.pt (see the file comment for the layout).
  void save(const std::string& path) const;
  /// InputError naming the file for a missing/truncated file or a missing/ill-shaped entry.
  static SliceDataset load(const std::string& path);

  /// Rows whose subject is in `subjects` (e.g. a train/validation split by subject).
  SliceDataset select(const torch::Tensor& rows) const;

  /// A random slice of the same volume (same subject and modality) other than `row`; -1 if the volume has one slice.
  /// O(1): the per-volume row lists are built once on first use.
  int64_t other_slice_same_volume(int64_t row, std::mt19937_64& rng) const;

 private:
  mutable std::vector<std::vector<int64_t>> volume_rows_;  // rows per (subject, modality) volume
  mutable std::vector<int64_t> volume_of_row_;
  mutable std::vector<int64_t> position_in_volume_;  // index of each row inside volume_rows_[volume_of_row_[row]]
  void build_volume_index() const;
};

}  // namespace brainspade
