#pragma once
/// Pictures of tensors: windowing to 8 bits, the label colour map and montages (src/draw/montage.cpp; the PNG itself
/// is written by io's write_png). Plots with axes are in draw/plot.h.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace brainspade {

/// Maps a float image [H, W] to uint8 by a window [lo, hi]; lo == hi picks the window from the
/// `low_quantile` / `high_quantile` of the non-zero pixels (all pixels when all are zero). Exact zeros (the
/// background of brain images) stay black when the image also has non-zero pixels.
torch::Tensor window_to_uint8(const torch::Tensor& image, double lo = 0.0, double hi = 0.0, double low_quantile = 0.01,
                              double high_quantile = 0.99);

/// The fixed colour (RGB) of label channel `c` in the authors' order: 0 background (black), 1 CSF (blue),
/// 2 GM (grey), 3 WM (white), 4 deep GM (orange), 5 brainstem (green), 6 WMH (yellow), 7 tumour (red),
/// 8 edema (magenta); further channels cycle through a spare palette.
std::array<uint8_t, 3> label_colour(int64_t c);

/// Colours a label map [C, H, W] (PV maps or one-hot) → [H, W, 3] uint8. `soft` = false colours the argmax;
/// `soft` = true mixes the palette by the channel weights (shows partial volumes).
torch::Tensor label_to_rgb(const torch::Tensor& labels, bool soft = false);
/// The same with the colour of each channel chosen by its name where it is one of the authors' (background, csf, gm,
/// wm, deep_gm, brainstem, wmh, tumour, edema), so that a lesion is red or magenta whatever its channel index;
/// other names (and channels beyond `channel_names`) keep the colour of their index.
torch::Tensor label_to_rgb(const torch::Tensor& labels, const std::vector<std::string>& channel_names,
                           bool soft = false);

struct MontageOptions {
  int64_t padding = 2;        ///< pixels between tiles (filled with `background`)
  uint8_t background = 32;    ///< grey level of padding and empty cells
  double low_quantile = 0.01; ///< per-tile window for float tiles (see window_to_uint8)
  double high_quantile = 0.99;
};

/// Writes a grid of tiles as one PNG, row by row, `cols` per row. Each tile is either a float [H, W] image
/// (normalised on its own by window_to_uint8) or an RGB uint8 [H, W, 3] tile (e.g. from label_to_rgb).
/// Tiles may differ in size; each cell is as large as the largest tile and tiles are centred in it.
void write_montage_png(const std::string& path, const std::vector<torch::Tensor>& tiles, int64_t cols,
                       const MontageOptions& options = {});

}  // namespace brainspade
