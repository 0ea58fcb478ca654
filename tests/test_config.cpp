// Config: defaults → file → --set, and every error path names the key and the source.
#include <gtest/gtest.h>

#include "brainspade/core/config.h"
#include "brainspade/models/patch_discriminator.h"
#include "brainspade/models/spade_discriminator.h"
#include "brainspade/models/spade_generator.h"
#include "support/helpers.h"

using namespace brainspade;

namespace {
struct Inner {
  int64_t width = 64;
  std::vector<int64_t> mult{1, 2, 4};
  void visit(ConfigVisitor& v) {
    v("width", width, "channels", Bounds::at_least(1));
    v("mult", mult, "multipliers", Bounds::at_least(1));
  }
};
struct Root {
  RunOptions run;
  Inner model;
  double lr = 1e-4;
  bool ema = false;
  std::string loss = "l1";
  std::vector<std::string> names{"csf", "gm"};
  void visit(ConfigVisitor& v) {
    v.section("run", run);
    v.section("model", model);
    v("lr", lr, "learning rate", Bounds::positive());
    v("ema", ema, "use EMA");
    v.choice("loss", loss, {"l1", "l2"}, "loss");
    v("names", names, "channel names");
  }
};

std::string error_of(const std::string& yaml, std::vector<std::string> overrides = {}) {
  testutil::TempDir dir;
  testutil::write_file(dir / "c.yaml", yaml);
  try {
    load_config<Root>({dir / "c.yaml", overrides, {}});
  } catch (const InputError& e) {
    std::string msg = e.what();
    // The temp path differs per run; keep the message comparable.
    auto pos = msg.find(dir.path());
    if (pos != std::string::npos) msg.replace(pos, dir.path().size() + 7, "FILE");
    return msg;
  }
  return "";
}
}  // namespace

TEST(Config, DefaultsThenFileThenOverrides) {
  testutil::TempDir dir;
  testutil::write_file(dir / "c.yaml", "model:\n  width: 32\nlr: 0.5\nnames: [a, b, c]\n");
  auto r = load_config<Root>({dir / "c.yaml", {"model.width=16", "ema=true", "run.seed=7"}, {}});
  EXPECT_EQ(r.model.width, 16);                        // --set wins over the file
  EXPECT_EQ(r.model.mult, (std::vector<int64_t>{1, 2, 4}));  // default kept
  EXPECT_DOUBLE_EQ(r.lr, 0.5);                         // file wins over the default
  EXPECT_TRUE(r.ema);
  EXPECT_EQ(r.run.seed, 7);
  EXPECT_EQ(r.names.size(), 3u);
}

TEST(Config, DumpReadsBackToTheSameValues) {
  Root r;
  r.lr = 3e-5;
  r.model.mult = {1, 3};
  r.loss = "l2";
  std::string text = dump_config(r);
  Root back = load_config_text<Root>(text);
  EXPECT_DOUBLE_EQ(back.lr, 3e-5);
  EXPECT_EQ(back.model.mult, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(back.loss, "l2");
  EXPECT_EQ(dump_config(back), text);
  r.lr = 0.15;  // written as the shortest exact decimal
  EXPECT_NE(dump_config(r).find("lr: 0.15\n"), std::string::npos) << dump_config(r);
}

TEST(Config, UnknownKeyIsNamedWithItsFile) {
  auto msg = error_of("model:\n  widht: 3\n");
  EXPECT_NE(msg.find("unknown config key 'model.widht'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("FILE"), std::string::npos) << msg;
  EXPECT_NE(msg.find("width"), std::string::npos) << "should list the known keys: " << msg;
}

TEST(Config, UnknownTopLevelSectionIsAnError) {
  auto msg = error_of("trainer:\n  lr: 1\n");
  EXPECT_NE(msg.find("unknown config key 'trainer'"), std::string::npos) << msg;
}

TEST(Config, WrongTypesAreNamed) {
  struct Case { std::string yaml, expect; };
  std::vector<Case> cases = {
      {"lr: fast\n", "'lr': expected a number, got 'fast'"},
      {"model:\n  width: 2.5\n", "'model.width': expected an integer"},
      {"ema: maybe\n", "'ema': expected true or false"},
      {"model:\n  mult: 4\n", "'model.mult': expected a list of integers"},
      {"model: 3\n", "'model': expected a section"},
      {"names: {a: 1}\n", "'names': expected a list of strings"},
  };
  for (const auto& c : cases) {
    auto msg = error_of(c.yaml);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "yaml: " << c.yaml << " message: " << msg;
  }
}

TEST(Config, OutOfRangeAndBadChoice) {
  EXPECT_NE(error_of("lr: -1\n").find("'lr': value -1 is out of range"), std::string::npos);
  EXPECT_NE(error_of("model:\n  mult: [1, 0]\n").find("'model.mult': value 0 is out of range"), std::string::npos);
  auto msg = error_of("loss: huber\n");
  EXPECT_NE(msg.find("expected one of {l1, l2}, got 'huber'"), std::string::npos) << msg;
}

TEST(Config, OverrideErrorsNameTheOverride) {
  auto msg = error_of("", {"model.width=abc"});
  EXPECT_NE(msg.find("--set model.width"), std::string::npos) << msg;
  msg = error_of("", {"nokey=1"});
  EXPECT_NE(msg.find("--set nokey"), std::string::npos) << msg;
  EXPECT_THROW(load_config<Root>({"", {"justakey"}, {}}), InputError);
  EXPECT_THROW(load_config<Root>({"", {"lr.x=1"}, {}}), InputError);  // lr is a value, not a section
}

TEST(Config, MissingOrBrokenFile) {
  try {
    load_config<Root>({"/nonexistent/c.yaml", {}, {}});
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/c.yaml: cannot open"), std::string::npos);
  }
  EXPECT_NE(error_of("model: [unclosed\n").find("invalid YAML"), std::string::npos);
  EXPECT_NE(error_of("- a\n- b\n").find("top level of a config must be a map"), std::string::npos);
}

TEST(Config, DocumentationListsEveryKey) {
  std::string doc = document_config<Root>("Root");
  for (const char* k : {"`run.seed`", "`model.width`", "`model.mult`", "`lr`", "`loss`", "`names`"})
    EXPECT_NE(doc.find(k), std::string::npos) << k;
}

// Values of command-line flags are typed: a path with ": ", a quote or a "#" and a double with 17 significant digits
// arrive exactly (as "key=value" text they were re-parsed as YAML: a map, a comment, 6 digits); they win over --set.
TEST(Config, TypedFlagValuesArriveExactlyAndWinOverSet) {
  const std::string odd = "runs/a: b #1 \"q\"";
  const double lr = 0.12345678901234567;
  ConfigSource src{"", {"lr=0.5", "run.out_dir=elsewhere"}, {}};
  src.values.emplace_back("run.out_dir", YAML::Node(odd));
  src.values.emplace_back("lr", YAML::Node(lr));
  src.values.emplace_back("names", YAML::Node(std::vector<std::string>{"a, b", "c: d"}));
  auto r = load_config<Root>(src);
  EXPECT_EQ(r.run.out_dir, odd);
  EXPECT_EQ(r.lr, lr);
  EXPECT_EQ(r.names, (std::vector<std::string>{"a, b", "c: d"}));
  // A typed value of the wrong type is refused by the key's own check, naming the command line.
  ConfigSource bad{"", {}, {}};
  bad.values.emplace_back("model.width", YAML::Node("wide"));
  try {
    load_config<Root>(bad);
    ADD_FAILURE() << "accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("command line (model.width)"), std::string::npos) << e.what();
  }
}

// A mapping key that is a list or a map (YAML `? [a]: 1`) is refused with its line, not a yaml-cpp conversion error.
TEST(Config, NonScalarKeyIsRefusedWithItsLine) {
  const std::string msg = error_of("lr: 0.1\nmodel:\n  ? [a, b]\n  : 3\n");
  EXPECT_NE(msg.find("line 3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("plain name, not a list"), std::string::npos) << msg;
}

// YAML aliases: one inside its own anchor made every pass over the tree recurse until the stack overflowed (SIGSEGV,
// found 2026-12-01); nested aliases expand exponentially. Both are refused with the line; a plain shared anchor loads.
TEST(Config, RecursiveAndExplodingAliasesAreRefused) {
  const std::string loop = error_of("lr: 0.1\nrun: &x\n  seed: 1\n  out_dir: *x\n");
  EXPECT_NE(loop.find("recursive anchor"), std::string::npos) << loop;
  EXPECT_NE(loop.find("FILE: line "), std::string::npos) << loop;
  std::string bomb = "a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n";
  for (int i = 1; i <= 8; ++i)
    bomb += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + [&] {
      std::string refs;
      for (int k = 0; k < 10; ++k) refs += (k ? ", *a" : "*a") + std::to_string(i - 1);
      return refs;
    }() + "]\n";
  const std::string many = error_of(bomb);
  EXPECT_NE(many.find("more than 100000 values"), std::string::npos) << many;
  EXPECT_EQ(error_of("model:\n  width: &w 4\n  mult: [*w, *w]\n"), "");
}

// An integer key given a number beyond 2^53 is refused by name (fuzz_config: 1e34 became -2^63, out of its bounds).
TEST(Config, IntegersBeyondTwoToThe53AreRefused) {
  const std::string msg = error_of("model:\n  width: 10444444444444444444444444444444400\n");
  EXPECT_NE(msg.find("model.width"), std::string::npos) << msg;
  EXPECT_NE(msg.find("too large"), std::string::npos) << msg;
  EXPECT_EQ(error_of("model:\n  width: 9007199254740992\n"), "");
}


TEST(Config, RenamedKeysStillLoadAndBothSpellingsAreRefused) {
  // label_nc / n_layers became label_channels / num_layers (2026-11-30): configs and checkpoint model configs written
  // before still load; a file that gives both spellings names the conflict.
  auto g = load_section<SPADEGeneratorOptions>("generator", "generator:\n  label_nc: 4\n  ngf: 8\n", "old.ckpt");
  EXPECT_EQ(g.label_channels, 4);
  EXPECT_EQ(g.ngf, 8);
  auto d = load_section<PatchDiscriminatorOptions>("d", "d:\n  n_layers: 2\n", "old.ckpt");
  EXPECT_EQ(d.num_layers, 2);
  try {
    load_section<MultiscaleDiscriminatorOptions>("d", "d:\n  n_layers: 2\n  num_layers: 3\n", "both.yaml");
    FAIL() << "both spellings accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'d.n_layers': was renamed to 'num_layers'"), std::string::npos) << e.what();
  }
}
