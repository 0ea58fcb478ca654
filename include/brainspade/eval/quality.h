#pragma once
/// `brainspade quality`: how close a folder of synthetic label maps (and images) is to real slices, in seconds, before
/// anyone spends GPU-days training segmenters on it (docs/quality.md explains every number and its threshold).
///
/// Label maps (argmax of the PV maps) against real maps of the same size: the area fraction per tissue, the
/// boundary density (tissue-boundary length per brain area: sulci make it high), connected components per map, and
/// a Fréchet distance between synthetic and real maps in a low-dimensional feature space with the real-vs-real
/// distance as its floor. Images against their own labels: segmentability (a segmenter trained on real slices
/// segments the synthetic images; Dice against the synthetic labels), intensity per tissue, and artefacts (radially
/// averaged power spectrum, the checkerboard score: energy at the Nyquist frequencies relative to real).
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "brainspade/core/config.h"

namespace brainspade {

// ---- the metrics, each usable alone (tests check them against hand-computed cases) ----

/// Share of pixels of each class 0..K-1 over all maps `labels` [N, H, W] (int64 class indices).
std::vector<double> class_fractions(const torch::Tensor& labels, int64_t num_classes);
/// Tissue-boundary length per brain pixel of maps [N, H, W] or [H, W]: horizontal and vertical neighbour pairs whose
/// classes differ and are both brain (> 0), divided by the number of brain pixels (the brain outline is not counted).
double boundary_density(const torch::Tensor& labels);
/// 4-connected components of class `k` in one map [H, W].
int64_t connected_components(const torch::Tensor& map, int64_t k);
/// Fréchet distance between N(mu1, s1) and N(mu2, s2): |mu1 − mu2|² + tr(s1 + s2 − 2 (s1^½ s2 s1^½)^½) (Dowson &
/// Landau 1982; the FID formula). Covariances are symmetric [D, D]; computed in float64 through eigendecompositions.
double frechet_distance(const torch::Tensor& mu1, const torch::Tensor& s1, const torch::Tensor& mu2,
                        const torch::Tensor& s2);
/// The same between the Gaussians fitted to the rows of a [Na, D] and b [Nb, D].
double frechet_distance_of(const torch::Tensor& a, const torch::Tensor& b);

/// Radially averaged power spectrum of images [N, H, W]: each image minus its mean, |FFT|², averaged over the images
/// and over rings of radial frequency r = sqrt(fx² + fy²) (cycles/pixel) in `bins` equal bins of [0, 0.5].
struct RadialSpectrum {
  std::vector<double> frequency;  ///< bin centres
  std::vector<double> power;      ///< mean power per bin (NaN for a bin with no frequency)
};
RadialSpectrum radial_power_spectrum(const torch::Tensor& images, int64_t bins = 24);
/// Share of the spectral energy (DC excluded) of images [N, H, W] on the Nyquist row and column (|fy| = 1/2 or
/// |fx| = 1/2): a pixel-periodic checkerboard puts its energy there, natural images little.
double nyquist_energy_fraction(const torch::Tensor& images);
/// Share of the spectral energy at radial frequency >= `from` that lies within one frequency bin of the fx = 0 or
/// fy = 0 axis: the signature of axis-aligned blocky streaks (a pattern that is not pixel-periodic, so the Nyquist
/// share misses it); natural images spread that energy over all directions.
double axis_energy_share(const torch::Tensor& images, double from = 0.2);
/// Mean power of the spectrum over bins with frequency >= `from` (the top band).
double band_power(const RadialSpectrum& s, double from);

/// A folder of synthetic maps as `sample` (manifest.csv) or `sample labels` (conditions.csv, or labels/*_pv.nii.gz)
/// writes it. InputError naming the folder when it holds no maps or maps of different sizes.
struct SyntheticFolder {
  torch::Tensor pv;        ///< [N, C, H, W] partial-volume maps
  torch::Tensor images;    ///< [N, 1, H, W], undefined for label-only folders
  torch::Tensor position;  ///< [N] slice positions (float64), undefined when not recorded
};
SyntheticFolder read_synthetic_folder(const std::string& dir);

// ---- the report ----

struct QualityThresholds {
  double fraction_low = 0.8;        ///< each tissue's area fraction synthetic/real at least this
  double fraction_high = 1.25;      ///< ... and at most this
  double boundary_density_min = 0.8;  ///< boundary density synthetic/real at least this (sulci)
  /// segmentability Dice at least these, one per segmenter class 1.. (csf, gm, wm for the tiny segmenter)
  std::vector<double> segmentability_min{0.70, 0.85, 0.85};
  double checkerboard_max = 1.5;    ///< checkerboard score synthetic/real at most this
  /// lesion-conditioned maps (their conditions name lesion flags): share of maps drawn with a lesion's flag on that
  /// hold it at least this ...
  double lesion_on_min = 0.90;
  double lesion_off_max = 0.05;     ///< ... and of maps drawn with it off, at most this
  /// a map holds a lesion when at least this many of its pixels have that lesion's PV > 0.5 (the slicing rule's 20
  /// pixels at 192x256, scaled to the maps' size)
  int64_t lesion_min_pixels = 20;
  void visit(ConfigVisitor& v);
};

/// Root of `brainspade quality`.
struct QualityJob {
  RunOptions run;              ///< out_dir receives quality.md, quality.json, quality.png
  std::string pairs;           ///< folder written by `sample` (manifest.csv) or `sample labels` (labels/*_pv.nii.gz)
  std::string real;            ///< slice dataset (.pt) of real slices
  std::string modality;        ///< rows of `real` compared (empty: its most frequent modality)
  std::string segmenter;       ///< segmenter checkpoint trained on real slices; empty: one is trained on `real`
  std::string segmenter_config = "configs/tiny/segmenter.yaml";  ///< what is trained when `segmenter` is empty
  std::vector<int64_t> label_map{0, 1, 2, 3, 2, 3};  ///< PV channel → segmenter class (the paper's CSF/GM/WM)
  int64_t feature_grid = 8;    ///< Fréchet features: class shares on a grid × grid of cells per map
  int64_t pca_dims = 16;       ///< ... projected on this many principal components of the real maps
  /// "matched": real slices restricted to the synthetic maps' range of slice positions (when the pairs record them),
  /// so that maps of the middle of the brain are not compared with every level of it; "all": every real slice
  std::string real_positions = "matched";
  bool images = true;          ///< false: measure the label maps only, even when the folder has images
  QualityThresholds thresholds;
  void visit(ConfigVisitor& v);
};

/// One check of the report: a measured value against its threshold.
struct QualityCheck {
  std::string name;       ///< e.g. "fraction csf (synthetic/real)"
  double value = NAN;
  std::string target;     ///< e.g. "0.80–1.25"
  bool pass = false;
};

/// The label-map numbers of one band of slice positions (the LDM's slice condition; the real slices' positions).
struct QualityBand {
  double lo = 0, hi = 1;  ///< slice positions [lo, hi)
  int64_t n_synthetic = 0, n_real = 0;
  std::vector<double> fraction_synthetic, fraction_real;  ///< per PV channel
  double boundary_density_synthetic = NAN, boundary_density_real = NAN;
};

struct QualityReport {
  int64_t n_synthetic = 0, n_real = 0;
  /// slice positions of the real slices compared (real_positions: matched); NaN when every real slice is used
  double real_position_lo = NAN, real_position_hi = NAN;
  bool has_images = false;
  std::string segmenter_used;  ///< the checkpoint, and whether quality trained it
  std::vector<std::string> tissue_names;  ///< PV channel names (index 0: background)
  std::vector<double> fraction_synthetic, fraction_real;  ///< per PV channel, share of pixels
  double boundary_density_synthetic = NAN, boundary_density_real = NAN;
  std::vector<double> components_synthetic, components_real;  ///< mean components per map, per PV channel
  double frechet = NAN, frechet_floor = NAN;  ///< synthetic vs real; real half vs real half
  /// maps no brain slice looks like, by sampler.implausible_redraw's default rule (implausible_maps: brain on > 5% of
  /// the frame's outer ring or on < 5% of the frame)
  int64_t implausible_synthetic = 0, implausible_real = 0;
  /// the same per third of the slice-position range (when the pairs' manifest records slice_position conditions)
  std::vector<QualityBand> bands;
  std::vector<std::string> segmenter_classes;
  std::vector<double> segmentability;        ///< Dice per segmenter class on the synthetic images
  std::vector<double> segmenter_on_real;     ///< the same segmenter on the real slices (its reference)
  std::vector<double> intensity_mean_synthetic, intensity_sd_synthetic, intensity_mean_real, intensity_sd_real;
  RadialSpectrum spectrum_synthetic, spectrum_real;
  double top_band_ratio = NAN;               ///< power at r >= 0.375, synthetic/real
  double checkerboard_score = NAN;           ///< Nyquist energy fraction, synthetic/real
  double axis_energy_ratio = NAN;            ///< axis_energy_share, synthetic/real (blocky streaks)
  /// per lesion flag of the conditions: name, maps drawn with it on / off, and the share of each that holds the lesion;
  /// the lesion's mean area (share of the frame with PV > 0.5) over the synthetic and over the real maps that hold it.
  /// The area-fraction check over all maps mixes the lesion's size with how many maps ask for it (a balanced draw asks
  /// for a tumour in 1/3 of the maps where half the real mid-brain slices hold one); this one compares sizes alone.
  struct LesionRate {
    std::string name;
    int64_t n_on = 0, n_off = 0;
    double present_on = NAN, present_off = NAN;
    double area_present_synthetic = NAN, area_present_real = NAN;
  };
  std::vector<LesionRate> lesions;
  std::vector<QualityCheck> checks;
  double seconds = 0;
};

/// Reads both sides, measures, writes <out>/quality.md, quality.json and quality.png; InputError naming the folder or
/// file that cannot be read or compared (sizes that do not pool evenly, no images where segmentability needs them).
QualityReport run_quality(const QualityJob& job);

}  // namespace brainspade
