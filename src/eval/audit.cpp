#include "brainspade/eval/audit.h"

#include <algorithm>
#include <chrono>
#include <iterator>
#include <map>
#include <filesystem>
#include <limits>
#include <optional>
#include <cmath>
#include <sstream>
#include <tuple>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/error.h"
#include "brainspade/core/progress.h"
#include "brainspade/core/runtime.h"
#include "brainspade/data/slice_dataset.h"
#include "brainspade/draw/montage.h"
#include "brainspade/eval/quality.h"
#include "brainspade/inference/image_generator.h"
#include "brainspade/inference/label_generator.h"

namespace brainspade {

void AuditThresholds::visit(ConfigVisitor& v) {
  v("near_copy_percentile", near_copy_percentile,
    "near copy: a synthetic sample more similar to a training slice than this percentile of the held-out slices are",
    Bounds::range(50.0, 100.0));
  v("near_copy_max", near_copy_max, "highest passing share of near copies (no copying gives about 1 - percentile/100)",
    Bounds::unit());
  v("auc_max", auc_max, "membership check fails when the lower end of the AUC interval exceeds this", Bounds::unit());
  v("position_gap_max", position_gap_max,
    "held-out slices further than this (in training-slice spacings, median) from any training position mark the "
    "membership verdict as confounded with position",
    Bounds::non_negative());
}

void AuditJob::visit(ConfigVisitor& v) {
  v.section("run", run);
  v("pairs", pairs, "folder written by `sample` or `sample labels`");
  v("train", train, "slice dataset (.pt) the generators were trained on");
  v("holdout", holdout, "slice dataset (.pt) of real slices no generator saw (the baseline)");
  v("modality", modality, "image rows compared; empty = each dataset's most frequent modality");
  v("ldm_checkpoint", ldm_checkpoint, "LDM tested for membership of the training slices; empty = skip that check");
  v("spade_checkpoint", spade_checkpoint,
    "SPADE tested for membership of the training slices (reconstruction error); empty = skip that check");
  v("max_shift", max_shift, "nearest-neighbour shift search, pixels at the search size", Bounds::range(0, 16));
  v("search_downsample", search_downsample,
    "average-pool maps and images by this factor before the nearest-neighbour search (cost / factor^2)",
    Bounds::range(1, 8));
  v("membership_timesteps", membership_timesteps, "timesteps of the LDM denoising loss", Bounds::non_negative());
  v("membership_noise_draws", membership_noise_draws, "fixed noise draws per timestep and slice", Bounds::at_least(1));
  v("bootstrap_rounds", bootstrap_rounds, "bootstrap resamples of the AUC interval", Bounds::at_least(10));
  v.section("thresholds", thresholds);
}

// ---------------------------------------------------------------------------------------------------------------
// Measures

namespace {

// x [..., H, W] moved by (dy, dx); pixels moved in from outside are 0.
torch::Tensor shifted(const torch::Tensor& x, int64_t dy, int64_t dx) {
  if (dy == 0 && dx == 0) return x;
  const int64_t H = x.size(-2), W = x.size(-1);
  auto out = torch::zeros_like(x);
  if (std::abs(dy) >= H || std::abs(dx) >= W) return out;
  using torch::indexing::Slice;
  auto src = x.index({"...", Slice(std::max<int64_t>(0, -dy), H - std::max<int64_t>(0, dy)),
                      Slice(std::max<int64_t>(0, -dx), W - std::max<int64_t>(0, dx))});
  out.index_put_({"...", Slice(std::max<int64_t>(0, dy), H - std::max<int64_t>(0, -dy)),
                  Slice(std::max<int64_t>(0, dx), W - std::max<int64_t>(0, -dx))},
                 src);
  return out;
}

// Keeps, per query row, the best similarity [M] seen so far and its reference index (`offset` + column).
void keep_best(const torch::Tensor& sim, int64_t offset, torch::Tensor& best, torch::Tensor& index) {
  auto [v, i] = sim.max(1);
  auto better = v > best;
  best = torch::where(better, v, best);
  index = torch::where(better, i + offset, index);
}

// Memory stays [K, 64, 256] per block whatever M and N are.
constexpr int64_t kChunk = 64;      // query rows per block
constexpr int64_t kRefBlock = 256;  // reference rows per block

}  // namespace

std::pair<torch::Tensor, torch::Tensor> nearest_label_maps(const torch::Tensor& a, const torch::Tensor& b,
                                                           int64_t K, int64_t max_shift, Progress* progress) {
  TORCH_CHECK(a.dim() == 3 && b.dim() == 3 && a.sizes().slice(1) == b.sizes().slice(1),
              "nearest_label_maps needs [M, H, W] and [N, H, W] maps of one size; got ", a.sizes(), " and ", b.sizes());
  TORCH_CHECK(K >= 2 && b.size(0) >= 1, "nearest_label_maps needs >= 2 classes and >= 1 reference map");
  torch::NoGradGuard no_grad;
  auto tissues = [&](const torch::Tensor& x) {  // [n, K-1, H, W] float one-hot of classes 1..K-1
    return torch::one_hot(x.clamp(0, K - 1), K).permute({0, 3, 1, 2}).slice(1, 1).to(torch::kFloat).contiguous();
  };
  torch::Tensor best_all = torch::full({a.size(0)}, -1.0), index_all = torch::zeros({a.size(0)}, torch::kLong);
  for (int64_t i0 = 0; i0 < a.size(0); i0 += kChunk) {
    auto A = tissues(a.slice(0, i0, std::min(i0 + kChunk, a.size(0))));
    const int64_t m = A.size(0);
    auto best = torch::full({m}, -1.0, torch::kFloat), index = torch::zeros({m}, torch::kLong);
    for (int64_t j0 = 0; j0 < b.size(0); j0 += kRefBlock) {
      auto B = tissues(b.slice(0, j0, std::min(j0 + kRefBlock, b.size(0))));
      auto Bf = B.flatten(2).permute({1, 2, 0}).contiguous();  // [K-1, P, n]
      auto sb = B.sum({2, 3});                                 // [n, K-1]
      for (int64_t dy = -max_shift; dy <= max_shift; ++dy)
        for (int64_t dx = -max_shift; dx <= max_shift; ++dx) {
          auto As = shifted(A, dy, dx);
          auto inter = torch::bmm(As.flatten(2).permute({1, 0, 2}), Bf);  // [K-1, m, n]
          auto sa = As.sum({2, 3});                                       // [m, K-1]
          auto denom = sa.t().unsqueeze(2) + sb.t().unsqueeze(1);        // [K-1, m, n]
          auto present = (denom > 0).to(torch::kFloat);
          auto dice = 2 * inter / denom.clamp_min(1e-12) * present;
          auto count = present.sum(0);                                    // [m, n]
          auto sim = torch::where(count > 0, dice.sum(0) / count.clamp_min(1), torch::ones_like(count));
          keep_best(sim, j0, best, index);
        }
    }
    best_all.slice(0, i0, i0 + m).copy_(best);
    index_all.slice(0, i0, i0 + m).copy_(index);
    if (progress) progress->update(m);
  }
  return {best_all.to(torch::kDouble), index_all};
}

std::pair<torch::Tensor, torch::Tensor> nearest_images(const torch::Tensor& a, const torch::Tensor& b, int64_t max_shift,
                                                       Progress* progress) {
  TORCH_CHECK(a.dim() == 3 && b.dim() == 3 && a.sizes().slice(1) == b.sizes().slice(1),
              "nearest_images needs [M, H, W] and [N, H, W] images of one size; got ", a.sizes(), " and ", b.sizes());
  torch::NoGradGuard no_grad;
  auto centred = [](const torch::Tensor& x) {
    auto f = x.to(torch::kFloat);
    return f - f.mean({1, 2}, true);
  };
  torch::Tensor best_all = torch::full({a.size(0)}, -2.0), index_all = torch::zeros({a.size(0)}, torch::kLong);
  for (int64_t i0 = 0; i0 < a.size(0); i0 += kChunk) {
    auto A = centred(a.slice(0, i0, std::min(i0 + kChunk, a.size(0))));
    const int64_t m = A.size(0);
    auto best = torch::full({m}, -2.0, torch::kFloat), index = torch::zeros({m}, torch::kLong);
    for (int64_t j0 = 0; j0 < b.size(0); j0 += kRefBlock) {
      auto Bc = centred(b.slice(0, j0, std::min(j0 + kRefBlock, b.size(0)))).flatten(1);  // [n, P]
      auto nb = Bc.norm(2, 1).clamp_min(1e-12);                                          // [n]
      for (int64_t dy = -max_shift; dy <= max_shift; ++dy)
        for (int64_t dx = -max_shift; dx <= max_shift; ++dx) {
          auto As = shifted(A, dy, dx).flatten(1);  // [m, P]
          auto na = As.norm(2, 1).clamp_min(1e-12);
          auto sim = As.matmul(Bc.t()) / (na.unsqueeze(1) * nb.unsqueeze(0));
          keep_best(sim, j0, best, index);
        }
    }
    best_all.slice(0, i0, i0 + m).copy_(best);
    index_all.slice(0, i0, i0 + m).copy_(index);
    if (progress) progress->update(m);
  }
  return {best_all.to(torch::kDouble), index_all};
}

torch::Tensor spade_reconstruction_errors(ImageGenerator& g, const torch::Tensor& labels, const torch::Tensor& images,
                                          torch::Device device, Progress* progress) {
  torch::NoGradGuard no_grad;
  const auto& o = g.generator->options();
  BRAINSPADE_CHECK_INPUT(labels.dim() == 4 && labels.size(1) == o.label_channels && labels.size(2) == o.height &&
                             labels.size(3) == o.width,
                         "SPADE reconstruction: label maps ", labels.sizes(), " do not fit the generator's [N, ",
                         o.label_channels, ", ", o.height, ", ", o.width, "]");
  BRAINSPADE_CHECK_INPUT(images.dim() == 4 && images.size(0) == labels.size(0) && images.size(1) == 1 &&
                             images.sizes().slice(2) == labels.sizes().slice(2),
                         "SPADE reconstruction: images ", images.sizes(), " do not match the label maps ", labels.sizes());
  const int64_t N = labels.size(0);
  auto out = torch::zeros({N}, torch::kDouble);
  for (int64_t i = 0; i < N; i += 16) {
    const int64_t e = std::min(i + 16, N);
    auto x = labels.slice(0, i, e).to(torch::kFloat), im = images.slice(0, i, e).to(torch::kFloat);
    auto z = g.encoder->encode(im.to(device)).mu;
    auto made = g.generator->forward(x.to(device), z).cpu().to(torch::kFloat);
    auto brain = (x.select(1, 0) < 0.5).unsqueeze(1).to(torch::kFloat);
    auto err = ((made - im).abs() * brain).sum({1, 2, 3}) / brain.sum({1, 2, 3}).clamp_min(1);
    out.slice(0, i, e).copy_(err.to(torch::kDouble));
    if (progress) progress->update(e - i);
  }
  return out;
}

double roc_auc(const torch::Tensor& positive, const torch::Tensor& negative) {
  TORCH_CHECK(positive.numel() > 0 && negative.numel() > 0, "roc_auc needs scores on both sides");
  auto p = positive.flatten().to(torch::kDouble), n = negative.flatten().to(torch::kDouble);
  double u = 0;
  for (int64_t i = 0; i < p.size(0); i += 1024) {  // pairs in blocks: [1024, n] at most
    auto d = p.slice(0, i, std::min(i + 1024, p.size(0))).unsqueeze(1) - n.unsqueeze(0);
    u += (d > 0).sum().item<double>() + 0.5 * (d == 0).sum().item<double>();
  }
  return u / (static_cast<double>(p.size(0)) * static_cast<double>(n.size(0)));
}

std::pair<double, double> roc_auc_interval(const torch::Tensor& positive, const torch::Tensor& negative, int64_t rounds,
                                           double level, uint64_t seed) {
  auto gen = make_generator(seed);
  std::vector<double> aucs;
  aucs.reserve(rounds);
  for (int64_t r = 0; r < rounds; ++r) {
    auto ip = torch::randint(positive.numel(), {positive.numel()}, gen, torch::kLong);
    auto in = torch::randint(negative.numel(), {negative.numel()}, gen, torch::kLong);
    aucs.push_back(roc_auc(positive.flatten().index_select(0, ip), negative.flatten().index_select(0, in)));
  }
  std::sort(aucs.begin(), aucs.end());
  auto at = [&](double q) { return aucs[std::min<size_t>(aucs.size() - 1, static_cast<size_t>(q * (aucs.size() - 1) + 0.5))]; };
  return {at((1 - level) / 2), at(1 - (1 - level) / 2)};
}

// ---------------------------------------------------------------------------------------------------------------
// The command

namespace {

// The rows of one modality (the named one, or the most frequent); all rows of a label-only dataset.
SliceDataset rows_of_modality(SliceDataset ds, const std::string& modality, const std::string& path) {
  if (ds.modality_names.empty()) return ds;
  int64_t m = -1;
  if (!modality.empty()) {
    for (size_t i = 0; i < ds.modality_names.size(); ++i)
      if (ds.modality_names[i] == modality) m = static_cast<int64_t>(i);
    BRAINSPADE_CHECK_INPUT(m >= 0, "config key 'modality': ", path, " has no modality '", modality, "'");
  } else {
    m = torch::bincount(ds.modality, {}, static_cast<int64_t>(ds.modality_names.size())).argmax().item<int64_t>();
  }
  return ds.select((ds.modality == m).nonzero().flatten());
}

// Label maps and images of a dataset average-pooled to H x W (the size the generators work at).
struct Pooled {
  SliceDataset ds;
  torch::Tensor pv, images;
};
Pooled load_pooled(const std::string& path, const std::string& key, const std::string& modality, int64_t C, int64_t H,
                   int64_t W) {
  BRAINSPADE_CHECK_INPUT(!path.empty(), "--", key, ": a slice dataset is required");
  Pooled p;
  p.ds = rows_of_modality(SliceDataset::load(path), modality, path);
  BRAINSPADE_CHECK_INPUT(p.ds.size() >= 1, path, ": no slices");
  BRAINSPADE_CHECK_INPUT(p.ds.channels() == C, path, ": label maps have ", p.ds.channels(), " channels, the synthetic ",
                         "maps ", C);
  const int64_t f = p.ds.height() / H;
  BRAINSPADE_CHECK_INPUT(f >= 1 && p.ds.height() == f * H && p.ds.width() == f * W, path, ": slices of ",
                         p.ds.height(), "x", p.ds.width(), " do not pool evenly to the synthetic ", H, "x", W);
  p.pv = f > 1 ? torch::avg_pool2d(p.ds.labels, f) : p.ds.labels;
  if (p.ds.images.defined() && p.ds.images.numel() > 0) p.images = f > 1 ? torch::avg_pool2d(p.ds.images, f) : p.ds.images;
  return p;
}

// Mean L1 denoising loss per slice over fixed timesteps and fixed noise (the same noise for every slice).
torch::Tensor denoising_losses(LabelGenerator& g, const SliceDataset& ds, const AuditJob& job, torch::Device device,
                               Progress& progress) {
  torch::NoGradGuard no_grad;
  DDPMScheduler sched(g.scheduler);
  auto cond_all = conditions_of(ds, g.conditioning);
  const int64_t N = ds.size(), T = g.scheduler.num_train_timesteps;
  auto total = torch::zeros({N}, torch::kDouble);
  for (int64_t i = 0; i < N; i += 16) {
    const int64_t e = std::min(i + 16, N);
    auto x = ds.labels.slice(0, i, e).to(device);
    auto z0 = (g.vae->encode(x).mean * g.latent_scale).cpu();
    auto c = cond_all.size(1) > 0 ? cond_all.slice(0, i, e).to(device) : torch::Tensor();
    for (int64_t t : job.membership_timesteps) {
      BRAINSPADE_CHECK_INPUT(t >= 0 && t < T, "config key 'membership_timesteps': ", t, " is outside [0, ", T, ")");
      for (int64_t d = 0; d < job.membership_noise_draws; ++d) {
        auto gen = make_generator(derive_seed(static_cast<uint64_t>(job.run.seed), 0xA0D17 + t, d));
        auto noise = torch::randn(z0.sizes().slice(1), gen).unsqueeze(0).expand_as(z0).contiguous();
        auto tt = torch::full({e - i}, t, torch::kLong);
        auto zt = sched.add_noise(z0, noise, tt).to(device);
        auto pred = g.unet->forward(zt, tt.to(device), c).cpu();
        auto target = sched.training_target(z0, noise, tt);
        total.slice(0, i, e) += (pred - target).abs().flatten(1).mean(1).to(torch::kDouble);
      }
    }
    progress.update(e - i);
  }
  return total / static_cast<double>(job.membership_timesteps.size() * job.membership_noise_draws);
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? NAN : (v[(v.size() - 1) / 2] + v[v.size() / 2]) / 2;
}

double quantile_of(const torch::Tensor& x, double q) { return torch::quantile(x.to(torch::kDouble), q).item<double>(); }

std::string f3(double v) { return std::isfinite(v) ? fmt::format("{:.3f}", v) : "–"; }

nlohmann::ordered_json vec(const torch::Tensor& t) {
  auto a = nlohmann::ordered_json::array();
  if (!t.defined()) return a;
  auto d = t.to(torch::kDouble).contiguous();
  for (int64_t i = 0; i < d.numel(); ++i) a.push_back(d[i].item<double>());
  return a;
}

std::string summary_row(const std::string& what, const torch::Tensor& x) {
  return fmt::format("| {} | {} | {} | {} | {} | {} |\n", what, x.numel(), f3(quantile_of(x, 0.05)), f3(quantile_of(x, 0.5)),
                     f3(quantile_of(x, 0.95)), f3(x.max().item<double>()));
}

}  // namespace

double held_out_position_gap(const torch::Tensor& train_positions, const torch::Tensor& holdout_positions) {
  auto tr = train_positions.to(torch::kDouble).contiguous().flatten();
  auto ho = holdout_positions.to(torch::kDouble).contiguous().flatten();
  std::vector<double> t(tr.data_ptr<double>(), tr.data_ptr<double>() + tr.numel());
  std::sort(t.begin(), t.end());
  t.erase(std::unique(t.begin(), t.end()), t.end());  // several subjects share positions: spacing between distinct ones
  if (t.size() < 2 || ho.numel() == 0) return NAN;
  std::vector<double> spacing;
  for (size_t i = 1; i < t.size(); ++i) spacing.push_back(t[i] - t[i - 1]);
  const double step = median_of(spacing);
  std::vector<double> gaps;
  for (int64_t i = 0; i < ho.numel(); ++i) {
    const double p = ho[i].item<double>();
    auto it = std::lower_bound(t.begin(), t.end(), p);
    double g = std::numeric_limits<double>::infinity();
    if (it != t.end()) g = *it - p;
    if (it != t.begin()) g = std::min(g, p - *std::prev(it));
    gaps.push_back(g);
  }
  return median_of(gaps) / step;
}

namespace {

// Every input of the audit, read (and checked) before any measuring.
struct AuditInputs {
  SyntheticFolder syn;
  Pooled train, hold;                 // at the synthetic size (the montage)
  torch::Tensor syn_hard, train_hard, hold_hard;   // argmax maps at the search size
  torch::Tensor syn_img, train_img, hold_img;       // [N, H, W] images at the search size (undefined: no images)
  std::optional<LabelGenerator> ldm;
  SliceDataset ldm_train, ldm_hold;   // at the LDM's size
  std::optional<ImageGenerator> spade;
  SliceDataset spade_train, spade_hold;  // at SPADE's size, with images
  double position_gap = NAN;
};

// `path`'s rows of the audited modality average-pooled to `h` rows (InputError when they do not pool evenly).
SliceDataset pooled_to(const std::string& path, const std::string& modality, int64_t h, const std::string& what) {
  SliceDataset ds = rows_of_modality(SliceDataset::load(path), modality, path);
  const int64_t f = ds.height() / h;
  BRAINSPADE_CHECK_INPUT(f >= 1 && ds.height() == f * h, path, ": slices of ", ds.height(), " rows do not pool to ",
                         what, "'s ", h);
  if (f > 1) {
    ds.labels = torch::avg_pool2d(ds.labels, f);
    if (ds.images.defined() && ds.images.numel() > 0) ds.images = torch::avg_pool2d(ds.images, f);
  }
  return ds;
}

AuditInputs read_inputs(const AuditJob& job, torch::Device device) {
  BRAINSPADE_CHECK_INPUT(!job.pairs.empty(), "--pairs: a folder of synthetic pairs or label maps is required");
  AuditInputs in;
  in.syn = read_synthetic_folder(job.pairs);
  const int64_t C = in.syn.pv.size(1), H = in.syn.pv.size(2), W = in.syn.pv.size(3);
  in.train = load_pooled(job.train, "train", job.modality, C, H, W);
  in.hold = load_pooled(job.holdout, "holdout", job.modality, C, H, W);
  BRAINSPADE_CHECK_INPUT(in.hold.ds.size() >= 2, job.holdout, ": fewer than 2 held-out slices to form a baseline");
  const int64_t f = job.search_downsample;
  BRAINSPADE_CHECK_INPUT(H % f == 0 && W % f == 0, "config key 'search_downsample': the synthetic ", H, "x", W,
                         " maps do not pool evenly by ", f);
  auto pool = [f](const torch::Tensor& x) { return f > 1 ? torch::avg_pool2d(x, f) : x; };
  in.syn_hard = pool(in.syn.pv).argmax(1);
  in.train_hard = pool(in.train.pv).argmax(1);
  in.hold_hard = pool(in.hold.pv).argmax(1);
  if (in.syn.images.defined() && in.train.images.defined() && in.hold.images.defined()) {
    in.syn_img = pool(in.syn.images).select(1, 0);
    in.train_img = pool(in.train.images).select(1, 0);
    in.hold_img = pool(in.hold.images).select(1, 0);
  }
  in.position_gap = held_out_position_gap(in.train.ds.slice_position, in.hold.ds.slice_position);
  // The models are read before any work, so a bad checkpoint costs nothing.
  if (!job.ldm_checkpoint.empty()) {
    in.ldm.emplace(load_label_generator(job.ldm_checkpoint, "", device));
    LabelGenerator& g = *in.ldm;
    BRAINSPADE_CHECK_INPUT(static_cast<int64_t>(g.channel_names.size()) == C, job.ldm_checkpoint, ": the LDM makes ",
                           g.channel_names.size(), " channels, the datasets hold ", C);
    const int64_t h = g.latent_shape[1] * g.vae->downsampling_factor();
    in.ldm_train = pooled_to(job.train, job.modality, h, "the LDM");
    in.ldm_hold = pooled_to(job.holdout, job.modality, h, "the LDM");
  }
  if (!job.spade_checkpoint.empty()) {
    in.spade.emplace(load_image_generator(job.spade_checkpoint, device));
    const auto& o = in.spade->generator->options();
    BRAINSPADE_CHECK_INPUT(o.label_channels == C, job.spade_checkpoint, ": the SPADE generator reads ", o.label_channels,
                           " channels, the datasets hold ", C);
    for (const auto& [path, out] : {std::pair{job.train, &in.spade_train}, std::pair{job.holdout, &in.spade_hold}}) {
      *out = pooled_to(path, job.modality, o.height, "the SPADE generator");
      BRAINSPADE_CHECK_INPUT(out->images.defined() && out->images.numel() > 0, path,
                             ": no images; the SPADE membership check rebuilds each slice's image");
      BRAINSPADE_CHECK_INPUT(out->width() == o.width, path, ": slices pool to ", out->height(), "x", out->width(),
                             ", the SPADE generator makes ", o.height, "x", o.width);
    }
  }
  return in;
}

// Every per-item number of the report, full length: NaN where another shard measures.
using Arrays = std::map<std::string, torch::Tensor>;

torch::Tensor owned(int64_t n, const Shard& s) { return torch::arange(s.index, n, s.count, torch::kLong); }

torch::Tensor scattered(int64_t n, const torch::Tensor& rows, const torch::Tensor& values) {
  auto out = torch::full({n}, std::nan(""), torch::kDouble);
  if (rows.numel() > 0) out.index_copy_(0, rows, values.to(torch::kDouble));
  return out;
}

Arrays measure(AuditInputs& in, const AuditJob& job, const Shard& shard, torch::Device device) {
  Arrays a;
  const int64_t M = in.syn_hard.size(0), R = in.hold_hard.size(0), K = in.syn.pv.size(1);
  auto sm = owned(M, shard), rm = owned(R, shard);
  const bool images = in.syn_img.defined();
  Progress progress("audit: nearest neighbours", (sm.numel() + rm.numel()) * (images ? 2 : 1));
  auto [ls, li] = nearest_label_maps(in.syn_hard.index_select(0, sm), in.train_hard, K, job.max_shift, &progress);
  a["label_synthetic"] = scattered(M, sm, ls);
  a["label_index"] = scattered(M, sm, li);
  a["label_holdout"] = scattered(
      R, rm, nearest_label_maps(in.hold_hard.index_select(0, rm), in.train_hard, K, job.max_shift, &progress).first);
  if (images) {
    a["image_synthetic"] =
        scattered(M, sm, nearest_images(in.syn_img.index_select(0, sm), in.train_img, job.max_shift, &progress).first);
    a["image_holdout"] =
        scattered(R, rm, nearest_images(in.hold_img.index_select(0, rm), in.train_img, job.max_shift, &progress).first);
  }
  progress.finish();
  if (in.ldm) {
    auto tr = owned(in.ldm_train.size(), shard), ho = owned(in.ldm_hold.size(), shard);
    Progress mp("audit: LDM denoising loss", tr.numel() + ho.numel());
    LabelGenerator& g = *in.ldm;
    a["loss_train"] = scattered(in.ldm_train.size(), tr, denoising_losses(g, in.ldm_train.select(tr), job, device, mp));
    a["loss_holdout"] = scattered(in.ldm_hold.size(), ho, denoising_losses(g, in.ldm_hold.select(ho), job, device, mp));
    mp.finish();
  }
  if (in.spade) {
    auto tr = owned(in.spade_train.size(), shard), ho = owned(in.spade_hold.size(), shard);
    Progress sp("audit: SPADE reconstruction", tr.numel() + ho.numel());
    ImageGenerator& g = *in.spade;
    auto errors = [&](const SliceDataset& ds, const torch::Tensor& rows) {
      auto sel = ds.select(rows);
      return scattered(ds.size(), rows, spade_reconstruction_errors(g, sel.labels, sel.images, device, &sp));
    };
    a["spade_train"] = errors(in.spade_train, tr);
    a["spade_holdout"] = errors(in.spade_hold, ho);
    sp.finish();
  }
  return a;
}

// What a shard's part was measured from: parts of other inputs or settings must not be merged.
nlohmann::ordered_json fingerprint(const AuditJob& job, const AuditInputs& in, const Shard& shard) {
  nlohmann::ordered_json f;
  f["pairs"] = job.pairs;
  f["train"] = job.train;
  f["holdout"] = job.holdout;
  f["modality"] = job.modality;
  f["ldm_checkpoint"] = job.ldm_checkpoint;
  f["spade_checkpoint"] = job.spade_checkpoint;
  f["n_synthetic"] = in.syn_hard.size(0);
  f["n_train"] = in.train_hard.size(0);
  f["n_holdout"] = in.hold_hard.size(0);
  f["max_shift"] = job.max_shift;
  f["search_downsample"] = job.search_downsample;
  f["membership_timesteps"] = job.membership_timesteps;
  f["membership_noise_draws"] = job.membership_noise_draws;
  f["seed"] = job.run.seed;
  f["shards"] = shard.count;
  return f;
}

std::string part_path(const std::string& out, const Shard& s, int64_t i) {
  return fmt::format("{}/shards/part-{}-of-{}.json", out, i, s.count);
}

void write_part(const std::string& path, const nlohmann::ordered_json& fp, const Arrays& a) {
  nlohmann::ordered_json js;
  js["fingerprint"] = fp;
  for (const auto& [name, t] : a) {
    auto arr = nlohmann::ordered_json::array();
    auto d = t.contiguous();
    for (int64_t i = 0; i < d.numel(); ++i) {
      const double v = d[i].item<double>();
      if (std::isnan(v)) arr.push_back(nullptr);
      else arr.push_back(v);
    }
    js["arrays"][name] = arr;
  }
  write_text_atomic(path, js.dump() + "\n");
}

// A part written earlier: its arrays, or InputError naming it when it was measured from anything else.
Arrays read_part(const std::string& path, const nlohmann::ordered_json& fp) {
  nlohmann::ordered_json js;
  try {
    js = nlohmann::ordered_json::parse(read_text(path));
  } catch (const nlohmann::json::exception& e) {
    throw input_error(path, ": not a readable audit part (", e.what(), "); delete it and rerun its shard");
  }
  BRAINSPADE_CHECK_INPUT(js.is_object() && js.contains("fingerprint") && js.contains("arrays") &&
                             js["arrays"].is_object(),
                         path, ": not an audit part; delete it and rerun its shard");
  for (const auto& [key, value] : fp.items())
    BRAINSPADE_CHECK_INPUT(js["fingerprint"].contains(key) && js["fingerprint"][key] == value, path,
                           ": measured with another '", key, "' (", js["fingerprint"].value(key, nlohmann::ordered_json()).dump(),
                           ", now ", value.dump(), "); delete ", std::filesystem::path(path).parent_path().string(),
                           " or audit into another --out");
  Arrays a;
  for (const auto& [name, arr] : js["arrays"].items()) {
    BRAINSPADE_CHECK_INPUT(arr.is_array(), path, ": array '", name, "' is not a list");
    std::vector<double> v;
    v.reserve(arr.size());
    for (const auto& x : arr) {
      BRAINSPADE_CHECK_INPUT(x.is_null() || x.is_number(), path, ": array '", name, "' holds a non-number");
      v.push_back(x.is_null() ? std::nan("") : x.get<double>());
    }
    a[name] = torch::tensor(v, torch::kDouble);
  }
  return a;
}

// The parts' arrays merged: each item from the one part that measured it (InputError when an item is missing).
Arrays merge_parts(const std::vector<std::pair<std::string, Arrays>>& parts) {
  Arrays out;
  for (const auto& [path, a] : parts)
    for (const auto& [name, t] : a) {
      auto& m = out[name];
      if (!m.defined()) m = torch::full_like(t, std::nan(""));
      BRAINSPADE_CHECK_INPUT(m.numel() == t.numel(), path, ": array '", name, "' has ", t.numel(), " items, other parts ",
                             m.numel());
      m = torch::where(torch::isnan(t), m, t);
    }
  for (const auto& [name, t] : out)
    BRAINSPADE_CHECK_INPUT(!torch::isnan(t).any().item<bool>(), parts.front().first, ": the parts leave items of '", name,
                           "' unmeasured; delete the shards folder and rerun every shard");
  return out;
}

}  // namespace

AuditReport run_audit(const AuditJob& job, const Shard& shard) {
  const auto t0 = std::chrono::steady_clock::now();
  torch::Device device = parse_device(job.run.device);
  AuditInputs in = read_inputs(job, device);
  AuditReport r;
  r.n_synthetic = in.syn.pv.size(0);
  r.n_train = in.train.ds.size();
  r.n_holdout = in.hold.ds.size();
  const std::string out = job.run.out_dir;
  make_dirs(out);

  Arrays a;
  if (shard.count == 1) {
    a = measure(in, job, shard, device);
  } else {
    const auto fp = fingerprint(job, in, shard);
    const std::string mine = part_path(out, shard, shard.index);
    if (file_exists(mine)) {
      read_part(mine, fp);
      spdlog::info("audit: shard {} was measured before ({}); not measured again", shard.str(), mine);
    } else {
      make_dirs(out + "/shards");
      write_part(mine, fp, measure(in, job, shard, device));
      spdlog::info("audit: shard {} measured into {}", shard.str(), mine);
    }
    std::vector<std::pair<std::string, Arrays>> parts;
    std::vector<int64_t> missing;
    for (int64_t i = 0; i < shard.count; ++i) {
      const std::string p = part_path(out, shard, i);
      if (file_exists(p)) parts.emplace_back(p, read_part(p, fp));
      else missing.push_back(i);
    }
    if (!missing.empty()) {
      spdlog::info("audit: {} of {} parts present (missing shards {}); the shard that completes them writes the "
                   "report", parts.size(), shard.count, fmt::join(missing, ", "));
      r.complete = false;
      r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      return r;
    }
    a = merge_parts(parts);
    spdlog::info("audit: all {} parts present; writing the report", shard.count);
  }

  const auto& T = job.thresholds;
  const double q = T.near_copy_percentile / 100.0;
  // 1. Nearest training slice of every synthetic sample and of every held-out slice.
  r.label_synthetic = a.at("label_synthetic");
  r.label_holdout = a.at("label_holdout");
  auto ls_idx = a.at("label_index").to(torch::kLong);
  r.label_threshold = quantile_of(r.label_holdout, q);
  r.label_near_copies = (r.label_synthetic > r.label_threshold).to(torch::kDouble).mean().item<double>();
  r.checks.push_back({"label maps: near copies (share of synthetic maps closer to a training slice than " +
                          fmt::format("{:g}", T.near_copy_percentile) + " % of held-out slices)",
                      r.label_near_copies, fmt::format("≤ {:.2f}", T.near_copy_max), r.label_near_copies <= T.near_copy_max,
                      ""});
  const bool images = a.count("image_synthetic") > 0;
  if (images) {
    r.image_synthetic = a.at("image_synthetic");
    r.image_holdout = a.at("image_holdout");
    r.image_threshold = quantile_of(r.image_holdout, q);
    r.image_near_copies = (r.image_synthetic > r.image_threshold).to(torch::kDouble).mean().item<double>();
    r.checks.push_back({"images: near copies", r.image_near_copies, fmt::format("≤ {:.2f}", T.near_copy_max),
                        r.image_near_copies <= T.near_copy_max, ""});
  }

  // 2. Membership inference: members (training slices) should not be denoised / rebuilt better than held-out ones.
  r.position_gap = in.position_gap;
  std::string caveat;
  if (r.position_gap > T.position_gap_max)
    caveat = fmt::format("confounded: the held-out slices lie {:.1f} slice spacings (median) from any training "
                         "position, anatomy the models never saw and where they do worse whether or not they "
                         "memorised; hold out subjects, not a slab (docs/privacy.md)",
                         r.position_gap);
  if (in.ldm) {
    r.loss_train = a.at("loss_train");
    r.loss_holdout = a.at("loss_holdout");
    r.auc = roc_auc(-r.loss_train, -r.loss_holdout);  // members denoised better → higher score
    std::tie(r.auc_lo, r.auc_hi) =
        roc_auc_interval(-r.loss_train, -r.loss_holdout, job.bootstrap_rounds, 0.95, derive_seed(job.run.seed, 0xB007));
    r.checks.push_back({"LDM membership: ROC AUC of training vs held-out slices by denoising loss (lower end of the "
                        "95 % interval)",
                        r.auc_lo, fmt::format("≤ {:.2f}", T.auc_max), r.auc_lo <= T.auc_max, caveat});
  }
  if (in.spade) {
    r.spade_train = a.at("spade_train");
    r.spade_holdout = a.at("spade_holdout");
    r.spade_auc = roc_auc(-r.spade_train, -r.spade_holdout);  // members rebuilt better → higher score
    std::tie(r.spade_auc_lo, r.spade_auc_hi) = roc_auc_interval(-r.spade_train, -r.spade_holdout, job.bootstrap_rounds,
                                                                0.95, derive_seed(job.run.seed, 0x5BADE));
    r.checks.push_back({"SPADE membership: ROC AUC of training vs held-out slices by reconstruction error (lower end of "
                        "the 95 % interval)",
                        r.spade_auc_lo, fmt::format("≤ {:.2f}", T.auc_max), r.spade_auc_lo <= T.auc_max, caveat});
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // audit_montage.png: the 8 synthetic maps closest to a training slice (top) above that slice (bottom).
  auto order = std::get<1>(r.label_synthetic.sort(0, true));
  std::vector<torch::Tensor> top, bottom;
  for (int64_t k = 0; k < std::min<int64_t>(8, r.n_synthetic); ++k) {
    const int64_t i = order[k].item<int64_t>();
    top.push_back(label_to_rgb(in.syn.pv[i]));
    bottom.push_back(label_to_rgb(in.train.pv[ls_idx[i].item<int64_t>()]));
  }
  top.insert(top.end(), bottom.begin(), bottom.end());
  write_montage_png(out + "/audit_montage.png", top, std::max<int64_t>(1, std::min<int64_t>(8, r.n_synthetic)));

  nlohmann::ordered_json js;
  js["n_synthetic"] = r.n_synthetic;
  js["n_train"] = r.n_train;
  js["n_holdout"] = r.n_holdout;
  js["max_shift"] = job.max_shift;
  js["search_downsample"] = job.search_downsample;
  js["shards"] = shard.count;
  js["near_copy_percentile"] = T.near_copy_percentile;
  js["label_threshold"] = r.label_threshold;
  js["label_near_copies"] = r.label_near_copies;
  js["label_synthetic"] = vec(r.label_synthetic);
  js["label_holdout"] = vec(r.label_holdout);
  if (images) {
    js["image_threshold"] = r.image_threshold;
    js["image_near_copies"] = r.image_near_copies;
    js["image_synthetic"] = vec(r.image_synthetic);
    js["image_holdout"] = vec(r.image_holdout);
  }
  if (in.ldm) {
    js["auc"] = r.auc;
    js["auc_interval"] = {r.auc_lo, r.auc_hi};
    js["loss_train"] = vec(r.loss_train);
    js["loss_holdout"] = vec(r.loss_holdout);
  }
  if (in.spade) {
    js["spade_auc"] = r.spade_auc;
    js["spade_auc_interval"] = {r.spade_auc_lo, r.spade_auc_hi};
    js["spade_train"] = vec(r.spade_train);
    js["spade_holdout"] = vec(r.spade_holdout);
  }
  auto checks = nlohmann::ordered_json::array();
  for (const auto& c : r.checks)
    checks.push_back({{"name", c.name}, {"value", c.value}, {"threshold", c.threshold}, {"pass", c.pass}, {"caveat", c.caveat}});
  js["position_gap"] = r.position_gap;
  js["checks"] = checks;
  js["seconds"] = r.seconds;
  write_text_atomic(out + "/audit.json", js.dump(2) + "\n");

  std::ostringstream md;
  int passed = 0;
  for (const auto& c : r.checks) passed += c.pass;
  md << "# Audit of " << job.pairs << "\n\n"
     << r.n_synthetic << " synthetic samples against " << r.n_train << " training slices (" << job.train << ") and "
     << r.n_holdout << " held-out slices (" << job.holdout << "). " << passed << " of " << r.checks.size()
     << " checks pass. An empirical check, not a guarantee: docs/privacy.md says what each number can and cannot "
        "show.\n\n| check | value | threshold | |\n|---|---|---|---|\n";
  for (const auto& c : r.checks)
    md << "| " << c.name << " | " << f3(c.value) << " | " << c.threshold << " | " << (c.pass ? "pass" : "**fail**")
       << (c.caveat.empty() ? "" : " (" + c.caveat + ")") << " |\n";
  md << "\n## Nearest training slice\n\nSimilarity to the most similar training slice (label maps: mean Dice over the "
        "tissues either map holds; images: normalised cross-correlation), best shift within ±"
     << job.max_shift << " px"
     << (job.search_downsample > 1 ? fmt::format(" on maps pooled by {}", job.search_downsample) : std::string())
     << ". A generator that does not copy its training slices looks like the held-out row.\n\n"
     << "| samples | n | 5th pct | median | 95th pct | max |\n|---|---|---|---|---|---|\n"
     << summary_row("synthetic label maps", r.label_synthetic) << summary_row("held-out label maps", r.label_holdout);
  if (images)
    md << summary_row("synthetic images", r.image_synthetic) << summary_row("held-out images", r.image_holdout);
  md << "\nNear-copy threshold (the " << fmt::format("{:g}", T.near_copy_percentile)
     << "th percentile of the held-out similarities): label maps " << f3(r.label_threshold)
     << (images ? ", images " + f3(r.image_threshold) : std::string()) << ". `audit_montage.png`: the 8 synthetic maps "
     << "closest to a training slice (top) above that slice (bottom).\n";
  if (in.ldm) {
    md << "\n## Membership inference on the LDM (" << job.ldm_checkpoint << ")\n\nMean L1 denoising loss of each "
       << "slice's latent at timesteps " << fmt::format("{}", fmt::join(job.membership_timesteps, ", ")) << " with "
       << job.membership_noise_draws << " fixed noise draws each: training " << f3(r.loss_train.mean().item<double>())
       << ", held-out " << f3(r.loss_holdout.mean().item<double>()) << ". ROC AUC (training slices denoised better than "
       << "held-out ones) " << f3(r.auc) << ", 95 % bootstrap interval " << f3(r.auc_lo) << "–" << f3(r.auc_hi)
       << " (0.5: the model cannot tell its training slices from others).\n";
  }
  if (in.spade) {
    md << "\n## Membership inference on SPADE (" << job.spade_checkpoint << ")\n\nEach real slice's image rebuilt from "
       << "its own label map and its own style code; mean |rebuilt − real| over the brain: training "
       << f3(r.spade_train.mean().item<double>()) << ", held-out " << f3(r.spade_holdout.mean().item<double>())
       << ". ROC AUC (training slices rebuilt better than held-out ones) " << f3(r.spade_auc) << ", 95 % bootstrap "
       << "interval " << f3(r.spade_auc_lo) << "–" << f3(r.spade_auc_hi) << ".\n";
  }
  if (in.ldm || in.spade)
    md << "\nHeld-out slices lie " << f3(r.position_gap) << " training-slice spacings (median) from the nearest "
       << "training position (about 0–1 for held-out subjects, more for a held-out slab).\n";
  md << "\nMeasured in " << fmt::format("{:.1f}", r.seconds) << " s"
     << (shard.count > 1 ? fmt::format(" (this process; {} shards measured the parts)", shard.count) : std::string())
     << ".\n";
  write_text_atomic(out + "/audit.md", md.str());
  for (const auto& c : r.checks)
    spdlog::info("audit: {} {} ({}) {}{}", c.name, f3(c.value), c.threshold, c.pass ? "pass" : "FAIL",
                 c.caveat.empty() ? "" : " — " + c.caveat);
  spdlog::info("audit: {}/audit.md, audit.json, audit_montage.png", out);
  return r;
}

}  // namespace brainspade
