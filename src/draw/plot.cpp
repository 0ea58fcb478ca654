#include "brainspade/draw/plot.h"

#include <cairo.h>

#include <algorithm>
#include <cstdio>
#include <limits>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/error.h"

namespace brainspade {

namespace {

// Colours of series 0, 1, ... (Okabe-Ito: distinguishable with colour-vision deficiencies).
constexpr std::array<std::array<double, 3>, 6> kColours{{{0.00, 0.45, 0.70},
                                                         {0.84, 0.37, 0.00},
                                                         {0.00, 0.62, 0.45},
                                                         {0.80, 0.47, 0.65},
                                                         {0.34, 0.71, 0.91},
                                                         {0.90, 0.62, 0.00}}};

std::string tick_text(double v) {
  char buf[32];
  if (v != 0 && (std::abs(v) >= 1e5 || std::abs(v) < 1e-3)) std::snprintf(buf, sizeof buf, "%.0e", v);
  else std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

struct Frame {
  double x0, y0, w, h;  // plotting area (device pixels; y0 is the top)
};

void text(cairo_t* cr, const std::string& s, double x, double y, double size, double align_x, double align_y,
          bool vertical = false) {
  cairo_set_font_size(cr, size);
  cairo_text_extents_t e;
  cairo_text_extents(cr, s.c_str(), &e);
  cairo_save(cr);
  cairo_translate(cr, x, y);
  if (vertical) cairo_rotate(cr, -M_PI / 2);
  cairo_move_to(cr, -e.width * align_x - e.x_bearing, -e.height * align_y - e.y_bearing);
  cairo_show_text(cr, s.c_str());
  cairo_restore(cr);
}

// Panel background, title, axis titles; returns the plotting area.
Frame panel_frame(cairo_t* cr, double ox, double w, double h, const std::string& title, const std::string& x_label,
                  const std::string& y_label) {
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_rectangle(cr, ox, 0, w, h);
  cairo_fill(cr);
  cairo_set_source_rgb(cr, 0, 0, 0);
  text(cr, title, ox + w / 2, 16, 14, 0.5, 0.5);
  Frame f{ox + 70, 36, w - 90, h - 36 - 56};
  if (!x_label.empty()) text(cr, x_label, f.x0 + f.w / 2, h - 14, 12, 0.5, 0.5);
  if (!y_label.empty()) text(cr, y_label, ox + 14, f.y0 + f.h / 2, 12, 0.5, 0.5, true);
  return f;
}

void axes(cairo_t* cr, const Frame& f) {
  cairo_set_source_rgb(cr, 0, 0, 0);
  cairo_set_line_width(cr, 1.2);
  cairo_rectangle(cr, f.x0, f.y0, f.w, f.h);
  cairo_stroke(cr);
}

void y_ticks(cairo_t* cr, const Frame& f, double lo, double hi, bool log_y) {
  const auto ticks = nice_ticks(lo, hi, 5);
  cairo_set_line_width(cr, 1.0);
  for (double t : ticks) {
    const double y = f.y0 + f.h * (1 - (t - lo) / (hi - lo));
    cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
    cairo_move_to(cr, f.x0, y);
    cairo_line_to(cr, f.x0 + f.w, y);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_move_to(cr, f.x0 - 5, y);
    cairo_line_to(cr, f.x0, y);
    cairo_stroke(cr);
    text(cr, log_y ? tick_text(std::pow(10.0, t)) : tick_text(t), f.x0 - 8, y, 11, 1.0, 0.5);
  }
}

void legend(cairo_t* cr, const Frame& f, const std::vector<std::string>& labels, const std::vector<bool>& dashed,
            bool as_boxes) {
  double y = f.y0 + 14;
  for (size_t i = 0; i < labels.size(); ++i, y += 16) {
    const auto& c = kColours[i % kColours.size()];
    cairo_set_source_rgb(cr, c[0], c[1], c[2]);
    const double x = f.x0 + f.w - 150;
    if (as_boxes) {
      cairo_rectangle(cr, x, y - 5, 18, 10);
      cairo_fill(cr);
    } else {
      cairo_set_line_width(cr, 2.0);
      if (i < dashed.size() && dashed[i]) {
        const double d[] = {5, 3};
        cairo_set_dash(cr, d, 2, 0);
      }
      cairo_move_to(cr, x, y);
      cairo_line_to(cr, x + 18, y);
      cairo_stroke(cr);
      cairo_set_dash(cr, nullptr, 0, 0);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, labels[i], x + 24, y, 11, 0.0, 0.5);
  }
}

void draw_line_plot(cairo_t* cr, const LinePlot& p, double ox, double w, double h) {
  Frame f = panel_frame(cr, ox, w, h, p.title, p.x_label, p.y_label);
  auto ty = [&](double y) { return p.log_y ? std::log10(y) : y; };
  double xlo = std::numeric_limits<double>::infinity(), xhi = -xlo, ylo = xlo, yhi = -xlo;
  for (const auto& s : p.series)
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i]) || (p.log_y && s.y[i] <= 0)) continue;
      xlo = std::min(xlo, s.x[i]), xhi = std::max(xhi, s.x[i]);
      ylo = std::min(ylo, ty(s.y[i])), yhi = std::max(yhi, ty(s.y[i]));
    }
  if (!std::isfinite(xlo)) xlo = 0, xhi = 1, ylo = 0, yhi = 1;
  if (xhi == xlo) xhi = xlo + 1;
  if (yhi == ylo) yhi = ylo + 1;
  const double pad = 0.05 * (yhi - ylo);
  ylo -= pad, yhi += pad;
  y_ticks(cr, f, ylo, yhi, p.log_y);
  for (double t : nice_ticks(xlo, xhi, 6)) {
    const double x = f.x0 + f.w * (t - xlo) / (xhi - xlo);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_move_to(cr, x, f.y0 + f.h);
    cairo_line_to(cr, x, f.y0 + f.h + 5);
    cairo_stroke(cr);
    text(cr, tick_text(t), x, f.y0 + f.h + 16, 11, 0.5, 0.5);
  }
  cairo_save(cr);
  cairo_rectangle(cr, f.x0, f.y0, f.w, f.h);
  cairo_clip(cr);
  std::vector<std::string> labels;
  std::vector<bool> dashed;
  for (size_t k = 0; k < p.series.size(); ++k) {
    const auto& s = p.series[k];
    const auto& c = kColours[k % kColours.size()];
    cairo_set_source_rgb(cr, c[0], c[1], c[2]);
    cairo_set_line_width(cr, 1.8);
    if (s.dashed) {
      const double d[] = {5, 3};
      cairo_set_dash(cr, d, 2, 0);
    }
    bool pen = false;
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i]) || (p.log_y && s.y[i] <= 0)) {
        pen = false;
        continue;
      }
      const double x = f.x0 + f.w * (s.x[i] - xlo) / (xhi - xlo);
      const double y = f.y0 + f.h * (1 - (ty(s.y[i]) - ylo) / (yhi - ylo));
      if (pen) cairo_line_to(cr, x, y);
      else cairo_move_to(cr, x, y);
      pen = true;
    }
    cairo_stroke(cr);
    cairo_set_dash(cr, nullptr, 0, 0);
    labels.push_back(s.label);
    dashed.push_back(s.dashed);
  }
  cairo_restore(cr);
  axes(cr, f);
  legend(cr, f, labels, dashed, false);
}

void draw_bar_plot(cairo_t* cr, const BarPlot& p, double ox, double w, double h) {
  Frame f = panel_frame(cr, ox, w, h, p.title, "", p.y_label);
  double yhi = std::isfinite(p.reference) ? p.reference : 0.0;
  for (const auto& g : p.groups)
    for (double v : g.values)
      if (std::isfinite(v)) yhi = std::max(yhi, v);
  if (yhi <= 0) yhi = 1;
  yhi *= 1.1;
  y_ticks(cr, f, 0.0, yhi, false);
  const size_t S = std::max<size_t>(1, p.series_names.size());
  const double group_w = f.w / std::max<size_t>(1, p.groups.size());
  const double bar_w = group_w * 0.8 / S;
  for (size_t g = 0; g < p.groups.size(); ++g) {
    const double gx = f.x0 + g * group_w;
    for (size_t s = 0; s < p.groups[g].values.size() && s < S; ++s) {
      const double v = p.groups[g].values[s];
      if (!std::isfinite(v)) continue;
      const auto& c = kColours[s % kColours.size()];
      cairo_set_source_rgb(cr, c[0], c[1], c[2]);
      const double bh = f.h * v / yhi;
      cairo_rectangle(cr, gx + group_w * 0.1 + s * bar_w, f.y0 + f.h - bh, bar_w * 0.95, bh);
      cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, p.groups[g].label, gx + group_w / 2, f.y0 + f.h + 16, 11, 0.5, 0.5);
  }
  if (std::isfinite(p.reference)) {
    const double y = f.y0 + f.h * (1 - p.reference / yhi);
    const double d[] = {6, 4};
    cairo_set_dash(cr, d, 2, 0);
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_move_to(cr, f.x0, y);
    cairo_line_to(cr, f.x0 + f.w, y);
    cairo_stroke(cr);
    cairo_set_dash(cr, nullptr, 0, 0);
  }
  axes(cr, f);
  legend(cr, f, p.series_names, {}, true);
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  std::vector<double> out;
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return out;
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;  // the 1-2-5 step closest to the raw step (on a log scale)
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (std::abs(std::log(m * mag / raw)) < std::abs(std::log(step / raw))) step = m * mag;
  const double first = std::ceil(lo / step - 1e-9);
  for (int i = 0;; ++i) {
    const double t = (first + i) * step;  // by multiplication: no drift from repeated addition
    if (t > hi + step * 1e-9) break;
    out.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  }
  return out;
}

void write_plot_png(const std::string& path, const std::vector<PlotPanel>& panels, int panel_width, int panel_height) {
  const int n = std::max<int>(1, static_cast<int>(panels.size()));
  cairo_surface_t* surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, panel_width * n, panel_height);
  cairo_t* cr = cairo_create(surface);
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  for (size_t i = 0; i < panels.size(); ++i) {
    const double ox = static_cast<double>(i) * panel_width;
    if (const auto* lp = std::get_if<LinePlot>(&panels[i])) draw_line_plot(cr, *lp, ox, panel_width, panel_height);
    else draw_bar_plot(cr, std::get<BarPlot>(panels[i]), ox, panel_width, panel_height);
  }
  cairo_destroy(cr);
  cairo_surface_flush(surface);
  write_atomic(path, [&](const std::string& tmp) {
    const cairo_status_t st = cairo_surface_write_to_png(surface, tmp.c_str());
    if (st != CAIRO_STATUS_SUCCESS) {
      cairo_surface_destroy(surface);
      throw input_error(path, ": cannot write PNG (", cairo_status_to_string(st), ")");
    }
  });
  cairo_surface_destroy(surface);
}

}  // namespace brainspade
