// brainspade evaluate --pred DIR --ref DIR [--pred2 DIR] --out DIR: Dice/accuracy/precision/recall + Wilcoxon test.
#include <cstdio>

#include "app.h"
#include "brainspade/eval/metrics.h"

namespace cmd_evaluate {
brainspade::EvaluateJob job;
brainspade::app::Registrar reg("41-evaluate", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("evaluate", "per-volume metrics of predicted label volumes against references");
  cmd->add_option("--pred", job.pred, "folder of predictions (matched to --ref by file name)")->required();
  cmd->add_option("--ref", job.ref, "folder of reference label volumes")->required();
  cmd->add_option("--pred2", job.pred2, "second model's predictions: paired Wilcoxon test against --pred");
  cmd->add_option("--out", job.out, "output folder (per-volume CSVs, summary.md, wilcoxon.csv)")->required();
  cmd->add_option("--name", job.name, "name of the --pred model in the tables");
  cmd->add_option("--name2", job.name2, "name of the --pred2 model");
  cmd->add_option("--classes", job.class_names, "names of labels 1, 2, ... (default class_<c>)")->delimiter(',');
  cmd->add_flag("--resample-ref", job.resample_ref,
                "resample a reference on another grid onto the prediction's (nearest); without it that is an error");
  cmd->callback([] { std::printf("%s", brainspade::run_evaluation(job).c_str()); });
});
}  // namespace cmd_evaluate
