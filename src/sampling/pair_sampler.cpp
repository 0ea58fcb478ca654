#include "brainspade/sampling/pair_sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/csv.h"
#include "brainspade/core/progress.h"
#include "brainspade/core/runtime.h"
#include "brainspade/core/stop_signal.h"
#include "brainspade/io/geometry.h"
#include "brainspade/draw/montage.h"
#include "brainspade/io/image_io.h"
#include "brainspade/data/slice_dataset.h"

namespace fs = std::filesystem;

namespace brainspade {

void PairSampleJob::visit(ConfigVisitor& v) {
  v.section("run", run);
  v("ldm_checkpoint", ldm_checkpoint, "trained LDM (stage ldm)");
  v("vae_checkpoint", vae_checkpoint, "its VAE; empty = the path stored in the LDM checkpoint");
  v.choice("image_generator", image_generator, {"spade", "randomized"},
           "spade (learned, from style images) or randomized (random per-tissue contrast baseline, section randomized)");
  v("spade_checkpoint", spade_checkpoint, "trained SPADE image generator (stage spade)");
  v("classifier_checkpoint", classifier_checkpoint, "modality classifier for rejection; empty = no rejection");
  v("target_modality", target_modality, "modality the classifier must predict for a pair to be kept");
  v("max_style_redraws", max_style_redraws, "style redraws per pair before keeping the last try (authors: 20)",
    Bounds::non_negative());
  v("styles", styles, "style images (PNG or NIfTI files, or folders of them) of the target contrast");
  v("sample_style", sample_style, "sample z from the style posterior instead of using its mean");
  v("mask_background", mask_background,
    "set SPADE image pixels to 0 where the label map's argmax is background, like skull-stripped real images "
    "(authors: off); the randomized generator always does");
  v("num", num, "pairs to generate", Bounds::at_least(1));
  v.choice("format", format, {"native", "nnunet"}, "output layout: native, or nnU-Net v2 raw (imagesTr/labelsTr/dataset.json)");
  v("nnunet_name", nnunet_name, "nnU-Net dataset folder name (DatasetXXX_Name)");
  v("nnunet_dir", nnunet_dir, "nnU-Net dataset folder (empty = <out_dir>/<nnunet_name>); runs that share it with "
    "nnunet_channel 0, 1, ... make one multi-contrast dataset");
  v("nnunet_channel", nnunet_channel, "input channel this run writes into the nnU-Net dataset (_0000, _0001, ...)",
    Bounds::range(0, 9999));
  v("montage_pairs", montage_pairs, "pairs shown in montage.png", Bounds::non_negative());
  v("label_pairs", label_pairs, "a finished `sample` folder whose label maps (and conditions) this run reuses, pair i "
    "for pair i, instead of sampling its own; empty = sample them (the LDM is then read for its names only)");
  v.section("sampler", sampler);
  v.section("randomized", randomized);
}

std::vector<std::string> expand_style_paths(const std::vector<std::string>& entries) {
  auto is_image = [](const std::string& p) {
    auto has = [&](const std::string& e) { return p.size() >= e.size() && p.compare(p.size() - e.size(), e.size(), e) == 0; };
    return has(".png") || has(".nii") || has(".nii.gz");
  };
  std::vector<std::string> out;
  for (const auto& e : entries) {
    std::error_code ec;
    if (fs::is_directory(e, ec)) {
      std::vector<std::string> in_dir;
      for (const auto& f : fs::directory_iterator(e))
        if (f.is_regular_file() && is_image(f.path().string())) in_dir.push_back(f.path().string());
      std::sort(in_dir.begin(), in_dir.end());
      BRAINSPADE_CHECK_INPUT(!in_dir.empty(), e, ": style folder holds no .png/.nii/.nii.gz image");
      out.insert(out.end(), in_dir.begin(), in_dir.end());
    } else {
      BRAINSPADE_CHECK_INPUT(fs::exists(e, ec), e, ": style image not found");
      out.push_back(e);
    }
  }
  return out;
}

torch::Tensor load_style_image(const std::string& path, int64_t height, int64_t width, int64_t downsample, int64_t z,
                               std::pair<double, double>* brain_stats, const std::array<double, 3>& spacing) {
  torch::Tensor img;  // [H0, W0]
  const bool png = path.size() >= 4 && path.compare(path.size() - 4, 4, ".png") == 0;
  if (png) {
    img = read_png(path);
  } else {
    Volume v = read_volume(path);
    BRAINSPADE_CHECK_INPUT(v.channels() == 1, path, ": a style image must have one channel, this one has ", v.channels());
    if (!same_spacing(v.spacing, spacing) && v.depth() > 1) {
      spdlog::info("style image {} ({}) resampled to {}x{}x{} mm", path, geometry_string(v), spacing[0], spacing[1],
                   spacing[2]);
      v = resample_to_spacing(v, spacing, /*nearest=*/false);
    }
    int64_t zi = z >= 0 ? z : v.depth() / 2;
    BRAINSPADE_CHECK_INPUT(zi < v.depth(), path, ": slice ", zi, " is outside the volume (depth ", v.depth(), ")");
    img = v.data[0][zi];
  }
  BRAINSPADE_CHECK_INPUT(img.dim() == 2, path, ": expected a 2D image");
  img = img.to(torch::kFloat);
  if (downsample > 1) img = torch::avg_pool2d(img.unsqueeze(0), downsample, downsample, 0, true)[0];
  // Z-score within the non-zero (brain) pixels, as the slice datasets are normalised.
  auto mask = img != 0;
  BRAINSPADE_CHECK_INPUT(mask.sum().item<int64_t>() > 16, path, ": style image is (almost) empty");
  auto vals = img.masked_select(mask);
  auto mean = vals.mean(), sd = vals.std().clamp_min(1e-6);
  if (brain_stats) *brain_stats = {mean.item<double>(), sd.item<double>()};
  img = torch::where(mask, (img - mean) / sd, torch::zeros_like(img));
  // Centre crop/pad to height × width.
  auto fit = [](torch::Tensor t, int64_t dim, int64_t size) {
    int64_t n = t.size(dim);
    if (n > size) return t.narrow(dim, (n - size) / 2, size);
    if (n < size) {
      std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
      shape[dim] = size;
      auto out = torch::zeros(shape, t.options());
      out.narrow(dim, (size - n) / 2, n).copy_(t);
      return out;
    }
    return t;
  };
  img = fit(fit(img, 0, height), 1, width);
  return img.unsqueeze(0).contiguous();  // [1, H, W]
}

torch::Tensor synthesize_images(ImageGenerator& g, const torch::Tensor& seg, const torch::Tensor& style, bool sample_style,
                                at::Generator& gen, torch::Device device) {
  torch::NoGradGuard no_grad;
  const auto& o = g.generator->options();
  BRAINSPADE_CHECK_INPUT(seg.dim() == 4 && seg.size(1) == o.label_channels, "label maps have ", seg.dim() == 4 ? seg.size(1) : -1,
                         " channels but the SPADE generator expects ", o.label_channels);
  BRAINSPADE_CHECK_INPUT(seg.size(2) == o.height && seg.size(3) == o.width, "label maps are ", seg.size(2), "x",
                         seg.size(3), " but the SPADE generator makes ", o.height, "x", o.width);
  BRAINSPADE_CHECK_INPUT(style.dim() == 4 && style.size(1) == 1 && style.size(2) == o.height && style.size(3) == o.width,
                         "style images must be [B, 1, ", o.height, ", ", o.width, "]");
  auto enc = g.encoder->encode(style.to(device));
  auto z = enc.mu;
  if (sample_style) z = enc.mu + torch::exp(0.5 * enc.logvar) * torch::randn(enc.mu.sizes(), gen).to(device);
  return g.generator->forward(seg.to(device), z).cpu();
}

namespace {

std::string pair_id(int64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "pair_%06lld", static_cast<long long>(i));
  return buf;
}

/// The part of the config that decides the pairs' content; a folder written with another one is refused.
std::string fingerprint(const PairSampleJob& job) {
  PairSampleJob j = job;
  j.run.out_dir = "";
  j.run.device = "auto";
  j.run.threads = 0;
  j.num = 0;
  return dump_config(j);
}

struct Paths {
  std::string image, pv, seg, record;
};

/// Pairs [first, first + count) of the finished `sample` folder `dir` as a label batch: their PV maps and the
/// conditions of their records (draws 1, nothing disagreeing: the redraws were that run's).
LabelBatch reused_label_batch(const std::string& dir, int64_t first, int64_t count, const LabelGenerator& g) {
  const int64_t k = g.conditioning.dim();
  std::vector<torch::Tensor> pvs, conds;
  for (int64_t i = first; i < first + count; ++i) {  // every record's existence was checked before any output
    const std::string id = pair_id(i), record = dir + "/records/" + id + ".csv";
    const auto rows = parse_csv(read_text(record), record);
    BRAINSPADE_CHECK_INPUT(rows.size() == 1 && rows[0].size() == 8 && rows[0][0] == id, "label_pairs: ", record,
                           " is not a pair record of ", id);
    const auto& fields = rows[0];
    std::vector<double> c;
    std::stringstream ss(fields[2]);
    for (std::string v; std::getline(ss, v, ';');) c.push_back(std::strtod(v.c_str(), nullptr));
    BRAINSPADE_CHECK_INPUT(static_cast<int64_t>(c.size()) == k, "label_pairs: ", record, " holds ", c.size(),
                           " conditions but the LDM is conditioned on ", k);
    auto pv = read_volume(dir + "/" + fields[6]).data;  // [C, 1, H, W]
    BRAINSPADE_CHECK_INPUT(pv.dim() == 4 && pv.size(1) == 1 &&
                               pv.size(0) == static_cast<int64_t>(g.channel_names.size()),
                           "label_pairs: ", dir, "/", fields[6], " has ", pv.size(0), " channels; the LDM's VAE makes ",
                           g.channel_names.size());
    pvs.push_back(pv.select(1, 0).to(torch::kFloat));
    conds.push_back(torch::tensor(c, torch::kFloat));
  }
  LabelBatch b;
  b.pv = torch::stack(pvs);
  b.cond = torch::stack(conds);
  b.draws = torch::ones({count}, torch::kLong);
  b.disagrees = torch::zeros({count}, torch::kBool);
  b.implausible = torch::zeros({count}, torch::kBool);  // given maps are the user's: kept whatever they look like
  return b;
}

}  // namespace

PairSampleSummary run_pair_sampling(const PairSampleJob& job, const Shard& shard) {
  torch::Device device = parse_device(job.run.device);
  BRAINSPADE_CHECK_INPUT(!job.ldm_checkpoint.empty(), "ldm_checkpoint: an LDM checkpoint is required (--ldm)");
  const bool randomized = job.image_generator == "randomized";
  if (randomized) {
    BRAINSPADE_CHECK_INPUT(job.classifier_checkpoint.empty(), "classifier_checkpoint: the classifier's rejection "
                           "applies to image_generator spade only; leave it empty with image_generator randomized");
  } else {
    BRAINSPADE_CHECK_INPUT(!job.spade_checkpoint.empty(), "spade_checkpoint: a SPADE checkpoint is required (--spade)");
    BRAINSPADE_CHECK_INPUT(!job.styles.empty(), "styles: at least one style image (or folder) is required (--style)");
  }
  const std::string out = job.run.out_dir;
  // Refuse a folder that holds another run's pairs, before anything is written.
  const std::string fp_path = out + "/run.yaml", fp = fingerprint(job);
  if (file_exists(fp_path) && read_text(fp_path) != fp)
    throw input_error(out, ": holds pairs of a different run (", fp_path,
                      " differs from this config); choose another --out or remove the folder");

  auto labels = load_label_generator(job.ldm_checkpoint, job.vae_checkpoint, device);
  if (job.label_pairs.empty()) {
    check_sampler_options(labels, job.sampler);  // before any output exists
  } else {
    BRAINSPADE_CHECK_INPUT(fs::is_directory(job.label_pairs), "label_pairs: ", job.label_pairs, " is not a folder");
    BRAINSPADE_CHECK_INPUT(fs::absolute(job.label_pairs).lexically_normal() != fs::absolute(out).lexically_normal(),
                           "label_pairs: ", job.label_pairs, " is this run's own output folder");
    for (int64_t i = 0; i < job.num; ++i)
      BRAINSPADE_CHECK_INPUT(file_exists(job.label_pairs + "/records/" + pair_id(i) + ".csv"), "label_pairs: ",
                             job.label_pairs, " holds no finished pair ", pair_id(i), ": it must be a finished `sample` "
                             "run of at least num (", job.num, ") pairs");
  }
  ImageGenerator images;
  std::vector<std::string> style_paths;
  std::vector<torch::Tensor> styles;
  if (!randomized) {
    images = load_image_generator(job.spade_checkpoint, device);
    BRAINSPADE_CHECK_INPUT(labels.channel_names == images.channel_names, "the label generator makes channels [",
                           fmt::format("{}", fmt::join(labels.channel_names, ",")), "] but SPADE ",
                           job.spade_checkpoint, " was trained on [",
                           fmt::format("{}", fmt::join(images.channel_names, ",")), "]");
    const auto& go = images.generator->options();
    style_paths = expand_style_paths(job.styles);
    for (const auto& p : style_paths)
      styles.push_back(load_style_image(p, go.height, go.width, images.downsample, -1, nullptr, images.spacing));
  }

  ModalityClassifierBundle clf;
  int64_t target = -1;
  if (!job.classifier_checkpoint.empty()) {
    clf = load_classifier(job.classifier_checkpoint, device);
    auto it = std::find(clf.modality_names.begin(), clf.modality_names.end(), job.target_modality);
    BRAINSPADE_CHECK_INPUT(it != clf.modality_names.end(), "target_modality '", job.target_modality,
                           "' is not a modality of classifier ", job.classifier_checkpoint, " (it knows: ",
                           fmt::format("{}", fmt::join(clf.modality_names, ", ")), ")");
    target = it - clf.modality_names.begin();
  }

  make_dirs(out);
  write_text_atomic(fp_path, fp);
  const bool nnunet = job.format == "nnunet";
  const std::string nn_dir = job.nnunet_dir.empty() ? out + "/" + job.nnunet_name : job.nnunet_dir;
  const std::string nn_suffix = fmt::format("_{:04d}.nii.gz", job.nnunet_channel);
  auto paths = [&](int64_t i) {
    std::string id = pair_id(i);
    Paths p;
    p.image = nnunet ? nn_dir + "/imagesTr/" + id + nn_suffix : out + "/images/" + id + ".nii.gz";
    p.seg = nnunet ? nn_dir + "/labelsTr/" + id + ".nii.gz" : out + "/labels/" + id + "_seg.nii.gz";
    p.pv = out + "/labels_pv/" + id + "_pv.nii.gz";
    p.record = out + "/records/" + id + ".csv";
    return p;
  };
  // A killed earlier run may have left half-written temporaries beside the finished pairs: remove those of dead
  // processes (other shards still writing keep theirs).
  int stale = 0;
  for (const std::string& d : {out, out + "/images", out + "/labels", out + "/labels_pv", out + "/records",
                              nn_dir, nn_dir + "/imagesTr", nn_dir + "/labelsTr"})
    stale += remove_dead_temporaries(d);
  if (stale > 0) spdlog::info("removed {} half-written temporaries of an interrupted run", stale);

  const int64_t B = job.sampler.batch_size, n_batches = (job.num + B - 1) / B;
  int64_t mine = 0;
  for (int64_t k = shard.index; k < n_batches; k += shard.count) mine += std::min(B, job.num - k * B);
  PairSampleSummary summary;
  Progress progress("sample pairs", mine);
  StopSignal::install();
  for (int64_t k = shard.index; k < n_batches; k += shard.count) {
    if (StopSignal::requested()) {
      spdlog::warn("interrupted after {} pairs; run the same command again to continue", summary.written);
      break;
    }
    const int64_t first = k * B, count = std::min(B, job.num - first);
    bool done = true;
    for (int64_t i = first; i < first + count; ++i) done = done && file_exists(paths(i).record);
    if (done) {
      summary.skipped += count;
      progress.update(count);
      continue;
    }
    const uint64_t batch_seed = derive_seed(static_cast<uint64_t>(job.run.seed), 0x9a125, static_cast<uint64_t>(k));
    // pv [n, C, H, W]: n = B drawn, or the `count` maps of this batch's pairs taken from label_pairs.
    auto lab = job.label_pairs.empty() ? sample_label_batch(labels, job.sampler, B, batch_seed, device)
                                       : reused_label_batch(job.label_pairs, first, count, labels);
    const int64_t n = lab.pv.size(0);
    at::Generator gen = at::detail::createCPUGenerator(derive_seed(batch_seed, 1));
    std::mt19937_64 rng(derive_seed(batch_seed, 2));
    std::vector<int64_t> style_idx(B, 0);
    if (!randomized)
      for (auto& s : style_idx) s = static_cast<int64_t>(rng() % styles.size());
    auto stack_styles = [&](const std::vector<int64_t>& idx) {
      std::vector<torch::Tensor> v;
      for (int64_t j = 0; j < n; ++j) v.push_back(styles[idx[j]]);
      return torch::stack(v);  // [n, 1, H, W]
    };
    torch::Tensor img;  // [n, 1, H, W]
    if (randomized) {
      // One seed per pair (batch seed, pair index in the batch): a pair's image depends on nothing else.
      std::vector<torch::Tensor> v;
      for (int64_t j = 0; j < n; ++j) {
        uint64_t s = derive_seed(batch_seed, 3, static_cast<uint64_t>(j));
        if (job.randomized.stream > 0) s = derive_seed(s, 0x57e4, static_cast<uint64_t>(job.randomized.stream));
        v.push_back(randomized_image(lab.pv[j], job.randomized, s).image);
      }
      img = torch::stack(v);
    } else {
      img = synthesize_images(images, lab.pv, stack_styles(style_idx), job.sample_style, gen, device);
    }
    std::vector<int64_t> tries(B, 0);
    if (target >= 0) {
      // Authors' rejection loop: a pair whose image the classifier does not see as the target modality gets
      // another style image and is generated again, up to max_style_redraws times.
      for (int64_t attempt = 0; attempt < job.max_style_redraws; ++attempt) {
        torch::Tensor pred;
        {
          torch::NoGradGuard ng;
          pred = clf.net->forward(img.to(device)).modality_logits.argmax(1).cpu();
        }
        std::vector<int64_t> bad;
        for (int64_t j = 0; j < n; ++j)
          if (pred[j].item<int64_t>() != target) bad.push_back(j);
        if (bad.empty()) break;
        for (auto j : bad) style_idx[j] = static_cast<int64_t>(rng() % styles.size()), ++tries[j];
        auto redo = synthesize_images(images, lab.pv, stack_styles(style_idx), job.sample_style, gen, device);
        for (auto j : bad) img[j].copy_(redo[j]);
      }
    }
    if (job.mask_background && !randomized) img = img.masked_fill(lab.pv.argmax(1, true) == 0, 0.0);
    for (int64_t j = 0; j < count; ++j) {
      const int64_t i = first + j;
      Paths p = paths(i);
      auto pv = lab.pv[j];  // [C, H, W]
      write_slice_nifti(p.image, img[j]);
      write_slice_nifti(p.pv, pv);
      const auto seg = pv.argmax(0, true);
      if (nnunet && job.nnunet_channel > 0 && file_exists(p.seg))  // another channel's run wrote this case's labels
        BRAINSPADE_CHECK_INPUT(torch::equal(read_volume(p.seg).data[0][0].round().to(torch::kLong), seg[0].cpu()), p.seg,
                               ": the label map of channel ", job.nnunet_channel, " differs from the one already "
                               "there: runs sharing an nnU-Net folder need the same seed and label generator");
      write_label_slice_nifti(p.seg, seg);
      std::ostringstream cond;
      for (int64_t c = 0; c < lab.cond.size(1); ++c) cond << (c ? ";" : "") << lab.cond[j][c].item<double>();
      const std::string record = csv_row({pair_id(i), std::to_string(batch_seed), cond.str(),
                                          randomized ? std::string("randomized") : style_paths[style_idx[j]],
                                          std::to_string(tries[j]), fs::relative(p.image, out).string(),
                                          fs::relative(p.pv, out).string(), fs::relative(p.seg, out).string()});
      write_text_atomic(p.record, record);  // last: a record marks a finished pair
      summary.rejections += tries[j];
      summary.label_redraws += lab.draws[j].item<int64_t>() - 1;
      summary.lesions_disagreeing += lab.disagrees[j].item<bool>() ? 1 : 0;
      summary.implausible += lab.implausible[j].item<bool>() ? 1 : 0;
      ++summary.written;
    }
    progress.update(count);
  }
  summary.seconds = progress.elapsed_s();
  progress.finish(fmt::format("{} written, {} already there, {} style redraws", summary.written, summary.skipped,
                              summary.rejections));
  if (job.sampler.lesion_redraw > 0 && job.label_pairs.empty())
    spdlog::info("sampler.lesion_redraw: {} label redraws; {} map(s) still disagree with their lesion flags after {} "
                 "(kept as drawn)", summary.label_redraws, summary.lesions_disagreeing, job.sampler.lesion_redraw);
  if (job.label_pairs.empty() && (job.sampler.implausible_redraw > 0 || summary.implausible > 0))
    log_implausible(job.sampler, summary.label_redraws, summary.implausible, summary.written);

  // manifest.csv from every finished record in the folder (all shards that share it).
  std::vector<std::string> records;
  if (fs::exists(out + "/records"))
    for (const auto& f : fs::directory_iterator(out + "/records"))
      if (f.path().extension() == ".csv") records.push_back(f.path().string());
  std::sort(records.begin(), records.end());
  std::string cond_names;
  for (const auto& l : labels.conditioning.lesions) cond_names += (cond_names.empty() ? "" : ";") + l;
  if (labels.conditioning.slice_position) cond_names += std::string(cond_names.empty() ? "" : ";") + "slice_position";
  std::string manifest = csv_row({"id", "seed", "conditions[" + cond_names + "]", "style", "style_redraws", "image",
                                   "label_pv", "label_seg"});
  for (const auto& r : records) manifest += read_text(r);
  write_text_atomic(out + "/manifest.csv", manifest);
  if (nnunet) {
    // nnU-Net v2's dataset.json: channel_names, labels (name -> index), numTraining, file_ending.
    // Another run's channels in a shared folder are kept; its labels must be ours (same seed and label generator).
    nlohmann::ordered_json js, before;
    if (file_exists(nn_dir + "/dataset.json")) {
      try {
        before = nlohmann::ordered_json::parse(read_text(nn_dir + "/dataset.json"));
      } catch (const nlohmann::json::exception& e) {
        throw input_error(nn_dir, "/dataset.json: not valid JSON (", e.what(), ")");
      }
    }
    js["channel_names"] = before.contains("channel_names") && before["channel_names"].is_object()
                              ? before["channel_names"] : nlohmann::ordered_json::object();
    js["channel_names"][std::to_string(job.nnunet_channel)] =
        job.target_modality.empty() ? std::string("MRI") : job.target_modality;
    js["labels"] = nlohmann::ordered_json::object();
    for (size_t c = 0; c < labels.channel_names.size(); ++c) js["labels"][labels.channel_names[c]] = c;
    js["numTraining"] = records.size();
    js["file_ending"] = ".nii.gz";
    js["name"] = job.nnunet_name;
    js["description"] = "brainspade synthetic pairs";
    write_text_atomic(nn_dir + "/dataset.json", js.dump(2) + "\n");
  }
  // Montage of the first pairs present: label | image.
  std::vector<torch::Tensor> tiles;
  for (int64_t i = 0; i < std::min<int64_t>(job.montage_pairs, job.num); ++i) {
    Paths p = paths(i);
    if (!file_exists(p.record)) continue;
    tiles.push_back(label_to_rgb(read_volume(p.pv).data.select(1, 0), labels.channel_names));
    tiles.push_back(read_volume(p.image).data[0][0]);
  }
  if (!tiles.empty()) write_montage_png(out + "/montage.png", tiles, 4);
  spdlog::info("{} pairs in {} ({:.2f} pairs/s); manifest {}/manifest.csv, montage {}/montage.png", records.size(), out,
               summary.written / std::max(1e-9, summary.seconds), out, out);
  return summary;
}

}  // namespace brainspade

namespace brainspade {

TissueContrast tissue_contrast(const torch::Tensor& image, const torch::Tensor& pv, int64_t gm, int64_t wm, double scale,
                               double shift) {
  const auto am = pv.argmax(0);
  const auto im = image.to(torch::kDouble) * scale + shift;
  TissueContrast c;
  c.gm = im.masked_select(am == gm).mean().item<double>();
  c.wm = im.masked_select(am == wm).mean().item<double>();
  return c;
}

void ImageSampleJob::visit(ConfigVisitor& v) {
  v.section("run", run);
  v("spade_checkpoint", spade_checkpoint, "trained SPADE image generator (stage spade)");
  v("labels", labels, "label maps: NIfTI files (C channels, one axial slice), folders of *_pv.nii.gz, or slice datasets (.pt)");
  v("label_rows", label_rows, "rows taken from each slice dataset in labels (empty: every row)", Bounds::non_negative());
  v("styles", styles, "style images (PNG/NIfTI files or folders); label i gets style i mod count");
  v("sample_style", sample_style, "sample z from the style posterior instead of its mean");
}

void run_image_sampling(const ImageSampleJob& job) {
  torch::Device device = parse_device(job.run.device);
  BRAINSPADE_CHECK_INPUT(!job.spade_checkpoint.empty(), "spade_checkpoint: a SPADE checkpoint is required (--spade)");
  BRAINSPADE_CHECK_INPUT(!job.labels.empty(), "labels: at least one label map is required (--labels)");
  BRAINSPADE_CHECK_INPUT(!job.styles.empty(), "styles: at least one style image is required (--style)");
  auto g = load_image_generator(job.spade_checkpoint, device);
  const auto& o = g.generator->options();
  // Every label map to synthesise, as (name, PV slice [C, H, W]); dataset rows are pooled like the training data.
  struct LabelInput {
    std::string name, source;
    torch::Tensor pv;
  };
  std::vector<LabelInput> inputs;
  auto add_nifti = [&](const std::string& path) {
    Volume lv = read_volume(path);
    BRAINSPADE_CHECK_INPUT(lv.depth() == 1, path, ": expected one axial slice, found ", lv.depth());
    std::string stem = fs::path(path).filename().string();
    inputs.push_back({stem.substr(0, stem.find(".nii")), path, lv.data.select(1, 0)});
  };
  for (const auto& e : job.labels) {
    if (fs::is_directory(e)) {
      std::vector<std::string> in;
      for (const auto& f : fs::directory_iterator(e)) {
        auto n = f.path().filename().string();
        if (n.size() > 13 && n.compare(n.size() - 10, 10, "_pv.nii.gz") == 0) in.push_back(f.path().string());
      }
      std::sort(in.begin(), in.end());
      BRAINSPADE_CHECK_INPUT(!in.empty(), e, ": no *_pv.nii.gz label maps in this folder");
      for (const auto& f : in) add_nifti(f);
    } else if (e.size() > 3 && e.compare(e.size() - 3, 3, ".pt") == 0) {
      SliceDataset ds = SliceDataset::load(e);
      BRAINSPADE_CHECK_INPUT(ds.channel_names == g.channel_names, e, ": label channels [",
                             fmt::format("{}", fmt::join(ds.channel_names, ", ")), "] differ from the generator's [",
                             fmt::format("{}", fmt::join(g.channel_names, ", ")), "]");
      std::vector<int64_t> rows = job.label_rows;
      if (rows.empty())
        for (int64_t r = 0; r < ds.size(); ++r) rows.push_back(r);
      for (int64_t r : rows) {
        BRAINSPADE_CHECK_INPUT(r < ds.size(), "config key 'label_rows': row ", r, " is outside ", e, " (", ds.size(),
                               " rows)");
        auto pv = ds.labels[r];
        if (g.downsample > 1) pv = torch::avg_pool2d(pv.unsqueeze(0), g.downsample, g.downsample, 0, true)[0];
        inputs.push_back({fmt::format("{}_{}_z{}", fs::path(e).stem().string(),
                                      ds.subject_names[ds.subject[r].item<int64_t>()], ds.slice_index[r].item<int64_t>()),
                          e, pv});
      }
    } else {
      add_nifti(e);
    }
  }
  auto style_paths = expand_style_paths(job.styles);
  at::Generator gen = at::detail::createCPUGenerator(static_cast<uint64_t>(job.run.seed));
  auto idx = [&](const std::string& n) {
    auto it = std::find(g.channel_names.begin(), g.channel_names.end(), n);
    return it == g.channel_names.end() ? int64_t(-1) : int64_t(it - g.channel_names.begin());
  };
  const int64_t gm = idx("gm"), wm = idx("wm");
  std::ostringstream csv;
  csv << "label,style,style_brain_mean,style_brain_sd,gm,wm,gm_wm_ratio\n";
  double ratio_sum = 0;
  int64_t ratio_n = 0;
  std::vector<torch::Tensor> tiles;
  Progress progress("sample images", static_cast<int64_t>(inputs.size()));
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto& in = inputs[i];
    BRAINSPADE_CHECK_INPUT(in.pv.size(0) == o.label_channels, in.source, ": has ", in.pv.size(0),
                           " channels but the SPADE generator expects ", o.label_channels, " (",
                           fmt::format("{}", fmt::join(g.channel_names, ", ")), ")");
    BRAINSPADE_CHECK_INPUT(in.pv.size(1) == o.height && in.pv.size(2) == o.width, in.source, ": slice is ",
                           in.pv.size(1), "x", in.pv.size(2), " but the generator makes ", o.height, "x", o.width);
    auto seg = in.pv.unsqueeze(0).to(torch::kFloat);  // [1, C, H, W]
    const auto& sp = style_paths[i % style_paths.size()];
    std::pair<double, double> style_scale;  // the style's brain mean and sd
    auto style = load_style_image(sp, o.height, o.width, g.downsample, -1, &style_scale, g.spacing).unsqueeze(0);  // [1, 1, H, W]
    auto img = synthesize_images(g, seg, style, job.sample_style, gen, device);  // [1, 1, H, W]
    write_slice_nifti(job.run.out_dir + "/images/" + in.name + "_image.nii.gz", img[0]);
    if (gm >= 0 && wm >= 0) {
      const TissueContrast c = tissue_contrast(img[0][0].cpu(), seg[0], gm, wm, style_scale.second, style_scale.first);
      csv << csv_field(in.name) << "," << csv_field(sp) << "," << style_scale.first << "," << style_scale.second << "," << c.gm << "," << c.wm
          << "," << c.ratio() << "\n";
      spdlog::debug("{} with style {}: GM {:.3f}, WM {:.3f}, GM/WM {:.3f}", in.name, sp, c.gm, c.wm, c.ratio());
      if (std::isfinite(c.ratio()) && c.ratio() > 0) {
        ratio_sum += c.ratio();
        ++ratio_n;
      }
    }
    if (tiles.size() < 24) {
      tiles.push_back(label_to_rgb(seg[0], g.channel_names));
      tiles.push_back(style[0][0]);
      tiles.push_back(img[0][0]);
    }
    progress.update();
  }
  if (gm >= 0 && wm >= 0) {
    write_text_atomic(job.run.out_dir + "/contrast.csv", csv.str());
    if (ratio_n > 0)
      spdlog::info("output tissue contrast on the styles' intensity scale: mean GM/WM ratio {:.3f} over {} images "
                   "(T1 < 1, PD > 1; per image: {}/contrast.csv)",
                   ratio_sum / ratio_n, ratio_n, job.run.out_dir);
  }
  progress.finish();
  write_montage_png(job.run.out_dir + "/montage.png", tiles, 3);
  spdlog::info("images in {}/images, montage (label | style | output) {}/montage.png", job.run.out_dir, job.run.out_dir);
}

}  // namespace brainspade
