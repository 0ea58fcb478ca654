#pragma once
/// Plots drawn with cairo: line plots (loss curves, power spectra) and grouped bar plots (tissue fractions), one or
/// more panels side by side in one PNG, with axes, ticks, tick labels, axis titles and a legend.
#include <array>
#include <cmath>
#include <string>
#include <variant>
#include <vector>

namespace brainspade {

/// One curve: points (x[i], y[i]); non-finite points are skipped (a gap).
struct PlotSeries {
  std::string label;
  std::vector<double> x, y;
  bool dashed = false;
};

struct LinePlot {
  std::string title, x_label, y_label;
  bool log_y = false;  ///< logarithmic y axis (values <= 0 are skipped)
  std::vector<PlotSeries> series;
};

/// Groups of bars: groups[g].values[s] is the bar of series s in group g.
struct BarGroup {
  std::string label;
  std::vector<double> values;
};
struct BarPlot {
  std::string title, y_label;
  std::vector<std::string> series_names;
  std::vector<BarGroup> groups;
  double reference = NAN;  ///< a dashed horizontal line (e.g. a ratio of 1); NaN = none
};

using PlotPanel = std::variant<LinePlot, BarPlot>;

/// Draws the panels left to right, each `panel_width` x `panel_height` pixels, and writes the PNG atomically.
void write_plot_png(const std::string& path, const std::vector<PlotPanel>& panels, int panel_width = 520,
                    int panel_height = 380);

/// Tick positions for [lo, hi]: about `target` "nice" values (1, 2, 5 × 10^k steps) inside the range.
std::vector<double> nice_ticks(double lo, double hi, int target = 5);

}  // namespace brainspade
