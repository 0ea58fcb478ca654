// Tissue labelling: a 3-class Gaussian mixture with a mean-field spatial prior, atlas deep GM, and the
// agreement measurement against an independent tissue probability map.
#include "brainspade/data/labelling.h"

#include <algorithm>
#include <cmath>

#include <spdlog/spdlog.h>

#include "brainspade/core/error.h"
#include "brainspade/eval/dice.h"

namespace brainspade {

void LabellingOptions::visit(ConfigVisitor& v) {
  v("em_iterations", em_iterations, "EM iterations of the CSF/GM/WM Gaussian mixture", Bounds::at_least(1));
  v("spatial_beta", spatial_beta, "strength of the neighbourhood (mean-field) prior; 0 = none", Bounds::non_negative());
  v("brain_threshold", brain_threshold, "T1 values above this are brain (input is brain-extracted)");
  v("deep_gm_labels", deep_gm_labels, "atlas label values that are deep grey matter (AAL: 71-78)", Bounds::at_least(0));
}

const std::vector<std::string>& tissue_channel_names() {
  static const std::vector<std::string> names{"background", "csf", "gm", "wm", "deep_gm", "brainstem"};
  return names;
}

namespace {
// Mean of each class over the 26-neighbourhood and the voxel itself, counting only brain voxels
// (`post` is zero outside the brain; `inv_count` = 1 / fraction of brain voxels in each 3x3x3 block).
torch::Tensor neighbour_mean(const torch::Tensor& post, const torch::Tensor& inv_count) {
  namespace F = torch::nn::functional;
  auto opt = F::AvgPool3dFuncOptions(3).stride(1).padding(1).count_include_pad(true);
  return F::avg_pool3d(post.unsqueeze(0), opt).squeeze(0) * inv_count;  // [3, Z, Y, X]
}
}  // namespace

LabellingResult label_t1(const Volume& t1, const Volume* atlas, const LabellingOptions& o) {
  TORCH_CHECK(t1.data.dim() == 4 && t1.channels() == 1, "label_t1 expects a single-channel T1 [1, Z, Y, X], got ",
              t1.data.sizes());
  torch::NoGradGuard no_grad;
  torch::Tensor img = t1.data[0].to(torch::kFloat32);  // [Z, Y, X]
  torch::Tensor mask = img > o.brain_threshold;         // [Z, Y, X]
  const int64_t n_brain = mask.sum().item<int64_t>();
  if (n_brain < 1000)
    throw input_error("T1 has only ", n_brain, " voxels above brain_threshold ", o.brain_threshold,
                      " (need at least 1000; is it brain-extracted and non-empty?)");
  torch::Tensor x = img.masked_select(mask).to(torch::kFloat64);  // [N]
  torch::Tensor sorted = std::get<0>(x.sort());
  auto quantile = [&](double q) { return sorted[static_cast<int64_t>(q * (sorted.numel() - 1))].item<double>(); };

  // Initialisation: 1D k-means from the 1/6, 1/2 and 5/6 intensity quantiles (robust when one tissue is much
  // rarer than the others), then each cluster's spread and share start the mixture.
  MixtureFit fit;
  std::array<double, 3> centre{quantile(1.0 / 6), quantile(0.5), quantile(5.0 / 6)};
  const double spread = std::max(quantile(0.95) - quantile(0.05), 1e-6);
  torch::Tensor assign;
  for (int it = 0; it < 30; ++it) {
    auto c = torch::tensor({centre[0], centre[1], centre[2]}, torch::kFloat64);
    assign = (x.unsqueeze(1) - c.unsqueeze(0)).abs().argmin(1);  // [N]
    for (int k = 0; k < 3; ++k) {
      auto members = x.masked_select(assign == k);
      if (members.numel() > 0) centre[k] = members.mean().item<double>();
    }
  }
  for (int k = 0; k < 3; ++k) {
    auto members = x.masked_select(assign == k);
    fit.mean[k] = centre[k];
    fit.stddev[k] = members.numel() > 1 ? std::max(members.std().item<double>(), spread * 1e-3) : spread / 6;
    fit.weight[k] = std::max(static_cast<double>(members.numel()) / static_cast<double>(n_brain), 1e-3);
  }

  // The mixture is fitted inside the brain's bounding box (plus a margin) to save time; the result is pasted back.
  const auto full_sizes = img.sizes().vec();
  std::array<int64_t, 3> lo{}, hi{};
  {
    auto nz = mask.nonzero();  // [N, 3]
    for (int d = 0; d < 3; ++d) {
      lo[d] = std::max<int64_t>(nz.select(1, d).min().item<int64_t>() - 1, 0);
      hi[d] = std::min<int64_t>(nz.select(1, d).max().item<int64_t>() + 2, full_sizes[d]);
    }
  }
  auto crop = [&](const torch::Tensor& t) {  // [..., Z, Y, X] → bounding box
    const int64_t n = t.dim();
    return t.slice(n - 3, lo[0], hi[0]).slice(n - 2, lo[1], hi[1]).slice(n - 1, lo[2], hi[2]);
  };
  torch::Tensor maskf = crop(mask).to(torch::kFloat32).unsqueeze(0).contiguous();  // [1, z, y, x]
  torch::Tensor imgd = crop(img).unsqueeze(0).contiguous();                         // [1, z, y, x]
  torch::Tensor inv_count;
  {
    namespace F = torch::nn::functional;
    auto opt = F::AvgPool3dFuncOptions(3).stride(1).padding(1).count_include_pad(true);
    inv_count = 1.0 / F::avg_pool3d(maskf.unsqueeze(0), opt).squeeze(0).clamp_min(1e-6);  // [1, z, y, x]
  }
  torch::Tensor post;                                            // [3, Z, Y, X]
  for (int64_t it = 0; it < o.em_iterations; ++it) {
    // E-step: log N(I | mean_k, sd_k) + log w_k (+ beta * neighbours' mean posterior of k).
    auto mean = torch::tensor({fit.mean[0], fit.mean[1], fit.mean[2]}, torch::kFloat32).view({3, 1, 1, 1});
    auto sd = torch::tensor({fit.stddev[0], fit.stddev[1], fit.stddev[2]}, torch::kFloat32).view({3, 1, 1, 1});
    auto logw = torch::tensor({std::log(fit.weight[0]), std::log(fit.weight[1]), std::log(fit.weight[2])},
                              torch::kFloat32)
                    .view({3, 1, 1, 1});
    auto z = (imgd - mean) / sd;
    auto logp = -0.5 * z * z - sd.log() + logw;  // [3, Z, Y, X]
    if (o.spatial_beta > 0 && post.defined()) logp = logp + o.spatial_beta * neighbour_mean(post, inv_count);
    post = torch::softmax(logp, 0) * maskf;  // [3, Z, Y, X], zero outside the brain

    // M-step on brain voxels.
    auto r = post.view({3, -1});                 // [3, V]
    auto xv = imgd.view({1, -1});                // [1, V]
    auto nk = r.sum(1).to(torch::kFloat64);      // [3]
    auto sx = (r * xv).sum(1).to(torch::kFloat64);
    for (int k = 0; k < 3; ++k) {
      double n = std::max(nk[k].item<double>(), 1e-6);
      fit.mean[k] = sx[k].item<double>() / n;
    }
    auto mean_new = torch::tensor({fit.mean[0], fit.mean[1], fit.mean[2]}, torch::kFloat32).view({3, 1});
    auto sxx = (r * (xv - mean_new).pow(2)).sum(1).to(torch::kFloat64);
    for (int k = 0; k < 3; ++k) {
      double n = std::max(nk[k].item<double>(), 1e-6);
      fit.stddev[k] = std::max(std::sqrt(sxx[k].item<double>() / n), spread * 1e-3);
      fit.weight[k] = std::max(n / static_cast<double>(n_brain), 1e-6);
    }
    fit.iterations = it + 1;
  }
  // Keep CSF < GM < WM (EM can in principle swap classes).
  std::array<int64_t, 3> order{0, 1, 2};
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return fit.mean[a] < fit.mean[b]; });
  MixtureFit sorted_fit = fit;
  for (int k = 0; k < 3; ++k) {
    sorted_fit.mean[k] = fit.mean[order[k]];
    sorted_fit.stddev[k] = fit.stddev[order[k]];
    sorted_fit.weight[k] = fit.weight[order[k]];
  }
  post = post.index_select(0, torch::tensor({order[0], order[1], order[2]}, torch::kInt64));  // [3, Z, Y, X]
  spdlog::info("tissue mixture after {} EM iterations: CSF {:.1f}±{:.1f} ({:.0f}%), GM {:.1f}±{:.1f} ({:.0f}%), "
               "WM {:.1f}±{:.1f} ({:.0f}%)",
               fit.iterations, sorted_fit.mean[0], sorted_fit.stddev[0], 100 * sorted_fit.weight[0],
               sorted_fit.mean[1], sorted_fit.stddev[1], 100 * sorted_fit.weight[1], sorted_fit.mean[2],
               sorted_fit.stddev[2], 100 * sorted_fit.weight[2]);

  const auto [Z, Y, X] = std::make_tuple(img.size(0), img.size(1), img.size(2));
  torch::Tensor pv = torch::zeros({6, Z, Y, X}, torch::kFloat32);  // [6, Z, Y, X]
  pv[0] = 1.0 - mask.to(torch::kFloat32);
  crop(pv.slice(0, 1, 4)).copy_(post);
  if (atlas) {
    Volume a = *atlas;
    TORCH_CHECK(a.data.dim() == 4, "atlas must be [C, Z, Y, X]");
    if (!a.same_grid(t1, 1e-2)) {
      spdlog::info("atlas grid {} differs from the T1 grid {}: resampling it (nearest neighbour)", a.grid_string(),
                   t1.grid_string());
      a = resample_like(a, t1, /*nearest=*/true, 0.0);
    }
    torch::Tensor lab = a.data[0].round().to(torch::kInt64);  // [Z, Y, X]
    torch::Tensor deep = torch::zeros_like(mask);
    for (int64_t l : o.deep_gm_labels) deep = deep | (lab == l);
    deep = deep & mask;
    // Inside deep-GM regions the GM + WM mass becomes deep GM; CSF stays CSF.
    torch::Tensor deepf = deep.to(torch::kFloat32);
    pv[4] = (pv[2] + pv[3]) * deepf;
    pv[2] = pv[2] * (1 - deepf);
    pv[3] = pv[3] * (1 - deepf);
    spdlog::info("deep GM: {} atlas voxels inside the brain", deep.sum().item<int64_t>());
  }
  // Exact normalisation against float rounding.
  pv = pv / pv.sum(0, true);
  Volume out = t1.with_data(pv);
  return {out, sorted_fit};
}

torch::Tensor argmax_labels(const torch::Tensor& pv) { return pv.argmax(0); }

double dice(const torch::Tensor& a, const torch::Tensor& b, int64_t k) { return dice_of_class(a, b, k, EmptyDice::One); }

namespace {
// Places `ref`'s grid with its box centre on `target`'s box centre + shift, with axis flips applied.
Volume place_reference(const Volume& ref, const Volume& target, const std::array<int, 3>& flips,
                       const std::array<double, 3>& shift) {
  Volume v = ref;
  for (int i = 0; i < 3; ++i)
    if (flips[i])
      for (int r = 0; r < 3; ++r) v.direction[r * 3 + i] = -ref.direction[r * 3 + i];
  auto centre_of = [](const Volume& g) {
    return index_to_physical(g, (g.width() - 1) / 2.0, (g.height() - 1) / 2.0, (g.depth() - 1) / 2.0);
  };
  v.origin = {0, 0, 0};
  auto c0 = centre_of(v);  // centre relative to a zero origin
  auto ct = centre_of(target);
  for (int r = 0; r < 3; ++r) v.origin[r] = ct[r] + shift[r] - c0[r];
  return v;
}

double correlation(const torch::Tensor& a, const torch::Tensor& b) {
  auto x = a.flatten().to(torch::kFloat64), y = b.flatten().to(torch::kFloat64);
  x = x - x.mean();
  y = y - y.mean();
  double den = std::sqrt((x * x).sum().item<double>() * (y * y).sum().item<double>());
  return den > 0 ? (x * y).sum().item<double>() / den : 0.0;
}

std::array<double, 3> tissue_dice(const Volume& pv, const Volume& ref3) {
  // Ours: [background, csf, gm + deep gm, wm + brainstem]; reference: [1 - sum, csf, gm, wm].
  auto ours = torch::stack({pv.data[0], pv.data[1], pv.data[2] + pv.data[4], pv.data[3] + pv.data[5]});
  auto r = ref3.data.clamp(0, 1);
  auto theirs = torch::cat({(1 - r.sum(0, true)).clamp_min(0), r});
  auto la = argmax_labels(ours), lb = argmax_labels(theirs);
  return {dice(la, lb, 1), dice(la, lb, 2), dice(la, lb, 3)};
}

// Inside our brain mask only, each side's argmax over [csf, gm, wm] (the reference's extra-cerebral CSF and
// brain-mask differences drop out).
std::array<double, 3> tissue_dice_in_brain(const Volume& pv, const Volume& ref3) {
  auto brain = pv.data[0] < 0.5;
  auto ours = torch::stack({pv.data[1], pv.data[2] + pv.data[4], pv.data[3] + pv.data[5]});
  auto la = (argmax_labels(ours) + 1).masked_fill(~brain, 0);
  auto lb = (argmax_labels(ref3.data) + 1).masked_fill(~brain, 0);
  return {dice(la, lb, 1), dice(la, lb, 2), dice(la, lb, 3)};
}
}  // namespace

AgreementResult measure_agreement(const Volume& pv, const Volume& t1, const Volume& ref_csf, const Volume& ref_gm,
                                  const Volume& ref_wm, double max_shift_mm) {
  TORCH_CHECK(pv.data.dim() == 4 && pv.channels() == 6, "measure_agreement expects PV maps [6, Z, Y, X]");
  if (!ref_csf.same_grid(ref_gm) || !ref_csf.same_grid(ref_wm))
    throw input_error("the reference CSF, GM and WM maps are not on one grid");
  torch::NoGradGuard no_grad;
  Volume ref3 = ref_csf.with_data(torch::cat({ref_csf.data, ref_gm.data, ref_wm.data}));  // [3, z, y, x]
  AgreementResult res;
  res.dice_header = tissue_dice(pv, resample_like(ref3, pv));

  auto score = [&](const std::array<int, 3>& flips, const std::array<double, 3>& shift) {
    Volume placed = place_reference(ref3, t1, flips, shift);
    Volume t1_on_ref = resample_like(t1, placed);                        // [1, z, y, x]
    auto brain = placed.data.sum(0) > 0.1;                               // [z, y, x]
    auto contrast = (placed.data[2] - placed.data[0]).masked_select(brain);
    return correlation(t1_on_ref.data[0].masked_select(brain), contrast);
  };
  double best = -2;
  std::array<int, 3> best_flips{0, 0, 0};
  for (int f = 0; f < 8; ++f) {
    std::array<int, 3> flips{f & 1, (f >> 1) & 1, (f >> 2) & 1};
    double s = score(flips, {0, 0, 0});
    if (s > best) {
      best = s;
      best_flips = flips;
    }
  }
  std::array<double, 3> best_shift{0, 0, 0};
  const double step = std::min({ref3.spacing[0], ref3.spacing[1], ref3.spacing[2]});
  const int n = static_cast<int>(std::floor(max_shift_mm / step));
  for (int dz = -n; dz <= n; ++dz)
    for (int dy = -n; dy <= n; ++dy)
      for (int dx = -n; dx <= n; ++dx) {
        std::array<double, 3> shift{dx * step, dy * step, dz * step};
        double s = score(best_flips, shift);
        if (s > best + 1e-9) {
          best = s;
          best_shift = shift;
        }
      }
  res.flips = best_flips;
  res.shift_mm = best_shift;
  res.correlation = best;
  Volume aligned = resample_like(place_reference(ref3, t1, best_flips, best_shift), pv);
  res.dice = tissue_dice(pv, aligned);
  res.dice_in_brain = tissue_dice_in_brain(pv, aligned);
  return res;
}

}  // namespace brainspade
