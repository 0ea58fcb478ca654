#include "brainspade/inference/segment.h"

#include <algorithm>
#include <cmath>

#include <spdlog/spdlog.h>

#include "brainspade/core/checkpoint.h"
#include "brainspade/core/config.h"
#include "brainspade/core/error.h"
#include "brainspade/inference/slice_spacing.h"
#include "brainspade/core/runtime.h"
#include "brainspade/io/geometry.h"

namespace brainspade {

namespace F = torch::nn::functional;

LoadedSegmenter load_segmenter(const std::string& path, torch::Device device) {
  auto ck = Checkpoint::load(path);
  check_checkpoint_stage(ck, "segmenter");
  auto opts = load_section<SegmenterOptions>("model", ck.get_string("model_config"), path);
  LoadedSegmenter s;
  s.model = Segmenter(opts);
  ck.load_module("segmenter", *s.model, "segmenter checkpoint " + path);
  s.model->to(device);
  s.model->eval();
  s.class_names = ck.get_strings("class_names");
  s.height = ck.get_int("slice_height");
  s.width = ck.get_int("slice_width");
  s.downsample = ck.get_int("downsample");
  s.layout = ck.get_string("layout");
  s.spacing = read_slice_spacing(ck, path);
  if (ck.has("zero_background")) s.zero_background = ck.get_int("zero_background") != 0;
  if (ck.has("modalities")) s.modalities = ck.get_strings("modalities");
  return s;
}

Volume segment_volume(const LoadedSegmenter& seg, const Volume& image, torch::Device device, int64_t batch_size) {
  const auto& mo = seg.model->options();
  BRAINSPADE_CHECK_INPUT(image.data.defined() && image.data.dim() == 4, "segment: expected a volume [C, Z, Y, X]");
  BRAINSPADE_CHECK_INPUT(image.channels() == mo.in_channels, "segment: the volume has ", image.channels(),
                         " channels but the model takes ", mo.in_channels, " (one 3D image per input channel)");
  auto x = image.data.to(torch::kFloat32).clone();  // [C, Z, Y, X]
  for (int64_t c = 0; c < x.size(0); ++c) {
    auto xc = x[c];
    auto nonzero = xc != 0;
    auto vals = xc.masked_select(nonzero).to(torch::kFloat64);
    if (vals.numel() >= 2) {
      double mean = vals.mean().item<double>(), sd = std::max(vals.std().item<double>(), 1e-6);
      xc.copy_((xc - mean) / sd * nonzero.to(torch::kFloat32));  // like `slice` (normalisation: volume), zeros stay zero
    } else {
      spdlog::warn("segment: channel {} of the volume has fewer than 2 non-zero voxels; not normalised", c);
    }
  }
  auto s = x.permute({1, 0, 2, 3});             // [Z, C, Y, X]
  if (seg.layout == "x_rows") s = s.transpose(2, 3);  // [Z, C, X, Y]
  const int64_t Z = s.size(0), R = s.size(2), Cc = s.size(3), H = seg.height, W = seg.width;
  // Centre crop/pad (as slicing does): where a dim is larger, the window starts at (n − target)/2 of the input;
  // where smaller, the input starts at (target − n)/2 of the window.
  auto window = [](int64_t n, int64_t target) {
    struct Win { int64_t in0, out0, len; };
    if (n >= target) return Win{(n - target) / 2, 0, target};
    return Win{0, (target - n) / 2, n};
  };
  auto wr = window(R, H), wc = window(Cc, W);
  auto canvas = torch::zeros({Z, s.size(1), H, W});
  canvas.narrow(2, wr.out0, wr.len).narrow(3, wc.out0, wc.len).copy_(s.narrow(2, wr.in0, wr.len).narrow(3, wc.in0, wc.len));
  auto inp = seg.downsample > 1 ? torch::avg_pool2d(canvas, seg.downsample) : canvas;  // [Z, C, H/ds, W/ds]
  const int64_t K = mo.num_classes;
  // Slices without a single non-zero voxel (beyond a skull-stripped brain, outside a cropped slab) are background, as
  // nnU-Net treats everything outside the non-zero crop; only the others go through the network.
  auto probs = torch::zeros({Z, K, H, W});
  probs.select(1, 0).fill_(1.0);
  const auto occupied = canvas.flatten(1).ne(0).any(1);  // [Z]
  const auto rows = occupied.nonzero().flatten();       // int64 slice indices
  {
    torch::NoGradGuard g;
    Segmenter model = seg.model;  // a handle to the same network (the holder's operator-> is const)
    model->eval();
    for (int64_t i = 0; i < rows.numel(); i += batch_size) {
      const auto idx = rows.slice(0, i, std::min(i + batch_size, rows.numel()));
      auto p = model->predict_logits(inp.index_select(0, idx).to(device)).softmax(1);
      if (seg.downsample > 1)
        p = F::interpolate(p, F::InterpolateFuncOptions().size(std::vector<int64_t>{H, W}).mode(torch::kBilinear).align_corners(false));
      probs.index_copy_(0, idx, p.cpu());
    }
  }
  auto out = torch::zeros({Z, K, R, Cc});
  out.select(1, 0).fill_(1.0);  // outside the model's window: background
  out.narrow(2, wr.in0, wr.len).narrow(3, wc.in0, wc.len).copy_(probs.narrow(2, wr.out0, wr.len).narrow(3, wc.out0, wc.len));
  if (seg.layout == "x_rows") out = out.transpose(2, 3);  // [Z, K, Y, X]
  return image.with_data(out.permute({1, 0, 2, 3}).contiguous());  // [K, Z, Y, X]
}

namespace {

// Share of the non-zero voxels of `x` [1, Z, Y, X] (a volume in the training layout's LPS order) that lie outside the
// model's centred in-plane window: a brain wider than the model's field of view is cut.
double share_outside_window(const LoadedSegmenter& seg, const torch::Tensor& x) {
  auto nz = (x[0] != 0);  // [Z, Y, X]
  if (seg.layout == "x_rows") nz = nz.transpose(1, 2);  // [Z, X, Y]: rows, columns as the model sees them
  const int64_t R = nz.size(1), C = nz.size(2), H = seg.height / seg.downsample * seg.downsample,
                W = seg.width / seg.downsample * seg.downsample;
  auto inside = torch::zeros_like(nz);
  const int64_t r0 = R > H ? (R - H) / 2 : 0, c0 = C > W ? (C - W) / 2 : 0;
  inside.narrow(1, r0, std::min(R, H)).narrow(2, c0, std::min(C, W)).fill_(true);
  const double total = nz.sum().item<double>();
  return total > 0 ? (nz & ~inside).sum().item<double>() / total : 0.0;
}

// What tells a head from a brain-extracted scan: a brain-extracted volume is zero around the brain and its outermost
// non-zero voxels are grey matter and CSF, darker than the mean; a head has no zero background, or a bright rim
// (scalp fat in T1) around the brain.
struct NonBrainSigns {
  double zero_share = 1.0;  // voxels exactly 0
  double rim_ratio = 0.0;   // mean of the non-zero voxels next to a zero voxel / mean of all non-zero voxels
};
NonBrainSigns non_brain_signs(const torch::Tensor& x) {
  NonBrainSigns s;
  auto v = x[0].to(torch::kFloat32);  // [Z, Y, X]
  auto zero = (v == 0).to(torch::kFloat32);
  s.zero_share = zero.mean().item<double>();
  auto near_zero = torch::max_pool3d(zero.unsqueeze(0).unsqueeze(0), 3, 1, 1)[0][0] > 0;
  auto nonzero = v != 0, rim = nonzero & near_zero;
  if (rim.any().item<bool>() && nonzero.any().item<bool>()) {
    const double all = v.masked_select(nonzero).abs().mean().item<double>();
    s.rim_ratio = all > 0 ? v.masked_select(rim).abs().mean().item<double>() / all : 0.0;
  }
  return s;
}

}  // namespace

void run_segment(const SegmentRequest& r) {
  BRAINSPADE_CHECK_INPUT(!r.model.empty() && file_exists(r.model), "--model: segmenter checkpoint '", r.model,
                         "' does not exist");
  torch::Device device = parse_device(r.device);
  auto seg = load_segmenter(r.model, device);
  const int64_t want = seg.model->options().in_channels;
  const std::string order = seg.modalities.empty() ? std::string("one image")
                                                   : fmt::format("[{}] in this order", fmt::join(seg.modalities, ", "));
  BRAINSPADE_CHECK_INPUT(static_cast<int64_t>(r.in.size()) == want, "--in: ", r.in.size(), " image(s) given but ",
                         r.model, " takes ", want, " input channel(s): ", order, " (repeat --in once per channel)");
  const Volume stored = read_volume_as_stored(r.in[0]);  // the grid the result is written on
  std::vector<torch::Tensor> channels;
  for (size_t k = 0; k < r.in.size(); ++k) {
    const Volume v = k == 0 ? stored : read_volume_as_stored(r.in[k]);
    BRAINSPADE_CHECK_INPUT(v.channels() == 1, r.in[k], ": has ", v.channels(),
                           " channels (a 4D volume); segment takes 3D images (one --in per channel)");
    BRAINSPADE_CHECK_INPUT(v.same_grid(stored), "--in ", r.in[k], " (", v.grid_string(), ") is not on the grid of --in ",
                           r.in[0], " (", stored.grid_string(), "): the channels must be co-registered");
    channels.push_back(v.data);
  }
  Volume image = reorient_to_lps(stored.with_data(torch::cat(channels)));  // the training layout's axis order
  if (!r.mask.empty()) {
    const Volume mask = read_volume_as_stored(r.mask);
    BRAINSPADE_CHECK_INPUT(mask.channels() == 1 && mask.same_grid(stored), "--mask ", r.mask, " (", mask.grid_string(),
                           ") is not on the grid of --in ", r.in[0], " (", stored.grid_string(), ")");
    auto m = reorient_to_lps(mask).data > 0.5;
    BRAINSPADE_CHECK_INPUT(m.any().item<bool>(), "--mask ", r.mask, ": the mask is empty (no voxel > 0.5)");
    image.data = image.data * m.to(image.data.scalar_type());  // before normalisation: only brain voxels count
  } else if (seg.zero_background) {
    const NonBrainSigns signs = non_brain_signs(image.data.slice(0, 0, 1));
    if (signs.zero_share < 0.01 || signs.rim_ratio > 1.2)
      spdlog::warn("segment: {} looks like a head with skull and scalp ({:.1f}% of voxels are 0; its outer rim is "
                   "{:.2f}x as bright as the rest) but {} was trained on brain-extracted slices: non-brain tissue would "
                   "be normalised and segmented as brain. Give a brain mask with --mask FILE (or brain-extract the "
                   "scan first).",
                   r.in[0], 100.0 * signs.zero_share, signs.rim_ratio, r.model);
  }
  Volume work = image;
  const bool resample = r.resample && !same_spacing(image.spacing, seg.spacing);
  if (resample) {
    work = resample_to_spacing(image, seg.spacing, /*nearest=*/false);
    // A brain-extracted scan keeps a sharp zero background: interpolation would smear a halo of low values around
    // the brain, which the z-scoring then counts as brain. The non-zero mask is resampled too and cut at 1/2.
    auto inside = resample_to_spacing(image.with_data((image.data != 0).to(torch::kFloat32)), seg.spacing, false).data;
    work.data = work.data * (inside >= 0.5).to(work.data.scalar_type());
  }
  if (r.resample) {
    const double outside = share_outside_window(seg, work.data);
 BRAINSPADE_CHECK_INPUT(outside <= 0.01, r.in[0], ": ", fmt::format("{:.1f}", 100 * outside),
                           "% of the non-zero voxels lie outside the model's field of view (", seg.height, "x",
                           seg.width, " at ", seg.spacing[0], " mm): the brain would be cut. Give --mask FILE to "
                           "keep only the brain, or crop the volume");
  }
  Volume probs = segment_volume(seg, work, device);  // [K, Z, Y, X] on the working grid
  const bool back = !probs.same_grid(stored);
  if (back) {
    probs = resample_like(probs, stored, /*nearest=*/false, 0.0);
    auto sum = probs.data.sum(0);  // voxels the working grid did not cover: background
    probs.data[0].copy_(torch::where(sum < 1e-6, torch::ones_like(sum), probs.data[0]));
    probs.data = probs.data / probs.data.sum(0, true);
  }
  auto labels = probs.data.argmax(0, true).to(torch::kFloat32);  // [1, Z, Y, X]
  write_label_volume(r.out, stored.with_data(labels));
  if (!r.probabilities_out.empty()) write_volume(r.probabilities_out, probs);
  std::string counts;
  for (int64_t c = 1; c < probs.channels(); ++c)
    counts += fmt::format(" {}={}", c < static_cast<int64_t>(seg.class_names.size()) ? seg.class_names[c] : std::to_string(c),
                          (labels == c).sum().item<int64_t>());
  std::string how = geometry_string(stored);
  if (resample) how += fmt::format(" -> {}x{}x{} mm LPS", seg.spacing[0], seg.spacing[1], seg.spacing[2]);
  else if (orientation_code(stored) != "LPS") how += " -> LPS";
  if (back) how += "; back to the input grid";
  spdlog::info("segmented {} ({}) -> {}; voxels per class:{}", fmt::format("{}", fmt::join(r.in, " + ")), how, r.out,
               counts);
}

}  // namespace brainspade
