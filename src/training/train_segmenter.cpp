#include "brainspade/training/train_segmenter.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <spdlog/spdlog.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/csv.h"
#include "brainspade/core/distributed.h"
#include "brainspade/draw/montage.h"
#include "brainspade/core/progress.h"
#include "brainspade/core/runtime.h"
#include "brainspade/core/strings.h"
#include "brainspade/data/slice_dataset.h"
#include "brainspade/eval/dice.h"
#include "brainspade/io/geometry.h"
#include "brainspade/training/montage.h"
#include "brainspade/training/run.h"

namespace brainspade {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;

void SegDataOptions::visit(ConfigVisitor& v) {
  v("sources", sources, "slice datasets (.pt) and/or folders of generated pairs; R, S and H models differ only here");
  v("weights", weights, "sampling weight per source (empty = equal)", Bounds::non_negative());
  v("label_map", label_map, "source label -> class (empty = identity), e.g. [0,1,2,3,2,0]", Bounds::non_negative());
  v("class_names", class_names, "one name per class, background first (its length must equal model.num_classes)");
  v("downsample", downsample, "average-pool slices by this factor at load time (tiny configs: 2)", Bounds::range(1, 8));
  v("source_downsample", source_downsample,
    "pooling factor per source (empty = downsample for every source); 1 for pairs already at the reduced size",
    Bounds::range(1, 8));
  v.choice("layout", layout, {"x_rows", "y_rows"}, "slice layout the data was made with (`slice` data.layout)");
  v("modalities", modalities, "input channels in order, e.g. [T1, PD] (empty = one channel, every row a sample): "
    "a slice dataset's modalities at one (subject, slice) position become one multi-channel sample; a pair source is a "
    "folder of one pair folder per modality (<source>/T1, <source>/PD) sharing label maps");
}

void SegAugmentOptions::visit(ConfigVisitor& v) {
  v("affine_prob", affine_prob, "share of samples given a random rotation/scaling (nnU-Net: 0.2)", Bounds::unit());
  v.section("affine", affine, "ranges of the random affine transform (applied jointly to image and labels)");
  v("mirror", mirror, "random flips of both axes (nnU-Net: true)");
  v.section("intensity", intensity, "intensity augmentation of the image");
}

void SegLossOptions::visit(ConfigVisitor& v) {
  v("dice_weight", dice_weight, "weight of the soft Dice term (nnU-Net: 1)", Bounds::non_negative());
  v("ce_weight", ce_weight, "weight of the cross-entropy term (nnU-Net: 1)", Bounds::non_negative());
  v("batch_dice", batch_dice, "Dice over the whole batch instead of per sample (nnU-Net 2D: true)");
  v("smooth", smooth, "Dice smoothing (nnU-Net: 1e-5)", Bounds::non_negative());
}

void SegOptimOptions::visit(ConfigVisitor& v) {
  v("lr", lr, "initial SGD learning rate (nnU-Net: 1e-2)", Bounds::positive());
  v("momentum", momentum, "Nesterov momentum (nnU-Net: 0.99)", Bounds::range(0.0, 0.9999));
  v("weight_decay", weight_decay, "L2 weight decay (nnU-Net: 3e-5)", Bounds::non_negative());
  v("poly_exponent", poly_exponent, "poly decay exponent (nnU-Net: 0.9)", Bounds::non_negative());
  v("oversample_foreground", oversample_foreground,
    "share of each batch drawn from slices with the rarest class (nnU-Net: 0.33)", Bounds::unit());
}

void SegmenterTrainConfig::visit(ConfigVisitor& v) {
  v.section("run", run);
  v.section("data", data);
  v.section("model", model);
  v.section("augment", augment);
  v.section("loss", loss);
  v.section("optim", optim);
  v.section("train", train);
}

namespace {

// (image, seg) paths of a pair folder: manifest.csv when present, else images/*.nii.gz + labels/<stem>_seg.nii.gz.
std::vector<std::pair<std::string, std::string>> pair_files(const std::string& dir) {
  std::vector<std::pair<std::string, std::string>> out;
  const std::string manifest = dir + "/manifest.csv";
  if (fs::exists(manifest)) {
    const CsvTable t = read_csv_table(manifest);
    const int ci = t.column("image"), cs = t.column("label_seg");
    BRAINSPADE_CHECK_INPUT(ci >= 0, manifest, ": no 'image' column");
    BRAINSPADE_CHECK_INPUT(cs >= 0, manifest, ": no 'label_seg' column");
    for (const auto& row : t.rows) out.emplace_back(dir + "/" + row[ci], dir + "/" + row[cs]);
    return out;
  }
  BRAINSPADE_CHECK_INPUT(fs::is_directory(dir + "/images"), "data source ", dir,
                         ": neither a .pt slice dataset nor a pair folder (manifest.csv or images/ + labels/)");
  std::vector<std::string> images;
  for (const auto& e : fs::directory_iterator(dir + "/images")) {
    auto n = e.path().filename().string();
    if (ends_with(n, ".nii.gz") || ends_with(n, ".nii")) images.push_back(n);
  }
  std::sort(images.begin(), images.end());
  for (const auto& n : images) {
    std::string stem = n.substr(0, n.find(".nii"));
    std::string seg = dir + "/labels/" + stem + "_seg.nii.gz";
    BRAINSPADE_CHECK_INPUT(fs::exists(seg), "pair folder ", dir, ": no label ", seg, " for image ", n);
    out.emplace_back(dir + "/images/" + n, seg);
  }
  return out;
}

// Hard labels [N, H, W] int64 pooled by `f`: one-hot (or PV) area average, then argmax.
torch::Tensor pool_labels(const torch::Tensor& hard, int64_t K, int64_t f) {
  if (f == 1) return hard;
  auto oh = F::one_hot(hard, K).permute({0, 3, 1, 2}).to(torch::kFloat32);  // [N, K, H, W]
  return torch::avg_pool2d(oh, f).argmax(1);
}

struct Part {
  torch::Tensor images, labels, subject, slice_index;
  bool has_spacing = false;  // a slice dataset records its voxel spacing; a pair folder does not
  std::array<double, 3> spacing{1.0, 1.0, 1.0};
};

// Rows of `ds` grouped into multi-channel samples: for each (subject, slice) position holding every one of
// `modalities`, the row of each modality in that order → [n, M] row indices.
torch::Tensor modality_rows(const SliceDataset& ds, const std::vector<std::string>& modalities, const std::string& src) {
  std::vector<int64_t> index;
  for (const auto& m : modalities) {
    auto it = std::find(ds.modality_names.begin(), ds.modality_names.end(), m);
    BRAINSPADE_CHECK_INPUT(it != ds.modality_names.end(), src, ": no slices of modality '", m,
                           "' (config key 'data.modalities'); it has [", fmt::format("{}", fmt::join(ds.modality_names, ", ")), "]");
    index.push_back(it - ds.modality_names.begin());
  }
  const int64_t M = static_cast<int64_t>(modalities.size());
  std::map<std::pair<int64_t, int64_t>, std::vector<int64_t>> at;
  for (int64_t r = 0; r < ds.size(); ++r) {
    auto& v = at[{ds.subject[r].item<int64_t>(), ds.slice_index[r].item<int64_t>()}];
    if (v.empty()) v.assign(M, -1);
    const int64_t mod = ds.modality[r].item<int64_t>();
    for (int64_t k = 0; k < M; ++k)
      if (index[k] == mod) v[k] = r;
  }
  std::vector<int64_t> flat;
  int64_t dropped = 0;
  for (const auto& [key, v] : at) {
    if (std::find(v.begin(), v.end(), -1) != v.end()) {
      ++dropped;
      continue;
    }
    flat.insert(flat.end(), v.begin(), v.end());
  }
  BRAINSPADE_CHECK_INPUT(!flat.empty(), src, ": no slice position has every modality of data.modalities [",
                         fmt::format("{}", fmt::join(modalities, ", ")), "]");
  if (dropped > 0)
    spdlog::warn("{}: {} slice positions lack one of the modalities [{}] and are left out", src, dropped,
                 fmt::format("{}", fmt::join(modalities, ", ")));
  return torch::tensor(flat, torch::kLong).view({-1, M});
}

// A pair folder (no modalities: one image channel), or one pair folder per modality (<src>/<modality>/) matched by
// image file name, whose label maps must agree; pooled by `f`. Every pair is its own "subject".
Part load_pair_folders(const std::string& src, const std::vector<std::string>& modalities, int64_t f) {
  std::vector<std::string> dirs;
  for (const auto& m : modalities) {
    BRAINSPADE_CHECK_INPUT(fs::is_directory(src + "/" + m), "pair source ", src, ": no folder '", m,
                           "' (config key 'data.modalities' lists it; make it with `brainspade sample --out ", src, "/",
                           m, "` and that contrast's styles)");
    dirs.push_back(src + "/" + m);
  }
  if (dirs.empty()) dirs.push_back(src);
  std::vector<std::vector<std::pair<std::string, std::string>>> files;
  for (const auto& d : dirs) {
    files.push_back(pair_files(d));
    BRAINSPADE_CHECK_INPUT(files.back().size() == files[0].size(), "pair source ", src, ": ", files.back().size(),
                           " pairs in ", d, " but ", files[0].size(), " in ", dirs[0]);
  }
  BRAINSPADE_CHECK_INPUT(!files[0].empty(), "pair folder ", dirs[0], ": no pairs");
  std::vector<torch::Tensor> imgs, labs;
  for (size_t i = 0; i < files[0].size(); ++i) {
    std::vector<torch::Tensor> chans;
    torch::Tensor first_seg;
    for (size_t k = 0; k < dirs.size(); ++k) {
      const auto& [im, sg] = files[k][i];
      BRAINSPADE_CHECK_INPUT(fs::path(im).filename() == fs::path(files[0][i].first).filename(), "pair source ", src,
                             ": ", im, " has no counterpart of the same name in ", dirs[0]);
      auto a = read_volume(im), b = read_volume(sg);
      BRAINSPADE_CHECK_INPUT(a.channels() == 1 && a.depth() == 1, im, ": expected a single-channel 2D slice, got ",
                             a.channels(), " channels x ", a.depth(), " slices");
      BRAINSPADE_CHECK_INPUT(b.data.sizes() == a.data.sizes(), sg, ": label size ", b.data.sizes(),
                             " differs from image ", a.data.sizes());
      auto l = b.data[0][0].round().to(torch::kLong);
      BRAINSPADE_CHECK_INPUT(l.min().item<int64_t>() >= 0, sg, ": negative label");
      if (k == 0) first_seg = l;
      else
        BRAINSPADE_CHECK_INPUT(torch::equal(l, first_seg), sg, ": its label map differs from ", files[0][i].second,
                               ": the modality folders must be sampled with the same seed and label generator");
      chans.push_back(a.data[0][0]);
    }
    imgs.push_back(torch::stack(chans));  // [C, H, W]
    labs.push_back(first_seg);
  }
  Part p;
  p.images = torch::stack(imgs);  // [N, C, H, W]
  p.labels = torch::stack(labs);  // [N, H, W]
  BRAINSPADE_CHECK_INPUT(p.images.size(2) % f == 0 && p.images.size(3) % f == 0, src, ": slices of ", p.images.size(2),
                         "x", p.images.size(3), " cannot be downsampled by ", f);
  if (f > 1) {
    p.images = torch::avg_pool2d(p.images, f);
    p.labels = pool_labels(p.labels, p.labels.max().item<int64_t>() + 1, f);
  }
  p.subject = torch::arange(p.images.size(0), torch::kLong);
  p.slice_index = torch::zeros({p.images.size(0)}, torch::kLong);
  return p;
}

Part load_source(const std::string& src, int64_t f, const std::vector<std::string>& modalities) {
  Part p;
  if (ends_with(src, ".pt")) {
    auto ds = SliceDataset::load(src);
    BRAINSPADE_CHECK_INPUT(ds.images.defined() && ds.images.numel() > 0, src,
                           ": a labels-only slice dataset; a segmenter needs images");
    BRAINSPADE_CHECK_INPUT(ds.images.size(1) == 1, src, ": images have ", ds.images.size(1), " channels; expected 1");
    if (!modalities.empty()) {
      auto rows = modality_rows(ds, modalities, src);  // [n, M]
      auto first = rows.select(1, 0).contiguous();
      SliceDataset merged = ds.select(first);
      merged.images = ds.images.index_select(0, rows.flatten()).view({rows.size(0), rows.size(1), ds.height(), ds.width()});
      ds = std::move(merged);
    }
    BRAINSPADE_CHECK_INPUT(ds.height() % f == 0 && ds.width() % f == 0, src, ": slices of ", ds.height(), "x",
                           ds.width(), " cannot be downsampled by ", f);
    auto pv = f > 1 ? torch::avg_pool2d(ds.labels, f) : ds.labels;  // area average keeps PV maps summing to 1
    p.labels = pv.argmax(1);
    p.images = f > 1 ? torch::avg_pool2d(ds.images, f) : ds.images;
    p.subject = ds.subject.to(torch::kLong);
    p.slice_index = ds.slice_index.to(torch::kLong);
    p.has_spacing = true;
    p.spacing = ds.spacing;
    return p;
  }
  BRAINSPADE_CHECK_INPUT(fs::is_directory(src), "data source ", src, " does not exist (expected a .pt file or a pair folder)");
  return load_pair_folders(src, modalities, f);
}



// Hard Dice per class over all slices: pred, ref [N, H, W] int64.
std::vector<double> pooled_dice(const torch::Tensor& pred, const torch::Tensor& ref, int64_t K) {
  return dice_per_class(pred, ref, K, EmptyDice::NaN);
}

torch::Tensor predict_batched(Segmenter& model, const torch::Tensor& images, torch::Device device, int64_t batch) {
  torch::NoGradGuard g;
  const bool was_training = model->is_training();
  model->eval();
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < images.size(0); i += batch)
    out.push_back(model->predict_logits(images.slice(0, i, std::min(i + batch, images.size(0))).to(device)).cpu());
  model->train(was_training);
  return torch::cat(out);  // [N, K, H, W]
}

SegValidation validate(Segmenter& model, const torch::Tensor& images, const torch::Tensor& labels, torch::Device device,
                       int64_t batch, int64_t K) {
  auto pred = predict_batched(model, images, device, batch).argmax(1);
  SegValidation v;
  v.dice = pooled_dice(pred, labels.to(torch::kLong), K);
  double sum = 0;
  int n = 0;
  for (int64_t c = 1; c < K; ++c)
    if (std::isfinite(v.dice[c])) sum += v.dice[c], ++n;
  v.mean_foreground_dice = n ? sum / n : NAN;
  return v;
}

// Spatial and intensity augmentation of one batch (nnU-Net style), every draw from `gen`.
void augment_batch(torch::Tensor& images, torch::Tensor& labels, int64_t K, const SegAugmentOptions& o,
                   torch::Generator& gen) {
  const int64_t B = images.size(0);
  if (o.affine_prob > 0) {
    auto u = torch::rand({B}, gen);
    std::vector<AffineParams> params(B);
    bool any = false;
    for (int64_t b = 0; b < B; ++b)
      if (u[b].item<double>() < o.affine_prob) params[b] = sample_affine(o.affine, gen), any = true;
    if (any) {
      images = apply_affine(images, params, o.affine.padding, "bilinear");
      // Labels: the one-hot map warped bilinearly, then argmax (zeros outside → background).
      auto oh = F::one_hot(labels, K).permute({0, 3, 1, 2}).to(torch::kFloat32);
      labels = apply_affine(oh, params, "zeros", "bilinear").argmax(1);
    }
  }
  if (o.mirror) {
    auto u = torch::rand({B, 2}, gen);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t a = 0; a < 2; ++a) {
        if (u[b][a].item<double>() < 0.5) {
          images[b].copy_(images[b].flip({1 + a}));
          labels[b].copy_(labels[b].flip({a}));
        }
      }
    }
  }
  images = intensity_augment(images, o.intensity, gen);
}

// How batches are drawn: per-slice weights (a source's weight shared by its slices) and, for foreground oversampling,
// the slices that hold the rarest foreground class present, which fill n_foreground rows of each batch.
struct BatchWeights {
  torch::Tensor row, foreground;  // [N] float64; foreground undefined when there is none
  int64_t rare_class = -1, n_foreground = 0;
};
BatchWeights batch_weights(const SegmenterTrainConfig& cfg, const torch::Tensor& source_train,
                           const torch::Tensor& labels_train, int64_t K) {
  // Per-slice sampling weights: a source's weight shared by its slices.
  std::vector<double> sw = cfg.data.weights.empty() ? std::vector<double>(cfg.data.sources.size(), 1.0) : cfg.data.weights;
  auto counts = torch::bincount(source_train, {}, static_cast<int64_t>(sw.size())).to(torch::kDouble);
  auto row_w = torch::tensor(sw, torch::kDouble).index({source_train}) / counts.index({source_train}).clamp_min(1);
  BRAINSPADE_CHECK_INPUT(row_w.sum().item<double>() > 0, "config key 'data.weights': every training slice has weight 0");
  // Foreground oversampling: slices that contain the rarest foreground class present.
  auto pixels = torch::bincount(labels_train.flatten().to(torch::kLong), {}, K);
  int64_t rare = -1;
  for (int64_t c = 1; c < K; ++c)
    if (pixels[c].item<int64_t>() > 0 && (rare < 0 || pixels[c].item<int64_t>() < pixels[rare].item<int64_t>())) rare = c;
  torch::Tensor fg_w;
  if (rare > 0) {
    auto has = (labels_train == rare).flatten(1).any(1).to(torch::kDouble);
    fg_w = row_w * has;
    if (fg_w.sum().item<double>() <= 0) fg_w = torch::Tensor();
  }
  const int64_t B = cfg.train.batch_size;
  const int64_t n_fg = fg_w.defined() ? B - static_cast<int64_t>(std::llround(B * (1.0 - cfg.optim.oversample_foreground))) : 0;
  return {row_w, fg_w, rare, n_fg};
}

// The final validation line and the predictions montage (rank 0): image | reference | prediction.
void report_segmenter(const SegValidation& val, const std::vector<std::string>& class_names, Segmenter& model,
                      const torch::Tensor& images_val, const torch::Tensor& labels_val, torch::Device device, int64_t B,
                      const std::string& montage_path) {
  const int64_t K = static_cast<int64_t>(class_names.size());
  std::string line;
  for (int64_t c = 0; c < K; ++c) line += fmt::format(" {}={:.3f}", class_names[c], val.dice[c]);
  spdlog::info("segmenter validation Dice:{}", line);
  {
    const int64_t n = std::min<int64_t>(4, images_val.size(0));
    auto pred = predict_batched(model, images_val.slice(0, 0, n), device, B).argmax(1);
    std::vector<torch::Tensor> tiles;
    for (int64_t i = 0; i < n; ++i) {
      tiles.push_back(images_val[i][0]);
      tiles.push_back(label_to_rgb(F::one_hot(labels_val[i].to(torch::kLong), K).permute({2, 0, 1}).to(torch::kFloat32)));
      tiles.push_back(label_to_rgb(F::one_hot(pred[i], K).permute({2, 0, 1}).to(torch::kFloat32)));
    }
    if (!tiles.empty()) write_montage_png(montage_path, tiles, 3);
  }
}

}  // namespace

std::vector<double> deep_supervision_weights(int64_t n) {
  std::vector<double> w(n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) w[i] = std::pow(0.5, static_cast<double>(i));
  if (n > 1) w[n - 1] = 0;  // nnU-Net v2 ignores the lowest resolution
  for (double x : w) sum += x;
  for (double& x : w) x /= sum;
  return w;
}

torch::Tensor loss_dice_ce(const torch::Tensor& logits, const torch::Tensor& target, const SegLossOptions& o) {
  // logits [B, K, H, W], target [B, H, W] int64.
  const int64_t K = logits.size(1);
  auto ce = F::cross_entropy(logits, target);
  auto probs = logits.softmax(1);
  auto oh = F::one_hot(target, K).permute({0, 3, 1, 2}).to(probs.dtype());  // [B, K, H, W]
  std::vector<int64_t> axes = o.batch_dice ? std::vector<int64_t>{0, 2, 3} : std::vector<int64_t>{2, 3};
  auto tp = (probs * oh).sum(axes), fp = (probs * (1 - oh)).sum(axes), fn = ((1 - probs) * oh).sum(axes);
  auto dc = (2 * tp + o.smooth) / (2 * tp + fp + fn + o.smooth).clamp_min(1e-8);  // [K] or [B, K]
  auto dice_fg = dc.narrow(-1, 1, K - 1).mean();  // background excluded (nnU-Net do_bg = False)
  return o.ce_weight * ce - o.dice_weight * dice_fg;
}

SegSlices load_segmentation_data(const SegDataOptions& o) {
  BRAINSPADE_CHECK_INPUT(!o.sources.empty(), "config key 'data.sources': no training data listed");
  BRAINSPADE_CHECK_INPUT(o.weights.empty() || o.weights.size() == o.sources.size(), "config key 'data.weights': ",
                         o.weights.size(), " weights for ", o.sources.size(), " sources");
  BRAINSPADE_CHECK_INPUT(o.source_downsample.empty() || o.source_downsample.size() == o.sources.size(),
                         "config key 'data.source_downsample': ", o.source_downsample.size(), " factors for ",
                         o.sources.size(), " sources");
  std::vector<torch::Tensor> im, lab, sub, sl, src;
  int64_t subject_offset = 0;
  std::string spacing_source;  // the first slice dataset: every other one must share its voxel spacing
  SegSlices s;
  for (size_t i = 0; i < o.sources.size(); ++i) {
    auto p = load_source(o.sources[i], o.source_downsample.empty() ? o.downsample : o.source_downsample[i], o.modalities);
    if (!o.label_map.empty()) {
      const int64_t mx = p.labels.max().item<int64_t>();
      BRAINSPADE_CHECK_INPUT(mx < static_cast<int64_t>(o.label_map.size()), o.sources[i], ": has label ", mx,
                             " but config key 'data.label_map' has only ", o.label_map.size(), " entries");
      p.labels = torch::tensor(o.label_map, torch::kLong).index({p.labels});
    }
    if (!im.empty())
      BRAINSPADE_CHECK_INPUT(p.images.sizes().slice(1) == im[0].sizes().slice(1), o.sources[i], ": slices of ",
                             p.images.sizes(), " differ from the first source's ", im[0].sizes());
    if (p.has_spacing) {
      if (spacing_source.empty()) {
        spacing_source = o.sources[i];
        s.spacing = p.spacing;
      }
      BRAINSPADE_CHECK_INPUT(same_spacing(p.spacing, s.spacing), o.sources[i], " was sliced at ", p.spacing[0], "x",
                             p.spacing[1], "x", p.spacing[2], " mm but ", spacing_source, " at ", s.spacing[0], "x",
                             s.spacing[1], "x", s.spacing[2], " mm; slice both at one data.spacing");
    }
    spdlog::info("segmentation data: {} slices of {}x{} from {}", p.images.size(0), p.images.size(2), p.images.size(3),
                 o.sources[i]);
    im.push_back(p.images.to(torch::kFloat32));
    lab.push_back(p.labels.to(torch::kUInt8));
    sub.push_back(p.subject - p.subject.min() + subject_offset);
    subject_offset = sub.back().max().item<int64_t>() + 1;
    sl.push_back(p.slice_index);
    src.push_back(torch::full({p.images.size(0)}, static_cast<int64_t>(i), torch::kLong));
  }
  s.images = torch::cat(im);
  s.labels = torch::cat(lab);
  s.subject = torch::cat(sub);
  s.slice_index = torch::cat(sl);
  s.source = torch::cat(src);
  return s;
}

SegValidation train_segmenter(const SegmenterTrainConfig& cfg, bool resume) {
  Distributed& dist = distributed();
  torch::Device device = dist.local_device(parse_device(cfg.run.device));
  dist.check_global_batch(cfg.train.batch_size, "train.batch_size");
  const int64_t K = static_cast<int64_t>(cfg.data.class_names.size());
  BRAINSPADE_CHECK_INPUT(cfg.model.num_classes == K, "config key 'model.num_classes' (", cfg.model.num_classes,
                         ") must equal the number of data.class_names (", K, ")");
  BRAINSPADE_CHECK_INPUT(cfg.model.in_channels == cfg.data.channels(), "config key 'model.in_channels' (",
                         cfg.model.in_channels, ") must equal the number of input channels: ",
                         cfg.data.modalities.empty() ? std::string("1 (data.modalities is empty)")
                                                     : fmt::format("{} (data.modalities [{}])", cfg.data.channels(),
                                                                   fmt::join(cfg.data.modalities, ", ")));
  auto data = load_segmentation_data(cfg.data);
  const int64_t H = data.images.size(2), W = data.images.size(3);
  const int64_t mx = data.labels.max().item<int64_t>();
  BRAINSPADE_CHECK_INPUT(mx < K, "training labels go up to ", mx, " but there are only ", K,
                         " classes (data.class_names); map them with data.label_map");
  const int64_t div = cfg.model.size_divisor();
  BRAINSPADE_CHECK_INPUT(H % div == 0 && W % div == 0, "slices of ", H, "x", W, " are not divisible by ", div, " (",
                         cfg.model.features.size() - 1, " downsamplings of model.features)");

  const uint64_t seed = static_cast<uint64_t>(cfg.run.seed);
  Split split = split_rows(data.subject, data.slice_index, cfg.train.val_fraction, seed);
  BRAINSPADE_CHECK_INPUT(!split.train.empty(), "no training slices left after the validation split");
  auto train_rows = torch::tensor(split.train, torch::kLong);
  auto images_train = data.images.index_select(0, train_rows);
  auto labels_train = data.labels.index_select(0, train_rows);
  auto source_train = data.source.index_select(0, train_rows);
  auto val_rows = split.val.empty() ? train_rows.slice(0, 0, std::min<int64_t>(8, train_rows.size(0)))
                                    : torch::tensor(split.val, torch::kLong);
  auto images_val = data.images.index_select(0, val_rows);
  auto labels_val = data.labels.index_select(0, val_rows);
  const int64_t N = images_train.size(0);

  const int64_t B = cfg.train.batch_size;
  const BatchWeights bw = batch_weights(cfg, source_train, labels_train, K);
  const auto& row_w = bw.row;
  const auto& fg_w = bw.foreground;
  const int64_t rare = bw.rare_class, n_fg = bw.n_foreground;
  spdlog::info("segmenter: {} training / {} validation slices of {}x{}, {} classes; rarest class '{}', {} of {} per batch "
               "from its slices", N, images_val.size(0), H, W, K, rare > 0 ? cfg.data.class_names[rare] : "-", n_fg, B);

  torch::manual_seed(seed);
  Segmenter model = nullptr;
  check_networks_fit("section 'model'", fmt::format("{}x{}x{} slices", cfg.data.channels(), H, W), [&] {
    model = Segmenter(cfg.model);
    model->eval();
    model->forward(torch::zeros({1, cfg.data.channels(), H, W}));
    model->train();
  });
  model->to(device);
  torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(cfg.optim.lr)
                                                 .momentum(cfg.optim.momentum)
                                                 .nesterov(true)
                                                 .weight_decay(cfg.optim.weight_decay));

  // Brain-extracted training images have a zero background; `segment` warns when a head with skull is given.
  const bool zero_background = (images_train == 0).to(torch::kDouble).mean().item<double>() >= 0.05;
  StageRun run("segmenter", "train segmenter", cfg.run, cfg.train, dump_config(cfg), model_section("model", cfg.model));
  run.track("segmenter", *model);
  run.track("optim", opt);
  run.on_save([&](Checkpoint& ck) {
    ck.set_strings("class_names", cfg.data.class_names);
    ck.set_int("slice_height", H * cfg.data.downsample);
    ck.set_int("slice_width", W * cfg.data.downsample);
    ck.set_int("downsample", cfg.data.downsample);
    ck.set_string("layout", cfg.data.layout);
    ck.set("slice_spacing", torch::tensor(std::vector<double>(data.spacing.begin(), data.spacing.end()), torch::kDouble));
    ck.set_int("zero_background", zero_background ? 1 : 0);
    if (!cfg.data.modalities.empty()) ck.set_strings("modalities", cfg.data.modalities);  // the channel order
  });
  const int64_t start = run.begin(resume);

  model->train();
  SegValidation last_val;
  for (int64_t step = start; step < cfg.train.steps;) {
    if (run.interrupted(step)) return last_val;
    const uint64_t step_seed = derive_seed(seed, 8, static_cast<uint64_t>(step));
    torch::manual_seed(step_seed);
    auto gen = make_generator(step_seed);
    auto rows = torch::multinomial(row_w, B - n_fg, true, gen);
    if (n_fg > 0) rows = torch::cat({rows, torch::multinomial(fg_w, n_fg, true, gen)});
    auto x = images_train.index_select(0, rows).clone();                         // [B, C, H, W]
    auto y = labels_train.index_select(0, rows).to(torch::kLong).contiguous();   // [B, H, W]
    augment_batch(x, y, K, cfg.augment, gen);
    // The global batch is drawn and augmented on every rank; each keeps its contiguous rows.
    x = dist.local_rows(x).to(device);  // [B/world, 1, H, W]
    y = dist.local_rows(y).to(device);
    dist.seed_network_draws(step_seed);
    const double lr = cfg.optim.lr * std::pow(1.0 - static_cast<double>(step) / cfg.train.steps, cfg.optim.poly_exponent);
    for (auto& g : opt.param_groups()) static_cast<torch::optim::SGDOptions&>(g.options()).lr(lr);

    auto outs = model->forward(x);
    auto w = deep_supervision_weights(static_cast<int64_t>(outs.size()));
    torch::Tensor loss = torch::zeros({}, x.options());
    for (size_t i = 0; i < outs.size(); ++i) {
      if (w[i] == 0) continue;
      auto t = i == 0 ? y
                      : F::interpolate(y.unsqueeze(1).to(torch::kFloat32),
                                       F::InterpolateFuncOptions()
                                           .size(std::vector<int64_t>{outs[i].size(2), outs[i].size(3)})
                                           .mode(torch::kNearest))
                            .squeeze(1)
                            .to(torch::kLong);
      loss = loss + w[i] * loss_dice_ce(outs[i], t, cfg.loss);
    }
    opt.zero_grad();
    loss.backward();
    dist.all_reduce_gradients(model->parameters());
    double gnorm = clip_gradients(model->parameters(), cfg.train.grad_clip);
    opt.step();
    ++step;

    const double lv = loss.item<double>();
    run.check_finite(lv, step, "segmenter loss", " (lower optim.lr or check the data)");
    if (run.log_due(step)) {
      auto row = run.reduce({{"loss", lv}, {"grad_norm", gnorm}, {"lr", lr}});
      if (run.validate_due(step)) {
        last_val = validate(model, images_val, labels_val, device, B, K);
        row["val_mean_fg_dice"] = last_val.mean_foreground_dice;
        for (int64_t c = 0; c < K; ++c) row["val_dice_" + cfg.data.class_names[c]] = last_val.dice[c];
      }
      run.log(step, row, fmt::format("loss {:.4f}", lv));
    }
    run.checkpoint_if_due(step);
  }
  if (!dist.is_main()) return last_val;
  run.finish();
  if (last_val.dice.empty()) last_val = validate(model, images_val, labels_val, device, B, K);
  report_segmenter(last_val, cfg.data.class_names, model, images_val, labels_val, device, B, run.path("predictions.png"));
  plot_metrics(run.metrics_path(), {"loss", "val_mean_fg_dice"}, run.path("loss.png"));
  return last_val;
}

}  // namespace brainspade
