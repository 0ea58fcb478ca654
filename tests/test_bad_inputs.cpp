// The catalogue of bad input: every class of bad file, config and checkpoint the CLI accepts, each run through the
// real program. Every row must end with exit code 2, a message naming the problem, and no file written or changed
// (the row's folder and the shared fixtures are snapshotted before and after).
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include <gtest/gtest.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/checkpoint.h"
#include "brainspade/data/slice_dataset.h"
#include "brainspade/io/image_io.h"
#include "brainspade/training/train_ldm.h"
#include "brainspade/training/train_spade.h"
#include "brainspade/training/train_vae.h"
#include "support/helpers.h"
#include "support/phantom.h"

using namespace brainspade;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kZ = 6, kY = 40, kX = 30;

// Every file (relative path → bytes) and folder under `dir`.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string rel = fs::relative(e.path(), dir).string();
    if (e.is_directory()) out[rel + "/"] = "";
    else out[rel] = read_text(e.path().string());
  }
  return out;
}

std::string snapshot_diff(const std::map<std::string, std::string>& a, const std::map<std::string, std::string>& b) {
  std::string d;
  for (const auto& [k, v] : b)
    if (!a.count(k)) d += " +" + k;
    else if (a.at(k) != v) d += " ~" + k;
  for (const auto& [k, v] : a)
    if (!b.count(k)) d += " -" + k;
  return d;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}
std::string head(const std::string& path, double fraction) {
  std::string s = read_text(path);
  return s.substr(0, static_cast<size_t>(s.size() * fraction));
}

std::string crash_input(const std::string& rel) {
  return std::string(BRAINSPADE_SOURCE_DIR) + "/tests/fuzz/corpus/" + rel;
}

// A valid image volume [1, Z, Y, X] and PV maps [6, Z, Y, X] (background with a WM block) on the same grid.
Volume good_image() {
  Volume v;
  v.data = torch::rand({1, kZ, kY, kX}) * 100 + 50;
  v.spacing = {1.0, 1.0, 2.0};
  return v;
}
Volume good_labels() {
  Volume v = good_image();
  auto l = torch::zeros({6, kZ, kY, kX});
  l[0].fill_(1.0);
  l[0].slice(1, 5, 30).slice(2, 5, 25).fill_(0.0);
  l[3].slice(1, 5, 30).slice(2, 5, 25).fill_(1.0);
  v.data = l;
  return v;
}

VAETrainConfig tiny_vae(const std::string& dataset, const std::string& out) {
  VAETrainConfig c;
  c.run.out_dir = out;
  c.run.device = "cpu";
  c.run.threads = 1;
  c.data.dataset = dataset;
  c.vae.in_channels = 6;
  c.vae.channels = {8, 16};
  c.vae.num_res_blocks = 1;
  c.vae.norm_groups = 4;
  c.vae.mid_attention = false;
  c.discriminator.in_channels = 6;
  c.discriminator.ndf = 8;
  c.discriminator.num_layers = 2;
  c.train.steps = 2;
  c.train.batch_size = 2;
  c.train.log_every = 1;
  c.train.checkpoint_every = 2;
  c.train.validate_every = 0;
  c.train.val_fraction = 0.2;
  return c;
}
LDMTrainConfig tiny_ldm(const std::string& dataset, const std::string& vae, const std::string& out) {
  LDMTrainConfig c;
  c.run.out_dir = out;
  c.run.device = "cpu";
  c.run.threads = 1;
  c.data.dataset = dataset;
  c.vae_checkpoint = vae;
  c.unet.in_channels = 3;
  c.unet.out_channels = 3;
  c.unet.model_channels = 8;
  c.unet.channel_mult = {1, 2};
  c.unet.num_res_blocks = 1;
  c.unet.attention_levels = {};
  c.unet.norm_groups = 4;
  c.unet.conditioning = "hybrid";
  c.unet.cond_dim = 1;
  c.train.steps = 2;
  c.train.batch_size = 2;
  c.train.log_every = 1;
  c.train.checkpoint_every = 2;
  c.train.validate_every = 0;
  c.train.val_fraction = 0.2;
  return c;
}

// Inputs shared by every row, made once: images, a phantom dataset, a 2-step VAE and LDM run, their configs.
struct Fixtures {
  testutil::TempDir dir;
  std::string image, labels, dataset, vae_run, vae_ckpt, ldm_ckpt, vae_yaml, ldm_yaml, png;
  Fixtures() {
    torch::manual_seed(0);
    image = dir / "image.nii.gz";
    labels = dir / "labels.nii.gz";
    write_volume(image, good_image());
    write_volume(labels, good_labels());
    png = dir / "slice.png";
    write_png(png, torch::full({8, 8}, 100, torch::kUInt8));
    testutil::PhantomOptions po;
    po.slices = 3;
    dataset = testutil::write_phantom_dataset(dir / "phantom", po);
    vae_run = dir / "vae";
    train_vae(tiny_vae(dataset, vae_run), false);
    vae_ckpt = vae_run + "/checkpoints/last.ckpt";
    train_ldm(tiny_ldm(dataset, vae_ckpt, dir / "ldm"), false);
    ldm_ckpt = dir / "ldm/checkpoints/last.ckpt";
    vae_yaml = dir / "vae.yaml";
    ldm_yaml = dir / "ldm.yaml";
    write_text_atomic(vae_yaml, dump_config(tiny_vae(dataset, "unused")));
    write_text_atomic(ldm_yaml, dump_config(tiny_ldm(dataset, vae_ckpt, "unused")));
  }
};
Fixtures& fixtures() {
  static Fixtures f;
  return f;
}

// A slice config over the given volumes.
std::string slice_config(const std::string& dir, const std::string& image, const std::string& labels) {
  const std::string path = dir + "/slice.yaml";
  testutil::write_file(path, "data:\n  images: [" + image + "]\n  labels: [" + labels + "]\n  height: 32\n  width: 48\n");
  return path;
}
// Writes `volume` with `edit` applied to its data.
std::string edited_volume(const std::string& path, Volume v, const std::function<void(torch::Tensor&)>& edit) {
  edit(v.data);
  write_volume(path, v);
  return path;
}
std::string phantom_with(const std::string& dir, const std::function<void(SliceDataset&)>& edit) {
  auto ds = testutil::make_phantom_dataset({});
  edit(ds);
  ds.save(dir + "/edited.pt");
  return dir + "/edited.pt";
}

// One row: builds its inputs in `dir` and returns the CLI arguments; outputs go to dir/out.
struct Row {
  std::string name;
  std::function<std::string(const std::string& dir)> args;
  std::vector<std::string> expect;  // substrings of the error message (file or key, and the problem)
};

std::vector<Row> rows() {
  const Fixtures* F = &fixtures();  // captured by value: the rows outlive this function
  auto slice = [](const std::string& d, const std::string& img, const std::string& lab) {
    return "slice --config " + slice_config(d, img, lab) + " --out " + d + "/out";
  };
  auto vae = [F](const std::string& d, const std::string& extra) {
    return "train vae --config " + F->vae_yaml + " --out " + d + "/out " + extra;
  };
  auto copy_vae_run = [F](const std::string& d) {
    fs::copy(F->vae_run, d + "/out", fs::copy_options::recursive);
    return d + "/out";
  };
  return {
      // Image files (through `brainspade slice`).
      {"missing file", [=](auto d) { return slice(d, F->image, d + "/nope.nii.gz"); }, {"nope.nii.gz", "not found"}},
      {"empty file",
       [=](auto d) { write_bytes(d + "/empty.nii.gz", ""); return slice(d, d + "/empty.nii.gz", F->labels); },
       {"empty.nii.gz", "empty"}},
      {"truncated .nii.gz",
       [=](auto d) { write_bytes(d + "/cut.nii.gz", head(F->labels, 0.6)); return slice(d, F->image, d + "/cut.nii.gz"); },
       {"cut.nii.gz", "truncated"}},
      {"truncated .nii",
       [=](auto d) {
         write_volume(d + "/raw.nii", good_image());
         write_bytes(d + "/cut.nii", head(d + "/raw.nii", 0.5));
         fs::remove(d + "/raw.nii");
         return slice(d, d + "/cut.nii", F->labels);
       },
       {"cut.nii", "truncated"}},
      {"not an image",
       [=](auto d) { write_bytes(d + "/text.nii.gz", "just some text\n"); return slice(d, d + "/text.nii.gz", F->labels); },
       {"text.nii.gz", "not a readable image"}},
      {"NIfTI header with a non-finite orientation (fuzz finding: abort in vnl_svd)",
       [=](auto d) {
         fs::copy_file(crash_input("nifti/crash_nonfinite_orientation_vnl_abort"), d + "/orient.nii");
         return slice(d, d + "/orient.nii", F->labels);
       },
       {"orient.nii", "NIfTI"}},
      {"style PNG that is not one (fuzz finding: GDCM assert while ITK probed readers)",
       [=](auto d) {
         fs::copy_file(crash_input("png/crash_gdcm_probe_assert"), d + "/style.png");
         return "register-slice --match " + d + "/style.png --reference " + F->image + " --labels " + F->labels;
       },
       {"style.png", "corrupt PNG"}},
      {"image with an extension no reader is chosen for",
       [=](auto d) {
         write_bytes(d + "/scan.dcm", std::string(132, '\0') + "DICM");
         return slice(d, d + "/scan.dcm", F->labels);
       },
       {"scan.dcm", "unsupported image format"}},
      {"2D image where a volume is needed", [=](auto d) { return slice(d, F->png, F->labels); }, {"slice.png", "2D"}},
      {"two-channel image",
       [=](auto d) {
         Volume v = good_labels();
         v.data = v.data.slice(0, 0, 2) * 50;
         write_volume(d + "/two.nii.gz", v);
         return slice(d, d + "/two.nii.gz", F->labels);
       },
       {"two.nii.gz", "single-channel"}},
      {"image and labels on different grids",
       [=](auto d) {
         Volume v = good_image();
         v.spacing = {1.0, 1.5, 2.0};
         write_volume(d + "/other.nii.gz", v);
         return slice(d, d + "/other.nii.gz", F->labels);
       },
       {"other.nii.gz", "labels.nii.gz"}},
      {"NaN voxels",
       [=](auto d) {
         return slice(d, edited_volume(d + "/nan.nii.gz", good_image(), [](auto& t) { t[0][1][2][3] = NAN; }), F->labels);
       },
       {"nan.nii.gz", "NaN"}},
      {"Inf voxels in labels",
       [=](auto d) {
         return slice(d, F->image, edited_volume(d + "/inf.nii.gz", good_labels(), [](auto& t) { t[2][1][2][3] = INFINITY; }));
       },
       {"inf.nii.gz", "infinite"}},
      {"PV maps outside [0, 1]",
       [=](auto d) {
         return slice(d, F->image, edited_volume(d + "/range.nii.gz", good_labels(), [](auto& t) {
           t[0][2][10][10] = -0.5;
           t[1][2][10][10] = 1.5;
         }));
       },
       {"range.nii.gz", "not partial-volume maps"}},
      {"PV maps not summing to 1",
       [=](auto d) {
         return slice(d, F->image, edited_volume(d + "/sum.nii.gz", good_labels(), [](auto& t) { t[1].fill_(0.3); }));
       },
       {"sum.nii.gz", "channel sums deviate"}},
      // Config files and keys.
      {"missing config file", [=](auto d) { return "train vae --config " + d + "/none.yaml --out " + d + "/out"; },
       {"none.yaml", "cannot open"}},
      {"invalid YAML",
       [=](auto d) {
         testutil::write_file(d + "/bad.yaml", "train: {steps: [1, 2\n");
         return "train vae --config " + d + "/bad.yaml --out " + d + "/out";
       },
       {"bad.yaml", "invalid YAML"}},
      {"config key that is a list, not a name (fuzz finding: yaml-cpp bad conversion)",
       [=](auto d) {
         fs::copy_file(crash_input("config/crash_complex_key_bad_conversion"), d + "/key.yaml");
         return "train vae --config " + d + "/key.yaml --out " + d + "/out";
       },
       {"key.yaml", "line 4", "plain name"}},
      {"config with a YAML alias inside its own anchor (SIGSEGV by stack overflow before)",
       [=](auto d) {
         fs::copy_file(crash_input("config/crash_recursive_alias_stack_overflow"), d + "/loop.yaml");
         return "train vae --config " + d + "/loop.yaml --out " + d + "/out";
       },
       {"loop.yaml", "recursive anchor"}},
      {"unknown key in the file",
       [=](auto d) {
         testutil::write_file(d + "/typo.yaml", read_text(F->vae_yaml) + "\noptim_typo:\n  lr: 1\n");
         return "train vae --config " + d + "/typo.yaml --out " + d + "/out";
       },
       {"typo.yaml", "optim_typo"}},
      {"mistyped key override", [=](auto d) { return vae(d, "--set train.stepz=3"); }, {"train.stepz"}},
      {"wrong type", [=](auto d) { return vae(d, "--set train.steps=many"); }, {"train.steps"}},
      {"out-of-range value", [=](auto d) { return vae(d, "--set train.batch_size=0"); }, {"train.batch_size"}},
      {"unknown choice", [=](auto d) { return vae(d, "--set loss.adversarial=wasserstein"); }, {"loss.adversarial"}},
      {"loss weights that do not match the label channels",
       [=](auto d) { return vae(d, "--set loss.channel_weights=[1,4]"); }, {"loss.channel_weights", "6 label channels"}},
      {"network options the VAE refuses", [=](auto d) { return vae(d, "--set vae.norm_groups=3"); },
       {"'vae'", "norm_groups"}},
      {"classifier deeper than the slices allow",
       [=](auto d) {
         const auto ds = SliceDataset::load(F->dataset);
         ClassifierTrainConfig c;
         c.run.device = "cpu";
         c.run.threads = 1;
         c.data.dataset = F->dataset;
         c.classifier.arch = "small";
         c.classifier.n_modalities = static_cast<int64_t>(ds.modality_names.size());
         c.classifier.n_datasets = static_cast<int64_t>(ds.dataset_names.size());
         c.classifier.small_widths = {4, 4, 4, 4, 4, 4, 4};  // 7 poolings of 32x48 slices
         c.train.steps = 1;
         write_text_atomic(d + "/clf.yaml", dump_config(c));
         return "train classifier --config " + d + "/clf.yaml --out " + d + "/out";
       },
       {"section 'classifier'", "1x32x48 slices"}},
      {"sampler steps the DDIM grid cannot use",
       [=](auto d) { return "sample labels --ldm " + F->ldm_ckpt + " -n 2 --sampler ddim --steps 3 --out " + d + "/out"; },
       {"sampler.steps", "timestep 1000"}},
      {"network options the U-Net refuses",
       [=](auto d) { return "train ldm --config " + F->ldm_yaml + " --out " + d + "/out --set unet.attention_levels=[5]"; },
       {"'unet'", "attention_levels"}},
      // Datasets.
      {"missing dataset", [=](auto d) { return vae(d, "--set data.dataset=" + d + "/no.pt"); }, {"no.pt", "not found"}},
      {"truncated dataset",
       [=](auto d) {
         write_bytes(d + "/cut.pt", head(F->dataset, 0.5));
         return vae(d, "--set data.dataset=" + d + "/cut.pt");
       },
       {"cut.pt", "truncated"}},
      {"dataset with NaN labels",
       [=](auto d) {
         return vae(d, "--set data.dataset=" + phantom_with(d, [](auto& ds) { ds.labels[0][1][2][3] = NAN; }));
       },
       {"edited.pt", "NaN"}},
      {"dataset with PV maps outside [0, 1]",
       [=](auto d) {
         return vae(d, "--set data.dataset=" + phantom_with(d, [](auto& ds) { ds.labels[0][1][2][3] = 3.0; }));
       },
       {"edited.pt", "not partial-volume maps"}},
      {"dataset with other channels than the config",
       [=](auto d) { return vae(d, "--set vae.in_channels=9 --set discriminator.in_channels=9"); },
       {"vae.in_channels is 9"}},
      // Checkpoints.
      {"checkpoint of the wrong stage",
       [=](auto d) { return "train ldm --config " + F->ldm_yaml + " --out " + d + "/out --set vae_checkpoint=" + F->ldm_ckpt; },
       {F->ldm_ckpt, "'ldm' checkpoint"}},
      {"truncated checkpoint",
       [=](auto d) {
         write_bytes(d + "/cut.ckpt", head(F->vae_ckpt, 0.5));
         return "train ldm --config " + F->ldm_yaml + " --out " + d + "/out --set vae_checkpoint=" + d + "/cut.ckpt";
       },
       {"cut.ckpt", "truncated"}},
      {"checkpoint whose pickle claims a 1.9 GB string (fuzz finding: LibTorch's unpickler allocated it)",
       [=](auto d) {
         fs::copy_file(crash_input("checkpoint/crash_pickle_length_claims_1_9_gb"), d + "/bomb.ckpt");
         return "train ldm --config " + F->ldm_yaml + " --out " + d + "/out --set vae_checkpoint=" + d + "/bomb.ckpt";
       },
       {"bomb.ckpt", "damaged pickle"}},
      {"config channels differ from the checkpoint's",
       [=](auto d) { return "train ldm --config " + F->ldm_yaml + " --out " + d + "/out --set unet.in_channels=4"; },
       {"unet.in_channels", "latent_channels"}},
      {"checkpoint of another shape on --resume",
       [=](auto d) {
         copy_vae_run(d);
         return vae(d, "--resume --set vae.channels=[8,32]");
       },
       {"last.ckpt", "different network", "vae.channels"}},
      {"truncated last.ckpt on --resume",
       [=](auto d) {
         copy_vae_run(d);
         write_bytes(d + "/out/checkpoints/last.ckpt", head(F->vae_ckpt, 0.7));
         return vae(d, "--resume");
       },
       {"last.ckpt", "truncated"}},
      {"segmenter command given a VAE checkpoint",
       [=](auto d) { return "segment --model " + F->vae_ckpt + " --in " + F->image + " --out " + d + "/out/seg.nii.gz --device cpu"; },
       {"'vae' checkpoint", "'segmenter'"}},
      // Output folders.
      {"output folder owned by another run",
       [=](auto d) {
         copy_vae_run(d);
         return vae(d, "");
       },
       {"last.ckpt", "another run"}},
  };
}

}  // namespace

TEST(BadInputs, EveryClassExitsWith2NamesTheProblemAndWritesNothing) {
  auto& F = fixtures();
  const auto fixtures_before = snapshot(F.dir.path());
  testutil::TempDir work;
  int i = 0;
  for (const auto& row : rows()) {
    SCOPED_TRACE(row.name);
    const std::string d = work / ("row" + std::to_string(i++));
    fs::create_directories(d);
    const std::string args = row.args(d);
    const auto before = snapshot(d);
    auto r = testutil::run_cli("--log-level warn " + args);
    EXPECT_EQ(r.exit_code, 2) << "brainspade " << args << "\n" << r.output;
    for (const auto& e : row.expect) EXPECT_NE(r.output.find(e), std::string::npos) << "no '" << e << "' in:\n" << r.output;
    EXPECT_EQ(r.output.find("terminate called"), std::string::npos) << r.output;
    EXPECT_EQ(snapshot_diff(before, snapshot(d)), "") << "files written or changed by: brainspade " << args;
  }
  EXPECT_EQ(snapshot_diff(fixtures_before, snapshot(F.dir.path())), "") << "shared inputs changed";
}
