// Slicing volumes into the 2D training set (paper section 2.1, "Slicing process").
#include "brainspade/data/slicing.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>

#include <spdlog/spdlog.h>

#include "brainspade/core/error.h"
#include "brainspade/core/runtime.h"
#include "brainspade/draw/montage.h"
#include "brainspade/io/geometry.h"

namespace brainspade {

void SliceOptions::visit(ConfigVisitor& v) {
  v("images", images, "image volumes, one per label volume (empty = labels-only dataset)");
  v("labels", labels, "label volumes: 4D PV maps [C,Z,Y,X] or 3D integer maps (one-hot encoded)");
  v("subjects", subjects, "subject name per volume (empty = label file name)");
  v("modalities", modalities, "modality per volume, or one for all");
  v("datasets", datasets, "dataset name per volume, or one for all");
  v("channel_names", channel_names, "label channel names in file order (channel 0 = background)");
  v("lesion_channels", lesion_channels, "channel names that are lesions (lesion flags and balancing)");
  v("spacing", spacing, "voxel spacing (mm, X Y Z) every volume is resampled to before slicing (linear for images and "
    "PV maps, renormalised; nearest for integer labels); recorded in dataset.pt", Bounds::positive());
  v("height", height, "output slice rows (centre crop/pad)", Bounds::at_least(1));
  v("width", width, "output slice columns (centre crop/pad)", Bounds::at_least(1));
  v.choice("layout", layout, {"x_rows", "y_rows"},
           "x_rows: rows run L-R and columns A-P (the authors' 192x256); y_rows: rows run A-P (radiological view)");
  v("min_brain_fraction", min_brain_fraction, "minimum share of non-background pixels in a kept slice", Bounds::unit());
  v("min_lesion_pixels", min_lesion_pixels, "pixels with lesion PV > 0.5 that make a lesion slice", Bounds::at_least(1));
  v("balance_lesions", balance_lesions, "keep lesion_share lesion slices and the rest lesion-free");
  v("lesion_share", lesion_share, "share of lesion slices after balancing", Bounds::range(1e-6, 1.0));
  v("slices_per_volume", slices_per_volume, "random subset of kept slices per volume (0 = all)", Bounds::non_negative());
  v.choice("normalisation", normalisation, {"volume", "slice", "none"}, "z-score of the image inside the brain");
  v("renormalise_labels", renormalise_labels, "clamp and renormalise PV maps instead of refusing them");
  v("label_tolerance", label_tolerance, "tolerance on PV range and channel sum", Bounds::non_negative());
  v("min_slices", min_slices, "error when fewer slices are left", Bounds::at_least(1));
  v("slice_position_divisor", slice_position_divisor,
    "slice position = slice index / this (the LDM's slice condition); 0 = the volume's depth. Authors: 256 (slice_no)",
    Bounds::non_negative());
}

namespace {

// Kept slices of one volume.
struct VolumeSlices {
  torch::Tensor images;        // [n, 1, H, W] (undefined for labels-only)
  torch::Tensor labels;        // [n, C, H, W]
  torch::Tensor slice_index;   // [n] int64
  torch::Tensor position;      // [n] float32
  torch::Tensor lesion_flags;  // [n, L]
  torch::Tensor lesion_pixels; // [n] int64: pixels with any lesion PV > 0.5
  std::string subject, modality, dataset;
};

std::string label_what(const SliceInput& in) { return in.label_path.empty() ? "label volume" : in.label_path; }

// Validates and converts the label volume to PV maps [C, Z, Y, X].
torch::Tensor checked_labels(const SliceInput& in, const SliceOptions& o) {
  const std::string what = label_what(in);
  torch::Tensor l = in.labels.data.to(torch::kFloat32);
  const int64_t C = static_cast<int64_t>(o.channel_names.size());
  if (!torch::isfinite(l).all().item<bool>()) throw input_error(what, ": label map contains NaN or infinite values");
  if (l.size(0) == 1 && C > 1) {
    // A hard label map: integers 0..C-1, one-hot encoded.
    auto r = l[0].round();
    if ((l[0] - r).abs().max().item<double>() > 1e-3)
      throw input_error(what, ": a 3D label map must hold integer labels, found ", (l[0] - r).abs().max().item<double>(),
                        " away from an integer (4D files are read as PV maps)");
    double lo = r.min().item<double>(), hi = r.max().item<double>();
    if (lo < 0 || hi > C - 1)
      throw input_error(what, ": integer labels span [", lo, ", ", hi, "] but channel_names has ", C, " channels (0..",
                        C - 1, ")");
    return torch::one_hot(r.to(torch::kInt64), C).permute({3, 0, 1, 2}).to(torch::kFloat32).contiguous();
  }
  if (l.size(0) != C)
    throw input_error(what, ": has ", l.size(0), " channels but channel_names lists ", C, " (",
                      c10::Join(", ", o.channel_names), ")");
  const double tol = o.label_tolerance;
  double lo = l.min().item<double>(), hi = l.max().item<double>();
  double sum_dev = (l.sum(0) - 1).abs().max().item<double>();
  if (lo < -tol || hi > 1 + tol || sum_dev > tol) {
    if (!o.renormalise_labels)
      throw input_error(what, ": not partial-volume maps: values span [", lo, ", ", hi,
                        "], channel sums deviate from 1 by up to ", sum_dev, " (tolerance ", tol,
                        "); set data.renormalise_labels=true to clamp and renormalise");
    l = l.clamp(0, 1);
    auto s = l.sum(0, true);
    auto empty = s < 1e-6;  // nothing anywhere: background
    l.select(0, 0).masked_fill_(empty[0], 1.0);
    l = l / l.sum(0, true);
    spdlog::warn("{}: PV maps renormalised (range [{}, {}], sum deviation {})", what, lo, hi, sum_dev);
  }
  return l;
}

// [C, Z, Y, X] → [Z, C, rows, cols] following the layout.
torch::Tensor axial_slices(const torch::Tensor& v, const std::string& layout) {
  auto s = v.permute({1, 0, 2, 3});  // [Z, C, Y, X]
  if (layout == "x_rows") s = s.transpose(2, 3);  // [Z, C, X, Y]
  return s;
}

// Centre crop/pad of the last two dims to (H, W); returns the result and a mask of original pixels [N, 1, H, W].
std::pair<torch::Tensor, torch::Tensor> crop_pad(const torch::Tensor& t, int64_t H, int64_t W) {
  auto fit = [](torch::Tensor x, int64_t dim, int64_t target, torch::Tensor& mask) {
    const int64_t n = x.size(dim);
    if (n > target) {
      int64_t start = (n - target) / 2;
      x = x.narrow(dim, start, target);
      mask = mask.narrow(dim, start, target);
    } else if (n < target) {
      int64_t before = (target - n) / 2, after = target - n - before;
      std::vector<int64_t> pad(2 * x.dim(), 0);  // constant_pad_nd pads from the last dim backwards
      pad[2 * (x.dim() - 1 - dim)] = before;
      pad[2 * (x.dim() - 1 - dim) + 1] = after;
      x = torch::constant_pad_nd(x, pad, 0);
      mask = torch::constant_pad_nd(mask, pad, 0);
    }
    return x;
  };
  torch::Tensor mask = torch::ones({t.size(0), 1, t.size(2), t.size(3)}, t.options());
  torch::Tensor x = fit(t, 2, H, mask);
  x = fit(x, 3, W, mask);
  return {x.contiguous(), mask};
}

// FNV-1a of a name: per-subject random streams that do not depend on the order of the volumes.
uint64_t name_hash(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

VolumeSlices slice_one(const SliceInput& in, const SliceOptions& o, const std::vector<int64_t>& lesion_idx,
                       uint64_t seed) {
  const std::string what = label_what(in);
  if (!in.labels.data.defined() || in.labels.data.dim() != 4)
    throw input_error(what, ": expected a label volume [C, Z, Y, X]");
  torch::Tensor labels = checked_labels(in, o);  // [C, Z, Y, X]
  const bool has_image = in.image.data.defined();
  if (has_image) {
    if (in.image.channels() != 1)
      throw input_error(in.image_path, ": expected a single-channel image, got ", in.image.channels(), " channels");
    if (!in.image.same_grid(in.labels))
      throw input_error("image ", in.image_path, " (", in.image.grid_string(), ") and labels ", what, " (",
                        in.labels.grid_string(), ") are not on the same grid; resample one onto the other first");
  }
  // Every volume at data.spacing: images and PV maps linearly (the maps renormalised to sum to 1), integer label maps
  // (one-hot by now) by nearest neighbour. Values were checked above, on the file's own grid.
  Volume image_vol = in.image;
  const std::array<double, 3> target{o.spacing[0], o.spacing[1], o.spacing[2]};
  if (!same_spacing(in.labels.spacing, target)) {
    const bool hard = in.labels.channels() == 1;
    spdlog::info("{}: {} resampled to {}x{}x{} mm ({})", what, geometry_string(in.labels), target[0], target[1],
                 target[2], hard ? "nearest" : "linear");
    Volume lv = in.labels.with_data(labels);
    lv = resample_to_spacing(lv, target, hard);
    labels = lv.data;
    if (!hard) {
      auto sum = labels.sum(0, true);
      labels[0].copy_(torch::where(sum[0] < 1e-6, torch::ones_like(labels[0]), labels[0]));  // outside: background
      labels = labels / labels.sum(0, true);
    }
    if (has_image) image_vol = resample_to_spacing(in.image, target, /*nearest=*/false);
  }
  torch::Tensor image;
  if (has_image) {
    image = image_vol.data.to(torch::kFloat32);  // [1, Z, Y, X]
    if (!torch::isfinite(image).all().item<bool>())
      throw input_error(in.image_path, ": image contains NaN or infinite values");
    auto brain = (labels[0] < 0.5).unsqueeze(0);  // [1, Z, Y, X]
    if (o.normalisation == "volume") {
      auto vals = image.masked_select(brain).to(torch::kFloat64);
      if (vals.numel() < 2) throw input_error(what, ": no brain voxels (background everywhere)");
      double mean = vals.mean().item<double>(), sd = std::max(vals.std().item<double>(), 1e-6);
      image = (image - mean) / sd;
    }
    image = image * brain.to(torch::kFloat32);
  }
  const int64_t Z = labels.size(1);
  auto [lab, mask] = crop_pad(axial_slices(labels, o.layout), o.height, o.width);  // [Z, C, H, W], [Z, 1, H, W]
  lab.select(1, 0).add_(1.0 - mask.select(1, 0));                                  // padding is background
  torch::Tensor img;
  if (has_image) img = crop_pad(axial_slices(image, o.layout), o.height, o.width).first;  // [Z, 1, H, W]

  auto brain2d = lab.select(1, 0) < 0.5;  // [Z, H, W]
  auto fraction = brain2d.flatten(1).sum(1).to(torch::kFloat64) / static_cast<double>(o.height * o.width);  // [Z]
  const int64_t L = static_cast<int64_t>(lesion_idx.size());
  torch::Tensor lesion_counts = torch::zeros({Z, L}, torch::kInt64);
  torch::Tensor any_lesion = torch::zeros({Z}, torch::kInt64);
  if (L > 0) {
    auto idx = torch::tensor(lesion_idx, torch::kInt64);
    auto les = lab.index_select(1, idx) > 0.5;  // [Z, L, H, W]
    lesion_counts = les.flatten(2).sum(2);      // [Z, L]
    any_lesion = les.any(1).flatten(1).sum(1);  // [Z]
  }
  std::vector<int64_t> keep;
  for (int64_t z = 0; z < Z; ++z)
    if (fraction[z].item<double>() >= o.min_brain_fraction) keep.push_back(z);
  if (o.slices_per_volume > 0 && static_cast<int64_t>(keep.size()) > o.slices_per_volume) {
    // Drawn per subject: the modalities of one subject (same label map) keep the same slices, so that a multi-channel
    // segmenter finds every modality at each kept position.
    std::mt19937_64 rng(derive_seed(seed, name_hash(in.subject)));
    std::shuffle(keep.begin(), keep.end(), rng);
    keep.resize(o.slices_per_volume);
    std::sort(keep.begin(), keep.end());
  }
  VolumeSlices out;
  auto rows = torch::tensor(keep, torch::kInt64);
  out.labels = lab.index_select(0, rows);
  if (has_image) {
    out.images = img.index_select(0, rows);
    if (o.normalisation == "slice") {
      for (int64_t i = 0; i < out.images.size(0); ++i) {
        auto s = out.images[i];
        auto b = out.labels[i][0] < 0.5;
        auto vals = s[0].masked_select(b).to(torch::kFloat64);
        if (vals.numel() < 2) continue;
        double mean = vals.mean().item<double>(), sd = std::max(vals.std().item<double>(), 1e-6);
        s.copy_(((s - mean) / sd) * b.to(torch::kFloat32).unsqueeze(0));
      }
    }
  }
  out.slice_index = rows;
  const double divisor = o.slice_position_divisor > 0 ? o.slice_position_divisor : static_cast<double>(Z);
  BRAINSPADE_CHECK_INPUT(divisor >= static_cast<double>(Z), "config key 'slice_position_divisor': ", divisor,
                         " is below the ", Z, " slices of ", in.label_path, ", so positions would pass 1 (use 0 for the ",
                         "depth, or a divisor >= every volume's depth)");
  out.position = rows.to(torch::kFloat32) / static_cast<float>(divisor);
  out.lesion_flags = (lesion_counts.index_select(0, rows) >= o.min_lesion_pixels).to(torch::kFloat32);
  out.lesion_pixels = any_lesion.index_select(0, rows);
  out.subject = in.subject;
  out.modality = in.modality;
  out.dataset = in.dataset;
  spdlog::info("{}: kept {} of {} axial slices (brain fraction >= {})", what, keep.size(), Z, o.min_brain_fraction);
  return out;
}

int64_t index_of(std::vector<std::string>& names, const std::string& name) {
  auto it = std::find(names.begin(), names.end(), name);
  if (it != names.end()) return it - names.begin();
  names.push_back(name);
  return static_cast<int64_t>(names.size()) - 1;
}

std::vector<int64_t> lesion_indices(const SliceOptions& o) {
  std::vector<int64_t> idx;
  for (const auto& name : o.lesion_channels) {
    auto it = std::find(o.channel_names.begin(), o.channel_names.end(), name);
    if (it == o.channel_names.end())
      throw input_error("data.lesion_channels: '", name, "' is not one of channel_names (",
                        c10::Join(", ", o.channel_names), ")");
    idx.push_back(it - o.channel_names.begin());
  }
  return idx;
}

// Joins the volumes' slices, balances lesions and checks that enough is left.
SliceDataset assemble(std::vector<VolumeSlices>& parts, const SliceOptions& o, std::mt19937_64& rng) {
  SliceDataset ds;
  ds.channel_names = o.channel_names;
  ds.lesion_names = o.lesion_channels;
  ds.spacing = {o.spacing[0], o.spacing[1], o.spacing[2]};
  ds.orientation = "LPS";  // read_volume's index order
  std::vector<torch::Tensor> images, labels, index, position, flags, lesion_pixels, subject, modality, dataset;
  bool has_images = !parts.empty() && parts.front().images.defined();
  for (auto& p : parts) {
    const int64_t n = p.labels.size(0);
    if (has_images) images.push_back(p.images);
    labels.push_back(p.labels);
    index.push_back(p.slice_index);
    position.push_back(p.position);
    flags.push_back(p.lesion_flags);
    lesion_pixels.push_back(p.lesion_pixels);
    subject.push_back(torch::full({n}, index_of(ds.subject_names, p.subject), torch::kInt64));
    modality.push_back(torch::full({n}, index_of(ds.modality_names, p.modality), torch::kInt64));
    dataset.push_back(torch::full({n}, index_of(ds.dataset_names, p.dataset), torch::kInt64));
  }
  if (has_images) ds.images = torch::cat(images);
  ds.labels = torch::cat(labels);
  ds.slice_index = torch::cat(index);
  ds.slice_position = torch::cat(position);
  ds.lesion_flags = torch::cat(flags);
  ds.subject = torch::cat(subject);
  ds.modality = torch::cat(modality);
  ds.dataset = torch::cat(dataset);
  torch::Tensor pixels = torch::cat(lesion_pixels);
  parts.clear();

  if (!o.lesion_channels.empty() && o.balance_lesions) {
    // Balanced by position (subject, slice index), not by row: the modalities of a position are kept or dropped
    // together (a lesion position has a flag in any of its rows; a clean one has no lesion pixel in any).
    std::map<std::pair<int64_t, int64_t>, std::vector<int64_t>> rows_at;
    std::map<std::pair<int64_t, int64_t>, bool> flagged, touched;
    auto any_flag = ds.lesion_flags.sum(1) > 0;
    for (int64_t i = 0; i < ds.size(); ++i) {
      const std::pair<int64_t, int64_t> key{ds.subject[i].item<int64_t>(), ds.slice_index[i].item<int64_t>()};
      rows_at[key].push_back(i);
      if (any_flag[i].item<bool>()) flagged[key] = true;
      if (pixels[i].item<int64_t>() > 0) touched[key] = true;
    }
    std::vector<std::pair<int64_t, int64_t>> lesion_rows, clean_rows;
    for (const auto& [key, rows] : rows_at) {
      if (flagged.count(key)) lesion_rows.push_back(key);
      else if (!touched.count(key)) clean_rows.push_back(key);
    }
    if (lesion_rows.empty())
      throw input_error("no slice has at least ", o.min_lesion_pixels, " pixels of a lesion channel (",
                        c10::Join(", ", o.lesion_channels), "); set data.balance_lesions=false or check the labels");
    const double share = o.lesion_share;
    int64_t n_les = static_cast<int64_t>(lesion_rows.size());
    int64_t n_clean = static_cast<int64_t>(std::llround(n_les * (1 - share) / share));
    if (n_clean > static_cast<int64_t>(clean_rows.size())) {
      n_clean = static_cast<int64_t>(clean_rows.size());
      n_les = std::min<int64_t>(n_les, static_cast<int64_t>(std::floor(n_clean * share / (1 - share) + 1e-9)));
    }
    std::shuffle(lesion_rows.begin(), lesion_rows.end(), rng);
    std::shuffle(clean_rows.begin(), clean_rows.end(), rng);
    std::vector<int64_t> chosen;
    for (int64_t k = 0; k < n_les; ++k) for (int64_t r : rows_at[lesion_rows[k]]) chosen.push_back(r);
    for (int64_t k = 0; k < n_clean; ++k) for (int64_t r : rows_at[clean_rows[k]]) chosen.push_back(r);
    std::sort(chosen.begin(), chosen.end());
    spdlog::info("lesion balancing: {} lesion slice positions (>= {} px) + {} lesion-free ones (target share {:.3f}); "
                 "{} rows", n_les, o.min_lesion_pixels, n_clean, share, chosen.size());
    ds = ds.select(torch::tensor(chosen, torch::kInt64));
  }
  if (ds.size() < o.min_slices)
    throw input_error("only ", ds.size(), " slices are left after the brain-fraction (", o.min_brain_fraction,
                      ") and lesion rules; at least ", o.min_slices, " are needed (data.min_slices)");
  return ds;
}

void check_list_sizes(const SliceOptions& o) {
  const size_t n = o.labels.size();
  if (n == 0) throw input_error("data.labels is empty: list at least one label volume");
  if (!o.images.empty() && o.images.size() != n)
    throw input_error("data.images has ", o.images.size(), " entries but data.labels has ", n);
  if (!o.subjects.empty() && o.subjects.size() != n)
    throw input_error("data.subjects has ", o.subjects.size(), " entries but data.labels has ", n);
  if (o.modalities.size() != 1 && o.modalities.size() != n)
    throw input_error("data.modalities has ", o.modalities.size(), " entries; give 1 or ", n);
  if (o.datasets.size() != 1 && o.datasets.size() != n)
    throw input_error("data.datasets has ", o.datasets.size(), " entries; give 1 or ", n);
  if (o.channel_names.size() < 2) throw input_error("data.channel_names needs at least 2 channels");
  if (o.spacing.size() != 3)
    throw input_error("config key 'data.spacing': ", o.spacing.size(), " values; give the voxel spacing as [x, y, z] mm");
}

std::string stem_of(const std::string& path) {
  std::string name = std::filesystem::path(path).filename().string();
  for (const char* ext : {".nii.gz", ".nii", ".mha", ".mhd", ".nrrd"}) {
    std::string e(ext);
    if (name.size() > e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0)
      return name.substr(0, name.size() - e.size());
  }
  return name;
}

}  // namespace

SliceDataset slice_volumes(const std::vector<SliceInput>& inputs, const SliceOptions& o, uint64_t seed) {
  if (inputs.empty()) throw input_error("no volumes to slice");
  auto lesion_idx = lesion_indices(o);
  std::mt19937_64 rng(seed);
  torch::NoGradGuard no_grad;
  std::vector<VolumeSlices> parts;
  const bool has_images = inputs.front().image.data.defined();
  for (const auto& in : inputs) {
    if (in.image.data.defined() != has_images)
      throw input_error(label_what(in), ": either every volume has an image or none has");
    parts.push_back(slice_one(in, o, lesion_idx, seed));
  }
  return assemble(parts, o, rng);
}

SliceDataset build_slice_dataset(const SliceOptions& o, uint64_t seed) {
  check_list_sizes(o);
  auto lesion_idx = lesion_indices(o);
  std::mt19937_64 rng(seed);
  torch::NoGradGuard no_grad;
  std::vector<VolumeSlices> parts;
  for (size_t i = 0; i < o.labels.size(); ++i) {
    SliceInput in;
    in.label_path = o.labels[i];
    in.labels = read_volume(o.labels[i]);
    if (!o.images.empty()) {
      in.image_path = o.images[i];
      in.image = read_volume(o.images[i]);
    }
    in.subject = o.subjects.empty() ? stem_of(o.labels[i]) : o.subjects[i];
    in.modality = o.modalities.size() == 1 ? o.modalities[0] : o.modalities[i];
    in.dataset = o.datasets.size() == 1 ? o.datasets[0] : o.datasets[i];
    parts.push_back(slice_one(in, o, lesion_idx, seed));
  }
  return assemble(parts, o, rng);
}

torch::Tensor slice_to_dataset_plane(const torch::Tensor& slice_yx, const SliceOptions& o) {
  TORCH_CHECK(slice_yx.dim() == 2, "slice_to_dataset_plane: expected [Y, X], got ", slice_yx.sizes());
  auto v = slice_yx.to(torch::kFloat32).unsqueeze(0).unsqueeze(0);  // [C=1, Z=1, Y, X]
  return crop_pad(axial_slices(v, o.layout), o.height, o.width).first[0][0].contiguous();
}

void write_dataset_montage(const std::string& path, const SliceDataset& ds, int64_t count) {
  TORCH_CHECK(ds.size() > 0, "write_dataset_montage: empty dataset");
  const int64_t n = std::min(count, ds.size());
  std::vector<torch::Tensor> top, bottom;
  for (int64_t i = 0; i < n; ++i) {
    int64_t row = n == 1 ? 0 : i * (ds.size() - 1) / (n - 1);
    if (ds.images.defined()) top.push_back(ds.images[row][0]);
    bottom.push_back(label_to_rgb(ds.labels[row], ds.channel_names));
  }
  top.insert(top.end(), bottom.begin(), bottom.end());
  write_montage_png(path, top, n);
}

double lesion_min_pixels_at(int64_t min_pixels, int64_t H, int64_t W) {
  return std::max(1.0, static_cast<double>(min_pixels) * static_cast<double>(H * W) / (192.0 * 256.0));
}

torch::Tensor lesion_present(const torch::Tensor& pv, int64_t channel, double min_px) {
  TORCH_CHECK(pv.dim() == 4 && channel >= 0 && channel < pv.size(1), "lesion_present: pv [N, C, H, W] with channel < C");
  return (pv.select(1, channel) > 0.5).flatten(1).sum(1).to(torch::kDouble) >= min_px;  // [N]
}

}  // namespace brainspade
