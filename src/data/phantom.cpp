// The simulated lesion cohort (data/phantom.h).
#include "brainspade/data/phantom.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>

#include <spdlog/spdlog.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/csv.h"
#include "brainspade/core/error.h"
#include "brainspade/core/progress.h"
#include "brainspade/core/runtime.h"
#include "brainspade/data/holdout.h"
#include "brainspade/draw/montage.h"

namespace brainspade {

void PhantomSourceOptions::visit(ConfigVisitor& v) {
  v("image", image, "brain-extracted T1 of the source subject (zero background)");
  v("labels", labels, "its PV maps [C,Z,Y,X] on the same grid (channel 0 = background)");
  v("channel_names", channel_names, "names of the PV channels in file order");
}

void PhantomCohortOptions::visit(ConfigVisitor& v) {
  v("train", train, "simulated patients for training (listed in slice.yaml)", Bounds::at_least(1));
  v("test", test, "held-out simulated patients (test images and labels only)", Bounds::non_negative());
  v("label_map", label_map, "PV channel (source channels, then the lesions) -> class of the hard test labels; empty = "
    "channel index", Bounds::non_negative());
  v("slice_height", slice_height, "data.height of the written slice config", Bounds::at_least(1));
  v("slice_width", slice_width, "data.width of the written slice config", Bounds::at_least(1));
  v("slices_per_volume", slices_per_volume, "data.slices_per_volume of the written slice config (0 = all)",
    Bounds::non_negative());
}

void PhantomAnatomyOptions::visit(ConfigVisitor& v) {
  v("rotate_deg", rotate_deg, "rotation about each axis ~ U(-r, r) degrees", Bounds::range(0, 45));
  v("scale", scale, "scale per axis ~ 1 + U(-s, s)", Bounds::range(0, 0.5));
  v("translate_mm", translate_mm, "translation per axis ~ U(-t, t) mm", Bounds::non_negative());
  v("elastic_mm", elastic_mm, "std of the elastic displacement at its control points (mm)", Bounds::non_negative());
  v("elastic_points", elastic_points, "control points per axis of the elastic field", Bounds::range(2, 64));
}

void PhantomLesionOptions::visit(ConfigVisitor& v) {
  v("names", names, "the two lesion channel names: the core, then the edema around it");
  v("count", count, "[lo, hi]: tumours per patient ~ U{lo..hi}", Bounds::range(1, 16));
  v("tumour_radius_mm", tumour_radius_mm, "[lo, hi]: core radius (mm)", Bounds::range(1, 60));
  v("edema_ratio", edema_ratio, "[lo, hi]: edema radius / core radius", Bounds::range(1, 5));
  v("irregularity", irregularity, "relative radius modulation by smooth noise (0 = spheres)", Bounds::range(0, 0.7));
  v("border_mm", border_mm, "width of the partial-volume edge of the core (mm; edema: twice)", Bounds::range(0.1, 10));
  v("mass_effect_mm", mass_effect_mm, "outward push of the tissue at the core's edge (mm; 0 = none)",
    Bounds::range(0, 20));
  v("min_wm", min_wm, "a core's centre lies where white matter PV >= this", Bounds::unit());
  v("margin_mm", margin_mm, "... at least this far from the background (mm)", Bounds::non_negative());
  v("z_range", z_range, "[lo, hi]: ... in this range of relative axial position (0 = inferior)", Bounds::unit());
}

void PhantomContrastOptions::visit(ConfigVisitor& v) {
  v("t1_lesion", t1_lesion, "[core, edema] T1 intensity relative to white matter", Bounds::range(0, 5));
  v("pd_tissue", pd_tissue, "PD value per source channel relative to white matter", Bounds::range(0, 5));
  v("pd_lesion", pd_lesion, "[core, edema] PD relative to white matter", Bounds::range(0, 5));
  v("texture", texture, "std of the smooth multiplicative texture", Bounds::range(0, 0.5));
  v("bias_field", bias_field, "bias field exp(b n), b ~ U(0, this)", Bounds::range(0, 1));
  v("gamma", gamma, "[lo, hi]: gamma on the image scaled to [0, 1]", Bounds::range(0.2, 5));
  v("gain", gain, "global gain ~ 1 + U(-g, g)", Bounds::range(0, 0.9));
  v("noise", noise, "Gaussian noise std relative to the white-matter mean", Bounds::range(0, 1));
}

void PhantomConfig::visit(ConfigVisitor& v) {
  v.section("run", run, "output folder, seed, threads");
  v.section("source", source, "the labelled subject every patient is made from");
  v.section("cohort", cohort, "how many patients, test labels, the slice config");
  v.section("anatomy", anatomy, "each patient's smooth random deformation");
  v.section("lesions", lesions, "tumour cores and edema");
  v.section("contrast", contrast, "T1 and PD intensities, bias, noise");
}

namespace {

namespace F = torch::nn::functional;

double uniform(torch::Generator& g, double lo, double hi) {
  return lo + (hi - lo) * torch::rand({1}, g, torch::kDouble).item<double>();
}

// Smooth noise of unit standard deviation on a [Z, Y, X] grid: normal values on a coarse grid, trilinearly upsampled.
torch::Tensor smooth_noise(torch::Generator& g, std::array<int64_t, 3> points_zyx, std::array<int64_t, 3> size_zyx) {
  auto n = torch::randn({1, 1, points_zyx[0], points_zyx[1], points_zyx[2]}, g);
  auto up = F::interpolate(n, F::InterpolateFuncOptions()
                                  .size(std::vector<int64_t>{size_zyx[0], size_zyx[1], size_zyx[2]})
                                  .mode(torch::kTrilinear)
                                  .align_corners(true))[0][0];
  return up / std::max(up.std().item<double>(), 1e-6);
}

// Separable max filter of a [Z, Y, X] float mask with a box of half-width r voxels per axis (r_zyx).
torch::Tensor dilate(const torch::Tensor& mask, std::array<int64_t, 3> r_zyx) {
  auto m = mask.unsqueeze(0).unsqueeze(0);
  for (int a = 0; a < 3; ++a) {
    if (r_zyx[a] <= 0) continue;
    std::vector<int64_t> k{1, 1, 1}, p{0, 0, 0};
    k[a] = 2 * r_zyx[a] + 1;
    p[a] = r_zyx[a];
    m = F::max_pool3d(m, F::MaxPool3dFuncOptions(k).stride(1).padding(p));
  }
  return m[0][0];
}

// Normalised sampling coordinates (x, y, z in [-1, 1], align_corners) of a grid whose physical half-extent per axis
// is half_mm (x, y, z), from millimetre offsets about the centre.
torch::Tensor to_grid(const torch::Tensor& qx, const torch::Tensor& qy, const torch::Tensor& qz,
                      const std::array<double, 3>& half_mm) {
  return torch::stack({qx / half_mm[0], qy / half_mm[1], qz / half_mm[2]}, -1).unsqueeze(0);  // [1, Z, Y, X, 3]
}

// Resamples [C, Z, Y, X] at the grid (zeros outside).
torch::Tensor warp(const torch::Tensor& data, const torch::Tensor& grid) {
  return F::grid_sample(data.unsqueeze(0), grid,
                        F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kZeros).align_corners(true))[0];
}

// Rotation matrix (row-major) from angles about x, y, z (radians).
std::array<double, 9> rotation(double ax, double ay, double az) {
  const double cx = std::cos(ax), sx = std::sin(ax), cy = std::cos(ay), sy = std::sin(ay), cz = std::cos(az),
               sz = std::sin(az);
  // Rz · Ry · Rx
  return {cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx,
          sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx,
          -sy,     cy * sx,                cy * cx};
}

// Bias field, gain, gamma and noise of one image [Z, Y, X] inside `brain` (bool [Z, Y, X]); `wm_mean` sets the noise.
torch::Tensor acquire(torch::Tensor img, const torch::Tensor& brain, double wm_mean, const PhantomContrastOptions& c,
                      torch::Generator& g) {
  const auto size = std::array<int64_t, 3>{img.size(0), img.size(1), img.size(2)};
  img = img * torch::exp(uniform(g, 0.0, c.bias_field) * smooth_noise(g, {4, 4, 4}, size));
  img = img * (1.0 + uniform(g, -c.gain, c.gain));
  const double top = std::max(img.max().item<double>(), 1e-6);
  img = (img.clamp_min(0) / top).pow(uniform(g, c.gamma[0], c.gamma[1])) * top;
  img = img + torch::randn(img.sizes(), g) * (c.noise * wm_mean);
  return torch::where(brain, img.clamp_min(0), torch::zeros_like(img));
}

}  // namespace

void check_phantom_config(const PhantomConfig& c) {
  check_lo_hi(c.lesions.tumour_radius_mm, "lesions.tumour_radius_mm");
  check_lo_hi(c.lesions.edema_ratio, "lesions.edema_ratio");
  check_lo_hi(c.lesions.z_range, "lesions.z_range");
  check_lo_hi(c.contrast.gamma, "contrast.gamma");
  BRAINSPADE_CHECK_INPUT(c.lesions.count.size() == 2 && c.lesions.count[0] <= c.lesions.count[1],
                         "config key 'lesions.count': expected [lo, hi] with lo <= hi");
  BRAINSPADE_CHECK_INPUT(c.lesions.names.size() == 2 && c.lesions.names[0] != c.lesions.names[1],
                         "config key 'lesions.names': expected two different names (core, edema)");
  for (const auto& n : c.lesions.names)
    BRAINSPADE_CHECK_INPUT(std::find(c.source.channel_names.begin(), c.source.channel_names.end(), n) ==
                               c.source.channel_names.end(),
                           "config key 'lesions.names': '", n, "' is already a source channel");
  BRAINSPADE_CHECK_INPUT(c.contrast.t1_lesion.size() == 2, "config key 'contrast.t1_lesion': expected [core, edema]");
  BRAINSPADE_CHECK_INPUT(c.contrast.pd_lesion.size() == 2, "config key 'contrast.pd_lesion': expected [core, edema]");
  BRAINSPADE_CHECK_INPUT(c.contrast.pd_tissue.size() == c.source.channel_names.size(),
                         "config key 'contrast.pd_tissue': ", c.contrast.pd_tissue.size(), " values for ",
                         c.source.channel_names.size(), " source channels (source.channel_names)");
  const auto channels = c.source.channel_names.size() + 2;
  BRAINSPADE_CHECK_INPUT(c.cohort.label_map.empty() || c.cohort.label_map.size() == channels,
                         "config key 'cohort.label_map': ", c.cohort.label_map.size(), " entries for ", channels,
                         " PV channels (source channels and the two lesions)");
  for (const char* name : {"wm", "background"})
    BRAINSPADE_CHECK_INPUT(std::find(c.source.channel_names.begin(), c.source.channel_names.end(), name) !=
                               c.source.channel_names.end(),
                           "config key 'source.channel_names': no '", name, "' channel (the cores are seeded in wm)");
}

PhantomPatient simulate_patient(const Volume& t1, const Volume& pv_in, const PhantomConfig& cfg, int64_t index) {
  check_phantom_config(cfg);
  const auto& names = cfg.source.channel_names;
  BRAINSPADE_CHECK_INPUT(t1.channels() == 1, cfg.source.image, ": expected a 3D image, got ", t1.channels(),
                         " channels");
  BRAINSPADE_CHECK_INPUT(pv_in.channels() == static_cast<int64_t>(names.size()), cfg.source.labels, ": ",
                         pv_in.channels(), " channels, but source.channel_names has ", names.size());
  BRAINSPADE_CHECK_INPUT(t1.same_grid(pv_in), cfg.source.image, " (", t1.grid_string(), ") and ", cfg.source.labels,
                         " (", pv_in.grid_string(), ") are not on the same grid");
  auto channel = [&](const char* n) {
    return std::find(names.begin(), names.end(), n) - names.begin();
  };
  const int64_t wm_c = channel("wm"), bg_c = channel("background");
  const int64_t csf_c = channel("csf");
  const int64_t gm_c = channel("gm");
  const int64_t C = pv_in.channels(), Z = t1.depth(), Y = t1.height(), X = t1.width();
  const auto& sp = t1.spacing;  // x, y, z
  const std::array<double, 3> half{(X - 1) * sp[0] / 2, (Y - 1) * sp[1] / 2, (Z - 1) * sp[2] / 2};
  auto g = make_generator(derive_seed(static_cast<uint64_t>(cfg.run.seed), 0x9a7e, static_cast<uint64_t>(index)));

  // Millimetre offsets of every voxel from the centre, per axis, broadcast to [Z, Y, X].
  auto lin = [](int64_t n, double h) { return torch::linspace(-h, h, n, torch::kFloat32); };
  auto qx = lin(X, half[0]).view({1, 1, X}).expand({Z, Y, X});
  auto qy = lin(Y, half[1]).view({1, Y, 1}).expand({Z, Y, X});
  auto qz = lin(Z, half[2]).view({Z, 1, 1}).expand({Z, Y, X});

  // 1. Anatomy: q_in = R·S·q + t + elastic(q).
  const auto& an = cfg.anatomy;
  const double deg = 3.14159265358979323846 / 180.0;
  auto R = rotation(uniform(g, -an.rotate_deg, an.rotate_deg) * deg, uniform(g, -an.rotate_deg, an.rotate_deg) * deg,
                    uniform(g, -an.rotate_deg, an.rotate_deg) * deg);
  std::array<double, 3> s{}, t{};
  for (int a = 0; a < 3; ++a) s[a] = 1.0 + uniform(g, -an.scale, an.scale);
  for (int a = 0; a < 3; ++a) t[a] = uniform(g, -an.translate_mm, an.translate_mm);
  auto P = an.elastic_points;
  auto el = torch::randn({1, 3, P, P, P}, g) * an.elastic_mm;
  el = F::interpolate(el, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{Z, Y, X})
                              .mode(torch::kTrilinear)
                              .align_corners(true))[0];
  std::array<torch::Tensor, 3> q_in;
  for (int r = 0; r < 3; ++r)
    q_in[r] = R[3 * r] * s[0] * qx + R[3 * r + 1] * s[1] * qy + R[3 * r + 2] * s[2] * qz + t[r] + el[r];
  el = torch::Tensor();
  auto stack = torch::cat({pv_in.data, t1.data});  // [C + 1, Z, Y, X]
  auto warped = warp(stack, to_grid(q_in[0], q_in[1], q_in[2], half));
  for (auto& q : q_in) q = torch::Tensor();

  // 2. Where cores may go: white matter, far from the background, in the axial range.
  const auto& les = cfg.lesions;
  auto pv = warped.slice(0, 0, C);
  auto near_bg = dilate((pv[bg_c] > 0.5).to(torch::kFloat32),
                        {static_cast<int64_t>(std::ceil(les.margin_mm / sp[2])),
                         static_cast<int64_t>(std::ceil(les.margin_mm / sp[1])),
                         static_cast<int64_t>(std::ceil(les.margin_mm / sp[0]))});
  auto allowed = (pv[wm_c] >= les.min_wm) & (near_bg < 0.5);
  const int64_t z_lo = static_cast<int64_t>(std::floor(les.z_range[0] * Z)),
                z_hi = static_cast<int64_t>(std::ceil(les.z_range[1] * Z));
  allowed.slice(0, 0, std::max<int64_t>(z_lo, 0)).fill_(false);
  allowed.slice(0, std::min(z_hi, Z), Z).fill_(false);
  auto candidates = allowed.nonzero();  // [n, 3] (z, y, x)
  BRAINSPADE_CHECK_INPUT(candidates.size(0) > 0, cfg.source.labels, ": no voxel with wm PV >= ", les.min_wm, " at ",
                         les.margin_mm, " mm from the background in lesions.z_range [", les.z_range[0], ", ",
                         les.z_range[1], "] (patient ", index, "): lower lesions.min_wm or lesions.margin_mm");

  PhantomPatient out;
  const int64_t count = les.count[0] + static_cast<int64_t>(std::floor(uniform(g, 0.0, 1.0 - 1e-9) *
                                                                       (les.count[1] - les.count[0] + 1)));
  auto core = torch::zeros({Z, Y, X});
  auto edema_raw = torch::zeros({Z, Y, X});
  auto tex = torch::zeros({Z, Y, X});  // lesion texture (fine smooth noise inside the lesion boxes)
  torch::Tensor push_x = torch::zeros({Z, Y, X}), push_y = torch::zeros({Z, Y, X}), push_z = torch::zeros({Z, Y, X});
  for (int64_t k = 0; k < count; ++k) {
    const int64_t pick = static_cast<int64_t>(std::floor(uniform(g, 0.0, 1.0 - 1e-9) * candidates.size(0)));
    const int64_t cz = candidates[pick][0].item<int64_t>(), cy = candidates[pick][1].item<int64_t>(),
                  cx = candidates[pick][2].item<int64_t>();
    out.centres.push_back({cx, cy, cz});
    const double r_core = uniform(g, les.tumour_radius_mm[0], les.tumour_radius_mm[1]);
    const double r_edema = r_core * uniform(g, les.edema_ratio[0], les.edema_ratio[1]);
    // The box around the lesion that holds every voxel it can reach (radius · (1 + 3·irregularity) and the edge).
    // The push of the mass effect fades as exp(−d²/2σ²), σ = 0.6 edema radii: negligible (< 3e-4) beyond 4σ.
    const double sigma = 0.6 * r_edema;
    const double reach = std::max(r_edema * (1.0 + 3.0 * les.irregularity) + 4.0 * les.border_mm,
                                  les.mass_effect_mm > 0 ? 4.0 * sigma : 0.0);
    auto lo_hi = [&](int64_t c, double spacing, int64_t n) {
      const int64_t r = static_cast<int64_t>(std::ceil(reach / spacing));
      return std::array<int64_t, 2>{std::max<int64_t>(c - r, 0), std::min<int64_t>(c + r + 1, n)};
    };
    auto bz = lo_hi(cz, sp[2], Z), by = lo_hi(cy, sp[1], Y), bx = lo_hi(cx, sp[0], X);
    const std::array<int64_t, 3> box{bz[1] - bz[0], by[1] - by[0], bx[1] - bx[0]};
    auto dz = ((torch::arange(bz[0], bz[1], torch::kFloat32) - cz) * sp[2]).view({-1, 1, 1});
    auto dy = ((torch::arange(by[0], by[1], torch::kFloat32) - cy) * sp[1]).view({1, -1, 1});
    auto dx = ((torch::arange(bx[0], bx[1], torch::kFloat32) - cx) * sp[0]).view({1, 1, -1});
    auto dist = (dx * dx + dy * dy + dz * dz).sqrt();  // [bz, by, bx] mm
    // Shape noise with a grain of about 0.8 core radii, so that the radius varies around each core.
    auto grain = [&](int64_t n, double spacing) {
      return std::clamp<int64_t>(std::llround(n * spacing / (0.8 * r_core)), 3, 24);
    };
    const std::array<int64_t, 3> shape_points{grain(box[0], sp[2]), grain(box[1], sp[1]), grain(box[2], sp[0])};
    auto n1 = smooth_noise(g, shape_points, box), n2 = smooth_noise(g, shape_points, box);
    auto rc = (r_core * (1.0 + les.irregularity * n1)).clamp_min(0.3 * r_core);
    auto re = (r_edema * (1.0 + les.irregularity * n2)).clamp_min(0.3 * r_edema);
    auto c_k = torch::sigmoid((rc - dist) / les.border_mm);
    auto e_k = torch::sigmoid((re - dist) / (2.0 * les.border_mm));
    auto box_of = [&](torch::Tensor& full) {
      return full.slice(0, bz[0], bz[1]).slice(1, by[0], by[1]).slice(2, bx[0], bx[1]);
    };
    box_of(core).copy_(torch::max(box_of(core), c_k));
    box_of(edema_raw).copy_(torch::max(box_of(edema_raw), e_k));
    box_of(tex).copy_(smooth_noise(g, {std::max<int64_t>(box[0] / 3, 2), std::max<int64_t>(box[1] / 3, 2),
                                       std::max<int64_t>(box[2] / 3, 2)}, box));
    if (les.mass_effect_mm > 0) {
      // Sampling from q − k·d·exp(−|d|²/2σ²) expands the tissue about the centre: at the core's edge it has moved
      // outwards by about mass_effect_mm · exp(−r_core²/2σ²) (0.6–0.8 of it); the push fades over the edema.
      const double kk = les.mass_effect_mm / r_core;
      auto w = kk * torch::exp(-(dist * dist) / (2 * sigma * sigma));
      box_of(push_x).add_(w * dx);
      box_of(push_y).add_(w * dy);
      box_of(push_z).add_(w * dz);
    }
  }
  out.tumours = count;
  if (les.mass_effect_mm > 0) {
    auto grid = to_grid(qx - push_x, qy - push_y, qz - push_z, half);
    // Offsets in index space are about the volume's centre: to_grid maps qx = ±half to ±1.
    warped = warp(warped, grid);
    pv = warped.slice(0, 0, C);
  }
  push_x = push_y = push_z = torch::Tensor();
  // Voxels outside the source's field of view come back all zero: they are background.
  pv = pv.clamp(0, 1);
  pv[bg_c] += (1.0 - pv.sum(0)).clamp_min(0);
  pv = pv / pv.sum(0, true);
  auto brain = (1.0 - pv[bg_c]).clamp(0, 1);
  auto t1_img = warped[C];

  // 3. Lesion PV: the core replaces any brain tissue; the edema spreads in the parenchyma (sparing CSF and, by half,
  // the cortex: vasogenic edema follows the white matter).
  auto tumour = core * brain;
  auto parenchyma = (brain - pv[csf_c] - 0.5 * pv[gm_c]).clamp(0, 1);
  auto edema = torch::min((edema_raw - core).clamp_min(0) * parenchyma, 1.0 - tumour);
  auto lesion = tumour + edema;
  auto full = torch::cat({pv * (1.0 - lesion).unsqueeze(0), tumour.unsqueeze(0), edema.unsqueeze(0)});
  const double voxel_ml = sp[0] * sp[1] * sp[2] / 1000.0;
  out.tumour_ml = tumour.sum().item<double>() * voxel_ml;
  out.edema_ml = edema.sum().item<double>() * voxel_ml;

  // 4. Images. Both are zero where the voxel is mostly background (the source is brain-extracted).
  const auto& con = cfg.contrast;
  auto mask = full[bg_c] < 0.5;
  auto wm_sel = full[wm_c] > 0.9;
  double wm_t1 = t1_img.masked_select(wm_sel).mean().item<double>();
  BRAINSPADE_CHECK_INPUT(std::isfinite(wm_t1) && wm_t1 > 0, cfg.source.image,
                         ": no positive T1 in white matter (is it the T1 of these PV maps?)");
  auto texture = 1.0 + con.texture * smooth_noise(g, {std::max<int64_t>(Z / 4, 2), std::max<int64_t>(Y / 4, 2),
                                                     std::max<int64_t>(X / 4, 2)}, {Z, Y, X});
  auto les_tex = 1.0 + 2.0 * con.texture * tex;  // lesions are more heterogeneous than tissue
  auto t1_out = t1_img * (1.0 - lesion) +
                wm_t1 * (con.t1_lesion[0] * tumour + con.t1_lesion[1] * edema) * les_tex;
  auto pd_out = torch::zeros({Z, Y, X});
  for (int64_t c = 0; c < C; ++c) pd_out += con.pd_tissue[c] * full[c];
  pd_out = (pd_out + (con.pd_lesion[0] * tumour + con.pd_lesion[1] * edema) * les_tex) * texture;
  const double wm_pd = 1000.0;  // PD in arbitrary units: white matter = 1000
  pd_out = pd_out * wm_pd;
  t1_out = acquire(t1_out, mask, wm_t1, con, g);
  pd_out = acquire(pd_out, mask, wm_pd, con, g);

  out.pv = pv_in.with_data(full.contiguous());
  out.t1 = t1.with_data(t1_out.unsqueeze(0).contiguous());
  out.pd = t1.with_data(pd_out.unsqueeze(0).contiguous());
  return out;
}

void run_phantom_lesions(const PhantomConfig& cfg, const std::string& resolved_config_yaml) {
  check_phantom_config(cfg);
  Volume t1 = read_volume(cfg.source.image), pv = read_volume(cfg.source.labels);
  namespace fs = std::filesystem;
  const std::string out = cfg.run.out_dir;
  make_dirs(out);
  write_text_atomic(out + "/config.yaml", resolved_config_yaml);
  // The last file of a complete run; a rerun starts by removing it so that a stale one never describes new files.
  fs::remove(out + "/cohort.csv");
  auto names = cfg.source.channel_names;
  names.insert(names.end(), cfg.lesions.names.begin(), cfg.lesions.names.end());
  const int64_t n = cfg.cohort.train + cfg.cohort.test;
  Progress progress("phantom-lesions", n);
  std::ostringstream csv;
  csv << "id,split,tumours,tumour_ml,edema_ml,centres_xyz\n";
  std::vector<std::string> train_ids;
  std::vector<torch::Tensor> tiles;
  for (int64_t i = 0; i < n; ++i) {
    const bool train = i < cfg.cohort.train;
    char id[32];
    std::snprintf(id, sizeof id, "patient%03lld", static_cast<long long>(i));
    PhantomPatient p = simulate_patient(t1, pv, cfg, i);
    if (train) {
      write_volume(out + "/train/images/" + id + "_T1.nii.gz", p.t1);
      write_volume(out + "/train/images/" + id + "_PD.nii.gz", p.pd);
      write_volume(out + "/train/pv/" + std::string(id) + ".nii.gz", p.pv);
      train_ids.push_back(id);
    } else {
      write_volume(out + "/test/T1/" + std::string(id) + ".nii.gz", p.t1);
      write_volume(out + "/test/PD/" + std::string(id) + ".nii.gz", p.pd);
      write_label_volume(out + "/test/labels/" + std::string(id) + ".nii.gz", hard_labels(p.pv, cfg.cohort.label_map));
    }
    csv << id << ',' << (train ? "train" : "test") << ',' << p.tumours << ',' << p.tumour_ml << ',' << p.edema_ml << ',';
    for (size_t k = 0; k < p.centres.size(); ++k)
      csv << (k ? " " : "") << p.centres[k][0] << ':' << p.centres[k][1] << ':' << p.centres[k][2];
    csv << '\n';
    if (i < 6) {  // montage: the axial slice through the first core of the first six patients
      const int64_t z = p.centres[0][2];
      tiles.push_back(p.t1.data[0][z]);
      tiles.push_back(p.pd.data[0][z]);
      tiles.push_back(label_to_rgb(p.pv.data.select(1, z), names));
    }
    progress.update(1, std::string(id) + (train ? " train" : " test"));
  }
  progress.finish();
  // The slice config of the training patients: T1 and PD of each, the same PV map for both.
  std::ostringstream y;
  auto list = [&](const std::vector<std::string>& v) {
    std::string s = "[";
    for (size_t k = 0; k < v.size(); ++k) s += (k ? ", " : "") + v[k];
    return s + "]";
  };
  std::vector<std::string> images, labels, subjects, modalities;
  for (const auto& id : train_ids)
    for (const char* m : {"T1", "PD"}) {
      images.push_back(out + "/train/images/" + id + "_" + m + ".nii.gz");
      labels.push_back(out + "/train/pv/" + id + ".nii.gz");
      subjects.push_back(id);
      modalities.push_back(m);
    }
  y << "# Written by `brainspade phantom-lesions` (" << out << "/config.yaml): the simulated training patients, T1 and\n"
    << "# PD of each, sliced with the paper's lesion rule (2/3 of the slices hold >= 20 lesion pixels).\n"
    << "run:\n  out_dir: " << out << "/slices\n  seed: " << cfg.run.seed << "\n"
    << "data:\n  images: " << list(images) << "\n  labels: " << list(labels) << "\n  subjects: " << list(subjects)
    << "\n  modalities: " << list(modalities) << "\n  datasets: [phantom]\n  channel_names: " << list(names)
    << "\n  lesion_channels: " << list(cfg.lesions.names) << "\n  height: " << cfg.cohort.slice_height
    << "\n  width: " << cfg.cohort.slice_width << "\n  layout: x_rows\n  min_brain_fraction: 0.10\n"
    << "  normalisation: volume\n  slices_per_volume: " << cfg.cohort.slices_per_volume << "\n";
  write_text_atomic(out + "/slice.yaml", y.str());
  if (!tiles.empty()) write_montage_png(out + "/montage.png", tiles, 6);
  write_text_atomic(out + "/cohort.csv", csv.str());
  spdlog::info("wrote {} simulated patients ({} train, {} test) to {}; slice config {}/slice.yaml", n,
               cfg.cohort.train, cfg.cohort.test, out, out);
}

}  // namespace brainspade
