// brainspade segment --model CKPT --in VOLUME --out SEG [--probabilities PV] [--mask MASK] [--no-resample]:
// whole-volume prediction of a scan of any spacing and orientation, written on its own grid (inference/segment.h).
#include "app.h"
#include "brainspade/inference/segment.h"

namespace cmd_segment {
brainspade::SegmentRequest request;
bool no_resample = false;
brainspade::app::Registrar reg("40-segment", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("segment", "segment a 3D image of any spacing/orientation (output on the input's grid)");
  cmd->add_option("--model", request.model, "segmenter checkpoint (train segmenter)")->required();
  cmd->add_option("--in", request.in, "3D image (.nii/.nii.gz/.mha/.nrrd), any spacing and orientation; repeat once "
                 "per input channel of a multi-contrast model, in its order (e.g. --in T1.nii.gz --in PD.nii.gz)")
      ->required();
  cmd->add_option("--out", request.out, "output label volume (uint8, the input's grid and header)")->required();
  cmd->add_option("--probabilities", request.probabilities_out, "optional 4D output of the softmax per class");
  cmd->add_option("--mask", request.mask, "brain mask on the input's grid, applied before normalisation (skull-on scans)");
  cmd->add_flag("--no-resample", no_resample, "predict at the file's own spacing (no resampling to the training spacing)");
  cmd->add_option("--device", request.device, "auto | cpu | cuda | cuda:N");
  cmd->callback([] {
    request.resample = !no_resample;
    brainspade::run_segment(request);
  });
});
}  // namespace cmd_segment
