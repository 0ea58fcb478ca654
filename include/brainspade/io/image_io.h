#pragma once
/// Medical image and PNG input/output. This file's .cpp is the only place in brainspade that includes ITK.
///
/// Conventions (see docs/data.md):
/// - A Volume's voxels are a float32 tensor [C, Z, Y, X]; a plain 3D image has C = 1, a 4D NIfTI (e.g. partial-
///   volume maps) stores its 4th axis as channels. X is the fastest-varying axis of the file.
/// - Geometry is ITK's physical space, LPS (+x = patient Left, +y = Posterior, +z = Superior), in millimetres.
///   NIfTI's RAS affine is converted by ITK on reading and back on writing, so a written file keeps its place.
/// - read_volume() normalises the array orientation: axes are permuted and flipped so that increasing X, Y, Z
///   point as closely as possible to +L, +P, +S ("LPS index order"). An axial slice data[c][z] is then shown with
///   anterior at the top row and the patient's left on the right of the image (radiological view).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace brainspade {

/// A 3D image with channels and its physical geometry.
struct Volume {
  torch::Tensor data;                                   ///< [C, Z, Y, X] float32
  std::array<double, 3> spacing{1.0, 1.0, 1.0};         ///< mm along X, Y, Z
  std::array<double, 3> origin{0.0, 0.0, 0.0};          ///< LPS position (mm) of voxel (0, 0, 0)
  std::array<double, 9> direction{1, 0, 0, 0, 1, 0, 0, 0, 1};  ///< row-major 3x3; column i = LPS direction of axis i (X, Y, Z)

  int64_t channels() const { return data.size(0); }
  int64_t depth() const { return data.size(1); }
  int64_t height() const { return data.size(2); }
  int64_t width() const { return data.size(3); }
  /// Same sizes (Z, Y, X), spacing, origin and direction within `tol` (mm / cosine).
  bool same_grid(const Volume& other, double tol = 1e-3) const;
  /// "181x217x181 (X x Y x Z) at 1x1x1 mm" for messages.
  std::string grid_string() const;
  /// A copy with other voxel data but this geometry; `data` must be [C', Z, Y, X] with this grid's Z, Y, X.
  Volume with_data(const torch::Tensor& data) const;
};

/// Limits checked from the header, before any voxel memory is allocated.
constexpr int64_t kMaxVolumeDim = 4096;
constexpr int64_t kMaxVolumeVoxels = int64_t(1) << 31;

/// The image formats brainspade reads and writes, chosen from the file name (never by probing ITK's readers).
enum class ImageFormat { NIfTI, MetaImage, NRRD, PNG };
constexpr const char* kAcceptedImageExtensions = ".nii, .nii.gz, .mha, .mhd, .nrrd, .nhdr, .png";
/// The format of `path` by its extension (case-insensitive); InputError naming the file for any other extension.
ImageFormat image_format(const std::string& path);

/// Reads a 3D or 4D image (.nii, .nii.gz, .mha, .mhd, .nrrd, .nhdr) as float32 in LPS index order.
/// The reader is the one of the extension and must accept the file's bytes; a NIfTI header must be NIfTI-1 with
/// finite pixdim, qform and sform (checked before ITK reads it).
/// InputError naming the file when it is missing, empty, truncated or corrupt, not 3D/4D, absurdly large
/// (any dim > 4096 or more than 2^31 values) or holds NaN/Inf.
Volume read_volume(const std::string& path);

/// Writes `volume` atomically (a 4D file when C > 1); the format follows the extension (.nii.gz, .mha, ...).
void write_volume(const std::string& path, const Volume& volume);

/// Writes a hard label volume (one channel of integer class indices 0..255) as an 8-bit unsigned image (NIfTI
/// datatype 2, uint8), as nnU-Net, ITK-SNAP and other viewers expect of a segmentation; TORCH_CHECK fails on
/// more channels or values that are not integers in [0, 255].
void write_label_volume(const std::string& path, const Volume& labels);

/// Permutes and flips axes so that X, Y, Z point as closely as possible to +L, +P, +S; geometry follows so that
/// every voxel keeps its physical position. read_volume() calls this; public for tests.
Volume reorient_to_lps(const Volume& volume);

/// Physical position (LPS mm) of continuous voxel index (x, y, z).
std::array<double, 3> index_to_physical(const Volume& v, double x, double y, double z);

/// Resamples `source` onto `reference`'s grid through physical space (trilinear, or nearest for label images);
/// points outside the source get `fill`. Returns a Volume with `reference`'s geometry and `source`'s channels.
Volume resample_like(const Volume& source, const Volume& reference, bool nearest = false, double fill = 0.0);

/// Reads an 8- or 16-bit greyscale (or RGB, converted to luminance) PNG as [H, W] float32 in the file's units.
torch::Tensor read_png(const std::string& path);

/// Writes [H, W] or [H, W, 3] uint8 as a PNG, atomically.
void write_png(const std::string& path, const torch::Tensor& image_u8);

}  // namespace brainspade
