// brainspade figure --image V --ref L --pred R=DIR/x.nii.gz --pred S=... --out fig.png: the paper's Fig. 3/4 layout
// (input | ground truth | each model's prediction), one row per axial slice (library: eval/figure.h).
#include <cstdio>

#include "app.h"
#include "brainspade/eval/figure.h"

namespace cmd_figure {
brainspade::PredictionFigureJob job;
brainspade::app::Registrar reg("42-figure", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("figure", "PNG of input, ground truth and model predictions on a few axial slices");
  cmd->add_option("--image", job.image, "3D input image")->required();
  cmd->add_option("--ref", job.reference, "3D reference label volume")->required();
  cmd->add_option("--pred", job.predictions, "NAME=PATH of a model's prediction (repeatable, shown in order)");
  cmd->add_option("--slices", job.slices, "axial indices to show (default: --rows evenly spaced)")->delimiter(',');
  cmd->add_option("--rows", job.rows, "slices shown when --slices is not given");
  cmd->add_option("--classes", job.class_names, "class names by label value, background first (colours: a lesion "
                  "named tumour/edema is red/magenta)")->delimiter(',');
  cmd->add_option("--out", job.out, "output PNG")->required();
  cmd->callback([] { std::printf("%s\n", brainspade::write_prediction_figure(job).c_str()); });
});
}  // namespace cmd_figure
