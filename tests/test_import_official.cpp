// brainspade import-official: a state dict saved by the authors' VAE training (tests/data/golden/
// official_vae_final_model.pth, written by scripts/parity/make_golden_official.py from their module) becomes a
// checkpoint that load_vae reads and that reproduces their encoder and decoder; what does not fit is named. The LDM,
// SPADE and the modality/dataset classifier likewise.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/checkpoint.h"
#include "brainspade/core/error.h"
#include "brainspade/training/import_official.h"
#include "brainspade/inference/image_generator.h"
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
TEST(ImportOfficial, TheAuthorsSPADEEncoderAndGeneratorBecomeASpadeCheckpoint) {
  testutil::TempDir dir;
  const auto enc = testutil::load_golden("official_encoder");
  ASSERT_FALSE(enc.empty());
  auto dict_of = [](const std::vector<std::pair<std::string, torch::Tensor>>& entries) {
    c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
    for (const auto& [k, v] : entries) d.insert(k, v);
    return d;
  };
  std::vector<std::pair<std::string, torch::Tensor>> e_entries;
  for (const auto& [k, v] : enc)
    if (k.rfind("w.", 0) == 0) e_entries.emplace_back(k.substr(2), v);
  write_pickle_dict(dir / "latest_net_E.pth", dict_of(e_entries));

  SPADEGeneratorOptions go;
  go.label_channels = 3;
  go.ngf = 4;
  go.z_dim = 8;
  go.height = 64;
  go.width = 96;
  go.spade_hidden = 128;
  torch::manual_seed(5);
  SPADEGenerator theirs(go);
  auto seg = torch::softmax(3 * torch::randn({2, 3, 64, 96}), 1);
  auto z = torch::randn({2, 8});
  {
    torch::NoGradGuard ng;
    theirs->forward(seg, z);  // batch-norm running statistics away from their initial values
  }
  std::vector<std::pair<std::string, torch::Tensor>> g_entries;
  for (const auto& kv : theirs->named_parameters()) g_entries.emplace_back(kv.key(), kv.value().detach());
  for (const auto& kv : theirs->named_buffers()) g_entries.emplace_back(kv.key(), kv.value());
  write_pickle_dict(dir / "latest_net_G.pth", dict_of(g_entries));

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
  torch::NoGradGuard ng;
  g.encoder->train();  // their mu was computed in train mode: one power iteration of each spectral norm, as here
  const double dmu = (g.encoder->encode(enc.at("x")).mu - enc.at("mu")).abs().max().item<double>();
  EXPECT_LT(dmu, 1e-5) << "the imported style encoder does not give the authors' mu";
  theirs->eval();
  EXPECT_TRUE(torch::equal(g.generator->forward(seg, z), theirs->forward(seg, z)));
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
