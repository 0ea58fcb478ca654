// Modality/dataset classifier: DenseNet-121 structure, shapes and backward, and parity with the authors' module; the
// small trunk learns a separable toy set of two synthetic "modalities" (tissue contrast inverted) and two "datasets"
// (intensity scale).
#include <gtest/gtest.h>

#include <cstdio>
#include <set>

#include "brainspade/losses/spade_losses.h"
#include "brainspade/models/modality_classifier.h"
#include "brainspade/models/official_names.h"
#include "brainspade/training/train_spade.h"
#include "support/helpers.h"

using namespace brainspade;

namespace {
// A disc of "tissue" on a background; modality 0 has bright tissue, modality 1 dark tissue (like T1 vs T2);
// dataset 1 has a different global gain. Random disc centres, radii and noise.
struct Toy {
  torch::Tensor x, modality, dataset;
};
Toy make_toy(int64_t n, uint64_t seed) {
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(seed);
  const int64_t S = 32;
  auto ys = torch::arange(S, torch::kFloat).view({1, S, 1});
  auto xs = torch::arange(S, torch::kFloat).view({1, 1, S});
  auto cx = 10 + 12 * torch::rand({n, 1, 1}, gen), cy = 10 + 12 * torch::rand({n, 1, 1}, gen);
  auto r = 5 + 5 * torch::rand({n, 1, 1}, gen);
  auto inside = ((xs - cx).pow(2) + (ys - cy).pow(2) < r.pow(2)).to(torch::kFloat);  // [n, S, S]
  auto modality = torch::randint(0, 2, {n}, gen);
  auto dataset = torch::randint(0, 2, {n}, gen);
  auto sign = (1 - 2 * modality.to(torch::kFloat)).view({n, 1, 1});
  auto gain = (1 + dataset.to(torch::kFloat)).view({n, 1, 1});
  auto x = gain * (0.5 + sign * 0.4 * inside) + 0.1 * torch::randn({n, S, S}, gen);
  return {x.unsqueeze(1), modality, dataset};
}
}  // namespace

TEST(ModalityClassifier, DenseNet121HasMonaiStructureShapesAndBackward) {
  torch::manual_seed(0);
  ModalityClassifierOptions o;  // defaults: densenet121, 1 channel, dropout 0.2
  o.n_modalities = 3;
  o.n_datasets = 4;
  ModalityClassifier net(o);
  EXPECT_EQ(net->feature_channels(), 1024);
  auto p = net->named_parameters();
  EXPECT_NE(p.find("features.conv0.weight"), nullptr);
  EXPECT_NE(p.find("features.denseblock3.denselayer24.layers.conv2.weight"), nullptr);
  EXPECT_NE(p.find("features.transition3.conv.weight"), nullptr);
  EXPECT_NE(p.find("features.norm5.weight"), nullptr);
  EXPECT_NE(p.find("class_layers.out.weight"), nullptr);
  EXPECT_NE(p.find("dataset_layers.out.weight"), nullptr);
  // 121 = 1 stem conv + 2·(6+12+24+16) dense convs + 3 transition convs + 1 linear
  int64_t convs = 0;
  for (const auto& kv : p)
    if (kv.value().dim() == 4) ++convs;
  EXPECT_EQ(convs, 1 + 2 * (6 + 12 + 24 + 16) + 3);
  auto x = torch::randn({2, 1, 64, 64});
  auto out = net->forward(x);
  EXPECT_EQ(out.modality_logits.sizes(), torch::IntArrayRef({2, 3}));
  EXPECT_EQ(out.dataset_logits.sizes(), torch::IntArrayRef({2, 4}));
  EXPECT_EQ(out.features.sizes(), torch::IntArrayRef({2, 1024, 2, 2}));
  auto l = loss_modality_dataset(out, torch::tensor({0, 2}), torch::tensor({3, 1}), 2.5, 1.0);
  l.total.backward();
  EXPECT_TRUE(torch::isfinite(p["features.conv0.weight"].grad()).all().item<bool>());
  EXPECT_GT(p["features.conv0.weight"].grad().abs().sum().item<double>(), 0.0);
}

namespace {
ModalityClassifier small_trunk() {
  torch::manual_seed(3);
  ModalityClassifierOptions o;
  o.arch = "small";
  o.small_widths = {4, 8, 16};
  ModalityClassifier net(o);
  // Non-trivial batch-norm statistics, so that eval mode is not an identity.
  for (auto& kv : net->named_buffers()) {
    if (kv.key().find("running_mean") != std::string::npos) kv.value().uniform_(-0.2, 0.2);
    if (kv.key().find("running_var") != std::string::npos) kv.value().uniform_(0.5, 1.5);
  }
  net->eval();
  return net;
}
// relu0 by hand: conv3×3 (padding 1, no bias) → eval batch norm → ReLU.
torch::Tensor relu0_by_hand(ModalityClassifier& net, const torch::Tensor& x) {
  auto p = net->named_parameters();
  auto b = net->named_buffers();
  auto h = torch::conv2d(x, p["features.conv0.weight"], {}, 1, 1);
  auto scale = (p["features.norm0.weight"] / torch::sqrt(b["features.norm0.running_var"] + 1e-5)).view({1, -1, 1, 1});
  h = (h - b["features.norm0.running_mean"].view({1, -1, 1, 1})) * scale + p["features.norm0.bias"].view({1, -1, 1, 1});
  return torch::relu(h);
}
}  // namespace

TEST(ModalityClassifier, FeatureLevelsAreTheTrunkActivationsShallowToDeep) {
  auto net = small_trunk();
  EXPECT_EQ(net->level_names(), (std::vector<std::string>{"relu0", "relu1", "relu2", "pool2"}));
  auto x = torch::randn({2, 1, 32, 48});
  std::vector<torch::Tensor> levels;
  auto out = net->forward(x, &levels);
  ASSERT_EQ(levels.size(), 4u);
  EXPECT_EQ(levels[0].sizes(), torch::IntArrayRef({2, 4, 32, 48}));
  EXPECT_EQ(levels[1].sizes(), torch::IntArrayRef({2, 8, 16, 24}));
  EXPECT_EQ(levels[2].sizes(), torch::IntArrayRef({2, 16, 8, 12}));
  EXPECT_TRUE(torch::equal(levels[3], out.features));
  EXPECT_TRUE(torch::equal(torch::max_pool2d(levels[2], 2, 2), levels[3]));
  EXPECT_LT((levels[0] - relu0_by_hand(net, x)).abs().max().item<double>(), 1e-5);
  // The same logits with and without the levels.
  EXPECT_TRUE(torch::allclose(out.modality_logits, net->forward(x).modality_logits));

  ModalityClassifierOptions d;  // a DenseNet with one layer per block: the levels are VGG-like, ½ … 1/32
  d.densenet_blocks = {1, 1, 1, 1};
  d.growth_rate = 4;
  d.init_features = 8;
  d.bn_size = 2;
  ModalityClassifier dn(d);
  dn->eval();
  EXPECT_EQ(dn->level_names(), (std::vector<std::string>{"relu0", "denseblock1", "denseblock2", "denseblock3", "norm5"}));
  std::vector<torch::Tensor> dl;
  auto dout = dn->forward(torch::randn({1, 1, 64, 64}), &dl);
  ASSERT_EQ(dl.size(), 5u);
  for (size_t i = 0; i < dl.size(); ++i) EXPECT_EQ(dl[i].size(2), 64 >> (i + 1)) << dn->level_names()[i];
  EXPECT_TRUE(torch::equal(dl[4], dout.features));
}

TEST(ModalityClassifier, PerceptualDistanceWeighsTheLevelsAndOnlyTheFakeGetsGradients) {
  auto net = small_trunk();
  for (auto& p : net->parameters()) p.set_requires_grad(false);  // frozen, as in SPADE training
  auto fake = torch::randn({2, 1, 32, 48}).requires_grad_(true);
  auto real = torch::randn({2, 1, 32, 48}).requires_grad_(true);
  std::vector<torch::Tensor> lf, lr;
  net->forward(fake.detach(), &lf);
  net->forward(real.detach(), &lr);
  auto l1 = [&](int i) { return (lf[i] - lr[i]).abs().mean().item<double>(); };

  ClassifierOutput out;
  auto last = perceptual_distance(net, fake, real, {}, &out);
  EXPECT_NEAR(last.item<double>(), l1(3), 1e-6);  // empty: the last feature map alone, as before
  EXPECT_TRUE(torch::allclose(out.modality_logits, net->forward(fake).modality_logits));
  EXPECT_NEAR(perceptual_distance(net, fake, real, {0, 0, 0, 1}).item<double>(), l1(3), 1e-6);
  EXPECT_NEAR(perceptual_distance(net, fake, real, {1, 0, 0, 0}).item<double>(), l1(0), 1e-6);
  auto mixed = perceptual_distance(net, fake, real, {0.5, 0.25, 0, 2});
  EXPECT_NEAR(mixed.item<double>(), 0.5 * l1(0) + 0.25 * l1(1) + 2 * l1(3), 1e-5);
  EXPECT_GT(l1(0), 0.0);

  mixed.backward();
  ASSERT_TRUE(fake.grad().defined());
  EXPECT_GT(fake.grad().abs().sum().item<double>(), 0.0);
  EXPECT_FALSE(real.grad().defined());  // the real image's features are a target

  try {
    perceptual_distance(net, fake, real, {1, 1});
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("loss.perceptual_level_weights"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("4 feature levels (relu0,relu1,relu2,pool2)"), std::string::npos) << e.what();
  }
}

TEST(ModalityClassifier, SmallTrunkLearnsSeparableToyModalitiesAndDatasets) {
  torch::manual_seed(0);
  ModalityClassifierOptions o;
  o.arch = "small";
  o.n_modalities = 2;
  o.n_datasets = 2;
  o.small_widths = {8, 16, 32};
  ModalityClassifier net(o);
  auto train = make_toy(256, 1), test = make_toy(200, 2);
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(3e-3));
  net->train();
  for (int step = 0; step < 200; ++step) {
    auto idx = torch::randint(0, 256, {32}, torch::kLong);
    auto out = net->forward(train.x.index_select(0, idx));
    auto l = loss_modality_dataset(out, train.modality.index_select(0, idx),
                                           train.dataset.index_select(0, idx), 1.0, 1.0);
    opt.zero_grad();
    l.total.backward();
    opt.step();
  }
  net->eval();
  torch::NoGradGuard ng;
  auto out = net->forward(test.x);
  const double acc_mod = (out.modality_logits.argmax(1) == test.modality).to(torch::kFloat).mean().item<double>();
  const double acc_dat = (out.dataset_logits.argmax(1) == test.dataset).to(torch::kFloat).mean().item<double>();
  std::cout << "    toy accuracy: modality " << acc_mod << ", dataset " << acc_dat << "\n";
  EXPECT_GT(acc_mod, 0.95);
  EXPECT_GT(acc_dat, 0.95);
}

TEST(ModalityClassifier, RejectsUnknownArchitecture) {
  ModalityClassifierOptions o;
  o.arch = "resnet";
  EXPECT_THROW(ModalityClassifier{o}, InputError);
  EXPECT_THROW(load_config_text<ModalityClassifierOptions>("arch: vgg"), InputError);
}

// The authors' own classifier (image_generator/models/modality_discrimination/modisc_v2.py Modisc: MONAI's
// DenseNet-121 under base_model., its class_layers as the modality head, ds_layer_1/ds_layer_2 as the dataset head),
// run from their repository by scripts/parity/make_golden_official.py with a stand-in for MONAI's densenet121 written
// from MONAI 0.9.1. Its weights are a seeded fill of *their* state dict (batch norms with non-trivial running
// statistics), repeated here through official_classifier_name: every entry lands on a parameter or buffer of ours of
// the same shape, everything of ours is filled, and the trunk features, both heads' logits in eval mode, the logits in
// train mode (batch statistics, channel dropout with the same seeded masks) and the running statistics that train
// step leaves all agree.
TEST(ModalityClassifier, MatchesTheAuthorsModule) {
  auto g = testutil::load_golden("official_classifier");
  ASSERT_FALSE(g.empty());
  ModalityClassifierOptions o;  // densenet121 (6, 12, 24, 16), growth 32, 64 features, bn_size 4, dropout 0.2
  o.n_modalities = 2;
  o.n_datasets = 3;
  ModalityClassifier net(o);
  auto params = net->named_parameters();
  auto buffers = net->named_buffers();
  std::set<std::string> filled;
  {
    torch::NoGradGuard no_grad;
    for (const auto& [name, value] : testutil::official_seeded_weights(g)) {
      const std::string mine = official_classifier_name(name);
      torch::Tensor* p = params.find(mine);
      if (!p) p = buffers.find(mine);
      ASSERT_NE(p, nullptr) << name << " -> " << mine << " is not a parameter or buffer of ours";
      ASSERT_EQ(p->sizes(), value.sizes()) << name << " -> " << mine;
      p->copy_(value.to(p->dtype()));  // num_batches_tracked: int64 as theirs
      filled.insert(mine);
    }
  }
  for (const auto& kv : params) EXPECT_TRUE(filled.count(kv.key())) << kv.key() << " has no counterpart in theirs";
  for (const auto& kv : buffers) EXPECT_TRUE(filled.count(kv.key())) << kv.key() << " has no counterpart in theirs";

  torch::NoGradGuard no_grad;
  net->eval();
  auto out = net->forward(g.at("x"));
  const double dfeat = (out.features - g.at("features")).abs().max().item<double>();
  const double dmod = (out.modality_logits - g.at("modality")).abs().max().item<double>();
  const double ddat = (out.dataset_logits - g.at("dataset")).abs().max().item<double>();
  net->train();
  torch::manual_seed(99);  // the dropout masks of their train-mode run
  auto tr = net->forward(g.at("x"));
  const double dmod_tr = (tr.modality_logits - g.at("modality_train")).abs().max().item<double>();
  const double ddat_tr = (tr.dataset_logits - g.at("dataset_train")).abs().max().item<double>();
  auto* norm5_mean = buffers.find("features.norm5.running_mean");
  auto* norm5_var = buffers.find("features.norm5.running_var");
  ASSERT_TRUE(norm5_mean && norm5_var);
  const double dstats = std::max((*norm5_mean - g.at("norm5_running_mean")).abs().max().item<double>(),
                                 (*norm5_var - g.at("norm5_running_var")).abs().max().item<double>());
  std::printf("    authors' Modisc: %zu entries mapped, max |difference| eval: features %.2e, modality %.2e, dataset "
              "%.2e; train: modality %.2e, dataset %.2e, norm5 running statistics %.2e\n",
              filled.size(), dfeat, dmod, ddat, dmod_tr, ddat_tr, dstats);
  EXPECT_EQ(filled.size(), 729u);  // 120 convolutions, 121 batch norms (5 entries each), 2 linear layers
  EXPECT_LT(dfeat, 1e-5);
  EXPECT_LT(dmod, 1e-5);
  EXPECT_LT(ddat, 1e-5);
  EXPECT_LT(dmod_tr, 1e-5);
  EXPECT_LT(ddat_tr, 1e-5);
  EXPECT_LT(dstats, 1e-5);
  // The two samples' logits differ: the comparison sees the input, not only the biases.
  EXPECT_GT((g.at("dataset")[0] - g.at("dataset")[1]).abs().max().item<double>(), 1e-3);
}
