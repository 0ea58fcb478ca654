// `brainspade register-slice`: places 2D slices (e.g. the BrainWeb T1/PD PNGs) into a co-registered volume's grid
// so that `brainspade slice` can take them as volumes (library: data/slice_registration.h).
// `brainspade style-slices`: axial slices of a volume as single-slice style images for `brainspade sample`.
#include <cstdio>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "app.h"
#include "brainspade/core/atomic_file.h"
#include "brainspade/core/error.h"
#include "brainspade/data/slice_registration.h"

namespace brainspade::app {
namespace {

struct PlaneFlags {
  int64_t height = 192, width = 256;
  std::string layout = "x_rows";
  SliceOptions options() const {
    SliceOptions o;
    o.height = height;
    o.width = width;
    o.layout = layout;
    return o;
  }
};

void add_plane_flags(CLI::App* cmd, PlaneFlags& f) {
  cmd->add_option("--height", f.height, "style image rows (the dataset's data.height)")->check(CLI::PositiveNumber);
  cmd->add_option("--width", f.width, "style image columns (the dataset's data.width)")->check(CLI::PositiveNumber);
  cmd->add_option("--layout", f.layout, "the dataset's data.layout")->check(CLI::IsMember({"x_rows", "y_rows"}));
}

// Brain mask [Y, X] of a PV map's axial slice z (background PV < 0.5, as the slicer defines it).
torch::Tensor brain_mask(const Volume& pv, int64_t z) { return (pv.data[0][z] < 0.5).to(torch::kFloat32); }

void ensure_parent(const std::string& path) {
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
}

struct RegisterFlags {
  std::string match, reference, labels, labels_out, report;
  std::vector<std::string> pngs, image_outs, style_outs;
  int64_t max_shift = 3;
  PlaneFlags plane;
};

void run_register(const RegisterFlags& f) {
  BRAINSPADE_CHECK_INPUT(f.pngs.size() == f.image_outs.size(), "--png is given ", f.pngs.size(),
                         " times but --image-out ", f.image_outs.size(), " times");
  BRAINSPADE_CHECK_INPUT(f.style_outs.empty() || f.style_outs.size() == f.pngs.size(), "--style-out is given ",
                         f.style_outs.size(), " times; give it once per --png or not at all");
  Volume ref = read_volume(f.reference);
  BRAINSPADE_CHECK_INPUT(ref.channels() == 1, f.reference, ": expected a single-channel image");
  Volume pv = read_volume(f.labels);
  BRAINSPADE_CHECK_INPUT(pv.same_grid(ref), f.labels, " (", pv.grid_string(), ") is not on the grid of ", f.reference,
                         " (", ref.grid_string(), ")");
  torch::Tensor png = read_png(f.match);
  SliceMatch m = match_slice(png, ref, f.max_shift);
  const std::string summary = fmt::format(
      "{} matches axial slice z = {} of {} (depth {}): orientation {} ({}), shift (y, x) = ({}, {}) px, NCC {:.4f}; "
      "runner-up z = {} (NCC {:.4f}, margin {:.4f}; slices within 3 of the best excluded); best other orientation "
      "NCC {:.4f}; neighbours z-1/z+1 NCC {:.4f}/{:.4f}",
      f.match, m.z, f.reference, ref.depth(), m.orientation, orientation_name(m.orientation), m.shift_y, m.shift_x,
      m.correlation, m.runner_up_z, m.runner_up_correlation, m.correlation - m.runner_up_correlation,
      m.best_other_orientation, m.z > 0 ? m.per_z[m.z - 1] : 0.0, m.z + 1 < ref.depth() ? m.per_z[m.z + 1] : 0.0);
  spdlog::info("{}", summary);
  if (!f.report.empty()) {
    ensure_parent(f.report);
    write_text_atomic(f.report, summary + "\n");
  }
  const int64_t Z = ref.depth(), Y = ref.height(), X = ref.width();
  auto mask = brain_mask(pv, m.z);
  const SliceOptions plane = f.plane.options();
  for (size_t i = 0; i < f.pngs.size(); ++i) {
    torch::Tensor img = f.pngs[i] == f.match ? png : read_png(f.pngs[i]);
    auto placed = place_slice(img, m, Y, X) * mask;  // [Y, X], zero outside the brain
    auto data = torch::zeros({1, Z, Y, X}, torch::kFloat32);
    data[0][m.z].copy_(placed);
    ensure_parent(f.image_outs[i]);
    write_volume(f.image_outs[i], pv.with_data(data));
    spdlog::info("wrote {} ({} at z = {}, zero elsewhere)", f.image_outs[i], f.pngs[i], m.z);
    if (!f.style_outs.empty()) {
      ensure_parent(f.style_outs[i]);
      write_style_slice(f.style_outs[i], slice_to_dataset_plane(placed, plane));
      spdlog::info("wrote style image {}", f.style_outs[i]);
    }
  }
  if (!f.labels_out.empty()) {
    // Background everywhere but the matched slice: the slicer's brain-fraction rule then keeps only that slice,
    // with its true slice_index and slice_position.
    auto data = torch::zeros_like(pv.data);
    data[0].fill_(1.0f);
    data.select(1, m.z).copy_(pv.data.select(1, m.z));
    ensure_parent(f.labels_out);
    write_volume(f.labels_out, pv.with_data(data));
    spdlog::info("wrote {} (labels of z = {} only)", f.labels_out, m.z);
  }
}

struct StyleFlags {
  std::string image, labels, out_dir, prefix = "slice";
  std::vector<int64_t> z;
  PlaneFlags plane;
};

void run_styles(const StyleFlags& f) {
  Volume img = read_volume(f.image);
  BRAINSPADE_CHECK_INPUT(img.channels() == 1, f.image, ": expected a single-channel image");
  Volume pv = read_volume(f.labels);
  BRAINSPADE_CHECK_INPUT(pv.same_grid(img), f.labels, " is not on the grid of ", f.image);
  std::filesystem::create_directories(f.out_dir);
  const SliceOptions plane = f.plane.options();
  for (int64_t z : f.z) {
    BRAINSPADE_CHECK_INPUT(z >= 0 && z < img.depth(), "--z ", z, " is outside ", f.image, " (depth ", img.depth(), ")");
    auto s = img.data[0][z].to(torch::kFloat32) * brain_mask(pv, z);
    char name[64];
    std::snprintf(name, sizeof(name), "%s_z%03ld.nii.gz", f.prefix.c_str(), static_cast<long>(z));
    const std::string path = f.out_dir + "/" + name;
    write_style_slice(path, slice_to_dataset_plane(s, plane));
    spdlog::info("wrote style image {} (axial slice {} of {})", path, z, f.image);
  }
}

Registrar reg("13-register-slice", [](CLI::App& root) {
  auto f = std::make_shared<RegisterFlags>();
  auto* cmd = root.add_subcommand(
      "register-slice", "place 2D slices (PNG) into a co-registered volume's grid by NCC slice matching");
  cmd->add_option("--match", f->match, "PNG matched against the reference (e.g. BrainT1Slice.png)")->required();
  cmd->add_option("--reference", f->reference, "volume of the same contrast and anatomy, non-brain-extracted (ch2)")
      ->required();
  cmd->add_option("--labels", f->labels, "PV maps on the reference grid (brain mask and output labels)")->required();
  cmd->add_option("--png", f->pngs, "PNG of the same slice to place (repeatable; --match itself may be listed)");
  cmd->add_option("--image-out", f->image_outs, "output volume per --png: the slice at the matched z, zero elsewhere");
  cmd->add_option("--labels-out", f->labels_out, "output PV volume: the matched slice's labels, background elsewhere");
  cmd->add_option("--style-out", f->style_outs, "optional single-slice style image per --png (dataset layout)");
  cmd->add_option("--report", f->report, "text file for the match summary");
  cmd->add_option("--max-shift", f->max_shift, "in-plane shift searched, pixels per axis")->check(CLI::NonNegativeNumber);
  add_plane_flags(cmd, f->plane);
  cmd->callback([f] { run_register(*f); });
});

Registrar reg_styles("14-style-slices", [](CLI::App& root) {
  auto f = std::make_shared<StyleFlags>();
  auto* cmd = root.add_subcommand("style-slices", "brain-masked axial slices as single-slice style images");
  cmd->add_option("--image", f->image, "image volume")->required();
  cmd->add_option("--labels", f->labels, "PV maps on its grid (brain mask)")->required();
  cmd->add_option("--z", f->z, "axial indices (repeatable)")->required();
  cmd->add_option("--out-dir", f->out_dir, "output folder")->required();
  cmd->add_option("--prefix", f->prefix, "file name prefix: PREFIX_zNNN.nii.gz");
  add_plane_flags(cmd, f->plane);
  cmd->callback([f] { run_styles(*f); });
});

struct MontageFlags {
  std::string out, dataset;
  std::vector<std::string> files;
  std::vector<int64_t> rows;
  int64_t cols = 4;
};

// Each file is shown as `brainspade sample` reads a style image (the middle slice data[0][depth / 2]), dataset rows
// as stored: to check by eye that style images come out in the dataset's layout.
void run_montage(const MontageFlags& f) {
  std::vector<torch::Tensor> tiles;
  for (const auto& path : f.files) {
    Volume v = read_volume(path);
    tiles.push_back(v.data[0][v.depth() / 2]);
  }
  if (!f.dataset.empty()) {
    SliceDataset ds = SliceDataset::load(f.dataset);
    BRAINSPADE_CHECK_INPUT(ds.images.defined(), f.dataset, ": has no images");
    for (int64_t r : f.rows) {
      BRAINSPADE_CHECK_INPUT(r >= 0 && r < ds.size(), "--rows ", r, " is outside ", f.dataset, " (", ds.size(), " rows)");
      tiles.push_back(ds.images[r][0]);
    }
  }
  BRAINSPADE_CHECK_INPUT(!tiles.empty(), "montage: nothing to show (give --files and/or --dataset with --rows)");
  ensure_parent(f.out);
  write_montage_png(f.out, tiles, f.cols);
  spdlog::info("wrote {} ({} tiles)", f.out, tiles.size());
}

Registrar reg_montage("15-style-montage", [](CLI::App& root) {
  auto f = std::make_shared<MontageFlags>();
  auto* cmd = root.add_subcommand("style-montage", "PNG of style images (as `sample` reads them) and dataset slices");
  cmd->add_option("--out,-o", f->out, "output PNG")->required();
  cmd->add_option("--files", f->files, "images/volumes (the middle axial slice of each is shown)");
  cmd->add_option("--dataset", f->dataset, "dataset.pt to show rows of");
  cmd->add_option("--rows", f->rows, "dataset rows to show");
  cmd->add_option("--cols", f->cols, "tiles per row")->check(CLI::PositiveNumber);
  cmd->callback([f] { run_montage(*f); });
});

}  // namespace
}  // namespace brainspade::app
