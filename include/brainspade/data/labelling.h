#pragma once
/// Tissue labelling of a brain-extracted T1: partial-volume-style maps in the authors' channel order
/// [background, csf, gm, wm, deep_gm, brainstem], summing to 1 in every voxel.
///
/// CSF/GM/WM come from our own 3-class Gaussian mixture fitted by EM to the brain's intensities (initialised from
/// intensity quantiles), with a light mean-field spatial prior (each class's prior is raised where its neighbours
/// already hold it). The posteriors are used as the PV maps, as in the paper's pipeline where PV maps are
/// probabilistic segmentations. Deep GM comes from an atlas (AAL caudate, putamen, pallidum, thalamus): inside
/// those atlas regions the GM+WM mass becomes deep GM. No honest source of brainstem labels exists in the example
/// data, so the brainstem channel is left at zero (see docs/data.md).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "brainspade/core/config.h"
#include "brainspade/io/image_io.h"

namespace brainspade {

struct LabellingOptions {
  int64_t em_iterations = 15;   ///< EM iterations of the 3-class mixture
  double spatial_beta = 1.0;    ///< strength of the neighbourhood prior (0 = plain mixture, no spatial term)
  double brain_threshold = 0.0; ///< voxels of the brain-extracted T1 above this value are brain
  std::vector<int64_t> deep_gm_labels{71, 72, 73, 74, 75, 76, 77, 78};  ///< AAL caudate, putamen, pallidum, thalamus
  void visit(ConfigVisitor& v);
};

/// Channel names of the labelling output, in order.
const std::vector<std::string>& tissue_channel_names();

/// The fitted mixture, sorted by mean: CSF < GM < WM (T1 contrast).
struct MixtureFit {
  std::array<double, 3> mean{}, stddev{}, weight{};
  int64_t iterations = 0;
};

struct LabellingResult {
  Volume pv;  ///< [6, Z, Y, X] on the T1's grid: background, csf, gm, wm, deep_gm, brainstem
  MixtureFit fit;
};

/// Labels `t1` ([1, Z, Y, X], brain-extracted, zero outside). `atlas` (may be nullptr) is an integer atlas; it is
/// resampled (nearest) onto the T1 grid when its grid differs. InputError when the T1 has too few brain voxels.
LabellingResult label_t1(const Volume& t1, const Volume* atlas, const LabellingOptions& options);

/// Hard labels of PV maps [C, ...] → [...] int64 argmax.
torch::Tensor argmax_labels(const torch::Tensor& pv);

/// Dice of label `k` between two integer label maps of the same shape (1 when both are empty).
double dice(const torch::Tensor& a, const torch::Tensor& b, int64_t k);

/// Agreement of our labels with an independent tissue probability map set (CSF, GM, WM volumes).
struct AgreementResult {
  std::array<double, 3> dice{};              ///< csf, gm, wm Dice of argmax over [background, csf, gm, wm]
  std::array<double, 3> dice_in_brain{};     ///< csf, gm, wm Dice of argmax over [csf, gm, wm] inside our brain mask
  std::array<double, 3> dice_header{};       ///< the same as `dice`, trusting the reference's header geometry as is
  std::array<int, 3> flips{};                ///< 1 where the reference's axis had to be flipped versus its header
  std::array<double, 3> shift_mm{};          ///< shift added after centring the reference's box on the target's
  double correlation = 0;                    ///< T1 vs (wm - csf) correlation at the chosen alignment
};

/// Compares `pv` (labelling output, [6, Z, Y, X]) with reference maps (each [1, z, y, x]). The reference grid is
/// placed with its box centred on the target's, and its axis flips and a shift (within ±max_shift_mm in steps of
/// its spacing) are chosen by maximising the correlation of the T1 intensity with the reference's WM − CSF: this
/// uses the image, not our labels, so the choice does not favour our segmentation. Deep GM counts as GM.
AgreementResult measure_agreement(const Volume& pv, const Volume& t1, const Volume& ref_csf, const Volume& ref_gm,
                                  const Volume& ref_wm, double max_shift_mm = 6.0);

}  // namespace brainspade
