// `brainspade slice`: volumes → DIR/dataset.pt (+ config.yaml, montage.png, slice.log).
#include <spdlog/spdlog.h>

#include "app.h"
#include "brainspade/core/progress.h"
#include "brainspade/data/slicing.h"

namespace brainspade::app {
namespace cmd_slice {

struct SliceConfig {
  RunOptions run;
  SliceOptions data;
  void visit(ConfigVisitor& v) {
    v.section("run", run, "output folder, seed, threads");
    v.section("data", data, "volumes and slicing rules");
  }
};

void run_slice(const CommonFlags& flags) {
  auto cfg = resolve_config<SliceConfig>(flags);
  configure_threads(cfg.run.threads);
  Progress timer("slice", 1);
  // Everything is read and checked before anything is written: bad input leaves no output folder behind.
  SliceDataset ds = build_slice_dataset(cfg.data, static_cast<uint64_t>(cfg.run.seed));
  start_run(cfg.run, dump_config(cfg), "slice.log");
  const std::string out = cfg.run.out_dir;
  write_dataset_montage(out + "/montage.png", ds, 8);
  ds.save(out + "/dataset.pt");
  spdlog::info("wrote {}/dataset.pt: {} slices, {} channels, {}x{} ({} subjects) in {}", out, ds.size(), ds.channels(),
               ds.height(), ds.width(), ds.subject_names.size(), format_duration(timer.elapsed_s()));
}

Registrar reg("12-slice", [](CLI::App& root) {
  auto flags = std::make_shared<CommonFlags>();
  auto* cmd = root.add_subcommand("slice", "slice label (and image) volumes into DIR/dataset.pt");
  add_common_flags(cmd, *flags);
  cmd->callback([flags] { run_slice(*flags); });
});

}  // namespace cmd_slice
}  // namespace brainspade::app
