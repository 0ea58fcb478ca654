#pragma once
/// Voxel grids of scans from any scanner: reading a volume in its stored axis order, naming an orientation, and
/// resampling to a spacing (docs/data.md, "Geometry"). A Volume's geometry is ITK's: LPS physical space, mm.
#include <array>
#include <string>

#include "brainspade/io/image_io.h"

namespace brainspade {

/// Reads a volume exactly as stored (no reorientation to LPS index order): the grid a result must be written on so
/// that its header equals the input's. Same checks and errors as read_volume().
Volume read_volume_as_stored(const std::string& path);

/// The three letters of the patient directions the array axes X, Y, Z point to (ITK's LPS convention: "LPS" for an
/// identity direction; a coronal stack stored right-to-left, posterior-to-anterior, superior-to-inferior is "RSA").
std::string orientation_code(const Volume& v);

/// "2x2x3 mm LSA" for log lines.
std::string geometry_string(const Volume& v);

/// True when the spacings agree within `tol` mm on every axis.
bool same_spacing(const std::array<double, 3>& a, const std::array<double, 3>& b, double tol = 1e-3);

/// `v` resampled to `spacing` (mm along X, Y, Z) over the same physical extent and direction: the first voxel keeps its
/// centre, each axis gets round(n · old / new) voxels (at least 1). Trilinear, or nearest for hard labels.
Volume resample_to_spacing(const Volume& v, const std::array<double, 3>& spacing, bool nearest);

}  // namespace brainspade
