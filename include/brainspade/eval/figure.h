#pragma once
/// Figures in the manner of the paper's Fig. 3/4: for a few axial slices of a test volume, the input image, the
/// ground truth and every model's prediction side by side (one row per slice).
#include <string>
#include <vector>

namespace brainspade {

struct PredictionFigureJob {
  std::string image;                  ///< 3D input image
  std::string reference;              ///< 3D reference label volume (class indices)
  std::vector<std::string> predictions;  ///< NAME=PATH of each model's 3D label volume (same grid)
  std::vector<int64_t> slices;        ///< axial indices shown; empty = `rows` evenly spaced slices of the reference's extent
  int64_t rows = 3;
  /// class names by label value (index 0 = background): a class named as one of the authors' channels (csf, gm, wm,
  /// tumour, edema, ...) takes that channel's colour; empty = colours by label value
  std::vector<std::string> class_names;
  std::string out;                    ///< PNG path
};

/// Writes the figure (columns: image | ground truth | predictions in the given order) and returns its caption
/// ("columns: image, ground truth, R, S; slices z=..."). InputError naming a file that is missing, of another grid,
/// or a prediction not written as NAME=PATH.
std::string write_prediction_figure(const PredictionFigureJob& job);

}  // namespace brainspade
