// `brainspade quality`: each metric against a hand-computed case, then the report end to end on phantom slices.
#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/fmt/fmt.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/csv.h"
#include "brainspade/draw/plot.h"
#include "brainspade/eval/quality.h"
#include "brainspade/io/image_io.h"
#include "brainspade/sampling/label_sampler.h"
#include "brainspade/training/train_segmenter.h"
#include "support/helpers.h"
#include "support/phantom.h"

using namespace brainspade;
namespace fs = std::filesystem;

TEST(QualityMetrics, ClassFractionsCountPixels) {
  auto l = torch::tensor({0, 1, 1, 2, 2, 2, 2, 0}, torch::kLong).view({2, 4});
  const auto f = class_fractions(l, 4);
  EXPECT_DOUBLE_EQ(f[0], 2.0 / 8);
  EXPECT_DOUBLE_EQ(f[1], 2.0 / 8);
  EXPECT_DOUBLE_EQ(f[2], 4.0 / 8);
  EXPECT_DOUBLE_EQ(f[3], 0.0);
}

// A 4x4 brain, left half GM (2) and right half WM (3): one vertical boundary of 4 unit edges over 16 brain pixels.
// A background row added below adds brain outline only, which does not count.
TEST(QualityMetrics, BoundaryDensityOfAKnownBoundary) {
  auto m = torch::full({4, 4}, 3, torch::kLong);
  m.slice(1, 0, 2).fill_(2);
  EXPECT_DOUBLE_EQ(boundary_density(m), 4.0 / 16.0);
  auto with_bg = torch::cat({m, torch::zeros({1, 4}, torch::kLong)});
  EXPECT_DOUBLE_EQ(boundary_density(with_bg), 4.0 / 16.0);
  // A CSF "sulcus" line down the middle of the GM half: 2 more vertical boundaries of 4 edges -> 12 edges.
  auto sulcus = m.clone();
  sulcus.select(1, 0).fill_(2);
  sulcus.select(1, 1).fill_(1);
  EXPECT_DOUBLE_EQ(boundary_density(sulcus), 8.0 / 16.0);  // 2|1 and 1|3: two boundaries of 4 edges
  EXPECT_TRUE(std::isnan(boundary_density(torch::zeros({3, 3}, torch::kLong))));
}

TEST(QualityMetrics, ConnectedComponentsUseFourNeighbours) {
  auto m = torch::zeros({5, 5}, torch::kLong);
  m[0][0] = 1, m[0][1] = 1, m[1][1] = 1;  // one L-shaped blob
  m[2][2] = 1;                            // touches the blob only diagonally: a second component
  m[4][0] = 1, m[4][1] = 1;               // a third
  m[4][4] = 2;
  EXPECT_EQ(connected_components(m, 1), 3);
  EXPECT_EQ(connected_components(m, 2), 1);
  EXPECT_EQ(connected_components(m, 3), 0);
}

// Closed forms: diagonal covariances give |Δμ|² + Σ(√a − √b)²; for 2x2 covariances the eigenvalues of s1·s2 give
// tr((s1^½ s2 s1^½)^½) = sqrt(tr(s1 s2) + 2 sqrt(det s1 det s2)) — here 2.3202701488820514 in all (Python).
TEST(QualityMetrics, FrechetDistanceOfGaussiansMatchesTheClosedForm) {
  auto mu1 = torch::tensor({0.0, 0.0}, torch::kDouble), mu2 = torch::tensor({1.0, 2.0}, torch::kDouble);
  auto d1 = torch::diag(torch::tensor({1.0, 4.0}, torch::kDouble)), d2 = torch::diag(torch::tensor({4.0, 1.0}, torch::kDouble));
  EXPECT_NEAR(frechet_distance(mu1, d1, mu2, d2), 5.0 + 1.0 + 1.0, 1e-10);
  EXPECT_NEAR(frechet_distance(mu1, d1, mu1, d1), 0.0, 1e-10);
  auto s1 = torch::tensor({2.0, 1.0, 1.0, 2.0}, torch::kDouble).view({2, 2});
  auto s2 = torch::tensor({1.0, 0.5, 0.5, 3.0}, torch::kDouble).view({2, 2});
  auto m2 = torch::tensor({1.0, -1.0}, torch::kDouble);
  EXPECT_NEAR(frechet_distance(mu1, s1, m2, s2), 2.3202701488820514, 1e-10);
  // From samples: 40,000 draws of each Gaussian land near the closed form.
  torch::manual_seed(0);
  auto l1 = torch::linalg::cholesky(s1), l2 = torch::linalg::cholesky(s2);
  auto a = torch::randn({40000, 2}, torch::kDouble).matmul(l1.t()) + mu1;
  auto b = torch::randn({40000, 2}, torch::kDouble).matmul(l2.t()) + m2;
  EXPECT_NEAR(frechet_distance_of(a, b), 2.3202701488820514, 0.1);
}

// A pixel checkerboard puts all its energy on the Nyquist frequency; a smooth blob almost none.
TEST(QualityMetrics, CheckerboardEnergyIsAtNyquistAndSmoothImagesHaveLittle) {
  auto yy = torch::arange(32, torch::kDouble).view({32, 1}), xx = torch::arange(48, torch::kDouble).view({1, 48});
  auto checker = ((yy + xx).remainder(2) * 2 - 1).unsqueeze(0);                         // [1, 32, 48] of ±1
  auto blob = (-((yy - 16).pow(2) + (xx - 24).pow(2)) / 60.0).exp().unsqueeze(0);  // smooth
  EXPECT_NEAR(nyquist_energy_fraction(checker), 1.0, 1e-9);
  EXPECT_LT(nyquist_energy_fraction(blob), 1e-3);
  EXPECT_GT(nyquist_energy_fraction(blob + 0.2 * checker) / nyquist_energy_fraction(blob), 100.0);
  const auto s = radial_power_spectrum(blob, 8);
  ASSERT_EQ(s.frequency.size(), 8u);
  EXPECT_NEAR(s.frequency[0], 0.5 / 16, 1e-12);
  EXPECT_GT(s.power[0], s.power[6]);  // a smooth image: power falls with frequency
  EXPECT_GT(band_power(radial_power_spectrum(blob + 0.2 * checker, 8), 0.375), band_power(s, 0.375));
}

// Axis-aligned blocks of random height (not pixel-periodic): the Nyquist share misses them, the axis share does not.
TEST(QualityMetrics, BlockyStreaksShowInTheAxisEnergyShare) {
  torch::manual_seed(1);
  auto yy = torch::arange(64, torch::kDouble).view({64, 1}), xx = torch::arange(64, torch::kDouble).view({1, 64});
  auto blob = (-((yy - 32).pow(2) + (xx - 32).pow(2)) / 200.0).exp();
  auto noise = torch::randn({4, 64, 64}, torch::kDouble) * 0.05;  // isotropic texture
  auto smooth = blob.unsqueeze(0) + noise;
  // Blocks: 8x8 cells of random values, upsampled by repetition (nearest): edges along the axes only.
  auto cells = torch::randn({4, 8, 8}, torch::kDouble) * 0.3;
  auto blocks = cells.repeat_interleave(8, 1).repeat_interleave(8, 2);
  auto blocky = smooth + blocks;
  EXPECT_GT(axis_energy_share(blocky) / axis_energy_share(smooth), 2.0);
  EXPECT_LT(nyquist_energy_fraction(blocky) / nyquist_energy_fraction(smooth), 2.0);
}

TEST(Plot, NiceTicksAndAPngOfTheRequestedSize) {
  auto expect_ticks = [](const std::vector<double>& got, const std::vector<double>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12);
  };
  expect_ticks(nice_ticks(0, 1, 5), {0, 0.2, 0.4, 0.6, 0.8, 1});
  expect_ticks(nice_ticks(3, 97, 4), {20, 40, 60, 80});
  expect_ticks(nice_ticks(-0.35, 0.1, 4), {-0.3, -0.2, -0.1, 0, 0.1});  // step 0.1: the nice step nearest 0.1125
  EXPECT_TRUE(nice_ticks(1, 1).empty());
  testutil::TempDir dir;
  LinePlot lp;
  lp.title = "t";
  lp.series.push_back({"a", {1, 2, 3}, {1, 10, 100}, false});
  lp.log_y = true;
  BarPlot bp;
  bp.series_names = {"x", "y"};
  bp.groups = {{"g", {1.0, 2.0}}};
  write_plot_png(dir / "p.png", {lp, bp}, 300, 200);
  auto png = read_png(dir / "p.png");
  EXPECT_EQ(png.sizes(), (std::vector<int64_t>{200, 600}));
  EXPECT_GT(png.std().item<double>(), 1.0);  // something is drawn
}

namespace {

// A pair folder as `sample` writes it, made of phantom slices (optionally with a checkerboard on the images).
std::string write_pairs(const std::string& dir, const SliceDataset& ds, double checker) {
  make_dirs(dir + "/images");
  make_dirs(dir + "/labels_pv");
  std::string manifest = csv_row({"id", "conditions[slice_position]", "image", "label_pv"});
  const int64_t H = ds.height(), W = ds.width();
  auto yy = torch::arange(H).view({H, 1}), xx = torch::arange(W).view({1, W});
  auto pattern = ((yy + xx).remainder(2) * 2 - 1).to(torch::kFloat32);
  for (int64_t i = 0; i < ds.size(); ++i) {
    const std::string id = "p" + std::to_string(i);
    write_slice_nifti(dir + "/images/" + id + ".nii.gz", ds.images[i] + checker * pattern);
    write_slice_nifti(dir + "/labels_pv/" + id + "_pv.nii.gz", ds.labels[i]);
    manifest += csv_row({id, fmt::format("{:.17g}", ds.slice_position[i].item<double>()), "images/" + id + ".nii.gz",
                         "labels_pv/" + id + "_pv.nii.gz"});
  }
  write_text_atomic(dir + "/manifest.csv", manifest);
  return dir;
}

}  // namespace

// Synthetic = real: every ratio is 1 and every map check passes; a checkerboard on the images fails its check.
TEST(Quality, ReportOnPairsIdenticalToRealThenWithACheckerboard) {
  testutil::TempDir dir;
  testutil::PhantomOptions po;
  po.two_modalities = false;
  po.slices = 8;
  const std::string real = testutil::write_phantom_dataset(dir / "real", po);
  const SliceDataset ds = SliceDataset::load(real);
  SegmenterTrainConfig sc;
  sc.run.out_dir = dir / "seg";
  sc.run.device = "cpu";
  sc.data.sources = {real};
  sc.data.label_map = {0, 1, 2, 3, 2, 3};
  sc.data.class_names = {"background", "csf", "gm", "wm"};
  sc.model.num_classes = 4;
  sc.model.features = {8, 16};
  sc.train.steps = 2;
  sc.train.batch_size = 4;
  sc.train.log_every = 1;
  sc.train.checkpoint_every = 2;
  sc.train.validate_every = 0;
  train_segmenter(sc, false);

  QualityJob job;
  job.run.out_dir = dir / "q";
  job.run.device = "cpu";
  job.pairs = write_pairs(dir / "same", ds, 0.0);
  job.real = real;
  job.segmenter = dir / "seg/checkpoints/last.ckpt";
  job.pca_dims = 4;
  job.feature_grid = 2;
  const QualityReport r = run_quality(job);
  EXPECT_EQ(r.n_synthetic, ds.size());
  EXPECT_EQ(r.n_real, ds.size());
  for (size_t c = 1; c < r.fraction_real.size(); ++c) EXPECT_NEAR(r.fraction_synthetic[c], r.fraction_real[c], 1e-6);
  EXPECT_NEAR(r.boundary_density_synthetic, r.boundary_density_real, 1e-9);
  EXPECT_NEAR(r.frechet, 0.0, 1e-6);
  EXPECT_EQ(r.implausible_synthetic, r.implausible_real);  // the same maps, judged by the sampler's rule
  // Per band of slice position: the same maps on both sides, so the same counts and numbers.
  ASSERT_EQ(r.bands.size(), 3u);
  int64_t counted = 0;
  for (const auto& b : r.bands) {
    EXPECT_EQ(b.n_synthetic, b.n_real);
    counted += b.n_synthetic;
    if (b.n_real > 0) {
      EXPECT_NEAR(b.boundary_density_synthetic, b.boundary_density_real, 1e-9);
    }
  }
  EXPECT_EQ(counted, ds.size());
  EXPECT_NEAR(r.checkerboard_score, 1.0, 1e-4);
  ASSERT_EQ(r.segmentability.size(), 4u);
  for (size_t c = 1; c < 4; ++c)
    if (std::isfinite(r.segmenter_on_real[c])) {
      EXPECT_NEAR(r.segmentability[c], r.segmenter_on_real[c], 1e-5);
    }
  for (const auto& c : r.checks)
    if (c.name.rfind("area", 0) == 0 || c.name.rfind("boundary", 0) == 0 || c.name.rfind("checker", 0) == 0) {
      EXPECT_TRUE(c.pass) << c.name << " " << c.value;
    }
  const auto js = nlohmann::json::parse(read_text(dir / "q/quality.json"));
  EXPECT_EQ(js.at("n_synthetic"), ds.size());
  EXPECT_EQ(js.at("implausible_synthetic"), r.implausible_synthetic);
  EXPECT_TRUE(fs::exists(dir / "q/quality.md"));
  EXPECT_EQ(read_png(dir / "q/quality.png").size(0), 380);

  job.pairs = write_pairs(dir / "checker", ds, 0.5);
  const QualityReport c = run_quality(job);
  EXPECT_GT(c.checkerboard_score, 5.0);
  bool flagged = false;
  for (const auto& ch : c.checks)
    if (ch.name.rfind("checker", 0) == 0) flagged = !ch.pass;
  EXPECT_TRUE(flagged);
}

// A label-only folder (`sample labels`) is measured without images; a missing folder is an InputError naming it.
TEST(Quality, LabelOnlyFolderAndBadInput) {
  testutil::TempDir dir;
  testutil::PhantomOptions po;
  po.two_modalities = false;
  const std::string real = testutil::write_phantom_dataset(dir / "real", po);
  const SliceDataset ds = SliceDataset::load(real);
  make_dirs(dir / "labels_only/labels");
  for (int64_t i = 0; i < ds.size(); ++i)
    write_slice_nifti(dir / ("labels_only/labels/label_" + std::to_string(i) + "_pv.nii.gz"), ds.labels[i]);
  QualityJob job;
  job.run.out_dir = dir / "q";
  job.pairs = dir / "labels_only";
  job.real = real;
  job.pca_dims = 3;
  job.feature_grid = 2;
  const QualityReport r = run_quality(job);
  EXPECT_FALSE(r.has_images);
  EXPECT_NEAR(r.frechet, 0.0, 1e-6);
  job.pairs = dir / "nothing";
  try {
    run_quality(job);
    ADD_FAILURE() << "accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("nothing"), std::string::npos) << e.what();
  }
}

// `sample labels` records each map's conditions in conditions.csv; quality then compares with the real slices inside
// the synthetic maps' slice-position range (real_positions: matched), so maps of one level of the brain are not
// measured against every level. Synthetic = the real slices of that range: every ratio is 1 again.
TEST(Quality, RealSlicesAreMatchedToTheSyntheticPositions) {
  testutil::TempDir dir;
  testutil::PhantomOptions po;
  po.two_modalities = false;
  po.slices = 10;
  const std::string real = testutil::write_phantom_dataset(dir / "real", po);
  const SliceDataset ds = SliceDataset::load(real);
  auto pos = ds.slice_position.to(torch::kDouble);
  const double lo = 0.3, hi = 0.6;
  auto rows = ((pos >= lo) & (pos <= hi)).nonzero().flatten();
  ASSERT_GE(rows.numel(), 2);
  ASSERT_LT(rows.numel(), ds.size());
  make_dirs(dir / "labels_only/labels");
  std::string conditions = csv_row({"id", "label_pv", "slice_position"});
  for (int64_t k = 0; k < rows.numel(); ++k) {
    const int64_t i = rows[k].item<int64_t>();
    const std::string file = "labels/label_" + std::to_string(k) + "_pv.nii.gz";
    write_slice_nifti(dir / ("labels_only/" + file), ds.labels[i]);
    conditions += csv_row({std::to_string(k), file, fmt::format("{:.17g}", pos[i].item<double>())});
  }
  write_text_atomic(dir / "labels_only/conditions.csv", conditions);
  QualityJob job;
  job.run.out_dir = dir / "q";
  job.pairs = dir / "labels_only";
  job.real = real;
  job.pca_dims = 2;
  job.feature_grid = 2;
  const QualityReport r = run_quality(job);
  EXPECT_EQ(r.n_synthetic, rows.numel());
  EXPECT_EQ(r.n_real, rows.numel());
  EXPECT_NEAR(r.real_position_lo, pos.index_select(0, rows).min().item<double>(), 1e-9);
  for (size_t c = 1; c < r.fraction_real.size(); ++c) EXPECT_NEAR(r.fraction_synthetic[c], r.fraction_real[c], 1e-6);
  EXPECT_NE(read_text(dir / "q/quality.md").find("the synthetic maps' range"), std::string::npos);
  job.real_positions = "all";
  const QualityReport a = run_quality(job);
  EXPECT_EQ(a.n_real, ds.size());
  EXPECT_TRUE(std::isnan(a.real_position_lo));
}

// Lesion-conditioned maps: quality measures how often a map drawn with a lesion flag on holds that lesion, and how
// often one drawn with it off does (issue: ≥ 90 % and ≤ 5 %). Three of four "on" maps hold a tumour: 0.75 fails.
TEST(Quality, LesionFlagsAreCheckedAgainstTheLesionsInTheMaps) {
  testutil::TempDir dir;
  testutil::PhantomOptions po;
  po.two_modalities = false;
  po.slices = 8;
  SliceDataset ds = testutil::make_phantom_dataset(po);
  ds.channel_names[5] = "tumour";  // the phantom's sixth channel plays the lesion
  ds.labels.select(1, 0).add_(ds.labels.select(1, 5));
  ds.labels.select(1, 5).zero_();
  ds.save(dir / "real.pt");
  make_dirs(dir / "maps/labels");
  std::string conditions = csv_row({"id", "label_pv", "tumour", "slice_position"});
  for (int64_t k = 0; k < 8; ++k) {
    auto pv = ds.labels[k].clone();
    const bool on = k < 4, blob = k < 3;
    if (blob) {
      auto patch = pv.slice(1, 10, 14).slice(2, 20, 24);
      patch.zero_();
      patch[5].fill_(1.0);
    }
    const std::string file = "labels/m" + std::to_string(k) + "_pv.nii.gz";
    write_slice_nifti(dir / ("maps/" + file), pv);
    conditions += csv_row({std::to_string(k), file, on ? "1" : "0", fmt::format("{:.17g}", ds.slice_position[k].item<double>())});
  }
  write_text_atomic(dir / "maps/conditions.csv", conditions);
  // Two real slices hold an 8x4-pixel tumour: twice the synthetic 4x4 one.
  for (int64_t k : {0, 1}) {
    auto patch = ds.labels[k].slice(1, 10, 18).slice(2, 20, 24);
    patch.zero_();
    patch[5].fill_(1.0);
  }
  ds.save(dir / "real.pt");
  QualityJob job;
  job.run.out_dir = dir / "q";
  job.pairs = dir / "maps";
  job.real = dir / "real.pt";
  job.real_positions = "all";
  job.pca_dims = 2;
  job.feature_grid = 2;
  const QualityReport r = run_quality(job);
  ASSERT_EQ(r.lesions.size(), 1u);
  const double frame = static_cast<double>(ds.labels.size(2) * ds.labels.size(3));
  EXPECT_DOUBLE_EQ(r.lesions[0].area_present_synthetic, 16.0 / frame);
  EXPECT_DOUBLE_EQ(r.lesions[0].area_present_real, 32.0 / frame);
  EXPECT_EQ(r.lesions[0].name, "tumour");
  EXPECT_EQ(r.lesions[0].n_on, 4);
  EXPECT_EQ(r.lesions[0].n_off, 4);
  EXPECT_DOUBLE_EQ(r.lesions[0].present_on, 0.75);
  EXPECT_DOUBLE_EQ(r.lesions[0].present_off, 0.0);
  int seen = 0;
  for (const auto& c : r.checks) {
    if (c.name == "tumour present, flag on (4 maps)") {
      EXPECT_FALSE(c.pass);
      ++seen;
    }
    if (c.name == "tumour present, flag off (4 maps)") {
      EXPECT_TRUE(c.pass);
      ++seen;
    }
    if (c.name == "tumour area where present (synthetic/real)") {  // half the real size: outside 0.8-1.25
      EXPECT_DOUBLE_EQ(c.value, 0.5);
      EXPECT_FALSE(c.pass);
      ++seen;
    }
  }
  EXPECT_EQ(seen, 3);
  EXPECT_NE(read_text(dir / "q/quality.md").find("tumour present, flag on"), std::string::npos);
}
