// The metrics of `brainspade quality` (eval/quality.h), each usable alone.
#include <algorithm>
#include <cmath>
#include <vector>

#include "brainspade/eval/quality.h"

namespace brainspade {

// ---------------------------------------------------------------------------------------------------------------
// Metrics

std::vector<double> class_fractions(const torch::Tensor& labels, int64_t num_classes) {
  auto counts = torch::bincount(labels.flatten().to(torch::kLong), {}, num_classes).to(torch::kDouble);
  const double n = std::max<double>(1.0, static_cast<double>(labels.numel()));
  std::vector<double> out;
  for (int64_t c = 0; c < num_classes; ++c) out.push_back(counts[c].item<double>() / n);
  return out;
}

double boundary_density(const torch::Tensor& labels) {
  auto l = labels.dim() == 2 ? labels.unsqueeze(0) : labels;  // [N, H, W]
  auto brain = l > 0;
  auto differ_h = (l.slice(2, 1) != l.slice(2, 0, -1)) & brain.slice(2, 1) & brain.slice(2, 0, -1);
  auto differ_v = (l.slice(1, 1) != l.slice(1, 0, -1)) & brain.slice(1, 1) & brain.slice(1, 0, -1);
  const double edges = differ_h.sum().item<double>() + differ_v.sum().item<double>();
  const double area = brain.sum().item<double>();
  return area > 0 ? edges / area : NAN;
}

int64_t connected_components(const torch::Tensor& map, int64_t k) {
  TORCH_CHECK(map.dim() == 2, "connected_components expects a map [H, W], got ", map.sizes());
  auto m = (map == k).to(torch::kUInt8).contiguous().cpu();
  const int64_t H = m.size(0), W = m.size(1);
  const uint8_t* in = m.data_ptr<uint8_t>();
  std::vector<uint8_t> seen(static_cast<size_t>(H * W), 0);
  std::vector<int64_t> stack;
  int64_t components = 0;
  for (int64_t start = 0; start < H * W; ++start) {
    if (!in[start] || seen[start]) continue;
    ++components;
    seen[start] = 1;
    stack.push_back(start);
    while (!stack.empty()) {
      const int64_t p = stack.back();
      stack.pop_back();
      const int64_t y = p / W, x = p % W;
      const int64_t nb[4][2] = {{y - 1, x}, {y + 1, x}, {y, x - 1}, {y, x + 1}};
      for (const auto& q : nb) {
        if (q[0] < 0 || q[0] >= H || q[1] < 0 || q[1] >= W) continue;
        const int64_t i = q[0] * W + q[1];
        if (in[i] && !seen[i]) seen[i] = 1, stack.push_back(i);
      }
    }
  }
  return components;
}

namespace {

// Symmetric square root of a symmetric positive semi-definite matrix (negative eigenvalues from round-off → 0).
torch::Tensor sqrtm_psd(const torch::Tensor& s) {
  auto [vals, vecs] = torch::linalg::eigh(s, "L");
  return vecs.matmul(torch::diag(vals.clamp_min(0).sqrt())).matmul(vecs.t());
}

}  // namespace

double frechet_distance(const torch::Tensor& mu1, const torch::Tensor& s1, const torch::Tensor& mu2,
                        const torch::Tensor& s2) {
  auto m1 = mu1.to(torch::kDouble), m2 = mu2.to(torch::kDouble);
  auto a = s1.to(torch::kDouble), b = s2.to(torch::kDouble);
  a = 0.5 * (a + a.t()), b = 0.5 * (b + b.t());
  auto ra = sqrtm_psd(a);
  auto inner = ra.matmul(b).matmul(ra);
  inner = 0.5 * (inner + inner.t());
  auto eig = std::get<0>(torch::linalg::eigh(inner, "L")).clamp_min(0).sqrt().sum();
  const double d = (m1 - m2).pow(2).sum().item<double>() + (a.trace() + b.trace()).item<double>() - 2 * eig.item<double>();
  return std::max(0.0, d);
}

double frechet_distance_of(const torch::Tensor& a, const torch::Tensor& b) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(1) && a.size(0) >= 2 && b.size(0) >= 2,
              "frechet_distance_of expects [Na, D] and [Nb, D] with at least 2 rows each");
  auto cov = [](const torch::Tensor& x) {
    auto c = x.to(torch::kDouble) - x.to(torch::kDouble).mean(0, true);
    return c.t().matmul(c) / static_cast<double>(x.size(0) - 1);
  };
  return frechet_distance(a.to(torch::kDouble).mean(0), cov(a), b.to(torch::kDouble).mean(0), cov(b));
}

namespace {

// |FFT|² of images [N, H, W] minus their means, and the frequency of each coefficient (cycles/pixel).
struct Power {
  torch::Tensor power;   // [H, W] mean over images
  torch::Tensor fy, fx;  // [H, W]
};
Power power_of(const torch::Tensor& images) {
  TORCH_CHECK(images.dim() == 3 && images.size(0) > 0, "expected images [N, H, W], got ", images.sizes());
  auto x = images.to(torch::kDouble);
  x = x - x.mean({1, 2}, true);
  auto f = torch::fft::fft2(x);
  Power p;
  p.power = f.abs().pow(2).mean(0);  // [H, W]
  const int64_t H = x.size(1), W = x.size(2);
  auto fy = torch::fft::fftfreq(H, torch::TensorOptions().dtype(torch::kDouble));
  auto fx = torch::fft::fftfreq(W, torch::TensorOptions().dtype(torch::kDouble));
  p.fy = fy.view({H, 1}).expand({H, W});
  p.fx = fx.view({1, W}).expand({H, W});
  return p;
}

}  // namespace

RadialSpectrum radial_power_spectrum(const torch::Tensor& images, int64_t bins) {
  Power p = power_of(images);
  auto r = (p.fy.pow(2) + p.fx.pow(2)).sqrt();
  RadialSpectrum s;
  for (int64_t b = 0; b < bins; ++b) {
    const double lo = 0.5 * b / bins, hi = 0.5 * (b + 1) / bins;
    auto in = (r >= lo) & (r < hi) & (r > 0);
    const double n = in.sum().item<double>();
    s.frequency.push_back(0.5 * (lo + hi));
    s.power.push_back(n > 0 ? p.power.masked_select(in).mean().item<double>() : NAN);
  }
  return s;
}

double nyquist_energy_fraction(const torch::Tensor& images) {
  Power p = power_of(images);
  auto nyq = (p.fy.abs() >= 0.5) | (p.fx.abs() >= 0.5);  // fftfreq gives -0.5 for the Nyquist bin of an even size
  auto not_dc = (p.fy != 0) | (p.fx != 0);
  const double total = p.power.masked_select(not_dc).sum().item<double>();
  return total > 0 ? p.power.masked_select(nyq).sum().item<double>() / total : NAN;
}

double axis_energy_share(const torch::Tensor& images, double from) {
  Power p = power_of(images);
  const double H = static_cast<double>(images.size(1)), W = static_cast<double>(images.size(2));
  auto band = (p.fy.pow(2) + p.fx.pow(2)).sqrt() >= from;
  auto axis = band & ((p.fy.abs() <= 1.0 / H + 1e-12) | (p.fx.abs() <= 1.0 / W + 1e-12));
  const double total = p.power.masked_select(band).sum().item<double>();
  return total > 0 ? p.power.masked_select(axis).sum().item<double>() / total : NAN;
}

double band_power(const RadialSpectrum& s, double from) {
  double sum = 0;
  int n = 0;
  for (size_t i = 0; i < s.frequency.size(); ++i)
    if (s.frequency[i] >= from && std::isfinite(s.power[i])) sum += s.power[i], ++n;
  return n ? sum / n : NAN;
}

}  // namespace brainspade
