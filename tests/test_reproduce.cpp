// The reproduction scripts' building blocks (per-source pooling of segmenter data, the prediction figure) and the
// scripts themselves in smoke mode (a few steps per stage on the example data; skipped when it is absent).
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/csv.h"
#include "brainspade/core/error.h"
#include "brainspade/data/slice_dataset.h"
#include "brainspade/eval/figure.h"
#include "brainspade/inference/segment.h"
#include "brainspade/io/image_io.h"
#include "brainspade/sampling/label_sampler.h"
#include "brainspade/training/train_segmenter.h"
#include "support/helpers.h"
#include "support/phantom.h"

using namespace brainspade;
namespace fs = std::filesystem;

TEST(SegmenterData, SourceDownsamplePoolsEachSourceByItsOwnFactor) {
  testutil::TempDir dir;
  auto real = testutil::write_phantom_dataset(dir.path(), {});  // 32x48 slices
  // Two "generated pairs" already at half size (16x24), as generators trained with downsample 2 make them.
  auto pv = torch::zeros({6, 16, 24});
  pv[0].fill_(1.0);
  pv[0].narrow(0, 4, 8).narrow(1, 6, 12).fill_(0.0);
  pv[3].narrow(0, 4, 8).narrow(1, 6, 12).fill_(1.0);
  for (int i = 0; i < 2; ++i) {
    write_slice_nifti(dir / ("pairs/images/p" + std::to_string(i) + ".nii.gz"), torch::randn({1, 16, 24}));
    write_slice_nifti(dir / ("pairs/labels/p" + std::to_string(i) + "_seg.nii.gz"), pv.argmax(0, true).to(torch::kFloat));
  }
  SegDataOptions o;
  o.sources = {real, dir / "pairs"};
  o.downsample = 2;
  EXPECT_THROW(load_segmentation_data(o), InputError);  // pooling the pairs again gives 8x12 != 16x24
  o.source_downsample = {2, 1};
  auto s = load_segmentation_data(o);
  EXPECT_EQ(s.images.sizes(), (std::vector<int64_t>{26, 1, 16, 24}));
  EXPECT_EQ(s.labels[25][8][12].item<int64_t>(), 3);  // the pair's label is kept, not pooled
  o.source_downsample = {2};
  try {
    load_segmentation_data(o);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("data.source_downsample': 1 factors for 2 sources"), std::string::npos)
        << e.what();
  }
}

TEST(PredictionFigure, RowsOfImageReferenceAndPredictionsOrAnInputError) {
  testutil::TempDir dir;
  Volume img;
  img.data = torch::rand({1, 10, 12, 14});
  write_volume(dir / "img.nii.gz", img);
  auto lab = torch::zeros({1, 10, 12, 14});
  lab.narrow(1, 3, 4).narrow(2, 2, 6).narrow(3, 2, 6).fill_(2.0);
  write_volume(dir / "ref.nii.gz", img.with_data(lab));
  write_volume(dir / "pred.nii.gz", img.with_data(torch::zeros_like(lab)));
  PredictionFigureJob job;
  job.image = dir / "img.nii.gz";
  job.reference = dir / "ref.nii.gz";
  job.predictions = {"R=" + (dir / "pred.nii.gz"), "S=" + (dir / "ref.nii.gz")};
  job.rows = 2;
  job.out = dir / "fig.png";
  auto caption = write_prediction_figure(job);
  EXPECT_EQ(caption, "columns: image, ground truth, R, S; slices z=3,5");  // evenly spaced in the foreground z 3..6
  auto png = read_png(dir / "fig.png");
  EXPECT_GT(png.size(0), 2 * 12);  // two rows of 12-pixel tiles (plus padding)
  EXPECT_GT(png.size(1), 4 * 14);  // four columns
  job.predictions = {dir / "pred.nii.gz"};
  EXPECT_THROW(write_prediction_figure(job), InputError);  // not NAME=PATH
  Volume small;
  small.data = torch::zeros({1, 10, 12, 13});
  write_volume(dir / "small.nii.gz", small);
  job.predictions = {"X=" + (dir / "small.nii.gz")};
  EXPECT_THROW(write_prediction_figure(job), InputError);
}

namespace {

struct ScriptResult {
  int exit_code = -1;
  std::string output;
  double seconds = 0;
};

// Runs scripts/reproduce/<name> with SMOKE=1 into `out` (the brainspade under test as the program).
ScriptResult run_script(const std::string& name, const std::string& out, const std::string& env = "") {
  const auto t0 = std::chrono::steady_clock::now();
  std::string cmd = "SMOKE=1 REPRO_OUT=" + out + " BRAINSPADE=" + BRAINSPADE_BINARY + " " + env + " " +
                    BRAINSPADE_SOURCE_DIR + "/scripts/reproduce/" + name + " 2>&1";
  ScriptResult r;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

bool have_example_slices() {
  auto d = testutil::example_data_dir();
  return !d.empty() && fs::exists(d + "/slices/dataset.pt");
}

// Every value of `column` in the CSV at `path` is a number in [lo, hi] (NaN allowed where `nan_ok`); returns the row count.
size_t expect_column_in(const std::string& path, const std::string& column, double lo, double hi, bool nan_ok = false) {
  auto t = read_csv_table(path);
  const int c = t.column(column);
  EXPECT_GE(c, 0) << path << " has no column " << column;
  if (c < 0) return 0;
  for (const auto& row : t.rows) {
    const double v = std::stod(row[c]);
    if (std::isnan(v) && nan_ok) continue;
    EXPECT_TRUE(v >= lo && v <= hi) << path << ": " << column << " = " << row[c];
  }
  return t.rows.size();
}

// A figure that is a readable PNG with content: at least `min_w` pixels wide, not one flat grey.
void expect_figure(const std::string& path, int64_t min_w) {
  auto img = read_png(path);  // [H, W] luminance, 0-255
  ASSERT_EQ(img.dim(), 2) << path;
  EXPECT_GE(img.size(1), min_w) << path;
  EXPECT_GT(img.std().item<double>(), 5.0) << path << " is (nearly) one flat grey";
}

}  // namespace

TEST(ReproduceSmoke, Exp1RunsEveryStageWritesTheReportAndSkipsFinishedStages) {
  if (!have_example_slices()) GTEST_SKIP() << "example data not prepared (scripts/setup.sh)";
  testutil::TempDir dir;
  auto r = run_script("exp1_healthy.sh", dir / "exp1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::printf("exp1 smoke: %.1f s\n", r.seconds);
  auto report = read_text(dir / "exp1/report/README.md");
  for (const char* row : {"| R | ", "| S | ", "| H | ", "| DR | "}) EXPECT_NE(report.find(row), std::string::npos) << report;
  EXPECT_NE(report.find("| model | csf | gm | wm |"), std::string::npos) << report;
  // Per-volume Dice of the DR model: one row per test volume and class, each a Dice in [0, 1].
  EXPECT_GE(expect_column_in(dir / "exp1/report/per_volume_DR.csv", "dice", 0.0, 1.0, true), 3u);
  // S vs R: one paired test per metric and class, p in [0, 1], verdict one of the two models or none.
  const auto w = read_csv_table(dir / "exp1/report/eval_S_vs_R/wilcoxon.csv");
  EXPECT_EQ(expect_column_in(dir / "exp1/report/eval_S_vs_R/wilcoxon.csv", "p_value", 0.0, 1.0, true), 4u * 3u)
      << "4 metrics x 3 classes";
  for (const auto& row : w.rows) {
    const std::string& verdict = row[w.column("significantly_better")];
    EXPECT_TRUE(verdict == "S" || verdict == "R" || verdict == "none") << verdict;
  }
  expect_figure(dir / "exp1/report/fig3_colin27.png", 200);
  // The privacy audit ran on the SPADE pairs against the held-out slab (membership on the LDM and SPADE) and its
  // verdicts are in the report.
  const auto audit = nlohmann::json::parse(read_text(dir / "exp1/report/audit/audit.json"));
  EXPECT_EQ(audit.at("n_synthetic").get<int64_t>(), 4);
  const double auc = audit.at("auc").get<double>();
  EXPECT_TRUE(auc >= 0.0 && auc <= 1.0) << auc;
  EXPECT_NE(report.find("LDM membership"), std::string::npos) << report;
  const double spade_auc = audit.at("spade_auc").get<double>();
  EXPECT_TRUE(spade_auc >= 0.0 && spade_auc <= 1.0) << spade_auc;
  EXPECT_NE(report.find("SPADE membership"), std::string::npos) << report;
  EXPECT_NE(read_text(dir / "exp1/pairs/randomized/manifest.csv").find(",randomized,"), std::string::npos);
  // The test slab is not in the training data: the R model's training set is smaller than the full dataset.
  EXPECT_NE(r.output.find("held out"), std::string::npos) << r.output;
  auto again = run_script("exp1_healthy.sh", dir / "exp1");
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("train spade: done before"), std::string::npos) << again.output;
  EXPECT_NE(again.output.find("train segmenter DR: done before"), std::string::npos) << again.output;
  EXPECT_EQ(again.output.find("sample spade (4 pairs) ..."), std::string::npos) << again.output;
}

TEST(ReproduceSmoke, Exp2RunsNearAndFarOutOfDistribution) {
  if (!have_example_slices()) GTEST_SKIP() << "example data not prepared (scripts/setup.sh)";
  testutil::TempDir dir;
  auto r = run_script("exp2_ood.sh", dir / "exp2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::printf("exp2 smoke: %.1f s\n", r.seconds);
  auto report = read_text(dir / "exp2/report/README.md");
  EXPECT_NE(report.find("## near out of distribution"), std::string::npos) << report;
  EXPECT_NE(report.find("## far out of distribution (brainweb_pd.nii.gz)"), std::string::npos) << report;
  EXPECT_NE(report.find("| S_far | "), std::string::npos) << report;
  expect_figure(dir / "exp2/report/far/fig4_far.png", 200);
  // The far-OoD pairs are styled by the PD image.
  EXPECT_NE(read_text(dir / "exp2/pairs/spade_far/manifest.csv").find("brainweb_pd.nii.gz"), std::string::npos);
}

// Without arguments exp3 simulates a lesion cohort (2 + 2 patients in SMOKE mode) and runs every stage on T1 and PD
// together: the report has the paper's Table 3 metrics per model, the lesion-conditioning rates and the figure.
TEST(ReproduceSmoke, Exp3RunsTheTumourPathOnTheSimulatedCohort) {
  if (!have_example_slices()) GTEST_SKIP() << "example data not prepared (scripts/setup.sh)";
  testutil::TempDir dir;
  auto bad = run_script("exp3_tumour.sh", dir / "bad", "REPRO_LESION_REDRAW=ten");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("REPRO_LESION_REDRAW 'ten'"), std::string::npos) << bad.output;
  EXPECT_FALSE(fs::exists(dir / "bad/cohort"));
  // The label maps of the pairs are redrawn where their lesions disagree with their flags (sampler.lesion_redraw),
  // and by default their flags are drawn from the simulated cohort's combinations only (REPRO_LESION_COMBINATIONS
  // unset: [tumour+edema, edema, none] for its [tumour, edema] channels).
  auto r = run_script("exp3_tumour.sh", dir / "exp3", "REPRO_LESION_REDRAW=2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::printf("exp3 smoke: %.1f s\n", r.seconds);
  EXPECT_NE(r.output.find("sampler.lesion_redraw: "), std::string::npos) << r.output;
  // With two cores, the classifier, SPADE and the style slices run beside the lesion LDM; R_les beside the sampling
  // and S_les; H_les beside DR; one thread each, each lane's output in its own log (common.sh, "Side by side").
  if (std::thread::hardware_concurrency() >= 2) {
    EXPECT_NE(r.output.find("image_side: beside the next stages"), std::string::npos) << r.output;
    const std::string side = read_text(dir / "exp3/logs/image_side.log");
    for (const char* st : {"train spade: ", "style slices patient000 PD: "})
      EXPECT_NE(side.find(st), std::string::npos) << side;
    EXPECT_NE(r.output.find("style slices patient000 PD: done before"), std::string::npos) << r.output;
    for (const char* lane : {"R_les", "S_les", "H_les", "DR"}) {
      const std::string log = read_text(dir / ("exp3/logs/" + std::string(lane) + ".log"));
      EXPECT_NE(log.find("train segmenter " + std::string(lane) + ": "), std::string::npos) << log;
      EXPECT_NE(log.find("1 thread(s)"), std::string::npos) << log;
      EXPECT_NE(log.find(" with " + std::string(lane) + ": "), std::string::npos) << "no segmentation in " << log;
    }
  }
  const std::string sample_log = read_text(dir / "exp3/pairs/spade/T1/sample.log");
  EXPECT_NE(sample_log.find("lesion_combinations: [tumour+edema, edema, none]"), std::string::npos) << sample_log;
  auto report = read_text(dir / "exp3/report/README.md");
  EXPECT_NE(report.find("| metric | R_les | S_les | H_les | DR |"), std::string::npos) << report;
  for (const char* row : {"| dice | ", "| accuracy | ", "| precision | ", "| recall | "})
    EXPECT_NE(report.find(row), std::string::npos) << report;
  EXPECT_NE(report.find("| model | csf | gm | wm | tumour | edema |"), std::string::npos) << report;
  EXPECT_NE(report.find("tumour present, flag on"), std::string::npos) << report;
  // Two held-out patients, five classes: a Dice in [0, 1] per volume and class.
  EXPECT_EQ(expect_column_in(dir / "exp3/report/per_volume_S_les.csv", "dice", 0.0, 1.0, true), 2u * 5u);
  expect_figure(dir / "exp3/report/fig4_tumour.png", 200);
  // The segmenters take T1 and PD; the synthetic pairs of both contrasts share their label maps.
  auto seg = load_segmenter(dir / "exp3/segmenters/S_les/checkpoints/last.ckpt", torch::kCPU);
  EXPECT_EQ(seg.modalities, (std::vector<std::string>{"T1", "PD"}));
  const auto t1 = read_csv_table(dir / "exp3/pairs/spade/T1/manifest.csv"),
             pd = read_csv_table(dir / "exp3/pairs/spade/PD/manifest.csv");
  ASSERT_EQ(t1.rows.size(), 4u);
  ASSERT_EQ(pd.rows.size(), 4u);
  const int c = t1.column("label_seg");
  for (size_t i = 0; i < t1.rows.size(); ++i)
    EXPECT_TRUE(torch::equal(read_volume(dir / ("exp3/pairs/spade/T1/" + t1.rows[i][c])).data,
                             read_volume(dir / ("exp3/pairs/spade/PD/" + pd.rows[i][c])).data));
  // The test patients are not in the training slices.
  const auto cohort = read_csv_table(dir / "exp3/cohort/cohort.csv");
  const auto ds = SliceDataset::load(dir / "exp3/cohort/slices/dataset.pt");
  for (const auto& row : cohort.rows)
    if (row[cohort.column("split")] == "test") {
      EXPECT_EQ(std::count(ds.subject_names.begin(), ds.subject_names.end(), row[0]), 0) << row[0];
    }
}

TEST(ReproduceSmoke, Exp3OnASliceConfigWithoutLesionsSaysWhatIsNeeded) {
  testutil::TempDir dir;
  auto r = run_script("exp3_tumour.sh " + std::string(BRAINSPADE_SOURCE_DIR) + "/configs/data/example.yaml", dir / "exp3");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("needs a lesion cohort"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("no data.lesion_channels"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "exp3/runs"));
}

// REPRO_SEED and REPRO_THREADS must be non-negative integers (exit 2 before any stage runs); valid ones go to every
// stage as --seed / --threads (RUN_ARGS), the seed also into the output folder's name.
TEST(ReproduceSmoke, ReproSeedIsCheckedAndPassedToTheStages) {
  testutil::TempDir dir;
  auto bad = run_script("exp1_healthy.sh", dir / "bad", "REPRO_SEED=one");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("REPRO_SEED 'one'"), std::string::npos) << bad.output;
  EXPECT_FALSE(fs::exists(dir / "bad/runs"));
  auto bad_threads = run_script("exp1_healthy.sh", dir / "bad2", "REPRO_THREADS=-1");
  EXPECT_EQ(bad_threads.exit_code, 2) << bad_threads.output;
  EXPECT_NE(bad_threads.output.find("REPRO_THREADS '-1'"), std::string::npos) << bad_threads.output;
  EXPECT_FALSE(fs::exists(dir / "bad2/runs"));
  const std::string common = read_text(std::string(BRAINSPADE_SOURCE_DIR) + "/scripts/reproduce/common.sh");
  for (const char* stage : {"\"$BIN\" train \"$st\"", "\"$BIN\" sample", "\"$BIN\" train segmenter"}) {
    const auto at = common.find(stage);
    ASSERT_NE(at, std::string::npos) << stage;
    EXPECT_NE(common.substr(at, 200).find("${RUN_ARGS[@]}"), std::string::npos) << stage << " does not take the seed";
  }
}
