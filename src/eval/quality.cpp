#include "brainspade/eval/quality.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/csv.h"
#include "brainspade/core/error.h"
#include "brainspade/core/runtime.h"
#include "brainspade/data/slice_dataset.h"
#include "brainspade/data/slicing.h"
#include "brainspade/draw/plot.h"
#include "brainspade/eval/dice.h"
#include "brainspade/inference/segment.h"
#include "brainspade/sampling/label_sampler.h"
#include "brainspade/io/image_io.h"

namespace brainspade {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------------------------
// Config

void QualityThresholds::visit(ConfigVisitor& v) {
  v("fraction_low", fraction_low, "lowest passing area fraction synthetic/real, per tissue", Bounds::non_negative());
  v("fraction_high", fraction_high, "highest passing area fraction synthetic/real, per tissue", Bounds::non_negative());
  v("boundary_density_min", boundary_density_min, "lowest passing boundary density synthetic/real (sulci)",
    Bounds::non_negative());
  v("segmentability_min", segmentability_min,
    "lowest passing segmentability Dice per segmenter class 1.. (tiny segmenter: csf, gm, wm)", Bounds::unit());
  v("checkerboard_max", checkerboard_max, "highest passing checkerboard score synthetic/real", Bounds::non_negative());
  v("lesion_on_min", lesion_on_min, "lowest passing share of maps drawn with a lesion flag on that hold the lesion",
    Bounds::unit());
  v("lesion_off_max", lesion_off_max, "highest passing share of maps drawn with a lesion flag off that hold it",
    Bounds::unit());
  v("lesion_min_pixels", lesion_min_pixels, "pixels with lesion PV > 0.5 that make a lesion present, at 192x256 "
    "(scaled by area to the maps' size)", Bounds::at_least(1));
}

void QualityJob::visit(ConfigVisitor& v) {
  v.section("run", run);
  v("pairs", pairs, "folder written by `sample` (manifest.csv) or `sample labels` (labels/*_pv.nii.gz)");
  v("real", real, "slice dataset (.pt) of real slices to compare with");
  v("modality", modality, "modality of the real rows compared; empty = the dataset's most frequent one");
  v("segmenter", segmenter, "segmenter checkpoint trained on real slices; empty = train segmenter_config on `real`");
  v("segmenter_config", segmenter_config, "segmenter config trained on `real` when `segmenter` is empty");
  v("label_map", label_map, "PV channel -> segmenter class (paper: CSF, GM, WM)", Bounds::non_negative());
  v("feature_grid", feature_grid, "Fréchet features: tissue shares on grid x grid cells of each map", Bounds::range(1, 64));
  v("pca_dims", pca_dims, "Fréchet features projected on this many principal components of the real maps",
    Bounds::range(1, 256));
  v.choice("real_positions", real_positions, {"matched", "all"},
           "matched: compare with the real slices inside the synthetic maps' slice-position range (when recorded); "
           "all: with every real slice");
  v("images", images, "measure the images too (segmentability, spectra) when the folder has them; false = label maps only");
  v.section("thresholds", thresholds);
}

// ---------------------------------------------------------------------------------------------------------------
// The report

namespace {

struct Side {
  torch::Tensor pv;        // [N, C, H, W]
  torch::Tensor images;    // [N, 1, H, W] or undefined
  torch::Tensor position;  // [N] slice positions, or undefined when not recorded
  std::vector<std::string> lesion_names;  // lesion flags among the conditions (may be empty)
  torch::Tensor lesion_flags;             // [N, L] double, when lesion_names is not empty
};

// A conditions table: `names` (lesion flags and/or slice_position) and values[i][k] per map. Sets the slice
// positions (when every row has one) and the lesion flags (every condition but slice_position).
void set_conditions(Side& s, const std::vector<std::string>& names, const std::vector<std::vector<double>>& values) {
  if (values.empty()) return;
  std::vector<size_t> cols;
  for (size_t k = 0; k < names.size(); ++k) {
    if (names[k] == "slice_position") {
      std::vector<double> pos;
      for (const auto& v : values) {
        if (k >= v.size()) break;
        pos.push_back(v[k]);
      }
      if (pos.size() == values.size()) s.position = torch::tensor(pos, torch::kDouble);
    } else {
      cols.push_back(k);
      s.lesion_names.push_back(names[k]);
    }
  }
  if (cols.empty()) return;
  s.lesion_flags = torch::zeros({static_cast<int64_t>(values.size()), static_cast<int64_t>(cols.size())}, torch::kDouble);
  for (size_t i = 0; i < values.size(); ++i)
    for (size_t k = 0; k < cols.size(); ++k)
      if (cols[k] < values[i].size()) s.lesion_flags[i][k] = values[i][cols[k]];
}

// The conditions of `sample`'s manifest: column "conditions[a;b;slice_position]" holds "x;y;p" per row.
void set_manifest_conditions(Side& s, const CsvTable& t) {
  for (size_t c = 0; c < t.header.size(); ++c) {
    const std::string& h = t.header[c];
    if (h.rfind("conditions[", 0) != 0) continue;
    std::vector<std::string> names;
    std::stringstream ns(h.substr(11, h.size() - 12));
    for (std::string n; std::getline(ns, n, ';');) names.push_back(n);
    std::vector<std::vector<double>> values;
    for (const auto& row : t.rows) {
      std::vector<double> v;
      std::stringstream vs(row[c]);
      for (std::string x; std::getline(vs, x, ';');) v.push_back(std::atof(x.c_str()));
      values.push_back(v);
    }
    set_conditions(s, names, values);
    return;
  }
}

Side read_pairs(const std::string& dir) {
  Side s;
  std::vector<std::string> pv_paths, image_paths;
  const std::string manifest = dir + "/manifest.csv";
  if (file_exists(manifest)) {
    const CsvTable t = read_csv_table(manifest);
    const int ci = t.column("image"), cp = t.column("label_pv");
    BRAINSPADE_CHECK_INPUT(cp >= 0, manifest, ": no 'label_pv' column");
    for (const auto& row : t.rows) {
      pv_paths.push_back(dir + "/" + row[cp]);
      if (ci >= 0) image_paths.push_back(dir + "/" + row[ci]);
    }
    set_manifest_conditions(s, t);
  } else if (file_exists(dir + "/conditions.csv")) {  // `sample labels`: one row per map with its conditions
    const CsvTable t = read_csv_table(dir + "/conditions.csv");
    const int cp = t.column("label_pv");
    BRAINSPADE_CHECK_INPUT(cp >= 0, dir, "/conditions.csv: no 'label_pv' column");
    // The columns after label_pv are the conditions: lesion flags, then slice_position.
    std::vector<std::string> names(t.header.begin() + cp + 1, t.header.end());
    std::vector<std::vector<double>> values;
    for (const auto& row : t.rows) {
      pv_paths.push_back(dir + "/" + row[cp]);
      std::vector<double> v;
      for (size_t k = cp + 1; k < row.size(); ++k) v.push_back(std::atof(row[k].c_str()));
      values.push_back(v);
    }
    set_conditions(s, names, values);
  } else if (fs::is_directory(dir + "/labels")) {  // label maps without their conditions (older `sample labels`)
    for (const auto& e : fs::directory_iterator(dir + "/labels")) {
      const std::string n = e.path().filename().string();
      if (n.size() > 10 && n.compare(n.size() - 10, 10, "_pv.nii.gz") == 0) pv_paths.push_back(e.path().string());
    }
    std::sort(pv_paths.begin(), pv_paths.end());
  }
  BRAINSPADE_CHECK_INPUT(!pv_paths.empty(), "--pairs ", dir,
                         ": no synthetic label maps (neither manifest.csv from `sample` nor labels/*_pv.nii.gz from "
                         "`sample labels`)");
  std::vector<torch::Tensor> pvs, imgs;
  for (const auto& p : pv_paths) {
    Volume v = read_volume(p);
    BRAINSPADE_CHECK_INPUT(v.depth() == 1, p, ": expected a one-slice PV map, got depth ", v.depth());
    pvs.push_back(v.data.select(1, 0));  // [C, H, W]
  }
  for (const auto& p : image_paths) {
    Volume v = read_volume(p);
    BRAINSPADE_CHECK_INPUT(v.depth() == 1 && v.channels() == 1, p, ": expected a one-slice single-channel image");
    imgs.push_back(v.data.select(1, 0));  // [1, H, W]
  }
  try {
    s.pv = torch::stack(pvs);
    if (!imgs.empty()) s.images = torch::stack(imgs);
  } catch (const c10::Error&) {
    throw input_error("--pairs ", dir, ": the maps or images do not all have one size");
  }
  return s;
}

}  // namespace

SyntheticFolder read_synthetic_folder(const std::string& dir) {
  Side s = read_pairs(dir);
  return {s.pv, s.images, s.position};
}

namespace {

// Real rows of one modality, pooled to the synthetic size.
Side read_real(const QualityJob& job, int64_t H, int64_t W, int64_t C, std::string* modality_used,
               std::vector<std::string>* channel_names) {
  SliceDataset ds = SliceDataset::load(job.real);
  BRAINSPADE_CHECK_INPUT(ds.channels() == C, job.real, ": label maps have ", ds.channels(),
                         " channels, the synthetic maps ", C);
  int64_t m = -1;
  if (!job.modality.empty()) {
    for (size_t i = 0; i < ds.modality_names.size(); ++i)
      if (ds.modality_names[i] == job.modality) m = static_cast<int64_t>(i);
    BRAINSPADE_CHECK_INPUT(m >= 0, "config key 'modality': ", job.real, " has no modality '", job.modality, "'");
  } else if (!ds.modality_names.empty()) {
    m = torch::bincount(ds.modality, {}, static_cast<int64_t>(ds.modality_names.size())).argmax().item<int64_t>();
  }
  *modality_used = m >= 0 ? ds.modality_names[m] : "";
  *channel_names = ds.channel_names;
  if (m >= 0) ds = ds.select((ds.modality == m).nonzero().flatten());
  BRAINSPADE_CHECK_INPUT(ds.size() >= 2, job.real, ": fewer than 2 real slices to compare with");
  const int64_t f = ds.height() / H;
  BRAINSPADE_CHECK_INPUT(f >= 1 && ds.height() == f * H && ds.width() == f * W, job.real, ": real slices of ",
                         ds.height(), "x", ds.width(), " do not pool evenly to the synthetic ", H, "x", W);
  Side s;
  s.position = ds.slice_position.to(torch::kDouble);
  s.pv = f > 1 ? torch::avg_pool2d(ds.labels, f) : ds.labels;
  if (ds.images.defined() && ds.images.numel() > 0) s.images = f > 1 ? torch::avg_pool2d(ds.images, f) : ds.images;
  return s;
}

// Tissue shares on grid × grid cells of each argmax map, background excluded: [N, (C−1)·grid²].
torch::Tensor map_features(const torch::Tensor& hard, int64_t C, int64_t grid) {
  auto oh = torch::one_hot(hard, C).permute({0, 3, 1, 2}).to(torch::kDouble).slice(1, 1);  // [N, C−1, H, W]
  return torch::adaptive_avg_pool2d(oh, {grid, grid}).flatten(1);
}

std::vector<double> mean_components(const torch::Tensor& hard, int64_t C) {
  std::vector<double> out(C, 0.0);
  for (int64_t i = 0; i < hard.size(0); ++i)
    for (int64_t c = 1; c < C; ++c) out[c] += static_cast<double>(connected_components(hard[i], c));
  for (auto& x : out) x /= std::max<int64_t>(1, hard.size(0));
  out[0] = NAN;
  return out;
}

void intensity_stats(const torch::Tensor& images, const torch::Tensor& hard, int64_t C, std::vector<double>& mean,
                     std::vector<double>& sd) {
  mean.assign(C, NAN);
  sd.assign(C, NAN);
  auto img = images.select(1, 0).to(torch::kDouble);  // [N, H, W]
  for (int64_t c = 0; c < C; ++c) {
    auto v = img.masked_select(hard == c);
    if (v.numel() >= 2) mean[c] = v.mean().item<double>(), sd[c] = v.std().item<double>();
  }
}

std::vector<double> segment_dice(LoadedSegmenter& seg, const torch::Tensor& images, const torch::Tensor& target,
                                 torch::Device device) {
  torch::NoGradGuard g;
  std::vector<torch::Tensor> preds;
  for (int64_t i = 0; i < images.size(0); i += 16)
    preds.push_back(seg.model->predict_logits(images.slice(0, i, std::min(i + 16, images.size(0))).to(device))
                        .argmax(1)
                        .cpu());
  return dice_per_class(torch::cat(preds), target, static_cast<int64_t>(seg.class_names.size()), EmptyDice::NaN);
}

std::string fmt_num(double v, int digits = 3) {
  if (!std::isfinite(v)) return "–";
  return fmt::format("{:.{}f}", v, digits);
}

nlohmann::ordered_json num(double v) { return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(); }
nlohmann::ordered_json nums(const std::vector<double>& v) {
  auto a = nlohmann::ordered_json::array();
  for (double x : v) a.push_back(num(x));
  return a;
}

void write_outputs(const QualityJob& job, const QualityReport& r) {
  const std::string out = job.run.out_dir;
  make_dirs(out);
  // quality.json
  nlohmann::ordered_json js;
  js["n_synthetic"] = r.n_synthetic;
  js["n_real"] = r.n_real;
  js["real_position_range"] = std::isnan(r.real_position_lo) ? nlohmann::ordered_json(nullptr)
                                                              : nlohmann::ordered_json({r.real_position_lo, r.real_position_hi});
  js["pairs"] = job.pairs;
  js["real"] = job.real;
  js["segmenter"] = r.segmenter_used;
  js["tissues"] = r.tissue_names;
  js["fraction_synthetic"] = nums(r.fraction_synthetic);
  js["fraction_real"] = nums(r.fraction_real);
  js["boundary_density_synthetic"] = num(r.boundary_density_synthetic);
  js["boundary_density_real"] = num(r.boundary_density_real);
  js["components_synthetic"] = nums(r.components_synthetic);
  js["components_real"] = nums(r.components_real);
  js["implausible_synthetic"] = r.implausible_synthetic;
  js["implausible_real"] = r.implausible_real;
  auto bands = nlohmann::ordered_json::array();
  for (const auto& b : r.bands)
    bands.push_back({{"lo", b.lo}, {"hi", b.hi}, {"n_synthetic", b.n_synthetic}, {"n_real", b.n_real},
                     {"fraction_synthetic", nums(b.fraction_synthetic)}, {"fraction_real", nums(b.fraction_real)},
                     {"boundary_density_synthetic", num(b.boundary_density_synthetic)},
                     {"boundary_density_real", num(b.boundary_density_real)}});
  js["bands"] = bands;
  js["frechet"] = num(r.frechet);
  js["frechet_floor"] = num(r.frechet_floor);
  js["segmenter_classes"] = r.segmenter_classes;
  js["segmentability"] = nums(r.segmentability);
  js["segmenter_on_real"] = nums(r.segmenter_on_real);
  js["intensity_mean_synthetic"] = nums(r.intensity_mean_synthetic);
  js["intensity_sd_synthetic"] = nums(r.intensity_sd_synthetic);
  js["intensity_mean_real"] = nums(r.intensity_mean_real);
  js["intensity_sd_real"] = nums(r.intensity_sd_real);
  js["spectrum_frequency"] = nums(r.spectrum_synthetic.frequency);
  js["spectrum_synthetic"] = nums(r.spectrum_synthetic.power);
  js["spectrum_real"] = nums(r.spectrum_real.power);
  js["top_band_ratio"] = num(r.top_band_ratio);
  js["checkerboard_score"] = num(r.checkerboard_score);
  js["axis_energy_ratio"] = num(r.axis_energy_ratio);
  auto checks = nlohmann::ordered_json::array();
  for (const auto& c : r.checks)
    checks.push_back({{"name", c.name}, {"value", num(c.value)}, {"target", c.target}, {"pass", c.pass}});
  js["checks"] = checks;
  js["seconds"] = r.seconds;
  write_text_atomic(out + "/quality.json", js.dump(2) + "\n");

  // quality.md
  std::ostringstream md;
  int passed = 0;
  for (const auto& c : r.checks) passed += c.pass;
  md << "# Quality of " << job.pairs << "\n\n"
     << r.n_synthetic << " synthetic maps" << (r.has_images ? " and images" : " (no images)") << " against "
     << r.n_real << " real slices of " << job.real
     << (std::isnan(r.real_position_lo)
             ? std::string(" (every slice)")
             : fmt::format(" (those at slice positions {:.2f}–{:.2f}, the synthetic maps' range; real_positions: all "
                           "compares with every slice)",
                           r.real_position_lo, r.real_position_hi))
     << ". " << passed << " of " << r.checks.size()
     << " checks pass (thresholds: `thresholds` in the quality config; docs/quality.md explains each number).\n\n"
     << "| check | value | target | |\n|---|---|---|---|\n";
  for (const auto& c : r.checks)
    md << "| " << c.name << " | " << fmt_num(c.value) << " | " << c.target << " | " << (c.pass ? "pass" : "**fail**")
       << " |\n";
  md << "\n## Label maps (argmax of the PV maps)\n\n| tissue | % of pixels, synthetic | % real | ratio | components per "
        "map, synthetic | real |\n|---|---|---|---|---|---|\n";
  for (size_t c = 1; c < r.tissue_names.size(); ++c)
    md << "| " << r.tissue_names[c] << " | " << fmt_num(100 * r.fraction_synthetic[c], 2) << " | "
       << fmt_num(100 * r.fraction_real[c], 2) << " | " << fmt_num(r.fraction_synthetic[c] / r.fraction_real[c], 2)
       << " | " << fmt_num(r.components_synthetic[c], 1) << " | " << fmt_num(r.components_real[c], 1) << " |\n";
  md << "\nBoundary density (tissue-boundary length per brain pixel): synthetic " << fmt_num(r.boundary_density_synthetic)
     << ", real " << fmt_num(r.boundary_density_real) << ".\n\nFréchet distance of the map features (tissue shares on "
     << job.feature_grid << "×" << job.feature_grid << " cells, " << job.pca_dims
     << " principal components of the real maps): synthetic vs real " << fmt_num(r.frechet)
     << "; real half vs real half (the floor) " << fmt_num(r.frechet_floor) << ".\n";
  const LabelSamplerOptions rule;  // the rule run_quality judged with
  md << "\nMaps no brain slice looks like (brain on more than " << fmt_num(100 * rule.max_border_share, 0)
     << "% of the frame's outer ring or on less than " << fmt_num(100 * rule.min_brain_share, 0)
     << "% of the frame; `sampler.implausible_redraw` redraws them): synthetic " << r.implausible_synthetic << " of " << r.n_synthetic << ", real " << r.implausible_real << " of " << r.n_real
     << ".\n";
  if (!r.bands.empty()) {
    md << "\nPer band of slice position (synthetic: the LDM's slice condition; real: the slice's position), ratio "
          "synthetic/real:\n\n| band | maps (synthetic / real) |";
    for (size_t c = 1; c < r.tissue_names.size(); ++c) md << " " << r.tissue_names[c] << " |";
    md << " boundary density |\n|---|---|";
    for (size_t c = 1; c < r.tissue_names.size(); ++c) md << "---|";
    md << "---|\n";
    for (const auto& b : r.bands) {
      md << "| " << fmt_num(b.lo, 2) << "–" << fmt_num(b.hi, 2) << " | " << b.n_synthetic << " / " << b.n_real << " |";
      for (size_t c = 1; c < r.tissue_names.size(); ++c)
        md << " " << (b.fraction_synthetic.empty() ? "–" : fmt_num(b.fraction_synthetic[c] / b.fraction_real[c], 2)) << " |";
      md << " " << fmt_num(b.boundary_density_synthetic / b.boundary_density_real, 2) << " |\n";
    }
  }
  if (r.has_images) {
    md << "\n## Images\n\nSegmenter: " << r.segmenter_used << ".\n\n| class | segmentability Dice (synthetic image vs "
          "its own label) | the segmenter on the real slices |\n|---|---|---|\n";
    for (size_t c = 1; c < r.segmenter_classes.size(); ++c)
      md << "| " << r.segmenter_classes[c] << " | " << fmt_num(r.segmentability[c]) << " | "
         << fmt_num(r.segmenter_on_real[c]) << " |\n";
    md << "\n| tissue | intensity mean ± sd, synthetic | real |\n|---|---|---|\n";
    for (size_t c = 0; c < r.tissue_names.size(); ++c)
      md << "| " << r.tissue_names[c] << " | " << fmt_num(r.intensity_mean_synthetic[c], 2) << " ± "
         << fmt_num(r.intensity_sd_synthetic[c], 2) << " | " << fmt_num(r.intensity_mean_real[c], 2) << " ± "
         << fmt_num(r.intensity_sd_real[c], 2) << " |\n";
    md << "\nArtefacts: power in the top frequency band (r ≥ 0.375 cycles/pixel) synthetic/real "
       << fmt_num(r.top_band_ratio, 2) << "; checkerboard score (share of energy at the Nyquist frequencies, "
       << "synthetic/real) " << fmt_num(r.checkerboard_score, 2) << "; axis energy (share of the energy at r ≥ 0.2 "
       << "on the fx = 0 and fy = 0 axes: axis-aligned blocky streaks), synthetic/real " << fmt_num(r.axis_energy_ratio, 2)
       << ". Spectra: quality.png.\n";
  }
  md << "\nMeasured in " << fmt_num(r.seconds, 1) << " s.\n";
  write_text_atomic(out + "/quality.md", md.str());

  // quality.png
  std::vector<PlotPanel> panels;
  BarPlot fr;
  fr.title = "Tissue area (% of pixels)";
  fr.y_label = "% of pixels";
  fr.series_names = {"synthetic", "real"};
  for (size_t c = 1; c < r.tissue_names.size(); ++c)
    fr.groups.push_back({r.tissue_names[c], {100 * r.fraction_synthetic[c], 100 * r.fraction_real[c]}});
  panels.push_back(fr);
  if (r.has_images) {
    LinePlot sp;
    sp.title = "Radially averaged power spectrum";
    sp.x_label = "spatial frequency (cycles/pixel)";
    sp.y_label = "power";
    sp.log_y = true;
    sp.series.push_back({"synthetic", r.spectrum_synthetic.frequency, r.spectrum_synthetic.power, false});
    sp.series.push_back({"real", r.spectrum_real.frequency, r.spectrum_real.power, true});
    panels.push_back(sp);
    BarPlot seg;
    seg.title = "Segmentability (Dice)";
    seg.y_label = "Dice";
    seg.series_names = {"synthetic images", "real slices"};
    for (size_t c = 1; c < r.segmenter_classes.size(); ++c)
      seg.groups.push_back({r.segmenter_classes[c], {r.segmentability[c], r.segmenter_on_real[c]}});
    panels.push_back(seg);
  }
  write_plot_png(out + "/quality.png", panels);
}

std::string range_text(double lo, double hi) { return fmt::format("{:.2f}–{:.2f}", lo, hi); }

}  // namespace

QualityReport run_quality(const QualityJob& job) {
  const auto t0 = std::chrono::steady_clock::now();
  BRAINSPADE_CHECK_INPUT(!job.pairs.empty(), "--pairs: a folder of synthetic pairs or label maps is required");
  BRAINSPADE_CHECK_INPUT(!job.real.empty(), "--real: a slice dataset of real slices is required");
  QualityReport r;
  Side syn = read_pairs(job.pairs);
  const int64_t C = syn.pv.size(1), H = syn.pv.size(2), W = syn.pv.size(3);
  std::string modality;
  Side real_all = read_real(job, H, W, C, &modality, &r.tissue_names);
  Side real = real_all;
  if (job.real_positions == "matched" && syn.position.defined() && real_all.position.defined()) {
    const double lo = syn.position.min().item<double>(), hi = syn.position.max().item<double>();
    auto rows = ((real_all.position >= lo - 1e-9) & (real_all.position <= hi + 1e-9)).nonzero().flatten();
    if (rows.numel() >= 2) {
      real.pv = real_all.pv.index_select(0, rows);
      real.position = real_all.position.index_select(0, rows);
      if (real_all.images.defined()) real.images = real_all.images.index_select(0, rows);
      r.real_position_lo = lo;
      r.real_position_hi = hi;
    } else {
      spdlog::warn("quality: fewer than 2 real slices at the synthetic positions {:.2f}-{:.2f}; comparing with all {}",
                   lo, hi, real_all.pv.size(0));
    }
  }
  r.n_synthetic = syn.pv.size(0);
  r.n_real = real.pv.size(0);
  r.has_images = syn.images.defined() && job.images;
  auto hs = syn.pv.argmax(1), hr = real.pv.argmax(1);  // [N, H, W]

  r.fraction_synthetic = class_fractions(hs, C);
  r.fraction_real = class_fractions(hr, C);
  r.boundary_density_synthetic = boundary_density(hs);
  r.boundary_density_real = boundary_density(hr);
  r.components_synthetic = mean_components(hs, C);
  r.components_real = mean_components(hr, C);
  {
    const LabelSamplerOptions rule;  // the sampler's defaults: what implausible_redraw would redraw
    r.implausible_synthetic = implausible_maps(syn.pv, rule.max_border_share, rule.min_brain_share).sum().item<int64_t>();
    r.implausible_real = implausible_maps(real.pv, rule.max_border_share, rule.min_brain_share).sum().item<int64_t>();
  }

  // Fréchet distance in a PCA space fitted on the real maps; the floor splits the real maps in two halves (even and
  // odd rows: neighbouring slices land on both sides).
  auto fr = map_features(hr, C, job.feature_grid), fs_ = map_features(hs, C, job.feature_grid);
  auto mean = fr.mean(0, true);
  auto svd = torch::linalg::svd(fr - mean, false, c10::nullopt);
  const int64_t k = std::min<int64_t>({job.pca_dims, fr.size(0) / 2 - 1, fr.size(1)});
  BRAINSPADE_CHECK_INPUT(k >= 1 && r.n_synthetic >= 2, "quality: too few maps for the Fréchet distance (",
                         r.n_synthetic, " synthetic, ", r.n_real, " real)");
  auto basis = std::get<2>(svd).slice(0, 0, k).t();  // [D, k]
  auto pr = (fr - mean).matmul(basis), ps = (fs_ - mean).matmul(basis);
  r.frechet = frechet_distance_of(ps, pr);
  auto even = torch::arange(0, pr.size(0), 2), odd = torch::arange(1, pr.size(0), 2);
  r.frechet_floor = frechet_distance_of(pr.index_select(0, even), pr.index_select(0, odd));

  if (syn.position.defined() && real.position.defined()) {
    for (int b = 0; b < 3; ++b) {
      QualityBand band;
      band.lo = b / 3.0, band.hi = (b + 1) / 3.0;
      auto in = [&](const torch::Tensor& p) {
        return ((p >= band.lo) & (b == 2 ? p <= 1.0 : p < band.hi)).nonzero().flatten();
      };
      auto is = in(syn.position), ir = in(real_all.position);
      band.n_synthetic = is.numel();
      band.n_real = ir.numel();
      if (band.n_synthetic > 0 && band.n_real > 0) {
        auto bs = hs.index_select(0, is), br = real_all.pv.argmax(1).index_select(0, ir);
        band.fraction_synthetic = class_fractions(bs, C);
        band.fraction_real = class_fractions(br, C);
        band.boundary_density_synthetic = boundary_density(bs);
        band.boundary_density_real = boundary_density(br);
      }
      r.bands.push_back(band);
    }
  }

  const auto& T = job.thresholds;
  for (int64_t c = 1; c < C; ++c) {
    if (r.fraction_real[c] <= 0) continue;  // a tissue absent from the real maps (e.g. no brainstem in the slab)
    const double ratio = r.fraction_synthetic[c] / r.fraction_real[c];
    r.checks.push_back({"area fraction " + r.tissue_names[c] + " (synthetic/real)", ratio,
                        range_text(T.fraction_low, T.fraction_high),
                        ratio >= T.fraction_low && ratio <= T.fraction_high});
  }
  // Lesion conditioning: does a flag put its lesion into the map (and its absence keep it out)?
  for (size_t k = 0; k < syn.lesion_names.size(); ++k) {
    const auto& name = syn.lesion_names[k];
    auto it = std::find(r.tissue_names.begin(), r.tissue_names.end(), name);
    if (it == r.tissue_names.end()) {
      spdlog::warn("quality: condition '{}' is not a label channel of {}; its rate is not measured", name, job.real);
      continue;
    }
    const int64_t c = it - r.tissue_names.begin();
    const double min_px = lesion_min_pixels_at(T.lesion_min_pixels, H, W);
    auto present = lesion_present(syn.pv, c, min_px);
    auto on = syn.lesion_flags.select(1, static_cast<int64_t>(k)) > 0.5;
    QualityReport::LesionRate lr;
    lr.name = name;
    lr.n_on = on.sum().item<int64_t>();
    lr.n_off = (~on).sum().item<int64_t>();
    if (lr.n_on > 0) lr.present_on = present.masked_select(on).to(torch::kDouble).mean().item<double>();
    if (lr.n_off > 0) lr.present_off = present.masked_select(~on).to(torch::kDouble).mean().item<double>();
    if (lr.n_on > 0)
      r.checks.push_back({fmt::format("{} present, flag on ({} maps)", name, lr.n_on), lr.present_on,
                          fmt::format("≥ {:.2f}", T.lesion_on_min), lr.present_on >= T.lesion_on_min});
    if (lr.n_off > 0)
      r.checks.push_back({fmt::format("{} present, flag off ({} maps)", name, lr.n_off), lr.present_off,
                          fmt::format("≤ {:.2f}", T.lesion_off_max), lr.present_off <= T.lesion_off_max});
    // Size alone: the mean area of the lesion over the maps that hold it, synthetic against real (matched positions).
    auto area_where_present = [&](const torch::Tensor& pv) {
      auto held = lesion_present(pv, c, min_px);
      if (held.sum().item<int64_t>() == 0) return static_cast<double>(NAN);
      auto area = (pv.select(1, c) > 0.5).sum({1, 2}).to(torch::kDouble) / static_cast<double>(pv.size(2) * pv.size(3));
      return area.masked_select(held).mean().item<double>();
    };
    lr.area_present_synthetic = area_where_present(syn.pv);
    lr.area_present_real = area_where_present(real.pv);
    if (std::isfinite(lr.area_present_synthetic) && std::isfinite(lr.area_present_real)) {
      const double ratio = lr.area_present_synthetic / lr.area_present_real;
      r.checks.push_back({fmt::format("{} area where present (synthetic/real)", name), ratio,
                          range_text(T.fraction_low, T.fraction_high),
                          ratio >= T.fraction_low && ratio <= T.fraction_high});
    }
    r.lesions.push_back(lr);
  }
  const double bd = r.boundary_density_synthetic / r.boundary_density_real;
  r.checks.push_back({"boundary density (synthetic/real)", bd, fmt::format("≥ {:.2f}", T.boundary_density_min),
                      bd >= T.boundary_density_min});

  if (r.has_images) {
    BRAINSPADE_CHECK_INPUT(real.images.defined(), job.real, ": has no images to compare the synthetic images with");
    torch::Device device = parse_device(job.run.device);
    BRAINSPADE_CHECK_INPUT(!job.segmenter.empty(), "config key 'segmenter': a segmenter checkpoint is needed for "
                           "segmentability (the `quality` command trains one when none is given)");
    LoadedSegmenter seg = load_segmenter(job.segmenter, device);
    r.segmenter_used = job.segmenter;
    r.segmenter_classes = seg.class_names;
    BRAINSPADE_CHECK_INPUT(seg.height / seg.downsample == H && seg.width / seg.downsample == W, job.segmenter,
                           ": works on ", seg.height / seg.downsample, "x", seg.width / seg.downsample,
                           " slices, the synthetic images are ", H, "x", W);
    auto lm = torch::tensor(job.label_map, torch::kLong);
    BRAINSPADE_CHECK_INPUT(static_cast<int64_t>(job.label_map.size()) == C, "config key 'label_map': ",
                           job.label_map.size(), " entries for ", C, " PV channels");
    BRAINSPADE_CHECK_INPUT(lm.max().item<int64_t>() < static_cast<int64_t>(seg.class_names.size()),
                           "config key 'label_map': a class beyond the segmenter's ", seg.class_names.size());
    r.segmentability = segment_dice(seg, syn.images, lm.index({hs}), device);
    r.segmenter_on_real = segment_dice(seg, real.images, lm.index({hr}), device);
    for (size_t c = 1; c < seg.class_names.size(); ++c) {
      const double min = c - 1 < T.segmentability_min.size() ? T.segmentability_min[c - 1] : 0.0;
      r.checks.push_back({"segmentability " + seg.class_names[c] + " (Dice)", r.segmentability[c],
                          fmt::format("≥ {:.2f}", min), r.segmentability[c] >= min});
    }
    intensity_stats(syn.images, hs, C, r.intensity_mean_synthetic, r.intensity_sd_synthetic);
    intensity_stats(real.images, hr, C, r.intensity_mean_real, r.intensity_sd_real);
    auto is = syn.images.select(1, 0), ir = real.images.select(1, 0);
    r.spectrum_synthetic = radial_power_spectrum(is);
    r.spectrum_real = radial_power_spectrum(ir);
    r.top_band_ratio = band_power(r.spectrum_synthetic, 0.375) / band_power(r.spectrum_real, 0.375);
    r.checkerboard_score = nyquist_energy_fraction(is) / nyquist_energy_fraction(ir);
    r.axis_energy_ratio = axis_energy_share(is) / axis_energy_share(ir);
    r.checks.push_back({"checkerboard score (synthetic/real)", r.checkerboard_score,
                        fmt::format("≤ {:.2f}", T.checkerboard_max), r.checkerboard_score <= T.checkerboard_max});
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  write_outputs(job, r);
  int passed = 0;
  for (const auto& c : r.checks) passed += c.pass;
  spdlog::info("quality: {} synthetic vs {} real ({}) maps; {} of {} checks pass; {}/quality.md", r.n_synthetic,
               r.n_real, modality.empty() ? "all rows" : modality, passed, r.checks.size(), job.run.out_dir);
  return r;
}

}  // namespace brainspade
