#pragma once
/// A simulated lesion cohort from one labelled subject (`brainspade phantom-lesions`): the code path of the paper's
/// tumour experiment (§3.3) made runnable without a real lesion cohort. These are simulations: they exercise the
/// lesion-conditioned label generator, SPADE with lesion channels and multi-contrast segmentation, and allow relative
/// comparisons between models; they say nothing about clinical accuracy (docs/data.md, "The simulated lesion cohort").
///
/// Each patient is the source subject moved by its own smooth random deformation (an affine transform and an elastic
/// field of B-spline-like smoothness), so that patients differ in their anatomy, not only in their lesions. Each gets
/// one or more tumour cores, each surrounded by edema: smooth random 3D shapes (a sphere whose radius is modulated by
/// smooth noise) seeded in white matter, optionally pushing the tissue around them away (mass effect). The PV maps
/// gain the lesion channels with their share of every voxel taken from the other channels, so each voxel still sums
/// to 1. Images: T1 is the source's T1 deformed, with lesions drawn hypointense to white matter; PD is synthesised from
/// the PV maps with tissue values relative to white matter and the lesions hyperintense (values and sources in
/// docs/data.md). Both get a smooth bias field, a gain and gamma change, smooth texture and Gaussian noise.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "brainspade/core/config.h"
#include "brainspade/io/image_io.h"

namespace brainspade {

struct PhantomSourceOptions {
  std::string image = "data/example/ch2bet.nii.gz";      ///< brain-extracted T1 of the source subject
  std::string labels = "data/example/colin27_pv.nii.gz"; ///< its PV maps [C, Z, Y, X] (channel 0 = background)
  std::vector<std::string> channel_names{"background", "csf", "gm", "wm", "deep_gm", "brainstem"};
  void visit(ConfigVisitor& v);
};

struct PhantomCohortOptions {
  int64_t train = 6;  ///< patients for training (listed in the slice config)
  int64_t test = 6;   ///< held-out patients (test images and labels only; no stage sees them)
  /// PV channel (source channels, then the lesions) → class of the hard test labels, e.g. [0,1,2,3,2,3,4,5]:
  /// deep GM counted as GM, brainstem as WM; empty = the channel index
  std::vector<int64_t> label_map;
  /// settings of the written slice config (the training patients' slices, as `brainspade slice` reads them)
  int64_t slice_height = 192;
  int64_t slice_width = 256;
  int64_t slices_per_volume = 40;  ///< random subset of each volume's kept slices (0 = all: ~1.7 MB per 8-channel slice)
  void visit(ConfigVisitor& v);
};

struct PhantomAnatomyOptions {
  double rotate_deg = 6.0;        ///< rotation about each axis ~ U(−r, r) degrees
  double scale = 0.06;            ///< scale per axis ~ 1 + U(−s, s)
  double translate_mm = 4.0;      ///< translation per axis ~ U(−t, t) mm
  double elastic_mm = 3.0;        ///< std of the elastic displacement at its control points (mm)
  int64_t elastic_points = 5;     ///< control points per axis of the elastic field (fewer = smoother)
  void visit(ConfigVisitor& v);
};

struct PhantomLesionOptions {
  std::vector<std::string> names{"tumour", "edema"};  ///< the two lesion channels: core, then the edema around it
  std::vector<int64_t> count{1, 2};                   ///< tumours per patient ~ U{lo..hi}
  std::vector<double> tumour_radius_mm{6.0, 14.0};    ///< core radius ~ U(lo, hi)
  std::vector<double> edema_ratio{1.5, 2.2};          ///< edema radius / core radius ~ U(lo, hi)
  double irregularity = 0.3;      ///< relative radius modulation by smooth noise (0 = spheres)
  double border_mm = 1.0;         ///< width of the partial-volume edge of the core (the edema's is twice as wide)
  double mass_effect_mm = 3.0;    ///< how far the tissue at the core's edge is pushed outwards (0 = none)
  double min_wm = 0.9;            ///< a core's centre lies where white matter PV ≥ this ...
  double margin_mm = 10.0;        ///< ... at least this far from the background
  std::vector<double> z_range{0.35, 0.75};  ///< ... and in this range of relative axial position (0 = inferior)
  void visit(ConfigVisitor& v);
};

struct PhantomContrastOptions {
  /// T1 intensity of the tumour core and the edema relative to the patient's white-matter mean (both hypointense)
  std::vector<double> t1_lesion{0.55, 0.75};
  /// PD value of each source channel relative to white matter (BrainWeb's tissue proton densities: CSF 1.0, GM 0.86,
  /// WM 0.77 → 1.30, 1.12, 1.0)
  std::vector<double> pd_tissue{0.0, 1.30, 1.12, 1.0, 1.08, 1.02};
  std::vector<double> pd_lesion{1.28, 1.22};  ///< PD of the core and the edema relative to white matter (hyperintense)
  double texture = 0.04;          ///< std of the smooth multiplicative texture (about 4 mm grain)
  double bias_field = 0.15;       ///< bias field exp(b·n), b ~ U(0, this), n smooth unit noise
  std::vector<double> gamma{0.85, 1.15};  ///< gamma ~ U(lo, hi) on the image scaled to [0, 1]
  double gain = 0.1;              ///< global gain ~ 1 + U(−g, g)
  double noise = 0.02;            ///< Gaussian noise std relative to the white-matter mean, inside the brain
  void visit(ConfigVisitor& v);
};

/// Root of `brainspade phantom-lesions --config`.
struct PhantomConfig {
  RunOptions run;
  PhantomSourceOptions source;
  PhantomCohortOptions cohort;
  PhantomAnatomyOptions anatomy;
  PhantomLesionOptions lesions;
  PhantomContrastOptions contrast;
  void visit(ConfigVisitor& v);
};

/// One simulated patient on the source's grid.
struct PhantomPatient {
  Volume pv;      ///< [C + 2, Z, Y, X]: the source channels, then core and edema; every voxel sums to 1
  Volume t1, pd;  ///< [1, Z, Y, X], zero outside the brain
  double tumour_ml = 0, edema_ml = 0;  ///< lesion volumes (sum of PV × voxel volume)
  int64_t tumours = 0;
  std::vector<std::array<int64_t, 3>> centres;  ///< voxel (x, y, z) of each core's centre
};

/// Simulates patient `index` of the cohort from the source volumes; deterministic in (seed, index).
/// InputError for source volumes on different grids, PV maps whose channel count differs from channel_names, no
/// white matter where a core may go, or inconsistent options (ranges lo > hi, label_map of the wrong length).
PhantomPatient simulate_patient(const Volume& t1, const Volume& pv, const PhantomConfig& config, int64_t index);

/// Checks the options that do not need the volumes (ranges, list lengths); InputError naming the key.
void check_phantom_config(const PhantomConfig& config);

/// `brainspade phantom-lesions`: writes run.out_dir/{train,test}/..., slice.yaml (the training patients, for
/// `brainspade slice`), cohort.csv (one row per patient: split, tumours, volumes) and montage.png. Files are written
/// atomically; cohort.csv comes last, so a folder without it is incomplete (a rerun writes it again, identically).
void run_phantom_lesions(const PhantomConfig& config, const std::string& resolved_config_yaml);

}  // namespace brainspade
