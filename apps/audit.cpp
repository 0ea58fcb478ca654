// brainspade audit --pairs DIR --train DATASET --holdout DATASET [--ldm CKPT] [--spade CKPT] [--shard i/n] --out DIR:
// does a synthetic dataset copy its training slices? Nearest neighbours against a held-out baseline, membership
// inference on the LDM and SPADE
// (library: eval/audit.h; docs/privacy.md).
#include <fmt/format.h>

#include "app.h"
#include "brainspade/eval/audit.h"

namespace cmd_audit {
brainspade::app::CommonFlags flags;
std::string pairs, train, holdout, ldm, spade, modality, shard;
brainspade::app::Registrar reg("44-audit", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("audit", "memorisation check before sharing: nearest training slices, membership AUC");
  brainspade::app::add_common_flags(cmd, flags, false);
  cmd->add_option("--pairs", pairs, "folder from `sample` or `sample labels` (pairs)");
  cmd->add_option("--train", train, "slice dataset (.pt) the generators were trained on (train)");
  cmd->add_option("--holdout", holdout, "slice dataset (.pt) of real slices no generator saw (holdout)");
  cmd->add_option("--ldm", ldm, "LDM checkpoint to test for membership (ldm_checkpoint)");
  cmd->add_option("--spade", spade, "SPADE checkpoint to test for membership (spade_checkpoint)");
  cmd->add_option("--modality", modality, "image rows compared (modality)");
  cmd->add_option("--shard", shard, "i/n: measure the samples and slices k with k mod n = i into <out>/shards; the "
                  "shard that completes the parts writes the report (default: SLURM_ARRAY_TASK_ID/COUNT, else 0/1)");
  cmd->callback([] {
    if (!pairs.empty()) flags.set("pairs", pairs);
    if (!train.empty()) flags.set("train", train);
    if (!holdout.empty()) flags.set("holdout", holdout);
    if (!ldm.empty()) flags.set("ldm_checkpoint", ldm);
    if (!spade.empty()) flags.set("spade_checkpoint", spade);
    if (!modality.empty()) flags.set("modality", modality);
    const auto s = brainspade::parse_shard(shard);
    auto job = brainspade::app::resolve_config<brainspade::AuditJob>(flags);
    // Shards running side by side into one folder each keep a log of their own.
    const std::string log = s.count > 1 ? fmt::format("audit-shard-{}-of-{}.log", s.index, s.count) : "audit.log";
    brainspade::start_run(job.run, brainspade::dump_config(job), log);
    brainspade::run_audit(job, s);
  });
});
}  // namespace cmd_audit
