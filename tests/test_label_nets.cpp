// Label generator networks: golden parity of the blocks, seeded shape/NaN/backward tests over case lists,
// and short overfitting runs of a tiny VAE and a tiny diffusion U-Net.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "brainspade/core/checkpoint.h"
#include "brainspade/core/config.h"
#include "brainspade/inference/label_generator.h"
#include "brainspade/losses/losses.h"
#include "brainspade/losses/perceptual.h"
#include "brainspade/models/autoencoder_kl.h"
#include "brainspade/models/diffusion_unet.h"
#include "brainspade/models/official_names.h"
#include "brainspade/models/patch_discriminator.h"
#include "brainspade/nn/blocks.h"
#include "brainspade/schedulers/ddpm_scheduler.h"
#include "support/helpers.h"

using namespace brainspade;

namespace {
// Copies every "w.<name>" golden tensor into the parameter <name>; every parameter must be covered.
void load_weights(torch::nn::Module& m, std::map<std::string, torch::Tensor>& g) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.named_parameters(true)) {
    auto it = g.find("w." + p.key());
    ASSERT_NE(it, g.end()) << "golden file lacks w." << p.key();
    ASSERT_EQ(it->second.sizes(), p.value().sizes()) << p.key();
    p.value().copy_(it->second);
  }
}

// The deterministic fill of scripts/make_golden.py (Params.fill): parameters in sorted-name order from one
// seeded CPU generator; ".weight"/".bias" vectors 1 + 0.1·z / 0.1·z, matrices and kernels z/√fan_in.
void fill_deterministic(torch::nn::Module& m, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto named = m.named_parameters(true);
  std::vector<std::string> names;
  for (auto& p : named) names.push_back(p.key());
  std::sort(names.begin(), names.end());
  auto g = make_generator(seed);
  for (const auto& name : names) {
    auto& p = named[name];
    auto z = torch::randn(p.sizes(), c10::optional<torch::Generator>(g));
    if (p.dim() == 1) {
      const bool weight = name.size() >= 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
      z = weight ? 1.0 + 0.1 * z : 0.1 * z;
    } else {
      z = z / std::sqrt(static_cast<double>(p.numel() / p.size(0)));
    }
    p.copy_(z);
  }
}

bool finite(const torch::Tensor& t) { return torch::isfinite(t).all().item<bool>(); }

// Softmax of smooth random fields: C channels in [0, 1] summing to 1, like partial-volume maps.
torch::Tensor pv_like(int64_t B, int64_t C, int64_t H, int64_t W, uint64_t seed) {
  auto g = make_generator(seed);
  auto coarse = torch::randn({B, C, H / 8, W / 8}, c10::optional<torch::Generator>(g)) * 4.0;
  namespace F = torch::nn::functional;
  auto fine = F::interpolate(coarse, F::InterpolateFuncOptions().size(std::vector<int64_t>{H, W}).mode(torch::kBilinear).align_corners(false));
  return torch::softmax(fine, 1);
}

// Gives every zero-initialised parameter small random values so outputs depend on every path.
void perturb(torch::nn::Module& m, double scale = 0.02) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.parameters()) p.add_(torch::randn_like(p) * scale);
}
}  // namespace

// ------------------------------------------------------------------------------------------------ golden
TEST(Golden, ResBlockWithTimeEmbeddingMatchesPython) {
  auto g = testutil::load_golden("resblock");
  ASSERT_FALSE(g.empty());
  nn::ResBlock rb(nn::ResBlockOptions(16, 24).temb_channels(16).norm_groups(8));
  load_weights(*rb, g);
  rb->eval();
  EXPECT_TRUE(testutil::tensors_close(rb(g["x"], g["temb"]), g["out"], 1e-5, 1e-4));
}

TEST(Golden, AttnBlockMatchesPython) {
  auto g = testutil::load_golden("attnblock");
  ASSERT_FALSE(g.empty());
  nn::AttnBlock ab(nn::AttnBlockOptions(32));
  load_weights(*ab, g);
  EXPECT_TRUE(testutil::tensors_close(ab(g["x"]), g["out"], 1e-5, 1e-4));
}

TEST(Golden, TimestepEmbeddingMatchesPython) {
  auto g = testutil::load_golden("timestep_embedding");
  ASSERT_FALSE(g.empty());
  EXPECT_TRUE(testutil::tensors_close(nn::timestep_embedding(g["t"], 32), g["emb32"], 1e-5, 1e-5));
  EXPECT_TRUE(testutil::tensors_close(nn::timestep_embedding(g["t"], 33), g["emb33"], 1e-5, 1e-5));
  // Float timesteps give the same result.
  EXPECT_TRUE(testutil::tensors_close(nn::timestep_embedding(g["t"].to(torch::kFloat), 32), g["emb32"], 1e-5, 1e-5));
}

TEST(Golden, CrossAttentionTransformerMatchesPython) {
  auto g = testutil::load_golden("transformer");
  ASSERT_FALSE(g.empty());
  nn::SpatialTransformer st(nn::SpatialTransformerOptions(32, 2).context_dim(3));
  load_weights(*st, g);
  st->eval();
  EXPECT_TRUE(testutil::tensors_close(st(g["x"], g["context"]), g["out"], 1e-5, 1e-4));
}

TEST(Golden, TinyAutoencoderKLMatchesPython) {
  auto g = testutil::load_golden("tiny_vae");
  ASSERT_FALSE(g.empty());
  AutoencoderKLOptions o;
  o.channels = {16, 32};
  o.num_res_blocks = 1;
  o.norm_groups = 8;
  AutoencoderKL vae(o);
  EXPECT_EQ(static_cast<int64_t>(vae->parameters().size()), g["n_params"].item<int64_t>());
  fill_deterministic(*vae, 32);
  torch::NoGradGuard no_grad;
  auto post = vae->encode(g["x"]);
  EXPECT_TRUE(testutil::tensors_close(post.mean, g["mean"], 1e-5, 1e-4));
  EXPECT_TRUE(testutil::tensors_close(post.logvar, g["logvar"], 1e-5, 1e-4));
  EXPECT_TRUE(testutil::tensors_close(vae->decode(post.mean), g["rec"], 1e-5, 1e-4));
}

namespace {
// The U-Net of scripts/make_golden.py's ref_tiny_unet: hybrid, cond 3, resblock_updown, two levels.
DiffusionUNetOptions golden_tiny_unet_options() {
  DiffusionUNetOptions o;
  o.model_channels = 16;
  o.channel_mult = {1, 2};
  o.num_res_blocks = 1;
  o.attention_levels = {1};
  o.num_heads = 2;
  o.norm_groups = 8;
  return o;
}

// Fills `unet` as the golden's reference was filled (`seed`) and compares its parameter count and output.
void expect_matches_tiny_unet_golden(DiffusionUNet& unet, std::map<std::string, torch::Tensor>& g, uint64_t seed) {
  EXPECT_EQ(static_cast<int64_t>(unet->parameters().size()), g["n_params"].item<int64_t>());
  fill_deterministic(*unet, seed);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(testutil::tensors_close(unet(g["x"], g["t"], g["cond"]), g["out"], 1e-5, 1e-4));
}
}  // namespace

TEST(Golden, TinyHybridUNetMatchesPython) {
  auto g = testutil::load_golden("tiny_unet");
  ASSERT_FALSE(g.empty());
  DiffusionUNet unet(golden_tiny_unet_options());
  expect_matches_tiny_unet_golden(unet, g, 31);
}

// The condition embedding (cond_embedding: an MLP of cond added to the timestep embedding, CompVis' num_classes
// "sequential"), against scripts/make_golden.py's reference with the same seeded fill; the second row is the
// lesion-flags-nulled input of guidance with cfg_drop: lesions.
TEST(Golden, TinyUNetWithConditionEmbeddingMatchesPython) {
  auto g = testutil::load_golden("tiny_unet_cond_emb");
  ASSERT_FALSE(g.empty());
  auto o = golden_tiny_unet_options();
  o.cond_embedding = true;
  DiffusionUNet unet(o);
  expect_matches_tiny_unet_golden(unet, g, 33);
  torch::NoGradGuard no_grad;
  // Without the embedding the same weights (less label_emb) give another output: the embedding is used.
  o.cond_embedding = false;
  DiffusionUNet plain(o);
  {
    auto mine = unet->named_parameters();
    for (auto& p : plain->named_parameters()) p.value().copy_(mine[p.key()]);
  }
  EXPECT_GT((plain(g["x"], g["t"], g["cond"]) - g["out"]).abs().max().item<double>(), 1e-3);
}

// The authors' own U-Net (condldm_models/unet_v2_conditioned.py UNetModel, hybrid conditioning: 3 condition planes
// concatenated and a one-token context), run from their repository by scripts/parity/make_golden_official.py. Its
// weights are a seeded fill in sorted order of *their* names, repeated here through official_unet_name: every one of
// their entries must land on a parameter of ours of the same shape, every parameter of ours must be filled, and the
// outputs must agree.
TEST(Golden, HybridUNetMatchesTheAuthorsModule) {
  auto g = testutil::load_golden("official_unet");
  ASSERT_FALSE(g.empty());
  DiffusionUNetOptions o;
  o.model_channels = 32;
  o.channel_mult = {1, 2};
  o.num_res_blocks = 1;
  o.attention_levels = {1};
  o.num_heads = 2;
  o.norm_groups = 32;
  DiffusionUNet unet(o);  // hybrid, cond 3, resblock_updown
  auto ours = unet->named_parameters();
  std::set<std::string> filled;
  {
    torch::NoGradGuard no_grad;
    for (const auto& [name, value] : testutil::official_seeded_weights(g)) {
      const std::string mine = official_unet_name(name);
      auto* p = ours.find(mine);
      ASSERT_NE(p, nullptr) << name << " -> " << mine << " is not a parameter of ours";
      ASSERT_EQ(p->sizes(), value.sizes()) << name;
      p->copy_(value);
      filled.insert(mine);
    }
  }
  for (const auto& kv : ours) EXPECT_TRUE(filled.count(kv.key())) << kv.key() << " has no counterpart in theirs";
  torch::NoGradGuard no_grad;
  auto out = unet(g["x"], g["t"], g["cond"]);
  const double diff = (out - g["out"]).abs().max().item<double>();
  std::printf("    authors' UNetModel: %zu entries mapped, max |difference| %.2e (outputs up to %.2f)\n", filled.size(),
              diff, g["out"].abs().max().item<double>());
  EXPECT_LT(diff, 1e-5 * std::max(1.0, g["out"].abs().max().item<double>()));
}

// The authors' label VAE (condldm_models/ae_kl_v1.py AutoencoderKL; flat `blocks` lists mapped by position through
// official_vae_name), seeded the same way: the same posterior mean, sigma and decoding.
TEST(Golden, LabelVAEMatchesTheAuthorsModule) {
  auto g = testutil::load_golden("official_vae");
  ASSERT_FALSE(g.empty());
  AutoencoderKLOptions o;
  o.channels = {32, 64};
  o.num_res_blocks = 1;
  o.latent_channels = 3;
  AutoencoderKL vae(o);
  auto ours = vae->named_parameters();
  std::set<std::string> filled;
  {
    torch::NoGradGuard no_grad;
    for (const auto& [name, value] : testutil::official_seeded_weights(g)) {
      const std::string mine = official_vae_name(name, o);
      auto* p = ours.find(mine);
      ASSERT_NE(p, nullptr) << name << " -> " << mine << " is not a parameter of ours";
      ASSERT_EQ(p->sizes(), value.sizes()) << name << " -> " << mine;
      p->copy_(value);
      filled.insert(mine);
    }
  }
  for (const auto& kv : ours) EXPECT_TRUE(filled.count(kv.key())) << kv.key() << " has no counterpart in theirs";
  torch::NoGradGuard no_grad;
  auto post = vae->encode(g["x"]);
  const double dmu = (post.mean - g["mu"]).abs().max().item<double>();
  const double dsigma = (post.std() - g["sigma"]).abs().max().item<double>();
  const double ddec = (vae->decode(g["mu"]) - g["decoded"]).abs().max().item<double>();
  std::printf("    authors' AutoencoderKL: %zu entries mapped, max |difference| mean %.2e, sigma %.2e, decoded %.2e\n",
              filled.size(), dmu, dsigma, ddec);
  EXPECT_LT(dmu, 1e-5);
  EXPECT_LT(dsigma, 1e-5);
  EXPECT_LT(ddec, 1e-5 * std::max(1.0, g["decoded"].abs().max().item<double>()));
  // A block beyond the architecture is named, not guessed.
  EXPECT_THROW(official_vae_name("encoder.blocks.42.conv1.weight", o), InputError);
}

// ------------------------------------------------------------------------------------------------ blocks
TEST(Blocks, ShapesOverCases) {
  torch::manual_seed(0);
  struct Case {
    int64_t cin, cout, temb;
    std::string resample;
    int64_t h_out;
  };
  for (auto c : std::vector<Case>{{32, 32, 0, "none", 8}, {32, 64, 16, "none", 8}, {32, 32, 16, "down", 4},
                                  {64, 32, 16, "up", 16}}) {
    nn::ResBlock rb(nn::ResBlockOptions(c.cin, c.cout).temb_channels(c.temb).resample(c.resample));
    auto x = torch::randn({2, c.cin, 8, 8}, torch::requires_grad());
    auto y = rb(x, c.temb ? torch::randn({2, c.temb}) : torch::Tensor());
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, c.cout, c.h_out, c.h_out}));
    y.sum().backward();
    EXPECT_TRUE(finite(x.grad()));
  }
  nn::Downsample asym(nn::DownsampleOptions(32)), sym(nn::DownsampleOptions(32).asymmetric_pad(false)),
      pool(nn::DownsampleOptions(32).with_conv(false));
  auto x = torch::randn({1, 32, 12, 16});
  for (auto* d : {&asym, &sym, &pool}) EXPECT_EQ((*d)(x).sizes(), (std::vector<int64_t>{1, 32, 6, 8}));
  nn::Upsample up(32);
  EXPECT_EQ(up(x).sizes(), (std::vector<int64_t>{1, 32, 24, 32}));
  nn::AttnBlock heads(nn::AttnBlockOptions(64).num_heads(4).zero_init_out(true));
  auto xa = torch::randn({2, 64, 4, 6});
  EXPECT_TRUE(torch::equal(heads(xa), xa)) << "zero-initialised proj_out makes the block an identity";
  EXPECT_THROW(nn::ResBlock(nn::ResBlockOptions(48, 48)), c10::Error);  // 48 % 32 != 0
  // Self-attention-only transformer (context_dim 0) has no attn2.
  nn::SpatialTransformer self_only(nn::SpatialTransformerOptions(64, 2));
  EXPECT_FALSE(self_only->named_parameters().contains("transformer_blocks.0.attn2.to_q.weight"));
  EXPECT_EQ(self_only(xa).sizes(), xa.sizes());
}

// ------------------------------------------------------------------------------------------------ VAE
TEST(AutoencoderKL, ShapesNaNAndBackwardOverCases) {
  struct Case {
    std::vector<int64_t> channels;
    bool attention;
    int64_t in_channels, latent, H, W;
  };
  for (const auto& c : std::vector<Case>{{{32, 64}, true, 6, 3, 32, 48},
                                         {{32, 32, 64}, false, 9, 3, 48, 64},
                                         {{32, 64, 64}, true, 6, 8, 16, 32}}) {
    torch::manual_seed(1);
    AutoencoderKLOptions o;
    o.channels = c.channels;
    o.mid_attention = c.attention;
    o.in_channels = c.in_channels;
    o.latent_channels = c.latent;
    o.num_res_blocks = 1;
    AutoencoderKL vae(o);
    const int64_t f = vae->downsampling_factor();
    auto x = pv_like(2, c.in_channels, c.H, c.W, 3);
    auto out = vae(x, make_generator(1));
    EXPECT_EQ(out.posterior.mean.sizes(), (std::vector<int64_t>{2, c.latent, c.H / f, c.W / f}));
    EXPECT_EQ(out.reconstruction.sizes(), x.sizes());
    EXPECT_TRUE(finite(out.reconstruction));
    auto loss = (out.reconstruction - x).abs().mean() + 1e-6 * loss_kl(out.posterior);
    loss.backward();
    for (auto& p : vae->named_parameters())
      ASSERT_TRUE(p.value().grad().defined() && finite(p.value().grad())) << p.key();
  }
}

TEST(AutoencoderKL, PaperScaleGivesA48x64Latent) {
  torch::manual_seed(0);
  AutoencoderKL vae;  // defaults: 6 → {64, 128, 256}, 2 res blocks, z 3
  vae->eval();
  torch::NoGradGuard no_grad;
  auto x = pv_like(1, 6, 192, 256, 1);
  auto t0 = std::chrono::steady_clock::now();
  auto post = vae->encode(x);
  auto t1 = std::chrono::steady_clock::now();
  auto rec = vae->decode(post.mean);
  auto t2 = std::chrono::steady_clock::now();
  std::printf("    paper-scale VAE on 1x6x192x256 (%d threads): encode %.2f s, decode %.2f s\n", at::get_num_threads(),
              std::chrono::duration<double>(t1 - t0).count(), std::chrono::duration<double>(t2 - t1).count());
  EXPECT_EQ(post.mean.sizes(), (std::vector<int64_t>{1, 3, 48, 64}));
  EXPECT_EQ(rec.sizes(), x.sizes());
  // Submodule names follow the authors' state dict.
  auto params = vae->named_parameters();
  for (std::string key : {"encoder.conv_in.weight", "encoder.down.0.block.1.conv2.weight", "encoder.down.1.downsample.conv.weight",
                          "encoder.down.2.block.0.nin_shortcut.weight", "encoder.mid.attn_1.q.weight",
                          "encoder.mid.block_2.norm1.weight", "encoder.norm_out.weight", "quant_conv_mu.weight",
                          "quant_conv_log_sigma.bias", "post_quant_conv.weight", "decoder.up.2.block.0.conv1.weight",
                          "decoder.up.1.upsample.conv.weight", "decoder.conv_out.weight"})
    EXPECT_TRUE(params.contains(key)) << key;
}

TEST(AutoencoderKL, ConstructorAndInputChecksSayWhatIsWrong) {
  AutoencoderKLOptions o;
  o.channels = {64, 100};
  try {
    AutoencoderKL vae(o);
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("divisible by norm_groups"), std::string::npos) << e.what();
  }
  AutoencoderKLOptions small;
  small.channels = {32, 32};
  small.num_res_blocks = 1;
  AutoencoderKL vae(small);
  EXPECT_THROW(vae->encode(torch::zeros({1, 6, 15, 16})), c10::Error);  // H not divisible by 2
  EXPECT_THROW(vae->encode(torch::zeros({1, 5, 16, 16})), c10::Error);  // wrong channel count
}

TEST(AutoencoderKL, RoundTripsThroughACheckpoint) {
  testutil::TempDir dir;
  AutoencoderKLOptions o;
  o.channels = {32, 32};
  o.num_res_blocks = 1;
  torch::manual_seed(8);
  AutoencoderKL a(o), b(o);
  Checkpoint ckpt;
  ckpt.add_module("vae", *a);
  ckpt.save(dir / "vae.ckpt");
  Checkpoint::load(dir / "vae.ckpt").load_module("vae", *b, "test checkpoint");
  torch::NoGradGuard no_grad;
  auto x = pv_like(1, 6, 16, 16, 4);
  EXPECT_TRUE(torch::equal(a->encode(x).mean, b->encode(x).mean));
}

TEST(AutoencoderKL, OptionsLoadFromYaml) {
  auto o = load_config_text<AutoencoderKLOptions>("in_channels: 9\nchannels: [32, 64]\nmid_attention: false\n");
  EXPECT_EQ(o.in_channels, 9);
  EXPECT_EQ(o.channels, (std::vector<int64_t>{32, 64}));
  EXPECT_FALSE(o.mid_attention);
  EXPECT_THROW(load_config_text<AutoencoderKLOptions>("chanels: [32]\n"), InputError);
}

TEST(AutoencoderKL, KLMatchesTheFormula) {
  Posterior p;
  p.mean = torch::tensor({0.5, -1.0}).reshape({2, 1, 1, 1});
  p.logvar = torch::tensor({0.0, std::log(2.0)}).reshape({2, 1, 1, 1});
  // item 0: 0.5·(0.25 + 1 − 0 − 1) = 0.125; item 1: 0.5·(1 + 2 − ln 2 − 1) = 1 − 0.5 ln 2
  double expect = (0.125 + 1.0 - 0.5 * std::log(2.0)) / 2.0;
  EXPECT_NEAR(loss_kl(p).item<double>(), expect, 1e-6);
}

TEST(AutoencoderKL, SoftmaxOutputDecodesToPVMaps) {
  torch::manual_seed(0);
  AutoencoderKLOptions o;
  o.channels = {16, 16};
  o.num_res_blocks = 1;
  o.mid_attention = false;
  o.norm_groups = 8;
  o.output = "softmax";
  AutoencoderKL vae(o);
  torch::NoGradGuard no_grad;
  auto z = torch::randn({2, 3, 8, 8});
  auto raw = vae->decode_raw(z), pv = vae->decode(z);
  EXPECT_TRUE(torch::allclose(pv, torch::softmax(raw, 1)));
  EXPECT_TRUE(torch::allclose(pv.sum(1), torch::ones({2, 16, 16}), 1e-5, 1e-5));
  o.output = "raw";
  AutoencoderKL plain(o);
  EXPECT_TRUE(torch::equal(plain->decode(z), plain->decode_raw(z)));
  EXPECT_THROW(load_config_text<AutoencoderKLOptions>("output: sigmoid\n"), InputError);
}

TEST(Losses, DiceLossesOnHandComputedCases) {
  // One sample, 1x4 pixels. Tissue 0 covers 3 pixels, tissue 1 one; the prediction is flat (0.75 / 0.25).
  auto t = torch::tensor({1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0}).view({1, 2, 1, 4});
  auto p = torch::tensor({0.75, 0.75, 0.75, 0.75, 0.25, 0.25, 0.25, 0.25}).view({1, 2, 1, 4});
  // Dice: tissue 0 1 − 2·2.25/(3 + 3) = 0.25, tissue 1 1 − 2·0.25/(1 + 1) = 0.75; mean 0.5.
  EXPECT_NEAR(loss_soft_dice(p, t, 0.0).item<double>(), 0.5, 1e-6);
  // Generalised: w = 1/3², 1/1²; 1 − 2·(2.25/9 + 0.25)/(6/9 + 2) = 1 − 1/(8/3) = 0.625.
  EXPECT_NEAR(loss_generalized_dice(p, t, 0.0).item<double>(), 0.625, 1e-6);
  // A tissue absent from the sample takes the largest weight (1): its 0.5 predicted on one pixel adds 0.5 to the
  // denominator: 1 − 1/(8/3 + 0.5) = 0.684211.
  auto t3 = torch::cat({t, torch::zeros({1, 1, 1, 4})}, 1);
  auto p3 = torch::cat({p, torch::tensor({0.5, 0.0, 0.0, 0.0}).view({1, 1, 1, 4})}, 1);
  EXPECT_NEAR(loss_generalized_dice(p3, t3, 0.0).item<double>(), 1.0 - 1.0 / (8.0 / 3.0 + 0.5), 1e-6);
  // With absent_max = false (loss.gdice_absent: zero) the absent tissue weighs nothing: back to 0.625.
  EXPECT_NEAR(loss_generalized_dice(p3, t3, 0.0, false).item<double>(), 0.625, 1e-6);
  // A perfect prediction scores 0 for both; samples are averaged.
  auto tt = torch::cat({t, t3.narrow(1, 0, 2).flip(3)}, 0);
  EXPECT_NEAR(loss_soft_dice(tt, tt).item<double>(), 0.0, 1e-6);
  EXPECT_NEAR(loss_generalized_dice(tt, tt).item<double>(), 0.0, 1e-6);
  EXPECT_THROW(loss_soft_dice(p, t.view({1, 2, 4})), c10::Error);
}

TEST(Losses, SoftCrossEntropyMatchesPyTorchAndStillPullsASaturatedTissue) {
  // 3 tissues, 1x4 pixels, soft targets. Reference: torch 1.13 F.cross_entropy(logits, t) with probability targets
  // (python3-torch, float64) = 1.4994496817969103.
  auto logits = torch::tensor({0.5, -1.0, 2.0, 0.0, 1.5, 0.25, -0.5, 3.0, -2.0, 0.0, 1.0, -1.0}, torch::kDouble)
                    .view({1, 3, 1, 4});
  auto t = torch::tensor({0.7, 0.0, 1.0, 0.2, 0.3, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.8}, torch::kDouble).view({1, 3, 1, 4});
  EXPECT_NEAR(loss_soft_cross_entropy(logits, t).item<double>(), 1.4994496817969103, 1e-12);
  // A tissue whose logit the Dice terms drove to -20 everywhere, present on one pixel of four: the soft Dice's
  // gradient on that pixel's logit is ~4e-11 (the softmax has saturated), the cross-entropy's (p − t)/4 = −0.25.
  auto l = torch::tensor({4.0, 4.0, 4.0, 4.0, -20.0, -20.0, -20.0, -20.0}, torch::kDouble).view({1, 2, 1, 4});
  l.set_requires_grad(true);
  auto tt = torch::tensor({1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0}, torch::kDouble).view({1, 2, 1, 4});
  auto g_dice = torch::autograd::grad({loss_soft_dice(torch::softmax(l, 1), tt)}, {l})[0];
  auto g_ce = torch::autograd::grad({loss_soft_cross_entropy(l, tt)}, {l})[0];
  EXPECT_LT(std::abs(g_dice[0][1][0][3].item<double>()), 1e-9);
  EXPECT_NEAR(g_ce[0][1][0][3].item<double>(), -0.25, 1e-9);
  EXPECT_THROW(loss_soft_cross_entropy(l, tt.narrow(1, 0, 1)), c10::Error);
}

TEST(AutoencoderKL, TinyModelOverfitsAFixedPVBatch) {
  torch::manual_seed(0);
  AutoencoderKLOptions o;
  o.channels = {32, 32};
  o.num_res_blocks = 1;
  o.mid_attention = false;
  AutoencoderKL vae(o);
  auto x = pv_like(2, 6, 32, 32, 7);
  torch::optim::Adam opt(vae->parameters(), torch::optim::AdamOptions(2e-3));
  double first = 0, last = 0;
  for (int step = 0; step < 100; ++step) {
    auto out = vae(x, make_generator(step));
    auto loss = (out.reconstruction - x).abs().mean() + 1e-6 * loss_kl(out.posterior);
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (step == 0) first = loss.item<double>();
    last = loss.item<double>();
  }
  std::printf("    tiny VAE loss %.4f -> %.4f (x%.1f)\n", first, last, first / last);
  EXPECT_GT(first / last, 5.0);
}

// ------------------------------------------------------------------------------------------------ discriminator
TEST(PatchDiscriminator, ShapesAndInitOverNormCases) {
  for (std::string norm : {"batch", "instance", "none"}) {
    torch::manual_seed(2);
    PatchDiscriminatorOptions o;
    o.norm = norm;
    o.ndf = 16;
    PatchDiscriminator d(o);
    auto x = torch::randn({2, 6, 192, 256}, torch::requires_grad());
    auto y = d(x);
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 1, 22, 30})) << norm;
    y.mean().backward();
    EXPECT_TRUE(finite(x.grad())) << norm;
    auto w = d->model[0]->as<torch::nn::Conv2d>()->weight;
    EXPECT_NEAR(w.std().item<double>(), 0.02, 0.003) << norm;
    // BatchNorm convs carry no bias (pix2pix use_bias).
    EXPECT_EQ(d->model[2]->as<torch::nn::Conv2d>()->bias.defined(), norm != "batch") << norm;
  }
  PatchDiscriminatorOptions full;  // ndf 64: 64, 128, 256, 512, 1
  PatchDiscriminator d(full);
  EXPECT_EQ(d->model[8]->as<torch::nn::Conv2d>()->weight.size(0), 512);
}

// ------------------------------------------------------------------------------------------------ U-Net
TEST(DiffusionUNet, ShapesNaNAndBackwardOverConditioningModes) {
  struct Case {
    std::string conditioning;
    std::vector<int64_t> mult;
    std::vector<int64_t> attention;
    bool updown;
    int64_t heads, H, W;
  };
  for (const auto& c : std::vector<Case>{{"none", {1, 2}, {1}, true, 1, 16, 16},
                                         {"concat", {1, 2}, {0, 1}, false, 2, 16, 24},
                                         {"crossattn", {1, 1, 2}, {1, 2}, true, 1, 16, 16},
                                         {"hybrid", {1, 1, 2, 2}, {1, 2, 3}, true, 1, 48, 64},
                                         {"hybrid", {1, 2}, {}, false, 1, 8, 8}}) {
    torch::manual_seed(3);
    DiffusionUNetOptions o;
    o.model_channels = 32;
    o.channel_mult = c.mult;
    o.attention_levels = c.attention;
    o.num_res_blocks = 1;
    o.conditioning = c.conditioning;
    o.resblock_updown = c.updown;
    o.num_heads = c.heads;
    o.mid_attention = !c.attention.empty();
    DiffusionUNet unet(o);
    auto x = torch::randn({2, 3, c.H, c.W}, torch::requires_grad());
    auto t = torch::tensor({3, 917}, torch::kLong);
    auto cond = c.conditioning == "none" ? torch::Tensor() : torch::tensor({{1.f, 0.f, 0.3f}, {0.f, 1.f, 0.45f}});
    auto y = unet(x, t, cond);
    EXPECT_EQ(y.sizes(), x.sizes()) << c.conditioning;
    EXPECT_EQ(y.abs().max().item<double>(), 0.0) << "zero-initialised final conv gives a zero output";
    perturb(*unet);
    y = unet(x, t.to(torch::kFloat), cond);
    EXPECT_TRUE(finite(y)) << c.conditioning;
    y.pow(2).mean().backward();
    EXPECT_TRUE(finite(x.grad()) && x.grad().abs().sum().item<double>() > 0) << c.conditioning;
    if (c.conditioning != "none") {
      // The conditioning reaches the output.
      auto y2 = unet(x, t, cond.flip(0));
      EXPECT_GT((y2 - unet(x, t, cond)).abs().max().item<double>(), 0.0) << c.conditioning;
    }
  }
}

TEST(DiffusionUNet, InputChecksAndGuidance) {
  torch::manual_seed(4);
  DiffusionUNetOptions o;
  o.model_channels = 32;
  o.channel_mult = {1, 2};
  o.attention_levels = {1};
  o.num_res_blocks = 1;
  DiffusionUNet unet(o);  // hybrid, cond 3
  perturb(*unet);
  unet->eval();
  auto x = torch::randn({2, 3, 8, 8});
  auto t = torch::tensor({10, 500}, torch::kLong);
  EXPECT_THROW(unet(x, t), c10::Error);                       // conditioned model without cond
  EXPECT_THROW(unet(x, t, torch::zeros({2, 2})), c10::Error);  // wrong cond width
  EXPECT_THROW(unet(torch::randn({2, 3, 9, 8}), t, torch::zeros({2, 3})), c10::Error);
  auto cond = torch::tensor({{1.f, 0.f, 0.3f}, {0.f, 1.f, 0.45f}});
  EXPECT_TRUE(testutil::tensors_close(unet->forward_guided(x, t, cond, 1.0), unet(x, t, cond), 1e-5, 1e-4));
  auto null = unet->null_cond(2);
  EXPECT_TRUE(torch::all(null == -1.0).item<bool>());
  auto s3 = unet->forward_guided(x, t, cond, 3.0);
  auto expect = unet(x, t, null) + 3.0 * (unet(x, t, cond) - unet(x, t, null));
  EXPECT_TRUE(testutil::tensors_close(s3, expect, 1e-5, 1e-4));
  // A scalar timestep is broadcast over the batch.
  EXPECT_TRUE(testutil::tensors_close(unet(x, torch::tensor(10), cond), unet(x, torch::tensor({10, 10}), cond), 1e-6, 1e-5));
}

// Guidance on the lesion flags alone (conditioning.cfg_drop: lesions): the unconditional branch keeps the slice
// position and nulls only the flags, and forward_guided combines the two outputs with that input.
TEST(DiffusionUNet, GuidanceOnTheLesionFlagsAlone) {
  torch::manual_seed(5);
  DiffusionUNetOptions o;
  o.model_channels = 32;
  o.channel_mult = {1, 2};
  o.attention_levels = {1};
  o.num_res_blocks = 1;
  o.cond_embedding = true;
  DiffusionUNet unet(o);
  perturb(*unet);
  unet->eval();
  ConditioningOptions c;
  c.lesions = {"tumour", "edema"};
  c.slice_position = true;
  auto cond = torch::tensor({{1.f, 0.f, 0.3f}, {0.f, 1.f, 0.45f}});
  EXPECT_TRUE(torch::equal(c.unconditional(cond, -1.0), torch::full({2, 3}, -1.f)));  // cfg_drop: all (default)
  c.cfg_drop = "lesions";
  auto u = c.unconditional(cond, -1.0);
  EXPECT_TRUE(torch::equal(u, torch::tensor({{-1.f, -1.f, 0.3f}, {-1.f, -1.f, 0.45f}})));
  EXPECT_TRUE(torch::equal(cond, torch::tensor({{1.f, 0.f, 0.3f}, {0.f, 1.f, 0.45f}})));  // not changed in place
  EXPECT_THROW(c.unconditional(torch::zeros({2, 2}), -1.0), c10::Error);
  auto x = torch::randn({2, 3, 8, 8});
  auto t = torch::tensor({10, 500}, torch::kLong);
  torch::NoGradGuard no_grad;
  auto expect = unet(x, t, u) + 2.5 * (unet(x, t, cond) - unet(x, t, u));
  EXPECT_TRUE(testutil::tensors_close(unet->forward_guided(x, t, cond, 2.5, u), expect, 1e-5, 1e-4));
  // ... which differs from guidance against the fully null condition.
  EXPECT_GT((unet->forward_guided(x, t, cond, 2.5) - expect).abs().max().item<double>(), 1e-4);
  EXPECT_THROW(unet->forward_guided(x, t, cond, 2.5, u.slice(1, 0, 2)), c10::Error);
}

TEST(DiffusionUNet, PaperScaleForward) {
  torch::manual_seed(0);
  DiffusionUNetOptions o;  // defaults: 256 × {1, 2, 3, 4}, attention at levels 1–3 + mid, hybrid cond 3
  DiffusionUNet unet(o);
  unet->eval();
  int64_t n = 0;
  for (auto& p : unet->parameters()) n += p.numel();
  torch::NoGradGuard no_grad;
  auto x = torch::randn({1, 3, 48, 64});
  auto cond = torch::tensor({{1.f, 0.f, 0.35f}});
  auto t0 = std::chrono::steady_clock::now();
  auto y = unet(x, torch::tensor({500}), cond);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("    paper-scale UNet: %.1f M parameters, forward on 1x3x48x64 %.2f s (%d threads)\n", n / 1e6, s,
              at::get_num_threads());
  EXPECT_EQ(y.sizes(), x.sizes());
  auto params = unet->named_parameters();
  for (std::string key : {"time_embed.0.weight", "time_embed.2.weight", "input_blocks.0.0.weight",
                          "input_blocks.1.0.conv1.weight", "input_blocks.3.0.conv1.weight",
                          "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight", "middle_block.1.proj_out.weight",
                          "output_blocks.2.2.conv1.weight", "output_blocks.5.1.proj_out.weight", "out.2.weight"})
    EXPECT_TRUE(params.contains(key)) << key;
  EXPECT_EQ(params["input_blocks.0.0.weight"].size(1), 6) << "hybrid: 3 latent + 3 condition channels";
}

TEST(DiffusionUNet, TinyModelLossFallsOnAFixedBatch) {
  torch::manual_seed(5);
  DiffusionUNetOptions o;
  o.model_channels = 32;
  o.channel_mult = {1, 2};
  o.attention_levels = {1};
  o.num_res_blocks = 1;
  DiffusionUNet unet(o);
  DDPMScheduler sched;
  auto g = make_generator(11);
  auto x0 = torch::randn({4, 3, 8, 8}, c10::optional<torch::Generator>(g)) * 0.5;
  auto noise = torch::randn({4, 3, 8, 8}, c10::optional<torch::Generator>(g));
  auto t = torch::tensor({50, 300, 600, 900}, torch::kLong);
  auto cond = torch::tensor({{1.f, 0.f, 0.3f}, {0.f, 1.f, 0.4f}, {1.f, 1.f, 0.25f}, {0.f, 0.f, 0.5f}});
  auto xt = sched.add_noise(x0, noise, t);
  torch::optim::Adam opt(unet->parameters(), torch::optim::AdamOptions(1e-3));
  double first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    auto loss = loss_diffusion(unet(xt, t, cond), sched.training_target(x0, noise, t), "l1");
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (step == 0) first = loss.item<double>();
    last = loss.item<double>();
  }
  std::printf("    tiny UNet L1 loss %.4f -> %.4f\n", first, last);
  EXPECT_LT(last, 0.6 * first);
}

TEST(DiffusionUNet, OptionsLoadFromYaml) {
  auto o = load_config_text<DiffusionUNetOptions>(
      "model_channels: 32\nchannel_mult: [1, 2]\nattention_levels: [1]\nconditioning: concat\ncond_dim: 2\n");
  EXPECT_EQ(o.concat_channels(), 2);
  EXPECT_EQ(o.context_dim(), 0);
  EXPECT_THROW(load_config_text<DiffusionUNetOptions>("conditioning: film\n"), InputError);
  o.attention_levels = {2};
  EXPECT_THROW(DiffusionUNet{o}, c10::Error);  // only levels 0..1 exist
}

// ------------------------------------------------------------------------------------------------ losses
TEST(Losses, AdversarialCriteriaOnKnownLogits) {
  auto d = torch::tensor({-1.0, 0.0, 2.0});
  EXPECT_NEAR(loss_adversarial(d, GanTarget::Real, true).item<double>(), (4 + 1 + 1) / 3.0, 1e-6);
  EXPECT_NEAR(loss_adversarial(d, GanTarget::Fake, true).item<double>(), (1 + 0 + 4) / 3.0, 1e-6);
  EXPECT_NEAR(loss_adversarial(d, GanTarget::Real, true, "hinge").item<double>(), (2 + 1 + 0) / 3.0, 1e-6);
  EXPECT_NEAR(loss_adversarial(d, GanTarget::Fake, true, "hinge").item<double>(), (0 + 1 + 3) / 3.0, 1e-6);
  EXPECT_NEAR(loss_adversarial(d, GanTarget::Real, false, "hinge").item<double>(), -1.0 / 3.0, 1e-6);
  auto sp = [](double v) { return std::log1p(std::exp(v)); };  // −log σ(−v)
  EXPECT_NEAR(loss_adversarial(d, GanTarget::Real, false, "bce").item<double>(), (sp(1) + sp(0) + sp(-2)) / 3.0, 1e-6);
  EXPECT_NEAR(loss_diffusion(d, torch::zeros(3), "l1").item<double>(), 1.0, 1e-6);
  EXPECT_NEAR(loss_diffusion(d, torch::zeros(3), "l2").item<double>(), 5.0 / 3.0, 1e-6);
  // optim.lesion_weight: errors 1, 0, 2 weighted 1, 1, 11 → (1 + 0 + 22) / 3.
  EXPECT_NEAR(loss_diffusion(d, torch::zeros(3), "l1", torch::tensor({1.0f, 1.0f, 11.0f})).item<double>(), 23.0 / 3.0, 1e-6);
  EXPECT_NEAR(loss_diffusion(d, torch::zeros(3), "l2", torch::tensor({2.0f, 1.0f, 1.0f})).item<double>(), 6.0 / 3.0, 1e-6);
}

TEST(Losses, PerceptualLossLoadsWeightsAndScoresPerChannel) {
  testutil::TempDir dir;
  // A weights file as written by scripts/export_perceptual_weights.py --random: torchvision names + marker.
  torch::manual_seed(6);
  SqueezeNetFeatures net;
  testutil::write_random_feature_weights(net, dir / "squeeze.pt");

  PerceptualLossOptions o;
  o.weights = dir / "squeeze.pt";
  PerceptualLoss loss(o);
  EXPECT_TRUE(loss->random_weights());
  auto x = pv_like(2, 6, 64, 64, 1), y = pv_like(2, 6, 64, 64, 2).requires_grad_();
  EXPECT_NEAR(loss(x, x).item<double>(), 0.0, 1e-8);
  auto l = loss(x, y);
  EXPECT_GT(l.item<double>(), 0.0);
  l.backward();
  EXPECT_TRUE(finite(y.grad()));
  for (auto& p : loss->parameters()) EXPECT_FALSE(p.requires_grad());

  o.weights = dir / "missing.pt";
  try {
    PerceptualLoss missing(o);
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(dir / "missing.pt"), std::string::npos) << e.what();
  }
  o.network = "none";
  PerceptualLoss none(o);
  EXPECT_FALSE(none->enabled());
  EXPECT_EQ(none(x, y).item<double>(), 0.0);
}

TEST(Losses, SpadeVggLossIsTheWeightedL1OverTheFiveVgg19Taps) {
  torch::manual_seed(8);
  VGG19Features net;
  for (auto& p : net.parameters()) p.set_requires_grad(false);
  net.eval();
  auto x = torch::randn({2, 1, 32, 48}).requires_grad_(true), y = torch::randn({2, 1, 32, 48}).requires_grad_(true);
  std::vector<torch::Tensor> fx, fy;
  {
    torch::NoGradGuard ng;
    fx = net.features(x.expand({-1, 3, -1, -1}));
    fy = net.features(y.expand({-1, 3, -1, -1}));
  }
  ASSERT_EQ(fx.size(), 5u);  // relu1_1 … relu5_1: 64, 128, 256, 512, 512 channels at 1, ½, ¼, ⅛, 1/16
  const std::vector<int64_t> channels{64, 128, 256, 512, 512};
  for (size_t i = 0; i < 5; ++i)
    EXPECT_EQ(fx[i].sizes(), torch::IntArrayRef({2, channels[i], 32 >> i, 48 >> i})) << i;
  double expected = 0;
  const double w[5] = {1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0};
  for (size_t i = 0; i < 5; ++i) expected += w[i] * (fx[i] - fy[i]).abs().mean().item<double>();
  auto l = vgg_l1_distance(net, x, y);  // default weights: the authors' 1/32 … 1
  EXPECT_NEAR(l.item<double>(), expected, 1e-5 * expected);
  EXPECT_NEAR(vgg_l1_distance(net, x, y, {0, 0, 0, 0, 1}).item<double>(), (fx[4] - fy[4]).abs().mean().item<double>(),
              1e-6);
  EXPECT_NEAR(vgg_l1_distance(net, x, x).item<double>(), 0.0, 1e-8);
  l.backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_GT(x.grad().abs().sum().item<double>(), 0.0);
  EXPECT_FALSE(y.grad().defined());  // the real image's features are a target
}

// Parity with torchvision: the export script writes random SqueezeNet 1.1 / VGG16 / VGG19 weights, a Python reference
// scores two batches, and the C++ loss must agree. Skipped where /usr/bin/python3 has no torchvision.
TEST(Losses, PerceptualLossMatchesTorchvisionReference) {
  if (std::system("/usr/bin/python3 -c 'import torchvision' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 cannot import torchvision (apt-get install python3-torchvision)";
  testutil::TempDir dir;
  const std::string src = BRAINSPADE_SOURCE_DIR;
  for (std::string arch : {"squeeze", "vgg16", "vgg19"}) {
    const std::string w = dir / (arch + ".pt"), ref = dir / (arch + "_ref.pt");
    ASSERT_EQ(std::system(("/usr/bin/python3 " + src + "/scripts/export_perceptual_weights.py --random --arch " + arch +
                           " --out " + w + " >/dev/null && /usr/bin/python3 " + src +
                           "/scripts/perceptual_reference.py --arch " + arch + " --weights " + w + " --out " + ref)
                              .c_str()),
              0);
    auto g = load_tensor_dict(ref);
    if (arch == "vgg19") {  // SPADE's VGG loss: weighted L1 over relu1_1 ... relu5_1 of grey images
      VGG19Features net;
      net.load_weights(load_tensor_dict(w), w);
      torch::NoGradGuard no_grad;
      std::printf("  vgg19 (SPADE): loss %.5f\n", g["loss"].item<double>());
      EXPECT_TRUE(testutil::tensors_close(net.features(g["x"].expand({-1, 3, -1, -1})).back(), g["last_tap"], 1e-5, 1e-4));
      EXPECT_TRUE(testutil::tensors_close(vgg_l1_distance(net, g["x"], g["y"]), g["loss"], 1e-6, 1e-4));
      continue;
    }
    PerceptualLossOptions o;
    o.network = arch;
    o.weights = w;
    PerceptualLoss loss(o);
    torch::NoGradGuard no_grad;
    std::printf("  %s: loss %.5f\n", arch.c_str(), g["loss"].item<double>());
    EXPECT_GT(g["loss"].item<double>(), 0.0);
    EXPECT_TRUE(testutil::tensors_close(loss(g["x"], g["y"]), g["loss"], 1e-6, 1e-4)) << arch;
  }
}

// Timing of the paper-scale networks on one 192x256 slice (one warm-up, best of 3). Disabled by default;
// run with --gtest_also_run_disabled_tests --gtest_filter='Benchmark.*'.
TEST(Benchmark, DISABLED_PaperScaleForwardTimes) {
  torch::manual_seed(0);
  torch::NoGradGuard no_grad;
  auto best_of = [](const std::function<void()>& f) {
    f();
    double best = 1e30;
    for (int i = 0; i < 3; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      f();
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
  };
  AutoencoderKL vae;
  vae->eval();
  auto x = pv_like(1, 6, 192, 256, 1);
  auto z = vae->encode(x).mean;
  double enc = best_of([&] { vae->encode(x); }), dec = best_of([&] { vae->decode(z); });
  DiffusionUNet unet;
  unet->eval();
  auto cond = torch::tensor({{1.f, 0.f, 0.35f}});
  double fwd = best_of([&] { unet(z, torch::tensor({500}), cond); });
  std::printf("    %d threads: VAE encode %.3f s, decode %.3f s; UNet (256x[1,2,3,4], hybrid 3) forward %.3f s\n",
              at::get_num_threads(), enc, dec, fwd);
}
