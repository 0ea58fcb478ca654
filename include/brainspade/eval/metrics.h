#pragma once
/// Evaluation of segmentations as in the paper's Tables 1–3: per-volume, per-class Dice, accuracy, precision and
/// recall on the 3D volumes; mean ± sd over volumes; a paired two-sided Wilcoxon signed-rank test between two models.
///
/// Empty-set conventions (per class): Dice, precision and recall are 1 when prediction and reference are both empty
/// and 0 when only one of them is (precision with an empty prediction but a non-empty reference: 0; recall with an
/// empty reference but a non-empty prediction: 0). Accuracy is always (TP + TN) / N.
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace brainspade {

struct ClassMetrics {
  double dice = 0, accuracy = 0, precision = 0, recall = 0;
  int64_t tp = 0, fp = 0, fn = 0, tn = 0;
};

/// Metrics of class `c` between integer label maps of equal shape (any dims).
ClassMetrics class_metrics(const torch::Tensor& pred, const torch::Tensor& ref, int64_t c);

struct WilcoxonResult {
  double statistic = 0;  ///< T = min(W+, W−) over the non-zero differences
  double p_value = 1;    ///< two-sided
  int64_t n = 0;         ///< pairs left after dropping zero differences
  bool exact = false;    ///< exact null distribution (n <= 25, no ties) or normal approximation
  double z = 0;          ///< the normal statistic (approximation only)
  double mean_difference = 0;  ///< mean of x − y (which model is better)
};

/// Paired two-sided Wilcoxon signed-rank test of x − y. Zero differences are dropped (scipy's default
/// zero_method 'wilcox'); ties get average ranks. Exact distribution when n <= 25 and there are no ties, else
/// the normal approximation with the tie correction of the variance and, if `continuity_correction`, ±0.5.
/// InputError for lists of different lengths. With no non-zero differences, p = 1.
WilcoxonResult wilcoxon_signed_rank(const std::vector<double>& x, const std::vector<double>& y,
                                    bool continuity_correction = true);

/// One model's metrics: values[metric][class][volume].
struct ModelEvaluation {
  std::string name;
  std::vector<std::string> volumes;      ///< file names, sorted
  std::vector<std::string> class_names;  ///< foreground classes evaluated (labels 1..K−1)
  std::vector<std::vector<double>> dice, accuracy, precision, recall;  ///< [class][volume]
};

/// Matches `pred_dir` and `ref_dir` by file name (.nii/.nii.gz/.mha/.nrrd) and evaluates every common volume for
/// labels 1..num_classes−1 (num_classes <= 0: the largest label found + 1). Class names default to "class_<c>".
/// InputError when a folder is missing, no names are common, or a pair's grids differ (size, spacing, origin or
/// direction) — unless `resample_ref`, which resamples the reference onto the prediction's grid (nearest neighbour).
ModelEvaluation evaluate_folder(const std::string& pred_dir, const std::string& ref_dir, const std::string& name,
                                std::vector<std::string> class_names = {}, int64_t num_classes = 0,
                                bool resample_ref = false);

struct EvaluateJob {
  std::string pred, ref, pred2;   ///< folders
  std::string out;                ///< output folder
  std::string name = "A", name2 = "B";
  std::vector<std::string> class_names;  ///< foreground names (label 1, 2, ...); empty = class_<c>
  bool resample_ref = false;             ///< a reference on another grid is resampled onto the prediction's
};
/// Writes <out>/per_volume_<name>.csv, <out>/summary.md (Table-style: rows = models, columns = classes,
/// mean ± sd; with two models a Wilcoxon test per class and metric, bold = significantly better at p < 0.05) and
/// <out>/wilcoxon.csv. Returns the Markdown.
std::string run_evaluation(const EvaluateJob& job);

}  // namespace brainspade
