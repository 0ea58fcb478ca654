// brainspade import-official: a state dict saved by the authors' VAE training (tests/data/golden/
// official_vae_final_model.pth, written by scripts/parity/make_golden_official.py from their module) becomes a
// checkpoint that load_vae reads and that reproduces their encoder and decoder; what does not fit is named. The LDM,
// SPADE and the modality/dataset classifier likewise. The options they trained with (their VAE/LDM YAML, SPADE's
// opt.txt: written here by the tests in their format and with their key names) give the architecture.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>

#include <fmt/format.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/checkpoint.h"
#include "brainspade/core/error.h"
#include "brainspade/training/import_official.h"
#include "brainspade/training/official_config.h"
#include "brainspade/training/train_ldm.h"
#include "brainspade/training/train_vae.h"
#include "brainspade/inference/image_generator.h"
#include "brainspade/models/spade_discriminator.h"
#include "brainspade/inference/label_generator.h"
#include "brainspade/schedulers/ddpm_scheduler.h"
#include "support/helpers.h"

using namespace brainspade;
namespace fs = std::filesystem;

namespace {
const std::string kWeights = std::string(BRAINSPADE_TEST_DATA) + "/golden/official_vae_final_model.pth";

std::string write_vae_config(const std::string& dir, const std::string& channels) {
  const std::string path = dir + "/vae.yaml";
  write_text_atomic(path, "vae:\n  channels: " + channels + "\n  num_res_blocks: 1\n  latent_channels: 3\n");
  return path;
}

std::string error_of(const ImportOfficialJob& job) {
  try {
    import_official(job);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(ImportOfficial, TheAuthorsVAEWeightsReproduceTheirOutputs) {
  testutil::TempDir dir;
  ImportOfficialJob job;
  job.network = "vae";
  job.weights = kWeights;
  job.config = write_vae_config(dir.path(), "[32]");
  job.out = dir / "vae/checkpoints/last.ckpt";
  const auto s = import_official(job);
  EXPECT_EQ(s.entries, 86);  // every entry of their one-level VAE (weights and biases of 43 layers)
  std::vector<std::string> names;
  AutoencoderKL vae = load_vae(job.out, torch::kCPU, &names);
  EXPECT_EQ(names, (std::vector<std::string>{"background", "csf", "gm", "wm", "deep_gm", "brainstem"}));
  const auto io = testutil::load_golden("official_vae_final_model_io");
  ASSERT_FALSE(io.empty());
  torch::NoGradGuard no_grad;
  auto post = vae->encode(io.at("x"));
  EXPECT_LT((post.mean - io.at("mu")).abs().max().item<double>(), 1e-5);
  EXPECT_LT((post.std() - io.at("sigma")).abs().max().item<double>(), 1e-5);
  EXPECT_LT((vae->decode(io.at("mu")) - io.at("decoded")).abs().max().item<double>(), 1e-5);
}

TEST(ImportOfficial, WhatDoesNotFitIsNamedAndNothingIsWritten) {
  testutil::TempDir dir;
  ImportOfficialJob job;
  job.network = "vae";
  job.weights = kWeights;
  job.out = dir / "out.ckpt";
  // A config for two levels: their weights have no second level (a parameter of ours left unfilled is named).
  job.config = write_vae_config(dir.path(), "[32, 64]");
  std::string e = error_of(job);
  EXPECT_NE(e.find("official_vae_final_model.pth"), std::string::npos) << e;
  EXPECT_NE(e.find("shape"), std::string::npos) << e;
  // Wider than theirs: the first entry (in name order) whose shape differs is named with both shapes.
  job.config = write_vae_config(dir.path(), "[64]");
  e = error_of(job);
  EXPECT_NE(e.find("'decoder.blocks.0.bias' has shape [32]"), std::string::npos) << e;
  EXPECT_NE(e.find("[64] for 'decoder.conv_in.bias'"), std::string::npos) << e;
  // A state dict missing an entry: the parameter left without weights is named.
  job.config = write_vae_config(dir.path(), "[32]");
  auto full = read_pickle_dict(kWeights, "weights");
  c10::impl::GenericDict pruned(c10::StringType::get(), c10::AnyType::get());
  for (const auto& [k, v] : full)
    if (k != "post_quant_conv.bias") pruned.insert(k, v);
  write_pickle_dict(dir / "pruned.pth", pruned);
  job.weights = dir / "pruned.pth";
  e = error_of(job);
  EXPECT_NE(e.find("post_quant_conv.bias"), std::string::npos) << e;
  // The wrong number of channel names, an unknown network, a file that is not a state dict.
  job.weights = kWeights;
  job.channel_names = {"background", "tissue"};
  EXPECT_NE(error_of(job).find("--channels"), std::string::npos);
  job.channel_names.clear();
  job.network = "segmenter";
  EXPECT_NE(error_of(job).find("segmenter"), std::string::npos);
  job.network = "vae";
  job.weights = std::string(BRAINSPADE_TEST_DATA) + "/golden/ordered_dict_state.pth";  // as Module.state_dict() saves
  e = error_of(job);
  EXPECT_NE(e.find("OrderedDict"), std::string::npos) << e;
  EXPECT_NE(e.find("torch.save(dict(torch.load("), std::string::npos) << e;
  write_text_atomic(dir / "notes.pth", "not a pickle");
  job.weights = dir / "notes.pth";
  EXPECT_NE(error_of(job).find("notes.pth"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "out.ckpt"));
}

// The LDM: their DDPM wrapper's state dict (the U-Net under model.diffusion_model. with the authors' names — those of
// tests/data/golden/official_unet.pt, filled with the seeded values their module was run with — and the noise
// schedule as `betas`) → an ldm checkpoint that load_label_generator reads and whose U-Net gives their output.
TEST(ImportOfficial, TheAuthorsLDMBecomesAnLdmCheckpointWithTheirOutput) {
  testutil::TempDir dir;
  const auto g = testutil::load_golden("official_unet");
  ASSERT_FALSE(g.empty());
  c10::impl::GenericDict sd(c10::StringType::get(), c10::AnyType::get());
  for (const auto& [name, value] : testutil::official_seeded_weights(g))  // the fill their module was run with
    sd.insert("model.diffusion_model." + name, value);
  DDPMSchedulerOptions so;  // the library default: linear 1e-4 .. 0.02 over 1000 steps
  sd.insert("betas", DDPMScheduler(so).betas().to(torch::kFloat));
  write_pickle_dict(dir / "final_model.pth", sd);

  ImportOfficialJob v;
  v.network = "vae";
  v.weights = kWeights;
  v.config = write_vae_config(dir.path(), "[32]");
  v.out = dir / "vae.ckpt";
  import_official(v);
  write_text_atomic(dir / "ldm.yaml", "unet:\n  model_channels: 32\n  channel_mult: [1, 2]\n  num_res_blocks: 1\n"
                                      "  attention_levels: [1]\n  num_heads: 2\n  norm_groups: 32\n");
  ImportOfficialJob job;
  job.network = "ldm";
  job.weights = dir / "final_model.pth";
  job.config = dir / "ldm.yaml";
  job.out = dir / "ldm.ckpt";
  job.image_size = {16, 16};
  EXPECT_NE(error_of(job).find("--vae"), std::string::npos);
  job.vae_checkpoint = v.out;
  EXPECT_EQ(import_official(job).entries, 224);
  LabelGenerator lg = load_label_generator(job.out, "", torch::kCPU);
  EXPECT_EQ(lg.latent_shape, (std::vector<int64_t>{3, 16, 16}));
  torch::NoGradGuard ng;
  const double diff = (lg.unet(g.at("x"), g.at("t"), g.at("cond")) - g.at("out")).abs().max().item<double>();
  EXPECT_LT(diff, 1e-5) << "the imported U-Net does not give the authors' output";
  // Another noise schedule in the config than the one they trained with: named.
  write_text_atomic(dir / "ldm_cosine.yaml", read_text(dir / "ldm.yaml") + "scheduler:\n  beta_schedule: cosine\n");
  job.config = dir / "ldm_cosine.yaml";
  job.out = dir / "ldm_cosine.ckpt";
  const std::string e = error_of(job);
  EXPECT_NE(e.find("betas"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(job.out));
}

// SPADE: the style encoder's state dict is the one of the authors' own ConvEncoder (tests/data/golden/
// official_encoder.pt, their names and values), so the imported checkpoint must give their mu; the generator's
// (the same names as theirs, proven by SPADEGenerator.MatchesTheAuthorsModule) must come through unchanged.
namespace {
struct TheirSPADE {
  std::map<std::string, torch::Tensor> enc;  // the golden: x, mu and the weights under w.
  SPADEGenerator G{nullptr};                 // label 3, ngf 4, z_dim 8, 64x96, batch statistics moved
  torch::Tensor seg, z;
};

// Writes dir/latest_net_E.pth and dir/latest_net_G.pth as their train script saves them (plain dicts).
TheirSPADE write_their_spade(const std::string& dir) {
  TheirSPADE t;
  t.enc = testutil::load_golden("official_encoder");
  auto dict_of = [](const std::vector<std::pair<std::string, torch::Tensor>>& entries) {
    c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
    for (const auto& [k, v] : entries) d.insert(k, v);
    return d;
  };
  std::vector<std::pair<std::string, torch::Tensor>> e_entries;
  for (const auto& [k, v] : t.enc)
    if (k.rfind("w.", 0) == 0) e_entries.emplace_back(k.substr(2), v);
  write_pickle_dict(dir + "/latest_net_E.pth", dict_of(e_entries));

  SPADEGeneratorOptions go;
  go.label_channels = 3;
  go.ngf = 4;
  go.z_dim = 8;
  go.height = 64;
  go.width = 96;
  go.spade_hidden = 128;
  torch::manual_seed(5);
  t.G = SPADEGenerator(go);
  t.seg = torch::softmax(3 * torch::randn({2, 3, 64, 96}), 1);
  t.z = torch::randn({2, 8});
  {
    torch::NoGradGuard ng;
    t.G->forward(t.seg, t.z);  // batch-norm running statistics away from their initial values
  }
  std::vector<std::pair<std::string, torch::Tensor>> g_entries;
  for (const auto& kv : t.G->named_parameters()) g_entries.emplace_back(kv.key(), kv.value().detach());
  for (const auto& kv : t.G->named_buffers()) g_entries.emplace_back(kv.key(), kv.value());
  write_pickle_dict(dir + "/latest_net_G.pth", dict_of(g_entries));
  return t;
}

// The checkpoint at `path` gives their encoder's mu and their generator's output.
void expect_their_spade_outputs(const std::string& path, TheirSPADE& t) {
  ImageGenerator g = load_image_generator(path, torch::kCPU);
  torch::NoGradGuard ng;
  g.encoder->train();  // their mu was computed in train mode: one power iteration of each spectral norm, as here
  const double dmu = (g.encoder->encode(t.enc.at("x")).mu - t.enc.at("mu")).abs().max().item<double>();
  EXPECT_LT(dmu, 1e-5) << "the imported style encoder does not give the authors' mu";
  t.G->eval();
  EXPECT_TRUE(torch::equal(g.generator->forward(t.seg, t.z), t.G->forward(t.seg, t.z)));
}
}  // namespace

TEST(ImportOfficial, TheAuthorsSPADEEncoderAndGeneratorBecomeASpadeCheckpoint) {
  testutil::TempDir dir;
  TheirSPADE theirs = write_their_spade(dir.path());
  ASSERT_FALSE(theirs.enc.empty());
  write_text_atomic(dir / "spade.yaml",
                    "generator:\n  label_channels: 3\n  ngf: 4\n  z_dim: 8\n  height: 64\n  width: 96\n"
                    "  spade_hidden: 128\nencoder:\n  ndf: 4\n  z_dim: 8\n  num_layers: 6\n  height: 256\n"
                    "  width: 256\ndiscriminator:\n  label_channels: 3\n");
  ImportOfficialJob job;
  job.network = "spade";
  job.weights = dir / "latest_net_G.pth";
  job.config = dir / "spade.yaml";
  job.out = dir / "spade/checkpoints/last.ckpt";
  job.channel_names = {"background", "gm", "wm"};
  // Without the encoder's weights: named, nothing written.
  EXPECT_NE(error_of(job).find("--encoder-weights"), std::string::npos);
  EXPECT_FALSE(fs::exists(job.out));
  job.encoder_weights = dir / "latest_net_E.pth";
  job.modality_names = {"T1", "FLAIR", "PD"};
  import_official(job);

  ImageGenerator g = load_image_generator(job.out, torch::kCPU);
  EXPECT_EQ(g.channel_names, job.channel_names);
  EXPECT_EQ(g.modality_names, job.modality_names);
  expect_their_spade_outputs(job.out, theirs);
}

// Their discriminator (latest_net_D.pth, for fine-tuning from their weights) travels in the SPADE checkpoint: the
// weights of tests/data/golden/official_discriminator.pt, written under their names, come back out of the
// checkpoint as a MultiscaleDiscriminator that gives their module's ten feature maps; one of another width is named.
TEST(ImportOfficial, TheAuthorsDiscriminatorComesWithTheirSPADEAndGivesTheirFeatures) {
  testutil::TempDir dir;
  TheirSPADE theirs = write_their_spade(dir.path());
  const auto d_golden = testutil::load_golden("official_discriminator");
  ASSERT_FALSE(d_golden.empty());
  c10::impl::GenericDict d_dict(c10::StringType::get(), c10::AnyType::get());
  for (const auto& [k, v] : d_golden)
    if (k.rfind("w.", 0) == 0) d_dict.insert(k.substr(2), v);
  write_pickle_dict(dir / "latest_net_D.pth", d_dict);
  auto write_config = [&](int ndf) {
    write_text_atomic(dir / "spade.yaml",
                      "generator:\n  label_channels: 3\n  ngf: 4\n  z_dim: 8\n  height: 64\n  width: 96\n"
                      "  spade_hidden: 128\nencoder:\n  ndf: 4\n  z_dim: 8\n  num_layers: 6\n  height: 256\n"
                      "  width: 256\ndiscriminator:\n  label_channels: 3\n  image_channels: 1\n  ndf: " +
                          std::to_string(ndf) + "\n  num_layers: 4\n  num_d: 2\n  downsample_kernel: 4\n");
  };
  ImportOfficialJob job;
  job.network = "spade";
  job.weights = dir / "latest_net_G.pth";
  job.encoder_weights = dir / "latest_net_E.pth";
  job.discriminator_weights = dir / "latest_net_D.pth";
  job.config = dir / "spade.yaml";
  job.out = dir / "spade/checkpoints/last.ckpt";
  job.channel_names = {"background", "gm", "wm"};
  write_config(16);  // twice their width: every conv's shape differs
  const std::string err = error_of(job);
  EXPECT_NE(err.find("latest_net_D.pth"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(job.out));

  write_config(8);
  import_official(job);
  expect_their_spade_outputs(job.out, theirs);
  MultiscaleDiscriminatorOptions o;
  o.label_channels = 3;
  o.image_channels = 1;
  o.ndf = 8;
  o.num_layers = 4;
  o.num_d = 2;
  o.downsample_kernel = 4;
  MultiscaleDiscriminator D(o);
  Checkpoint::load(job.out).load_module("discriminator", *D, job.out);
  torch::NoGradGuard ng;
  auto feats = D->forward_input(d_golden.at("x"));  // train mode, as their golden: one power iteration per norm
  const double worst = testutil::worst_feature_difference(feats, d_golden, 2, 5);
  std::printf("    imported discriminator vs the authors' module: max |difference| %.2e over 10 feature maps\n", worst);
  EXPECT_LT(worst, 1e-5);
}

// The modality/dataset classifier: their Modisc's state dict (N_net_MD.pth) under their names — those of
// tests/data/golden/official_classifier.pt, filled with the seeded values their module was run with, the batch-norm
// step counters as int64 like theirs — becomes a classifier checkpoint that load_classifier (the reader of the SPADE
// trainer's classifier_checkpoint and of sampling) turns into their logits; a misfit exits 2 naming the entry.
TEST(ImportOfficial, ClassifierReproducesTheAuthorsLogits) {
  testutil::TempDir dir;
  const auto g = testutil::load_golden("official_classifier");
  ASSERT_FALSE(g.empty());
  auto write_state = [&](const std::string& path, const std::string& drop, const std::string& reshape) {
    c10::impl::GenericDict sd(c10::StringType::get(), c10::AnyType::get());
    for (const auto& [name, value] : testutil::official_seeded_weights(g)) {
      if (name == drop) continue;
      const bool counter = name.size() > 19 && name.compare(name.size() - 19, 19, "num_batches_tracked") == 0;
      sd.insert(name, name == reshape ? torch::cat({value, value}) : counter ? value.to(torch::kLong) : value);
    }
    write_pickle_dict(path, sd);
  };
  write_state(dir / "40_net_MD.pth", "", "");
  auto yaml = [](const std::string& arch) {
    return "classifier:\n  arch: " + arch + "\n  n_modalities: 2\n  n_datasets: 3\n  dropout: 0.2\n";
  };
  write_text_atomic(dir / "classifier.yaml", yaml("densenet121"));
  ImportOfficialJob job;
  job.network = "classifier";
  job.weights = dir / "40_net_MD.pth";
  job.config = dir / "classifier.yaml";
  job.out = dir / "classifier/checkpoints/last.ckpt";
  job.modality_names = {"T1", "FLAIR"};
  EXPECT_NE(error_of(job).find("--datasets"), std::string::npos);
  job.dataset_names = {"SABRE", "ADNI2"};  // the config has 3
  EXPECT_NE(error_of(job).find("classifier.n_datasets"), std::string::npos);
  EXPECT_FALSE(fs::exists(job.out));
  job.dataset_names = {"SABRE", "ADNI2", "BRATS"};
  EXPECT_EQ(import_official(job).entries, 729);  // 120 convolutions, 121 batch norms (5 entries each), 2 heads

  ModalityClassifierBundle clf = load_classifier(job.out, torch::kCPU);
  EXPECT_EQ(clf.modality_names, job.modality_names);
  EXPECT_EQ(clf.dataset_names, job.dataset_names);
  torch::NoGradGuard ng;
  auto out = clf.net->forward(g.at("x"));  // eval mode, as load_classifier leaves it
  const double dmod = (out.modality_logits - g.at("modality")).abs().max().item<double>();
  const double ddat = (out.dataset_logits - g.at("dataset")).abs().max().item<double>();
  std::printf("    imported Modisc: max |difference| modality %.2e, dataset %.2e\n", dmod, ddat);
  EXPECT_LT(dmod, 1e-5) << "the imported classifier does not give the authors' modality logits";
  EXPECT_LT(ddat, 1e-5) << "the imported classifier does not give the authors' dataset logits";

  // Misfits, through the program: exit 2, the entry named, nothing written.
  const std::string out2 = dir / "refused/last.ckpt";
  auto cli = [&](const std::string& weights) {
    return testutil::run_cli("import-official --network classifier --weights " + weights + " --config " + job.config +
                             " --modalities T1,FLAIR --datasets SABRE,ADNI2,BRATS --out " + out2);
  };
  // A batch-norm statistic missing (a state dict saved without its buffers would leave the eval-mode statistics at
  // their initial values).
  write_state(dir / "missing.pth", "base_model.features.denseblock2.denselayer3.layers.norm1.running_var", "");
  auto r = cli(dir / "missing.pth");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("features.denseblock2.denselayer3.layers.norm1.running_var"), std::string::npos) << r.output;
  // Another dataset head than the config's.
  write_state(dir / "wide.pth", "", "ds_layer_2.bias");
  r = cli(dir / "wide.pth");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("'ds_layer_2.bias' has shape [6]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[3] for 'dataset_layers.out.bias'"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out2));
  // Their network is a DenseNet-121: another trunk in the config is named.
  write_text_atomic(dir / "small.yaml", yaml("small"));
  job.config = dir / "small.yaml";
  job.out = out2;
  EXPECT_NE(error_of(job).find("densenet121"), std::string::npos);
  EXPECT_FALSE(fs::exists(out2));
}

// ---- The options they trained with (--official-config) ----

namespace {
// The value a translation gives `key` (fixed or default), on one line; "(absent)" when it sets none.
std::string translated(const OfficialConfig& c, const std::string& key) {
  for (const auto* list : {&c.fixed, &c.defaults})
    for (const auto& e : *list)
      if (e.key == key) return yaml_flow(e.value);
  return "(absent)";
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? text : text.replace(at, from.size(), to);
}

std::string translation_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no InputError)";
}

// A stage-1 config of theirs for the VAE of official_vae_final_model.pth: one level of 32 channels, 3 latent channels.
const std::string kTheirVAE = R"(stage1:
  base_lr: 0.0001
  disc_lr: 0.0003
  lr_decay: 0.99999
  perceptual_weight: 0.001
  gan_weight: 0.01
  kl_weight: 0.00001
  params:
    embed_dim: 3
    hparams:
      z_channels: 3
      resolution: [16, 16]
      in_channels: 6
      out_channels: 6
      n_channels: 32
      ch_mult: [1]
      num_res_blocks: 1
      attn_resolutions: []

discriminator:
  params:
    input_nc: 6
    ndf: 16

perceptual_network:
  params:
    net: "vgg"
)";

// A diffusion config of theirs for the U-Net of official_unet.pt: hybrid conditioning on 3 values, 2 levels.
const std::string kTheirLDM = R"(ldm:
  base_lr: 0.00005
  params:
    timesteps: 1000
    beta_schedule: "linear"
    linear_start: 0.0015
    linear_end: 0.0195
    loss_type: "l2"
    log_every_t: 200
    clip_denoised: False
    v_posterior: 0.0
    parameterization: "eps"
    conditioning_key: "hybrid"
    unet_config:
      params:
        image_size: 4
        in_channels: 6
        out_channels: 3
        model_channels: 32
        attention_resolutions: [2]
        num_res_blocks: 1
        channel_mult: [1, 2]
        dropout: 0.0
        num_heads: 2
        resblock_updown: True
        use_spatial_transformer: True
        transformer_depth: 1
        context_dim: 3
)";

// Their opt.txt (save_options: '{:>25}: {:<30}{}', the default after a tab when changed) for the SPADE of
// write_their_spade, with a few of the options that describe no network.
std::string their_opt_txt(const std::map<std::string, std::string>& changed = {}) {
  std::map<std::string, std::pair<std::string, std::string>> opts = {
      {"D_modality_class", {"False", ""}},         {"batchSize", {"8", "1"}},
      {"bound_normalization", {"False", ""}},      {"checkpoints_dir", {"/project/checkpoints", "checkpoints"}},
      {"contain_dontcare_label", {"False", ""}},   {"datasets", {"['SABRE', 'BRATS']", "None"}},
      {"gpu_ids", {"0", ""}},                      {"label_nc", {"3", "182"}},
      {"lr", {"0.0001", "0.0002"}},                {"n_layers_D", {"4", ""}},
      {"name", {"brainspade_tiny", "label2coco"}}, {"ndf", {"64", ""}},
      {"netD", {"multiscale", ""}},                {"netD_subarch", {"n_layer", ""}},
      {"netG", {"spade", ""}},                     {"new_size", {"[64, 96]", "[256, 256]"}},
      {"ngf", {"4", "64"}},                        {"norm_D", {"spectralinstance", ""}},
      {"norm_E", {"spectralinstance", ""}},        {"norm_G", {"spectralspadesyncbatch3x3", ""}},
      {"num_D", {"2", ""}},                        {"num_upsampling_layers", {"normal", ""}},
      {"output_nc", {"1", "3"}},                   {"sequences", {"['T1', 'FLAIR', 'PD']", "['T1', 'FLAIR']"}},
      {"type_prior", {"N", ""}},                   {"upsampling_type", {"upsample", ""}},
      {"z_dim", {"8", "256"}}};
  for (const auto& [k, v] : changed) opts[k].first = v;
  std::string text;
  for (const auto& [k, v] : opts)
    text += fmt::format("{:>25}: {:<30}{}\n", k, v.first, v.second.empty() ? "" : "\t[default: " + v.second + "]");
  return text;
}
}  // namespace

// Their stage-1 YAML: the vae section from their AutoencoderKL parameters, their training settings as defaults; the
// import needs no brainspade config and reproduces their outputs; the resolved config is written beside it.
TEST(ImportOfficial, TheirVAEConfigGivesTheArchitecture) {
  testutil::TempDir dir;
  write_text_atomic(dir / "ae_kl.yaml", kTheirVAE);
  const auto c = read_official_vae_config(dir / "ae_kl.yaml");
  EXPECT_EQ(translated(c, "vae.in_channels"), "6");
  EXPECT_EQ(translated(c, "vae.channels"), "[32]");
  EXPECT_EQ(translated(c, "vae.num_res_blocks"), "1");
  EXPECT_EQ(translated(c, "vae.latent_channels"), "3");
  EXPECT_EQ(translated(c, "vae.mid_attention"), "true");
  EXPECT_EQ(translated(c, "optim.lr"), "0.0001");
  EXPECT_EQ(translated(c, "optim.lr_d"), "0.0003");
  EXPECT_EQ(translated(c, "loss.kl_weight"), "1e-05");
  EXPECT_EQ(translated(c, "loss.adv_weight"), "0.01");
  EXPECT_EQ(translated(c, "loss.perceptual_network"), "vgg16");
  EXPECT_EQ(translated(c, "discriminator.ndf"), "16");
  EXPECT_EQ(translated(c, "discriminator.num_layers"), "3");  // their Discriminator's default

  ImportOfficialJob job;
  job.network = "vae";
  job.weights = kWeights;
  job.official_config = dir / "ae_kl.yaml";
  job.out = dir / "vae/checkpoints/last.ckpt";
  EXPECT_EQ(import_official(job).entries, 86);
  AutoencoderKL vae = load_vae(job.out, torch::kCPU);
  const auto io = testutil::load_golden("official_vae_final_model_io");
  ASSERT_FALSE(io.empty());
  {
    torch::NoGradGuard no_grad;
    EXPECT_LT((vae->encode(io.at("x")).mean - io.at("mu")).abs().max().item<double>(), 1e-5);
    EXPECT_LT((vae->decode(io.at("mu")) - io.at("decoded")).abs().max().item<double>(), 1e-5);
  }
  const auto written = load_config<VAETrainConfig>(ConfigSource{dir / "vae/checkpoints/last.ckpt.yaml", {}, {}});
  EXPECT_EQ(written.vae.channels, (std::vector<int64_t>{32}));
  EXPECT_DOUBLE_EQ(written.optim.lr, 1e-4);

  // A stage config gives the rest: its training values are kept; a network key of another value is named with both.
  write_text_atomic(dir / "vae.yaml", "optim:\n  lr: 0.5\nvae:\n  num_res_blocks: 1\n");
  job.config = dir / "vae.yaml";
  import_official(job);
  EXPECT_DOUBLE_EQ(load_config<VAETrainConfig>(ConfigSource{dir / "vae/checkpoints/last.ckpt.yaml", {}, {}}).optim.lr, 0.5);
  write_text_atomic(dir / "vae.yaml", "vae:\n  channels: [64]\n  latent_channels: 4\n");
  job.out = dir / "refused.ckpt";
  std::string e = error_of(job);
  EXPECT_NE(e.find("vae.channels is [64] there, [32] from their stage1.params.hparams.n_channels"), std::string::npos)
      << e;
  EXPECT_NE(e.find("vae.latent_channels is 4 there, 3 from their stage1.params.embed_dim"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(job.out));
}

TEST(ImportOfficial, TheirVAEConfigValuesBrainspadeCannotBuildAreNamed) {
  testutil::TempDir dir;
  const std::string path = dir / "ae_kl.yaml";
  auto refused = [&](const std::string& text) {
    write_text_atomic(path, text);
    return translation_error([&] { read_official_vae_config(path); });
  };
  std::string e = refused(replaced(kTheirVAE, "attn_resolutions: []", "attn_resolutions: [16]"));
  EXPECT_NE(e.find("'stage1.params.hparams.attn_resolutions: [16]'"), std::string::npos) << e;
  EXPECT_NE(e.find("ae_kl.yaml"), std::string::npos) << e;
  e = refused(replaced(kTheirVAE, "z_channels: 3", "z_channels: 8"));
  EXPECT_NE(e.find("'stage1.params.hparams.z_channels: 8'"), std::string::npos) << e;
  e = refused(replaced(kTheirVAE, "net: \"vgg\"", "net: \"alex\""));
  EXPECT_NE(e.find("'perceptual_network.params.net: alex'"), std::string::npos) << e;
  e = refused(replaced(kTheirVAE, "    embed_dim: 3\n", "    embed_dim: 3\n    ema: True\n"));
  EXPECT_NE(e.find("'stage1.params.ema: True'"), std::string::npos) << e;
  e = refused(replaced(kTheirVAE, "    embed_dim: 3\n", ""));
  EXPECT_NE(e.find("'stage1.params.embed_dim' is missing"), std::string::npos) << e;
  // Through the program: exit 2, nothing written.
  write_text_atomic(path, replaced(kTheirVAE, "ch_mult: [1]", "ch_mult: [1, two]"));
  const auto r = testutil::run_cli("import-official --network vae --weights " + kWeights + " --official-config " + path +
                                   " --out " + (dir / "out.ckpt"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("'stage1.params.hparams.ch_mult' is [1, two]"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "out.ckpt"));
}

// Their diffusion YAML: unet, scheduler and latent from their DDPM and UNetModel parameters. Which values their
// conditioning vector holds is not in it: the stage config names them, and the import gives their U-Net's output.
TEST(ImportOfficial, TheirLDMConfigGivesTheUNetAndTheSchedule) {
  testutil::TempDir dir;
  write_text_atomic(dir / "ldm_v2.yaml", kTheirLDM);
  const auto c = read_official_ldm_config(dir / "ldm_v2.yaml");
  EXPECT_EQ(translated(c, "unet.in_channels"), "3");  // their 6 input channels hold the 3 concatenated values
  EXPECT_EQ(translated(c, "unet.conditioning"), "hybrid");
  EXPECT_EQ(translated(c, "unet.cond_dim"), "3");
  EXPECT_EQ(translated(c, "unet.channel_mult"), "[1, 2]");
  EXPECT_EQ(translated(c, "unet.attention_levels"), "[1]");  // downsampling factor 2
  EXPECT_EQ(translated(c, "unet.num_heads"), "2");
  EXPECT_EQ(translated(c, "unet.resblock_updown"), "true");
  EXPECT_EQ(translated(c, "scheduler.beta_schedule"), "scaled_linear");  // CompVis "linear" is linear in sqrt(beta)
  EXPECT_EQ(translated(c, "scheduler.beta_start"), "0.0015");
  EXPECT_EQ(translated(c, "scheduler.prediction_type"), "epsilon");
  EXPECT_EQ(translated(c, "scheduler.variance_type"), "fixed_small");
  EXPECT_EQ(translated(c, "latent.scale_factor"), "1");
  EXPECT_EQ(translated(c, "optim.lr"), "5e-05");
  EXPECT_EQ(translated(c, "optim.loss"), "l2");
  EXPECT_EQ(translated(c, "conditioning.lesions"), "(absent)");  // three values: brainspade cannot tell which

  const auto g = testutil::load_golden("official_unet");
  ASSERT_FALSE(g.empty());
  c10::impl::GenericDict sd(c10::StringType::get(), c10::AnyType::get());
  for (const auto& [name, value] : testutil::official_seeded_weights(g)) sd.insert("model.diffusion_model." + name, value);
  sd.insert("betas", DDPMScheduler(DDPMSchedulerOptions{}).betas().to(torch::kFloat));
  write_pickle_dict(dir / "final_model.pth", sd);
  ImportOfficialJob v;
  v.network = "vae";
  v.weights = kWeights;
  v.config = write_vae_config(dir.path(), "[32]");
  v.out = dir / "vae.ckpt";
  import_official(v);

  ImportOfficialJob job;
  job.network = "ldm";
  job.weights = dir / "final_model.pth";
  job.official_config = dir / "ldm_v2.yaml";
  job.vae_checkpoint = v.out;
  job.image_size = {16, 16};
  job.out = dir / "ldm.ckpt";
  std::string e = error_of(job);
  EXPECT_NE(e.find("takes 3 conditioning values (ldm.params.unet_config.params.context_dim)"), std::string::npos) << e;
  EXPECT_NE(e.find("conditioning.lesions"), std::string::npos) << e;
  write_text_atomic(dir / "ldm.yaml", "conditioning:\n  lesions: [tumour, edema]\n  slice_position: true\n");
  job.config = dir / "ldm.yaml";
  EXPECT_EQ(import_official(job).entries, 224);
  LabelGenerator lg = load_label_generator(job.out, "", torch::kCPU);
  EXPECT_EQ(lg.conditioning.lesions, (std::vector<std::string>{"tumour", "edema"}));
  EXPECT_EQ(lg.scheduler.beta_schedule, "scaled_linear");
  torch::NoGradGuard ng;
  const double diff = (lg.unet(g.at("x"), g.at("t"), g.at("cond")) - g.at("out")).abs().max().item<double>();
  EXPECT_LT(diff, 1e-5) << "the U-Net built from their config does not give the authors' output";
  const auto written = load_config<LDMTrainConfig>(ConfigSource{dir / "ldm.ckpt.yaml", {}, {}});
  EXPECT_EQ(written.unet.model_channels, 32);
  EXPECT_EQ(written.conditioning.lesions.size(), 2u);
  EXPECT_EQ(read_text(dir / "ldm.yaml"), "conditioning:\n  lesions: [tumour, edema]\n  slice_position: true\n");
}

TEST(ImportOfficial, TheirLDMConfigValuesBrainspadeCannotBuildAreNamed) {
  testutil::TempDir dir;
  const std::string path = dir / "ldm_v2.yaml";
  auto refused = [&](const std::string& text) {
    write_text_atomic(path, text);
    return translation_error([&] { read_official_ldm_config(path); });
  };
  std::string e = refused(replaced(kTheirLDM, "beta_schedule: \"linear\"", "beta_schedule: \"sqrt\""));
  EXPECT_NE(e.find("'ldm.params.beta_schedule: sqrt'"), std::string::npos) << e;
  EXPECT_NE(e.find("ldm_v2.yaml"), std::string::npos) << e;
  e = refused(replaced(kTheirLDM, "resblock_updown: True", "resblock_updown: True\n        use_scale_shift_norm: True"));
  EXPECT_NE(e.find("'ldm.params.unet_config.params.use_scale_shift_norm: True'"), std::string::npos) << e;
  e = refused(replaced(kTheirLDM, "v_posterior: 0.0", "v_posterior: 0.5"));
  EXPECT_NE(e.find("'ldm.params.v_posterior: 0.5'"), std::string::npos) << e;
  e = refused(replaced(kTheirLDM, "conditioning_key: \"hybrid\"", "conditioning_key: \"adm\""));
  EXPECT_NE(e.find("'ldm.params.conditioning_key: adm'"), std::string::npos) << e;
  e = refused(replaced(kTheirLDM, "in_channels: 6", "in_channels: 5"));
  EXPECT_NE(e.find("'ldm.params.unet_config.params.in_channels: 5'"), std::string::npos) << e;
  e = refused(replaced(kTheirLDM, "    timesteps: 1000\n", "    timesteps: 1000\n    scale_factor: 0.18\n"));
  EXPECT_NE(e.find("'ldm.params.scale_factor: 0.18'"), std::string::npos) << e;
  // Their sqrt_linear is brainspade's linear; their cosine and x0-prediction carry over.
  write_text_atomic(path, replaced(replaced(kTheirLDM, "\"linear\"", "\"sqrt_linear\""), "\"eps\"", "\"x0\""));
  const auto c = read_official_ldm_config(path);
  EXPECT_EQ(translated(c, "scheduler.beta_schedule"), "linear");
  EXPECT_EQ(translated(c, "scheduler.prediction_type"), "sample");
}

// SPADE's opt.txt: generator, encoder and discriminator from their options (the encoder as wide as ngf and sized for
// their 256x256 resize), the style classes from their sequences; the import gives their mu and generator output.
TEST(ImportOfficial, TheirSPADEOptionsGiveTheArchitecture) {
  testutil::TempDir dir;
  write_text_atomic(dir / "opt.txt", their_opt_txt());
  const auto c = read_official_spade_options(dir / "opt.txt");
  EXPECT_EQ(translated(c, "generator.label_channels"), "3");
  EXPECT_EQ(translated(c, "generator.ngf"), "4");
  EXPECT_EQ(translated(c, "generator.z_dim"), "8");
  EXPECT_EQ(translated(c, "generator.height"), "64");
  EXPECT_EQ(translated(c, "generator.width"), "96");
  EXPECT_EQ(translated(c, "generator.norm"), "batch");  // spadesyncbatch3x3
  EXPECT_EQ(translated(c, "generator.spectral"), "true");
  EXPECT_EQ(translated(c, "generator.output_activation"), "leaky_relu");
  EXPECT_EQ(translated(c, "encoder.ndf"), "4");
  EXPECT_EQ(translated(c, "encoder.height"), "256");
  EXPECT_EQ(translated(c, "discriminator.label_channels"), "3");
  EXPECT_EQ(translated(c, "discriminator.ndf"), "64");
  EXPECT_EQ(translated(c, "discriminator.num_layers"), "4");
  EXPECT_EQ(translated(c, "discriminator.num_d"), "2");
  EXPECT_EQ(c.modality_names, (std::vector<std::string>{"T1", "FLAIR", "PD"}));

  TheirSPADE theirs = write_their_spade(dir.path());
  ASSERT_FALSE(theirs.enc.empty());
  ImportOfficialJob job;
  job.network = "spade";
  job.weights = dir / "latest_net_G.pth";
  job.encoder_weights = dir / "latest_net_E.pth";
  job.official_config = dir / "opt.txt";
  job.channel_names = {"background", "gm", "wm"};
  job.out = dir / "spade.ckpt";
  job.modality_names = {"T1", "FLAIR"};  // not their sequences: named
  std::string e = error_of(job);
  EXPECT_NE(e.find("--modalities T1,FLAIR differs from their sequences"), std::string::npos) << e;
  job.modality_names.clear();
  import_official(job);
  EXPECT_EQ(load_image_generator(job.out, torch::kCPU).modality_names, c.modality_names);
  expect_their_spade_outputs(job.out, theirs);
}

TEST(ImportOfficial, TheirSPADEOptionsBrainspadeCannotBuildAreNamed) {
  testutil::TempDir dir;
  const std::string path = dir / "opt.txt";
  auto refused = [&](const std::string& text) {
    write_text_atomic(path, text);
    return translation_error([&] { read_official_spade_options(path); });
  };
  std::string e = refused(their_opt_txt({{"norm_E", "spectralbatch"}}));
  EXPECT_NE(e.find("'norm_E: spectralbatch'"), std::string::npos) << e;
  EXPECT_NE(e.find("opt.txt"), std::string::npos) << e;
  e = refused(their_opt_txt({{"norm_G", "spectralspadeinstance5x5"}}));
  EXPECT_NE(e.find("'norm_G: spectralspadeinstance5x5'"), std::string::npos) << e;
  e = refused(their_opt_txt({{"upsampling_type", "transposed"}}));
  EXPECT_NE(e.find("'upsampling_type: transposed'"), std::string::npos) << e;
  e = refused(their_opt_txt({{"new_size", "[64, x]"}}));
  EXPECT_NE(e.find("'new_size: [64, x]' is not a list of integers"), std::string::npos) << e;
  e = refused(replaced(their_opt_txt(), "ngf: ", "ngf "));
  EXPECT_NE(e.find("line 17 is not an option line"), std::string::npos) << e;
  e = refused(std::string("\x80\x04\x95\x10\x00", 5));
  EXPECT_NE(e.find("a pickle (their opt.pkl"), std::string::npos) << e;
  e = refused(replaced(their_opt_txt(), "z_dim", "x_dim"));
  EXPECT_NE(e.find("option 'z_dim' is missing"), std::string::npos) << e;
  // Through the program: exit 2 naming the option, nothing written.
  write_text_atomic(path, their_opt_txt({{"type_prior", "S"}}));
  const auto r = testutil::run_cli("import-official --network spade --weights " + kWeights + " --encoder-weights " +
                                   kWeights + " --official-config " + path + " --out " + (dir / "out.ckpt"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("'type_prior: S'"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "out.ckpt"));
}
