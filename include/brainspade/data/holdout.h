#pragma once
/// Held-out test data for the segmentation experiments on a single subject (the example data): a slab of
/// neighbouring axial slices is removed from the training slices, and the same slab of the subject's 3D image and
/// label volumes becomes the test volume (everything outside the slab set to 0 = background), so `segment` and
/// `evaluate` score a model only on slices no stage has trained on.
#include <cstdint>
#include <string>
#include <vector>

#include "brainspade/data/slice_dataset.h"
#include "brainspade/io/image_io.h"

namespace brainspade {

struct SlabSplit {
  SliceDataset train;             ///< every row outside the slab (restricted to the kept modalities)
  SliceDataset held;              ///< the subject's rows inside the slab (the same modalities); empty when none is kept
  int64_t z_lo = 0, z_hi = 0;     ///< axial index range [z_lo, z_hi] of the held-out rows of `subject`
  int64_t held_out = 0;           ///< rows removed
};

/// Rows of subject `subject` (a name of ds.subject_names) whose slice_position lies in [lo, hi) are held out; when
/// `modalities` is not empty the training rows are further restricted to those modality names. InputError naming
/// the problem when the subject or a modality is unknown, the range is empty or not in [0, 1], no row falls inside
/// it, or no training row is left.
SlabSplit split_slab(const SliceDataset& ds, double lo, double hi, const std::string& subject,
                     const std::vector<std::string>& modalities = {});

/// A copy of `v` whose voxels outside axial indices [z_lo, z_hi] are 0 (same grid).
Volume keep_slab(const Volume& v, int64_t z_lo, int64_t z_hi);

/// Hard labels [1, Z, Y, X] of a PV volume [C, Z, Y, X]: the argmax channel, mapped through `label_map`
/// (label_map[c] = class of channel c; empty = identity). InputError when label_map has another length than C.
Volume hard_labels(const Volume& pv, const std::vector<int64_t>& label_map);

}  // namespace brainspade
