#include "brainspade/inference/segment.h"

#include <algorithm>
#include <cmath>

#include <spdlog/spdlog.h>

#include "brainspade/core/checkpoint.h"
#include "brainspade/core/config.h"
#include "brainspade/core/error.h"
#include "brainspade/core/runtime.h"

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
  return s;
}

Volume segment_volume(const LoadedSegmenter& seg, const Volume& image, torch::Device device, int64_t batch_size) {
  const auto& mo = seg.model->options();
  BRAINSPADE_CHECK_INPUT(image.data.defined() && image.data.dim() == 4, "segment: expected a volume [C, Z, Y, X]");
  BRAINSPADE_CHECK_INPUT(image.channels() == mo.in_channels, "segment: the volume has ", image.channels(),
                         " channels but the model takes ", mo.in_channels, " (give one 3D image)");
  auto x = image.data.to(torch::kFloat32);  // [1, Z, Y, X]
  auto nonzero = x != 0;
  auto vals = x.masked_select(nonzero).to(torch::kFloat64);
  if (vals.numel() >= 2) {
    double mean = vals.mean().item<double>(), sd = std::max(vals.std().item<double>(), 1e-6);
    x = (x - mean) / sd * nonzero.to(torch::kFloat32);  // like `slice` (normalisation: volume), zeros stay zero
  } else {
    spdlog::warn("segment: the volume has fewer than 2 non-zero voxels; not normalised");
  }
  auto s = x.permute({1, 0, 2, 3});             // [Z, 1, Y, X]
  if (seg.layout == "x_rows") s = s.transpose(2, 3);  // [Z, 1, X, Y]
  const int64_t Z = s.size(0), R = s.size(2), Cc = s.size(3), H = seg.height, W = seg.width;
  // Centre crop/pad (as slicing does): where a dim is larger, the window starts at (n − target)/2 of the input;
  // where smaller, the input starts at (target − n)/2 of the window.
  auto window = [](int64_t n, int64_t target) {
    struct Win { int64_t in0, out0, len; };
    if (n >= target) return Win{(n - target) / 2, 0, target};
    return Win{0, (target - n) / 2, n};
  };
  auto wr = window(R, H), wc = window(Cc, W);
  auto canvas = torch::zeros({Z, 1, H, W});
  canvas.narrow(2, wr.out0, wr.len).narrow(3, wc.out0, wc.len).copy_(s.narrow(2, wr.in0, wr.len).narrow(3, wc.in0, wc.len));
  auto inp = seg.downsample > 1 ? torch::avg_pool2d(canvas, seg.downsample) : canvas;  // [Z, 1, H/ds, W/ds]
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

void run_segment(const std::string& model, const std::string& in, const std::string& out,
                 const std::string& probabilities_out, const std::string& device_spec) {
  BRAINSPADE_CHECK_INPUT(!model.empty() && file_exists(model), "--model: segmenter checkpoint '", model, "' does not exist");
  torch::Device device = parse_device(device_spec);
  auto seg = load_segmenter(model, device);
  auto image = read_volume(in);
  auto probs = segment_volume(seg, image, device);
  auto labels = probs.data.argmax(0, true).to(torch::kFloat32);  // [1, Z, Y, X]
  write_label_volume(out, image.with_data(labels));
  if (!probabilities_out.empty()) write_volume(probabilities_out, probs);
  std::string counts;
  for (int64_t c = 1; c < probs.channels(); ++c)
    counts += fmt::format(" {}={}", c < static_cast<int64_t>(seg.class_names.size()) ? seg.class_names[c] : std::to_string(c),
                          (labels == c).sum().item<int64_t>());
  spdlog::info("segmented {} ({}) → {}; voxels per class:{}", in, image.grid_string(), out, counts);
}

}  // namespace brainspade
