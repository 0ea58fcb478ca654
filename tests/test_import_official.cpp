// brainspade import-official: a state dict saved by the authors' VAE training (tests/data/golden/
// official_vae_final_model.pth, written by scripts/parity/make_golden_official.py from their module) becomes a
// checkpoint that load_vae reads and that reproduces their encoder and decoder; what does not fit is named.
#include <gtest/gtest.h>

#include <filesystem>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/checkpoint.h"
#include "brainspade/core/error.h"
#include "brainspade/inference/import_official.h"
#include "brainspade/inference/label_generator.h"
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
