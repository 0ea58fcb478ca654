// Every YAML file shipped under configs/tiny and configs/paper resolves against the schema of the command it is
// for (unknown keys, wrong types and out-of-range values would stop that command with exit 2), and the settings
// that must agree across sections do.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "brainspade/core/config.h"
#include "brainspade/sampling/pair_sampler.h"
#include "brainspade/training/train_ldm.h"
#include "brainspade/training/train_segmenter.h"
#include "brainspade/training/train_spade.h"
#include "brainspade/training/train_vae.h"
#include "brainspade/core/atomic_file.h"
#include "support/helpers.h"
#include "support/phantom.h"

using namespace brainspade;
namespace fs = std::filesystem;

namespace {
template <class Root>
Root resolve(const std::string& path) {
  return load_config<Root>(ConfigSource{path, {}, {}});
}

void check_file(const std::string& path) {
  std::string stage = fs::path(path).stem().string();
  // vae_lesion.yaml etc.: the tumour path's settings of the same command
  if (stage.size() > 7 && stage.compare(stage.size() - 7, 7, "_lesion") == 0) stage.resize(stage.size() - 7);
  SCOPED_TRACE(path);
  if (stage == "vae") {
    auto c = resolve<VAETrainConfig>(path);
    EXPECT_EQ(c.vae.in_channels, c.discriminator.in_channels);
  } else if (stage == "ldm") {
    auto c = resolve<LDMTrainConfig>(path);
    EXPECT_EQ(c.unet.in_channels, c.unet.out_channels);
  } else if (stage == "classifier") {
    resolve<ClassifierTrainConfig>(path);
  } else if (stage == "spade") {
    auto c = resolve<SPADETrainConfig>(path);
    EXPECT_NO_THROW(c.generator.validate());
    EXPECT_NO_THROW(c.encoder.validate());
    EXPECT_NO_THROW(c.discriminator.validate());
    EXPECT_EQ(c.generator.z_dim, c.encoder.z_dim);
    EXPECT_EQ(c.generator.label_channels, c.discriminator.label_channels);
    EXPECT_EQ(c.generator.height, c.encoder.height);
    EXPECT_EQ(c.generator.width, c.encoder.width);
    EXPECT_LT(c.loss.alpha_dat, c.loss.alpha_mod) << "the paper keeps alpha_mod > alpha_dat";
  } else if (stage == "sample") {
    resolve<PairSampleJob>(path);
  } else if (stage == "segmenter") {
    resolve<SegmenterTrainConfig>(path);
  } else {
    ADD_FAILURE() << "no command known for " << path << " (expected vae, ldm, classifier, spade, sample, segmenter)";
  }
}
}  // namespace

TEST(ShippedConfigs, EveryTinyAndPaperFileResolvesAgainstItsCommand) {
  for (const std::string scale : {"configs/tiny", "configs/paper"}) {
    ASSERT_TRUE(fs::is_directory(scale)) << scale << " (tests run from the repository root)";
    std::set<std::string> stages;
    for (const auto& e : fs::directory_iterator(scale)) {
      if (e.path().extension() != ".yaml") continue;
      check_file(e.path().string());
      stages.insert(e.path().stem().string());
    }
    // The reproduction scripts need every stage at both scales.
    for (const char* s : {"vae", "ldm", "classifier", "spade", "sample", "segmenter"})
      EXPECT_TRUE(stages.count(s)) << scale << "/" << s << ".yaml is missing";
  }
}

TEST(ShippedConfigs, AMistypedKeyInACopiedConfigIsNamed) {
  try {
    load_config<SPADETrainConfig>(ConfigSource{"configs/paper/spade.yaml", {"loss.lambda_fet=1"}, {}});
    FAIL() << "expected an error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("lambda_fet"), std::string::npos) << e.what();
  }
}

// docs/config.md is generated from the same visitors the commands resolve with; a key added without regenerating it
// fails here (fix: build/brainspade config-docs > docs/config.md).
TEST(ShippedConfigs, DocsConfigPageIsTheGeneratedOne) {
  auto generated = testutil::run_cli("config-docs");
  ASSERT_EQ(generated.exit_code, 0) << generated.output;
  const std::string page = read_text(std::string(BRAINSPADE_SOURCE_DIR) + "/docs/config.md");
  EXPECT_TRUE(generated.output == page) << "docs/config.md is out of date: run build/brainspade config-docs > docs/config.md";
}

// configs/paper trains the label VAE as the authors did, with LPIPS-squeeze, whose weights cannot be downloaded here:
// while the exported file is missing, training stops with exit 2 naming the export script, before writing anything.
TEST(ShippedConfigs, PaperSPADENamesTheExportScriptWhileItsVgg19WeightsAreMissing) {
  testutil::TempDir dir;
  testutil::PhantomOptions po;
  po.height = 32;
  po.width = 48;
  const std::string ds = testutil::write_phantom_dataset(dir / "data", po);
  auto r = testutil::run_cli("train spade --config configs/paper/spade.yaml --set data.dataset=" + ds +
                             " --set classifier_checkpoint= -o " + (dir / "s"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("weights/vgg19.pt"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("scripts/export_perceptual_weights.py"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "s")) << "nothing may be written";
}

TEST(ShippedConfigs, PaperVAENamesTheExportScriptWhileItsPerceptualWeightsAreMissing) {
  testutil::TempDir dir;
  testutil::PhantomOptions po;
  po.height = 32;
  po.width = 48;
  const std::string ds = testutil::write_phantom_dataset(dir / "data", po);
  auto r = testutil::run_cli("train vae --config configs/paper/vae.yaml --set data.dataset=" + ds +
                             " --set loss.perceptual_weights=" + (dir / "missing_squeeze.pt") + " -o " + (dir / "v"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("missing_squeeze.pt"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("scripts/export_perceptual_weights.py"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "v")) << "nothing may be written";
}
