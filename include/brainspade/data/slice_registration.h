#pragma once
/// Placing a single 2D slice (e.g. a BrainWeb PNG) into a 3D volume's grid: which axial slice it is, and how it is
/// flipped/transposed and shifted relative to the volume's [Y, X] plane. Found by normalised cross-correlation
/// (NCC) over every axial slice, the 8 in-plane orientations and a small integer shift search (docs/data.md).
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "brainspade/data/slicing.h"
#include "brainspade/io/image_io.h"

namespace brainspade {

/// The 8 in-plane orientations (the dihedral group of the square), as bits applied in this order to an [H, W]
/// image: bit 2 (4) transpose, then bit 0 (1) flip rows (up-down), then bit 1 (2) flip columns (left-right).
/// orientation 0 is the identity.
constexpr int kOrientations = 8;
torch::Tensor orient_slice(const torch::Tensor& hw, int orientation);
/// "identity", "flip rows", "flip columns", "rotate 180", "transpose", ... for messages.
std::string orientation_name(int orientation);

struct SliceMatch {
  int64_t z = -1;          ///< best axial index of the volume
  int orientation = 0;     ///< orient_slice(png, orientation) is in the volume's [Y, X] plane
  int64_t shift_y = 0;     ///< volume(y, x) ~ oriented(y - shift_y, x - shift_x)
  int64_t shift_x = 0;
  double correlation = 0;  ///< NCC at the best (z, orientation, shift), over the overlapping pixels
  int64_t runner_up_z = -1;        ///< best z among those more than `exclude` slices away from z
  double runner_up_correlation = 0;
  double best_other_orientation = 0;  ///< best NCC of any orientation other than `orientation` (any z, any shift)
  std::vector<double> per_z;  ///< best NCC per axial index (over orientations and shifts)
};

/// Matches `png_hw` [H, W] against every axial slice data[0][z] of `volume` ([1, Z, Y, X]) over the 8
/// orientations (those whose oriented size is Y x X) and shifts in [-max_shift, max_shift]^2. The runner-up is
/// the best z at least `exclude` + 1 slices away from the winner (neighbouring slices are nearly identical).
/// InputError when no orientation gives the volume's in-plane size.
SliceMatch match_slice(const torch::Tensor& png_hw, const Volume& volume, int64_t max_shift = 3, int64_t exclude = 3);

/// `png_hw` moved into the volume's [Y, X] plane by `m` (orientation then shift); uncovered pixels are 0.
torch::Tensor place_slice(const torch::Tensor& png_hw, const SliceMatch& m, int64_t Y, int64_t X);

/// Writes a dataset-plane image [H, W] as a single-slice NIfTI (depth 1, identity direction, 1 mm) whose
/// read_volume(path).data[0][0] is that same [H, W] array: the style-image format of `brainspade sample`.
void write_style_slice(const std::string& path, const torch::Tensor& plane_hw);

}  // namespace brainspade
