// Matching a 2D slice to an axial slice of a volume by normalised cross-correlation (docs/data.md).
#include "brainspade/data/slice_registration.h"

#include <algorithm>
#include <cmath>

#include "brainspade/core/error.h"

namespace brainspade {

torch::Tensor orient_slice(const torch::Tensor& hw, int orientation) {
  TORCH_CHECK(hw.dim() == 2, "orient_slice: expected [H, W], got ", hw.sizes());
  TORCH_CHECK(orientation >= 0 && orientation < kOrientations, "orient_slice: orientation ", orientation,
              " is not in 0..7");
  torch::Tensor t = hw;
  if (orientation & 4) t = t.t();
  if (orientation & 1) t = t.flip({0});
  if (orientation & 2) t = t.flip({1});
  return t.contiguous();
}

std::string orientation_name(int orientation) {
  static const char* names[kOrientations] = {"identity",  "flip rows",           "flip columns",
                                             "rotate 180", "transpose",           "transpose + flip rows",
                                             "transpose + flip columns", "transpose + rotate 180"};
  TORCH_CHECK(orientation >= 0 && orientation < kOrientations, "orientation_name: ", orientation);
  return names[orientation];
}

namespace {

// Overlap of a shifted [Y, X] image with the [Y, X] plane: volume rows [lo, hi) ↔ image rows [lo - s, hi - s).
std::pair<int64_t, int64_t> overlap(int64_t n, int64_t shift) {
  return {std::max<int64_t>(0, shift), std::min<int64_t>(n, n + shift)};
}

}  // namespace

SliceMatch match_slice(const torch::Tensor& png_hw, const Volume& volume, int64_t max_shift, int64_t exclude) {
  BRAINSPADE_CHECK_INPUT(png_hw.dim() == 2, "match_slice: expected a 2D image, got ", png_hw.sizes());
  BRAINSPADE_CHECK_INPUT(volume.data.defined() && volume.data.dim() == 4 && volume.channels() == 1,
                         "match_slice: expected a single-channel volume [1, Z, Y, X]");
  BRAINSPADE_CHECK_INPUT(max_shift >= 0, "match_slice: max_shift must be >= 0");
  torch::NoGradGuard no_grad;
  const int64_t Z = volume.depth(), Y = volume.height(), X = volume.width();
  auto vol = volume.data[0].to(torch::kFloat64);  // [Z, Y, X]
  auto png = png_hw.to(torch::kFloat64);
  SliceMatch best;
  best.correlation = -2.0;
  torch::Tensor per_z = torch::full({Z}, -2.0, torch::kFloat64);
  std::vector<double> per_orientation(kOrientations, -2.0);
  bool any = false;
  for (int o = 0; o < kOrientations; ++o) {
    auto p = orient_slice(png, o);
    if (p.size(0) != Y || p.size(1) != X) continue;
    any = true;
    for (int64_t dy = -max_shift; dy <= max_shift; ++dy) {
      auto [y0, y1] = overlap(Y, dy);
      if (y1 - y0 < 2) continue;
      for (int64_t dx = -max_shift; dx <= max_shift; ++dx) {
        auto [x0, x1] = overlap(X, dx);
        if (x1 - x0 < 2) continue;
        auto a = p.slice(0, y0 - dy, y1 - dy).slice(1, x0 - dx, x1 - dx).reshape({-1});
        auto b = vol.slice(1, y0, y1).slice(2, x0, x1).reshape({Z, -1});  // [Z, n]
        const double n = static_cast<double>(a.numel());
        a = a - a.mean();
        const double aa = a.dot(a).item<double>();
        if (aa <= 0) continue;
        auto num = b.matmul(a);                                  // Σ (b - mean b)·a = Σ b·a since Σ a = 0
        auto bs = b.sum(1);
        auto bb = (b * b).sum(1) - bs * bs / n;                  // Σ (b - mean b)²
        auto ncc = torch::where(bb > 1e-9, num / torch::sqrt(bb.clamp_min(1e-9) * aa), torch::zeros_like(num));
        per_z = torch::maximum(per_z, ncc);
        auto [v, iz] = ncc.max(0);
        const double c = v.item<double>();
        per_orientation[o] = std::max(per_orientation[o], c);
        if (c > best.correlation) {
          best.correlation = c;
          best.z = iz.item<int64_t>();
          best.orientation = o;
          best.shift_y = dy;
          best.shift_x = dx;
        }
      }
    }
  }
  BRAINSPADE_CHECK_INPUT(any, "match_slice: a ", png_hw.size(0), "x", png_hw.size(1),
                         " image fits no orientation of the volume's ", Y, "x", X, " (Y x X) axial plane");
  auto pz = per_z.contiguous();
  best.per_z.assign(pz.data_ptr<double>(), pz.data_ptr<double>() + Z);
  best.runner_up_correlation = -2.0;
  for (int64_t z = 0; z < Z; ++z) {
    if (std::abs(z - best.z) <= exclude) continue;
    if (best.per_z[z] > best.runner_up_correlation) {
      best.runner_up_correlation = best.per_z[z];
      best.runner_up_z = z;
    }
  }
  best.best_other_orientation = -2.0;
  for (int o = 0; o < kOrientations; ++o)
    if (o != best.orientation) best.best_other_orientation = std::max(best.best_other_orientation, per_orientation[o]);
  return best;
}

torch::Tensor place_slice(const torch::Tensor& png_hw, const SliceMatch& m, int64_t Y, int64_t X) {
  auto p = orient_slice(png_hw.to(torch::kFloat32), m.orientation);
  BRAINSPADE_CHECK_INPUT(p.size(0) == Y && p.size(1) == X, "place_slice: oriented image is ", p.size(0), "x",
                         p.size(1), ", the plane is ", Y, "x", X);
  auto out = torch::zeros({Y, X}, torch::kFloat32);
  auto [y0, y1] = overlap(Y, m.shift_y);
  auto [x0, x1] = overlap(X, m.shift_x);
  if (y1 > y0 && x1 > x0)
    out.slice(0, y0, y1).slice(1, x0, x1).copy_(
        p.slice(0, y0 - m.shift_y, y1 - m.shift_y).slice(1, x0 - m.shift_x, x1 - m.shift_x));
  return out;
}

void write_style_slice(const std::string& path, const torch::Tensor& plane_hw) {
  TORCH_CHECK(plane_hw.dim() == 2, "write_style_slice: expected [H, W], got ", plane_hw.sizes());
  Volume v;  // identity direction: read_volume leaves the array as it is
  v.data = plane_hw.to(torch::kFloat32).contiguous().view({1, 1, plane_hw.size(0), plane_hw.size(1)});
  write_volume(path, v);
}

}  // namespace brainspade
