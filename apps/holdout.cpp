// brainspade holdout --dataset D.pt --slab LO:HI --subject S --train-out T.pt [--modality T1] [--volume V --volume-out VO]
// [--labels PV --label-map 0,1,2,3,2,3 --labels-out LO]: a held-out slab for the segmentation experiments
// (library: data/holdout.h; used by scripts/reproduce/).
#include <cstdio>

#include <spdlog/spdlog.h>

#include "app.h"
#include "brainspade/core/atomic_file.h"
#include "brainspade/core/error.h"
#include "brainspade/data/holdout.h"

namespace cmd_holdout {
std::string dataset, slab, subject, train_out, holdout_out, volume, volume_out, labels, labels_out;
std::vector<std::string> modalities;
std::vector<int64_t> label_map;
brainspade::app::Registrar reg("16-holdout", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("holdout", "hold out a slab of slices: training dataset without it, test volumes of it");
  cmd->add_option("--dataset", dataset, "slice dataset (.pt from `slice`)")->required();
  cmd->add_option("--slab", slab, "LO:HI relative slice positions held out, e.g. 0.25:0.4")->required();
  cmd->add_option("--subject", subject, "subject whose slab is held out")->required();
  cmd->add_option("--train-out", train_out, "dataset of the remaining slices (.pt)")->required();
  cmd->add_option("--holdout-out", holdout_out, "dataset of the held-out slices (.pt; e.g. for `brainspade audit`)");
  cmd->add_option("--modality", modalities, "keep only these modalities in --train-out (repeatable)");
  cmd->add_option("--volume", volume, "the subject's 3D image: written with zeros outside the slab to --volume-out");
  cmd->add_option("--volume-out", volume_out, "output test image");
  cmd->add_option("--labels", labels, "the subject's PV volume (4D): hard labels of the slab to --labels-out");
  cmd->add_option("--label-map", label_map, "channel → class, e.g. 0,1,2,3,2,3 (default identity)")->delimiter(',');
  cmd->add_option("--labels-out", labels_out, "output reference label volume");
  cmd->callback([] {
    using namespace brainspade;
    double lo = 0, hi = 0;
    if (std::sscanf(slab.c_str(), "%lf:%lf", &lo, &hi) != 2) throw input_error("--slab ", slab, ": expected LO:HI, e.g. 0.25:0.4");
    BRAINSPADE_CHECK_INPUT(volume.empty() == volume_out.empty(), "--volume and --volume-out go together");
    BRAINSPADE_CHECK_INPUT(labels.empty() == labels_out.empty(), "--labels and --labels-out go together");
    // Everything is read and checked before anything is written.
    auto split = split_slab(SliceDataset::load(dataset), lo, hi, subject, modalities);
    Volume img, lab;
    if (!volume.empty()) img = keep_slab(read_volume(volume), split.z_lo, split.z_hi);
    if (!labels.empty()) lab = keep_slab(hard_labels(read_volume(labels), label_map), split.z_lo, split.z_hi);
    BRAINSPADE_CHECK_INPUT(holdout_out.empty() || split.held.size() > 0, "--holdout-out: no held-out slice of the ",
                           "kept modalities");
    split.train.save(train_out);
    if (!holdout_out.empty()) split.held.save(holdout_out);
    if (!volume.empty()) write_volume(volume_out, img);
    if (!labels.empty()) write_label_volume(labels_out, lab);
    spdlog::info("held out {} slices of {} (z {}..{}); {} training slices in {}", split.held_out, subject, split.z_lo,
                 split.z_hi, split.train.size(), train_out);
    std::printf("z_range %lld %lld\n", static_cast<long long>(split.z_lo), static_cast<long long>(split.z_hi));
  });
});
}  // namespace cmd_holdout
