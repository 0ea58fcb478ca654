#include "brainspade/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/csv.h"
#include "brainspade/eval/dice.h"
#include "brainspade/core/error.h"
#include "brainspade/io/image_io.h"

namespace brainspade {

namespace fs = std::filesystem;

ClassMetrics class_metrics(const torch::Tensor& pred, const torch::Tensor& ref, int64_t c) {
  BRAINSPADE_CHECK_INPUT(pred.sizes() == ref.sizes(), "prediction ", pred.sizes(), " and reference ", ref.sizes(),
                         " differ in size");
  auto p = pred == c, r = ref == c;
  ClassMetrics m;
  m.tp = (p & r).sum().item<int64_t>();
  m.fp = (p & ~r).sum().item<int64_t>();
  m.fn = (~p & r).sum().item<int64_t>();
  m.tn = pred.numel() - m.tp - m.fp - m.fn;
  const bool p_empty = m.tp + m.fp == 0, r_empty = m.tp + m.fn == 0;
  m.dice = dice_from_counts(static_cast<double>(m.tp), static_cast<double>(m.fp), static_cast<double>(m.fn), EmptyDice::One);
  m.precision = p_empty ? (r_empty ? 1.0 : 0.0) : m.tp / static_cast<double>(m.tp + m.fp);
  m.recall = r_empty ? (p_empty ? 1.0 : 0.0) : m.tp / static_cast<double>(m.tp + m.fn);
  m.accuracy = pred.numel() ? (m.tp + m.tn) / static_cast<double>(pred.numel()) : 1.0;
  return m;
}

WilcoxonResult wilcoxon_signed_rank(const std::vector<double>& x, const std::vector<double>& y, bool continuity_correction) {
  BRAINSPADE_CHECK_INPUT(x.size() == y.size(), "Wilcoxon test: ", x.size(), " and ", y.size(), " values are not paired");
  WilcoxonResult res;
  std::vector<double> d;
  double sum = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sum += x[i] - y[i];
    if (x[i] - y[i] != 0) d.push_back(x[i] - y[i]);  // zero_method 'wilcox': zeros dropped
  }
  res.mean_difference = x.empty() ? 0 : sum / x.size();
  const int64_t n = static_cast<int64_t>(d.size());
  res.n = n;
  if (n == 0) return res;
  // Average ranks of |d|.
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return std::abs(d[a]) < std::abs(d[b]); });
  std::vector<double> rank(n);
  bool ties = false;
  double tie_term = 0;  // Σ (t³ − t)
  for (int64_t i = 0; i < n;) {
    int64_t j = i;
    while (j + 1 < n && std::abs(d[order[j + 1]]) == std::abs(d[order[i]])) ++j;
    const double t = static_cast<double>(j - i + 1);
    if (t > 1) ties = true, tie_term += t * t * t - t;
    for (int64_t k = i; k <= j; ++k) rank[order[k]] = (i + j) / 2.0 + 1.0;
    i = j + 1;
  }
  double r_plus = 0, r_minus = 0;
  for (int64_t i = 0; i < n; ++i) (d[i] > 0 ? r_plus : r_minus) += rank[i];
  const double T = std::min(r_plus, r_minus);
  res.statistic = T;
  if (n <= 25 && !ties) {
    // Exact null distribution of W+: counts of sign assignments of ranks 1..n giving each sum.
    const int64_t max_sum = n * (n + 1) / 2;
    std::vector<double> count(max_sum + 1, 0.0);
    count[0] = 1;
    for (int64_t r = 1; r <= n; ++r)
      for (int64_t s = max_sum; s >= r; --s) count[s] += count[s - r];
    double cdf = 0;
    for (int64_t s = 0; s <= static_cast<int64_t>(std::floor(T + 1e-9)); ++s) cdf += count[s];
    res.p_value = std::min(1.0, 2.0 * cdf / std::ldexp(1.0, static_cast<int>(n)));
    res.exact = true;
    return res;
  }
  const double nn = static_cast<double>(n);
  const double mn = nn * (nn + 1) / 4;
  const double var = nn * (nn + 1) * (2 * nn + 1) / 24 - tie_term / 48;
  if (var <= 0) return res;
  double corr = continuity_correction ? 0.5 * ((T > mn) - (T < mn)) : 0.0;
  res.z = (T - mn - corr) / std::sqrt(var);
  res.p_value = std::min(1.0, std::erfc(std::abs(res.z) / std::sqrt(2.0)));
  return res;
}

namespace {

bool is_image_name(const std::string& n) {
  for (const char* e : {".nii.gz", ".nii", ".mha", ".mhd", ".nrrd"}) {
    const std::string s(e);
    if (n.size() > s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0) return true;
  }
  return false;
}

std::set<std::string> image_names(const std::string& dir, const std::string& flag) {
  BRAINSPADE_CHECK_INPUT(fs::is_directory(dir), flag, ": folder '", dir, "' does not exist");
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && is_image_name(e.path().filename().string())) out.insert(e.path().filename().string());
  return out;
}

double mean_of(const std::vector<double>& v) { return v.empty() ? NAN : std::accumulate(v.begin(), v.end(), 0.0) / v.size(); }
double sd_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  double m = mean_of(v), s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / (v.size() - 1));  // sample standard deviation
}

}  // namespace

ModelEvaluation evaluate_folder(const std::string& pred_dir, const std::string& ref_dir, const std::string& name,
                                std::vector<std::string> class_names, int64_t num_classes, bool resample_ref) {
  auto preds = image_names(pred_dir, "--pred"), refs = image_names(ref_dir, "--ref");
  std::vector<std::string> common;
  std::set_intersection(preds.begin(), preds.end(), refs.begin(), refs.end(), std::back_inserter(common));
  BRAINSPADE_CHECK_INPUT(!common.empty(), "no file name is in both ", pred_dir, " (", preds.size(), " images) and ",
                         ref_dir, " (", refs.size(), " images); predictions and references are matched by file name");
  if (common.size() < preds.size() || common.size() < refs.size())
    spdlog::warn("{}: {} volumes matched; {} predictions and {} references have no partner", name, common.size(),
                 preds.size() - common.size(), refs.size() - common.size());
  std::vector<std::pair<torch::Tensor, torch::Tensor>> pairs;
  int64_t max_label = 0;
  for (const auto& f : common) {
    auto p = read_volume(pred_dir + "/" + f), r = read_volume(ref_dir + "/" + f);
    BRAINSPADE_CHECK_INPUT(p.channels() == 1 && r.channels() == 1, f, ": expected 3D label volumes, got ", p.channels(),
                           " and ", r.channels(), " channels");
    if (!p.same_grid(r)) {
      BRAINSPADE_CHECK_INPUT(resample_ref, pred_dir, "/", f, " (", p.grid_string(), ") and ", ref_dir, "/", f, " (",
                             r.grid_string(), ") are not on the same grid; give --resample-ref to resample the "
                             "reference onto the prediction's grid (nearest neighbour)");
      spdlog::info("{}: reference resampled onto the prediction's grid ({} -> {})", f, r.grid_string(), p.grid_string());
      r = resample_like(r, p, /*nearest=*/true, 0.0);
    }
    auto pl = p.data.round().to(torch::kLong), rl = r.data.round().to(torch::kLong);
    max_label = std::max({max_label, pl.max().item<int64_t>(), rl.max().item<int64_t>()});
    pairs.emplace_back(pl, rl);
  }
  if (num_classes <= 0) num_classes = class_names.empty() ? max_label + 1 : static_cast<int64_t>(class_names.size()) + 1;
  for (int64_t c = static_cast<int64_t>(class_names.size()) + 1; c < num_classes; ++c)
    class_names.push_back("class_" + std::to_string(c));
  class_names.resize(num_classes - 1);
  ModelEvaluation ev;
  ev.name = name;
  ev.volumes = common;
  ev.class_names = class_names;
  const size_t C = class_names.size();
  ev.dice.assign(C, {});
  ev.accuracy.assign(C, {});
  ev.precision.assign(C, {});
  ev.recall.assign(C, {});
  for (const auto& [p, r] : pairs) {
    for (size_t c = 0; c < C; ++c) {
      auto m = class_metrics(p, r, static_cast<int64_t>(c) + 1);
      ev.dice[c].push_back(m.dice);
      ev.accuracy[c].push_back(m.accuracy);
      ev.precision[c].push_back(m.precision);
      ev.recall[c].push_back(m.recall);
    }
  }
  return ev;
}

std::string run_evaluation(const EvaluateJob& job) {
  std::vector<ModelEvaluation> models{evaluate_folder(job.pred, job.ref, job.name, job.class_names, 0, job.resample_ref)};
  if (!job.pred2.empty())
    models.push_back(evaluate_folder(job.pred2, job.ref, job.name2, job.class_names,
                                     static_cast<int64_t>(models[0].class_names.size()) + 1, job.resample_ref));
  make_dirs(job.out);
  const std::vector<std::string> metric_names{"dice", "accuracy", "precision", "recall"};
  auto values = [](const ModelEvaluation& m, size_t k) -> const std::vector<std::vector<double>>& {
    return k == 0 ? m.dice : k == 1 ? m.accuracy : k == 2 ? m.precision : m.recall;
  };
  for (const auto& m : models) {
    std::ostringstream csv;
    csv << "volume,class,dice,accuracy,precision,recall\n";
    for (size_t v = 0; v < m.volumes.size(); ++v)
      for (size_t c = 0; c < m.class_names.size(); ++c)
        csv << csv_field(m.volumes[v]) << "," << csv_field(m.class_names[c]) << "," << m.dice[c][v] << "," << m.accuracy[c][v] << ","
            << m.precision[c][v] << "," << m.recall[c][v] << "\n";
    write_text_atomic(job.out + "/per_volume_" + m.name + ".csv", csv.str());
  }
  // Paired tests on the volumes both models have.
  const auto& classes = models[0].class_names;
  std::vector<std::vector<int>> better(metric_names.size(), std::vector<int>(classes.size(), -1));  // model index or −1
  std::ostringstream wcsv;
  if (models.size() == 2) {
    wcsv << "metric,class,n,statistic,p_value,exact,mean_difference,significantly_better\n";
    std::map<std::string, size_t> idx_b;
    for (size_t v = 0; v < models[1].volumes.size(); ++v) idx_b[models[1].volumes[v]] = v;
    for (size_t k = 0; k < metric_names.size(); ++k) {
      for (size_t c = 0; c < classes.size(); ++c) {
        std::vector<double> a, b;
        for (size_t v = 0; v < models[0].volumes.size(); ++v) {
          auto it = idx_b.find(models[0].volumes[v]);
          if (it == idx_b.end()) continue;
          a.push_back(values(models[0], k)[c][v]);
          b.push_back(values(models[1], k)[c][it->second]);
        }
        auto w = wilcoxon_signed_rank(a, b);
        if (w.n > 0 && w.p_value < 0.05) better[k][c] = w.mean_difference > 0 ? 0 : 1;
        wcsv << metric_names[k] << "," << csv_field(classes[c]) << "," << w.n << "," << w.statistic << "," << w.p_value << ","
             << (w.exact ? "exact" : "normal") << "," << w.mean_difference << ","
             << csv_field(better[k][c] < 0 ? "none" : models[better[k][c]].name) << "\n";
      }
    }
    write_text_atomic(job.out + "/wilcoxon.csv", wcsv.str());
  }
  std::ostringstream md;
  for (size_t k = 0; k < metric_names.size(); ++k) {
    md << "### " << metric_names[k] << " (mean ± sd over " << models[0].volumes.size() << " volumes)\n\n| model |";
    for (const auto& c : classes) md << " " << c << " |";
    md << "\n|---|";
    for (size_t c = 0; c < classes.size(); ++c) md << "---|";
    md << "\n";
    for (size_t mi = 0; mi < models.size(); ++mi) {
      md << "| " << models[mi].name << " |";
      for (size_t c = 0; c < classes.size(); ++c) {
        const auto& v = values(models[mi], k)[c];
        std::string cell = fmt::format("{:.3f} ± {:.3f}", mean_of(v), sd_of(v));
        if (better[k][c] == static_cast<int>(mi)) cell = "**" + cell + "**";
        md << " " << cell << " |";
      }
      md << "\n";
    }
    md << "\n";
  }
  if (models.size() == 2)
    md << "Bold: significantly better in a paired two-sided Wilcoxon signed-rank test (p < 0.05; wilcoxon.csv).\n";
  write_text_atomic(job.out + "/summary.md", md.str());
  return md.str();
}

}  // namespace brainspade
