// Evaluation: per-class metrics with the empty-set conventions, the Wilcoxon signed-rank test, folder evaluation.
#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/csv.h"
#include "brainspade/core/error.h"
#include "brainspade/eval/dice.h"
#include "brainspade/eval/metrics.h"
#include "brainspade/io/image_io.h"
#include "support/helpers.h"

using namespace brainspade;

TEST(EvalMetrics, HandComputedDicePrecisionRecallAccuracy) {
  // pred: 1 1 1 0 0 2 ; ref: 1 1 0 1 0 2
  auto pred = torch::tensor({1, 1, 1, 0, 0, 2}, torch::kLong), ref = torch::tensor({1, 1, 0, 1, 0, 2}, torch::kLong);
  auto m = class_metrics(pred, ref, 1);  // TP 2, FP 1, FN 1, TN 2
  EXPECT_EQ(m.tp, 2);
  EXPECT_EQ(m.fp, 1);
  EXPECT_EQ(m.fn, 1);
  EXPECT_EQ(m.tn, 2);
  EXPECT_DOUBLE_EQ(m.dice, 4.0 / 6.0);
  EXPECT_DOUBLE_EQ(m.precision, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.recall, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.accuracy, 4.0 / 6.0);
  auto m2 = class_metrics(pred, ref, 2);
  EXPECT_DOUBLE_EQ(m2.dice, 1.0);
  EXPECT_DOUBLE_EQ(m2.accuracy, 1.0);
}

TEST(EvalMetrics, EmptyPredictionAndEmptyReferenceConventions) {
  auto zeros = torch::zeros({4, 4}, torch::kLong), some = zeros.clone();
  some[1][1] = 3;
  auto both = class_metrics(zeros, zeros, 3);  // both empty
  EXPECT_EQ(both.dice, 1.0);
  EXPECT_EQ(both.precision, 1.0);
  EXPECT_EQ(both.recall, 1.0);
  EXPECT_EQ(both.accuracy, 1.0);
  auto empty_pred = class_metrics(zeros, some, 3);
  EXPECT_EQ(empty_pred.dice, 0.0);
  EXPECT_EQ(empty_pred.precision, 0.0);
  EXPECT_EQ(empty_pred.recall, 0.0);
  EXPECT_DOUBLE_EQ(empty_pred.accuracy, 15.0 / 16.0);
  auto empty_ref = class_metrics(some, zeros, 3);
  EXPECT_EQ(empty_ref.dice, 0.0);
  EXPECT_EQ(empty_ref.precision, 0.0);
  EXPECT_EQ(empty_ref.recall, 0.0);
  EXPECT_THROW(class_metrics(zeros, torch::zeros({4, 5}, torch::kLong), 1), InputError);
}

// Darwin's Zea mays data (Fisher 1935), the example of scipy.stats.wilcoxon's documentation:
// wilcoxon(d) → statistic 24, p 0.041259765625 (exact); wilcoxon(d, method='approx') → p 0.04088813291185591
// (normal approximation without continuity correction, scipy's default).
const std::vector<double> kDarwin{6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75};

TEST(Wilcoxon, ExactPValueOfTheScipyDocumentationExample) {
  std::vector<double> zeros(kDarwin.size(), 0.0);
  auto r = wilcoxon_signed_rank(kDarwin, zeros);
  EXPECT_TRUE(r.exact);
  EXPECT_EQ(r.n, 15);
  EXPECT_DOUBLE_EQ(r.statistic, 24.0);
  EXPECT_NEAR(r.p_value, 0.041259765625, 1e-12);
  EXPECT_GT(r.mean_difference, 0);
  // Zero differences are dropped (zero_method 'wilcox'): the same test.
  auto x = kDarwin, y = zeros;
  x.push_back(5), y.push_back(5);
  x.push_back(-2), y.push_back(-2);
  auto r2 = wilcoxon_signed_rank(x, y);
  EXPECT_EQ(r2.n, 15);
  EXPECT_NEAR(r2.p_value, 0.041259765625, 1e-12);
}

TEST(Wilcoxon, NormalApproximationWithTiesMatchesTheHandComputation) {
  // d = [1, −1, 2, 2, 2, 3]: tied |d| → normal approximation. Ranks 1.5 1.5 4 4 4 6, W− = 1.5 = T, n = 6,
  // mean n(n+1)/4 = 10.5, var = 6·7·13/24 − ((2³−2) + (3³−3))/48 = 22.125.
  std::vector<double> d{1, -1, 2, 2, 2, 3}, zeros(6, 0.0);
  auto r = wilcoxon_signed_rank(d, zeros);
  EXPECT_FALSE(r.exact);
  EXPECT_DOUBLE_EQ(r.statistic, 1.5);
  const double z = (1.5 - 10.5 + 0.5) / std::sqrt(22.125);  // continuity-corrected
  EXPECT_NEAR(r.z, z, 1e-12);
  EXPECT_NEAR(r.p_value, std::erfc(std::abs(z) / std::sqrt(2.0)), 1e-12);
  EXPECT_NEAR(r.p_value, 0.0707, 5e-4);
  auto plain = wilcoxon_signed_rank(d, zeros, false);
  EXPECT_NEAR(plain.z, (1.5 - 10.5) / std::sqrt(22.125), 1e-12);
}

// n = 30 > 25 distinct differences: the normal approximation without ties, through wilcoxon_signed_rank itself.
// d = ±1..±30 with ranks 1..5 negative: T = W− = 15; z = (15 − 232.5) / sqrt(30·31·61/24) = −4.473613809689468 and
// p = erfc(|z|/√2) = 7.69085930284854e-06 (Python's math.erfc, written out in the comment's formula).
TEST(Wilcoxon, NormalApproximationWithoutTiesThroughTheFunction) {
  std::vector<double> d, zeros(30, 0.0);
  for (int i = 1; i <= 30; ++i) d.push_back(i <= 5 ? -i : i);
  auto r = wilcoxon_signed_rank(d, zeros, false);
  EXPECT_FALSE(r.exact);
  EXPECT_EQ(r.n, 30);
  EXPECT_DOUBLE_EQ(r.statistic, 15.0);
  EXPECT_NEAR(r.z, -4.473613809689468, 1e-12);
  EXPECT_NEAR(r.p_value, 7.69085930284854e-06, 1e-15);
  // The continuity correction moves z half a rank towards the mean: a larger p.
  EXPECT_GT(wilcoxon_signed_rank(d, zeros, true).p_value, r.p_value);
}

TEST(Wilcoxon, ExactDistributionMatchesBruteForceEnumeration) {
  torch::manual_seed(3);
  for (int n : {1, 4, 9, 12}) {
    std::vector<double> x, y;
    for (int i = 0; i < n; ++i) {
      x.push_back(i + 1.0 + 0.01 * i);  // distinct magnitudes → no ties
      y.push_back(torch::rand({1}).item<double>() < 0.4 ? 2.0 * (i + 1.0 + 0.01 * i) : 0.0);
    }
    auto r = wilcoxon_signed_rank(x, y);
    ASSERT_TRUE(r.exact);
    // Enumerate all 2^n sign patterns of ranks 1..n.
    int64_t at_most = 0;
    for (int64_t mask = 0; mask < (int64_t(1) << n); ++mask) {
      int64_t s = 0;
      for (int i = 0; i < n; ++i)
        if (mask >> i & 1) s += i + 1;
      if (s <= r.statistic) ++at_most;
    }
    EXPECT_NEAR(r.p_value, std::min(1.0, 2.0 * at_most / std::ldexp(1.0, n)), 1e-12) << "n = " << n;
  }
  EXPECT_THROW(wilcoxon_signed_rank({1, 2}, {1}), InputError);
  EXPECT_EQ(wilcoxon_signed_rank({1, 2}, {1, 2}).p_value, 1.0);
}

TEST(Evaluate, WritesTablesAndMarksTheSignificantlyBetterModel) {
  testutil::TempDir dir;
  torch::manual_seed(0);
  for (int i = 0; i < 7; ++i) {
    Volume ref;
    ref.data = torch::randint(0, 3, {1, 4, 6, 5}).to(torch::kFloat);
    auto worse = ref.data.clone();
    worse.view(-1).slice(0, 0, 10 + i).fill_(0);  // model B loses some voxels
    std::string name = "sub" + std::to_string(i) + ".nii.gz";
    write_volume(dir / ("ref/" + name), ref);
    write_volume(dir / ("a/" + name), ref);
    write_volume(dir / ("b/" + name), ref.with_data(worse));
  }
  EvaluateJob job;
  job.pred = dir / "a";
  job.pred2 = dir / "b";
  job.ref = dir / "ref";
  job.out = dir / "out";
  job.name = "R";
  job.name2 = "S";
  job.class_names = {"csf", "gm"};
  auto md = run_evaluation(job);
  EXPECT_NE(md.find("| model | csf | gm |"), std::string::npos) << md;
  EXPECT_NE(md.find("| R | **1.000 ± 0.000** | **1.000 ± 0.000** |"), std::string::npos) << md;
  // R is the reference itself: every Dice 1.
  const CsvTable r = read_csv_table(dir / "out/per_volume_R.csv");
  ASSERT_EQ(r.rows.size(), 7u * 2);
  for (const auto& row : r.rows) EXPECT_EQ(row[r.column("dice")], "1") << row[0];
  // S is worse on every volume: for Dice, all differences have one sign, so T = 0 and the exact two-sided p is
  // 2 / 2^n; R is named significantly better.
  const CsvTable w = read_csv_table(dir / "out/wilcoxon.csv");
  int dice_rows = 0;
  for (const auto& row : w.rows) {
    if (row[w.column("metric")] != "dice") continue;
    ++dice_rows;
    const int n = std::stoi(row[w.column("n")]);
    EXPECT_GE(n, 5) << row[w.column("class")];
    EXPECT_EQ(std::stod(row[w.column("statistic")]), 0.0);
    EXPECT_NEAR(std::stod(row[w.column("p_value")]), 2.0 / std::ldexp(1.0, n), 1e-9);
    EXPECT_EQ(row[w.column("exact")], "exact");
    EXPECT_EQ(row[w.column("significantly_better")], "R");
  }
  EXPECT_EQ(dice_rows, 2);
  auto csv = read_text(dir / "out/per_volume_S.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 7 * 2);
}

TEST(Evaluate, FoldersWithoutCommonNamesAreRefused) {
  testutil::TempDir dir;
  Volume v;
  v.data = torch::zeros({1, 2, 2, 2});
  write_volume(dir / "p/a.nii.gz", v);
  write_volume(dir / "r/b.nii.gz", v);
  try {
    evaluate_folder(dir / "p", dir / "r", "A");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("no file name is in both"), std::string::npos) << e.what();
  }
  EXPECT_THROW(evaluate_folder(dir / "missing", dir / "r", "A"), InputError);
}

// One Dice, two rules for a class absent from both maps; counted by hand on a 2x3 map.
TEST(Dice, HandCountedCaseAndBothEmptyRules) {
  auto pred = torch::tensor({0, 1, 1, 2, 2, 2}, torch::kLong).view({2, 3});
  auto ref = torch::tensor({0, 1, 2, 2, 2, 0}, torch::kLong).view({2, 3});
  // class 1: P={1,2}, R={1} -> 2*1/(2+1); class 2: P={3,4,5}, R={2,3,4} -> 2*2/(3+3); class 0: P={0}, R={0,5} -> 2/3.
  EXPECT_DOUBLE_EQ(dice_of_class(pred, ref, 1, EmptyDice::NaN), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(dice_of_class(pred, ref, 2, EmptyDice::NaN), 4.0 / 6.0);
  EXPECT_DOUBLE_EQ(dice_of_class(pred, ref, 0, EmptyDice::One), 2.0 / 3.0);
  EXPECT_EQ(dice_of_class(pred, ref, 7, EmptyDice::One), 1.0);
  EXPECT_TRUE(std::isnan(dice_of_class(pred, ref, 7, EmptyDice::NaN)));
  const auto all = dice_per_class(pred, ref, 4, EmptyDice::NaN);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_TRUE(std::isnan(all[3]));
  EXPECT_DOUBLE_EQ(dice_from_counts(3, 1, 2, EmptyDice::One), 6.0 / 9.0);
  EXPECT_THROW(dice_of_class(pred, ref.view({3, 2}), 1, EmptyDice::One), c10::Error);
}
