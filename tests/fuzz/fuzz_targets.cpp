// Fuzz target bodies (see fuzz_targets.h). Built into the test binaries (which replay the corpora) and the libFuzzer
// executables, never into the production library.
#include "fuzz/fuzz_targets.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "brainspade/core/checkpoint.h"
#include "brainspade/core/csv.h"
#include "brainspade/core/config.h"
#include "brainspade/core/error.h"
#include "brainspade/io/image_io.h"
#include "brainspade/sampling/label_sampler.h"
#include "brainspade/sampling/pair_sampler.h"
#include "brainspade/training/train_ldm.h"
#include "brainspade/training/train_segmenter.h"
#include "brainspade/training/train_spade.h"
#include "brainspade/training/train_vae.h"

namespace brainspade {

namespace {

// Loads `text` as Root; when it loads, its dump must load again and dump identically (the saved config.yaml of every
// run is read back by --resume and by later stages, so a dump that does not reload would strand a run).
template <class Root>
void config_round_trip(const std::string& text) {
  Root root;
  try {
    root = load_config_text<Root>(text, "<fuzz>");
  } catch (const InputError&) {
    return;
  }
  const std::string dumped = dump_config(root);
  std::string again;
  try {
    again = dump_config(load_config_text<Root>(dumped, "<fuzz dump>"));
  } catch (const InputError& e) {
    std::fprintf(stderr, "fuzz_config: the dump of a valid config does not load: %s\n--- dump:\n%s\n", e.what(),
                 dumped.c_str());
    std::abort();
  }
  if (again != dumped) {
    std::fprintf(stderr, "fuzz_config: dump is not stable\n--- first:\n%s\n--- second:\n%s\n", dumped.c_str(),
                 again.c_str());
    std::abort();
  }
}

// The bytes as a file with the given suffix in the temp folder (one name per process), removed afterwards.
class TempInput {
 public:
  TempInput(const uint8_t* data, size_t size, const std::string& suffix) {
    path_ = (std::filesystem::temp_directory_path() / ("brainspade-fuzz-" + std::to_string(::getpid()) + suffix)).string();
    std::ofstream(path_, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data),
                                                                    static_cast<std::streamsize>(size));
  }
  ~TempInput() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

int fuzz_config(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  config_round_trip<VAETrainConfig>(text);
  config_round_trip<LDMTrainConfig>(text);
  config_round_trip<ClassifierTrainConfig>(text);
  config_round_trip<SPADETrainConfig>(text);
  config_round_trip<SegmenterTrainConfig>(text);
  config_round_trip<LabelSampleJob>(text);
  config_round_trip<PairSampleJob>(text);
  return 0;
}

int fuzz_nifti(const uint8_t* data, size_t size) {
  const bool gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  TempInput in(data, size, gz ? ".nii.gz" : ".nii");
  try {
    Volume v = read_volume(in.path());
    // A volume that reads is usable: finite [C, Z, Y, X] voxels and a positive spacing.
    if (v.data.dim() != 4 || !torch::isfinite(v.data).all().item<bool>()) std::abort();
  } catch (const InputError&) {
  }
  return 0;
}

int fuzz_png(const uint8_t* data, size_t size) {
  TempInput in(data, size, ".png");
  try {
    torch::Tensor t = read_png(in.path());
    if (t.dim() != 2) std::abort();
  } catch (const InputError&) {
  }
  return 0;
}

int fuzz_checkpoint(const uint8_t* data, size_t size) {
  TempInput in(data, size, ".ckpt");
  try {
    Checkpoint ck = Checkpoint::load(in.path());
    // Read every tensor's data, as the program does, so that a tensor reaching past its storage is seen by ASan.
    for (const auto& key : ck.keys()) {
      torch::Tensor t;
      try {
        t = ck.tensor(key);
      } catch (const InputError&) {
        continue;  // not a tensor
      }
      if (t.numel() == 0 || t.numel() >= (int64_t{1} << 24)) continue;
      try {
        (void)t.to(torch::kDouble).sum().item<double>();
      } catch (const c10::Error&) {
        // dtypes without a conversion to double (quantized): nothing read
      }
    }
  } catch (const InputError&) {
  }
  return 0;
}

int fuzz_csv(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const CsvTable t = parse_csv_table(text, "fuzz.csv");
    std::string again = csv_row(t.header);
    for (const auto& r : t.rows) again += csv_row(r);
    const CsvTable u = parse_csv_table(again, "fuzz.csv");
    if (u.header != t.header || u.rows != t.rows) std::abort();
  } catch (const InputError&) {
  }
  return 0;
}

}  // namespace brainspade
