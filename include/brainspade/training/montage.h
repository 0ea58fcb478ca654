#pragma once
/// Pictures of a run: sample montages and loss curves (users look at pictures).
#include <string>
#include <vector>

#include <torch/torch.h>

namespace brainspade {

/// Two rows per pair: argmax-coloured label maps of `a` (top) and `b` (bottom); a, b: [N, C, H, W].
void write_label_pairs_montage(const std::string& path, const torch::Tensor& a, const torch::Tensor& b,
                               const std::string& a_name, const std::string& b_name);

/// Line plot of the named columns of a metrics.csv (x = step, y on a log scale when all values are > 0; held-out
/// columns dashed), drawn with cairo (draw/plot.h) with axes, ticks and a legend. Columns absent from the file are
/// skipped; nothing is written when none is present.
void plot_metrics(const std::string& csv_path, const std::vector<std::string>& columns, const std::string& png_path);

}  // namespace brainspade
