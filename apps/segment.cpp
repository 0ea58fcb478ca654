// brainspade segment --model CKPT --in VOLUME --out SEG [--probabilities PV]: whole-volume prediction, slice by slice.
#include "app.h"
#include "brainspade/inference/segment.h"

namespace {
std::string model, in, out, probs, device = "auto";
brainspade::app::Registrar reg("40-segment", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("segment", "segment a 3D image with a trained segmenter (output on the input's grid)");
  cmd->add_option("--model", model, "segmenter checkpoint (train segmenter)")->required();
  cmd->add_option("--in", in, "3D image (.nii/.nii.gz/.mha)")->required();
  cmd->add_option("--out", out, "output integer label volume")->required();
  cmd->add_option("--probabilities", probs, "optional 4D output of the softmax per class");
  cmd->add_option("--device", device, "auto | cpu | cuda | cuda:N");
  cmd->callback([] { brainspade::run_segment(model, in, out, probs, device); });
});
}  // namespace
