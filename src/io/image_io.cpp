// The only translation unit that includes ITK: reading and writing volumes and PNGs, plus pure-torch helpers
// for orientation, resampling and montages.
#include "brainspade/io/image_io.h"
#include "brainspade/io/geometry.h"
#include "io/input_guards.h"

#include <algorithm>
#include <cstring>
#include <cmath>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#if defined(__clang__)
// Debian's ITK 5.2 headers know only gcc (itk_compiler_detection.h stops on clang). The clang fuzz build
// (cmake/fuzz.cmake) therefore presents itself as gcc 12 to that one header; its include guard keeps the result.
#pragma push_macro("__clang__")
#pragma push_macro("__GNUC__")
#pragma push_macro("__GNUC_MINOR__")
#undef __clang__
#undef __GNUC__
#undef __GNUC_MINOR__
#define __GNUC__ 12
#define __GNUC_MINOR__ 2
#include <itk_compiler_detection.h>
#pragma pop_macro("__GNUC_MINOR__")
#pragma pop_macro("__GNUC__")
#pragma pop_macro("__clang__")
#endif
#include <itkMacro.h>
#include <itkImage.h>
#include <itkImageFileReader.h>
#include <itkImageFileWriter.h>
#include <itkImageIOBase.h>
#include <itkMetaImageIO.h>
#include <itkNiftiImageIO.h>
#include <itkNrrdImageIO.h>
#include <itkPNGImageIO.h>
#include <itkRGBPixel.h>
#include <zlib.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/error.h"
#include "brainspade/core/strings.h"

namespace brainspade {

namespace {

using Image3 = itk::Image<float, 3>;
using Image4 = itk::Image<float, 4>;

std::string itk_message(const itk::ExceptionObject& e) {
  std::string d = e.GetDescription();
  return d.empty() ? std::string(e.what()) : d;
}

// Reads the whole (possibly gzip-compressed) file as a stream. ITK's NIfTI reader zero-fills a truncated .gz
// stream without complaint, and niftilib replaces NaN/Inf floats by 0 while reading, so both are checked here:
// a complete gzip stream must decompress to its end with a matching CRC, and a NIfTI float payload is scanned
// for non-finite values. Also returns the decompressed size, which caps what the header may claim.
std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

ImageFormat image_format(const std::string& path) {
  const std::string p = lower(path);
  if (ends_with(p, ".nii") || ends_with(p, ".nii.gz")) return ImageFormat::NIfTI;
  if (ends_with(p, ".mha") || ends_with(p, ".mhd")) return ImageFormat::MetaImage;
  if (ends_with(p, ".nrrd") || ends_with(p, ".nhdr")) return ImageFormat::NRRD;
  if (ends_with(p, ".png")) return ImageFormat::PNG;
  throw input_error(path, ": unsupported image format (accepted: ", kAcceptedImageExtensions, ")");
}

namespace {

const char* format_name(ImageFormat f) {
  switch (f) {
    case ImageFormat::NIfTI: return "NIfTI-1";
    case ImageFormat::MetaImage: return "MetaImage";
    case ImageFormat::NRRD: return "NRRD";
    case ImageFormat::PNG: return "PNG";
  }
  return "?";
}

itk::ImageIOBase::Pointer make_image_io(ImageFormat f) {
  switch (f) {
    case ImageFormat::NIfTI: return itk::NiftiImageIO::New().GetPointer();
    case ImageFormat::MetaImage: return itk::MetaImageIO::New().GetPointer();
    case ImageFormat::NRRD: return itk::NrrdImageIO::New().GetPointer();
    case ImageFormat::PNG: return itk::PNGImageIO::New().GetPointer();
  }
  return nullptr;
}

// Checks that `path` names a non-empty regular file and returns an ITK reader for it. `payload_cap` receives an
// upper bound on the voxel bytes the file can hold (its decompressed size; -1 when unknown, e.g. a detached .raw).
itk::ImageIOBase::Pointer open_image_io(const std::string& path, int64_t* payload_cap = nullptr) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw input_error(path, ": file not found");
  if (!fs::is_regular_file(path, ec)) throw input_error(path, ": not a regular file");
  if (fs::file_size(path, ec) == 0) throw input_error(path, ": file is empty");
  const StreamCheck sc = check_stream_and_count_non_finite(path);
  if (sc.non_finite > 0) throw input_error(path, ": contains ", sc.non_finite, " NaN or infinite voxel values");
  if (payload_cap) {
    // NIfTI and .gz: the exact decompressed size. PNG and MetaImage with inline data: deflate expands at most
    // ~1032:1. Detached data files (.mhd + .raw, .nhdr) are not bounded here.
    const int64_t size = static_cast<int64_t>(fs::file_size(path, ec));
    if (sc.bytes >= 0) *payload_cap = sc.bytes;
    else if (ends_with(path, ".png") || ends_with(path, ".mha")) *payload_cap = size * 1040;
    else *payload_cap = -1;
  }
  // The reader is chosen here from the name and checked against the bytes; ITK's factory is never asked, because it
  // probes every registered reader with the file and one of them (GDCM's) abort()s on a file it cannot parse.
  const ImageFormat format = image_format(path);
  itk::ImageIOBase::Pointer io = make_image_io(format);
  if (format == ImageFormat::PNG) check_png_structure(path);
  try {
    if (!io->CanReadFile(path.c_str()))
      throw input_error(path, ": not a readable image (not a ", format_name(format), " file, or a corrupt header)");
    io->SetFileName(path);
    io->ReadImageInformation();
  } catch (const itk::ExceptionObject& e) {
    throw input_error(path, ": cannot read the image header (corrupt or truncated file): ", itk_message(e));
  }
  return io;
}

std::array<double, 9> matmul3(const std::array<double, 9>& a, const std::array<double, 9>& b) {
  std::array<double, 9> r{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k) r[i * 3 + j] += a[i * 3 + k] * b[k * 3 + j];
  return r;
}

std::array<double, 9> inverse3(const std::array<double, 9>& m) {
  double det = m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) +
               m[2] * (m[3] * m[7] - m[4] * m[6]);
  TORCH_CHECK(std::abs(det) > 1e-12, "singular direction matrix (determinant ", det, ")");
  std::array<double, 9> r{};
  r[0] = (m[4] * m[8] - m[5] * m[7]) / det;
  r[1] = (m[2] * m[7] - m[1] * m[8]) / det;
  r[2] = (m[1] * m[5] - m[2] * m[4]) / det;
  r[3] = (m[5] * m[6] - m[3] * m[8]) / det;
  r[4] = (m[0] * m[8] - m[2] * m[6]) / det;
  r[5] = (m[2] * m[3] - m[0] * m[5]) / det;
  r[6] = (m[3] * m[7] - m[4] * m[6]) / det;
  r[7] = (m[1] * m[6] - m[0] * m[7]) / det;
  r[8] = (m[0] * m[4] - m[1] * m[3]) / det;
  return r;
}

// Voxel index → physical: p = origin + D * diag(spacing) * idx. Returns the 3x3 matrix D*diag(spacing).
std::array<double, 9> index_matrix(const Volume& v) {
  std::array<double, 9> m{};
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) m[r * 3 + c] = v.direction[r * 3 + c] * v.spacing[c];
  return m;
}

}  // namespace

bool Volume::same_grid(const Volume& o, double tol) const {
  if (!data.defined() || !o.data.defined()) return false;
  if (data.size(1) != o.data.size(1) || data.size(2) != o.data.size(2) || data.size(3) != o.data.size(3)) return false;
  for (int i = 0; i < 3; ++i) {
    if (std::abs(spacing[i] - o.spacing[i]) > tol || std::abs(origin[i] - o.origin[i]) > tol) return false;
  }
  for (int i = 0; i < 9; ++i)
    if (std::abs(direction[i] - o.direction[i]) > tol) return false;
  return true;
}

std::string Volume::grid_string() const {
  std::ostringstream os;
  if (data.defined() && data.dim() == 4)
    os << width() << "x" << height() << "x" << depth() << " (X x Y x Z)";
  os << " at " << spacing[0] << "x" << spacing[1] << "x" << spacing[2] << " mm, origin (" << origin[0] << ", "
     << origin[1] << ", " << origin[2] << ")";
  return os.str();
}

Volume Volume::with_data(const torch::Tensor& d) const {
  TORCH_CHECK(d.dim() == 4 && d.size(1) == depth() && d.size(2) == height() && d.size(3) == width(),
              "with_data expects [C, ", depth(), ", ", height(), ", ", width(), "], got ", d.sizes());
  Volume v = *this;
  v.data = d;
  return v;
}

std::array<double, 3> index_to_physical(const Volume& v, double x, double y, double z) {
  auto m = index_matrix(v);
  std::array<double, 3> p{};
  for (int r = 0; r < 3; ++r) p[r] = v.origin[r] + m[r * 3 + 0] * x + m[r * 3 + 1] * y + m[r * 3 + 2] * z;
  return p;
}

Volume reorient_to_lps(const Volume& v) {
  // Pick the axis permutation that best aligns array axes with world axes: perm[j] = array axis sent to world axis j.
  std::array<int, 3> best{0, 1, 2};
  double best_score = -1;
  std::array<int, 3> p{0, 1, 2};
  do {
    double score = 0;
    for (int j = 0; j < 3; ++j) score += std::abs(v.direction[j * 3 + p[j]]);
    if (score > best_score + 1e-9) {
      best_score = score;
      best = p;
    }
  } while (std::next_permutation(p.begin(), p.end()));
  std::array<int64_t, 3> size_xyz{v.width(), v.height(), v.depth()};
  Volume out;
  out.origin = v.origin;
  std::vector<int64_t> flip_dims;
  for (int j = 0; j < 3; ++j) {
    int i = best[j];
    bool flip = v.direction[j * 3 + i] < 0;
    out.spacing[j] = v.spacing[i];
    for (int r = 0; r < 3; ++r) out.direction[r * 3 + j] = (flip ? -1.0 : 1.0) * v.direction[r * 3 + i];
    if (flip) {
      // The new first voxel is the old last one along this axis.
      for (int r = 0; r < 3; ++r)
        out.origin[r] += v.direction[r * 3 + i] * v.spacing[i] * static_cast<double>(size_xyz[i] - 1);
      flip_dims.push_back(3 - j);
    }
  }
  // Tensor dim of array axis i is 3 - i ([C, Z, Y, X]).
  torch::Tensor d = v.data.permute({0, 3 - best[2], 3 - best[1], 3 - best[0]});
  if (!flip_dims.empty()) d = d.flip(flip_dims);
  out.data = d.contiguous();
  return out;
}

Volume read_volume(const std::string& path) { return reorient_to_lps(read_volume_as_stored(path)); }

Volume read_volume_as_stored(const std::string& path) {
  int64_t payload_cap = -1;
  itk::ImageIOBase::Pointer io = open_image_io(path, &payload_cap);
  const unsigned nd = io->GetNumberOfDimensions();
  if (io->GetNumberOfComponents() != 1)
    throw input_error(path, ": has ", io->GetNumberOfComponents(),
                      " components per voxel (vector/RGB images are not supported; store channels as a 4th axis)");
  std::vector<int64_t> dims;
  for (unsigned i = 0; i < nd; ++i) dims.push_back(static_cast<int64_t>(io->GetDimensions(i)));
  // Trailing singleton axes (e.g. NIfTI 4D with one volume) do not count.
  while (dims.size() > 3 && dims.back() == 1) dims.pop_back();
  if (dims.size() < 3 || dims.size() > 4) {
    std::ostringstream os;
    for (size_t i = 0; i < dims.size(); ++i) os << (i ? "x" : "") << dims[i];
    throw input_error(path, ": expected a 3D or 4D image, got ", dims.size(), "D (", os.str(), ")");
  }
  int64_t total = 1;
  for (int64_t d : dims) {
    if (d < 1 || d > kMaxVolumeDim)
      throw input_error(path, ": image dimension ", d, " is outside [1, ", kMaxVolumeDim, "] (corrupt header?)");
    total *= d;
  }
  if (total > kMaxVolumeVoxels)
    throw input_error(path, ": ", total, " values exceed the limit of ", kMaxVolumeVoxels, " (corrupt header?)");

  // The raw buffer is read in the file's own type and converted by torch, because ITK's float conversion path
  // silently turns NaN into 0 and a NaN check must see the file's true values.
  Volume v;
  torch::Tensor data;
  using CT = itk::IOComponentEnum;
  torch::ScalarType raw_type;
  switch (io->GetComponentType()) {
    case CT::UCHAR: raw_type = torch::kUInt8; break;
    case CT::CHAR: raw_type = torch::kInt8; break;
    case CT::SHORT: raw_type = torch::kInt16; break;
    case CT::USHORT: raw_type = torch::kInt32; break;  // widened below
    case CT::INT: raw_type = torch::kInt32; break;
    case CT::UINT: raw_type = torch::kInt64; break;    // widened below
    case CT::LONG: case CT::LONGLONG: raw_type = torch::kInt64; break;
    case CT::FLOAT: raw_type = torch::kFloat32; break;
    case CT::DOUBLE: raw_type = torch::kFloat64; break;
    default:
      throw input_error(path, ": unsupported voxel type ", itk::ImageIOBase::GetComponentTypeAsString(io->GetComponentType()));
  }
  const auto comp = io->GetComponentType();
  const size_t comp_bytes = io->GetComponentSize();
  // A corrupt header must not make us allocate more than the file can hold.
  if (payload_cap >= 0 && total * static_cast<int64_t>(comp_bytes) > payload_cap)
    throw input_error(path, ": the header claims ", total * static_cast<int64_t>(comp_bytes),
                      " bytes of voxel data but the file holds only ", payload_cap, " (truncated file or corrupt header)");
  std::vector<int64_t> shape(dims.rbegin(), dims.rend());  // [C?, Z, Y, X]
  if (shape.size() == 3) shape.insert(shape.begin(), 1);
  try {
    itk::ImageIORegion region(nd);
    for (unsigned i = 0; i < nd; ++i) {
      region.SetIndex(i, 0);
      region.SetSize(i, io->GetDimensions(i));
    }
    io->SetIORegion(region);
    std::vector<uint8_t> raw(static_cast<size_t>(total) * comp_bytes);
    io->Read(raw.data());
    torch::Tensor t;
    if (comp == CT::USHORT) {
      t = torch::from_blob(raw.data(), {total}, torch::kInt16).to(torch::kInt32).bitwise_and(static_cast<int64_t>(0xFFFF));
    } else if (comp == CT::UINT) {
      t = torch::from_blob(raw.data(), {total}, torch::kInt32).to(torch::kInt64).bitwise_and(static_cast<int64_t>(0xFFFFFFFF));
    } else {
      t = torch::from_blob(raw.data(), {total}, raw_type);
    }
    data = t.to(torch::kFloat32).view(shape).clone();  // [C, Z, Y, X]
    for (int i = 0; i < 3; ++i) {
      v.spacing[i] = io->GetSpacing(i);
      v.origin[i] = io->GetOrigin(i);
      std::vector<double> axis = io->GetDirection(i);  // LPS direction of array axis i
      for (int r = 0; r < 3; ++r) v.direction[r * 3 + i] = r < static_cast<int>(axis.size()) ? axis[r] : (r == i ? 1.0 : 0.0);
    }
  } catch (const itk::ExceptionObject& e) {
    throw input_error(path, ": cannot read the voxel data (truncated or corrupt file): ", itk_message(e));
  }
  for (int i = 0; i < 3; ++i)
    if (!(v.spacing[i] > 0) || !std::isfinite(v.spacing[i]))
      throw input_error(path, ": voxel spacing ", v.spacing[i], " along axis ", i, " is not a positive number");
  if (!torch::isfinite(data).all().item<bool>()) {
    int64_t bad = (~torch::isfinite(data)).sum().item<int64_t>();
    throw input_error(path, ": contains ", bad, " NaN or infinite voxel values");
  }
  v.data = data;
  return v;
}

namespace {

// A volume's spacing, origin and direction on an ITK image of 3 or 4 dimensions (a 4th axis: spacing 1, origin 0).
template <class Image>
void set_geometry(typename Image::Pointer& img, const Volume& v) {
  typename Image::SpacingType sp;
  typename Image::PointType org;
  typename Image::DirectionType dir;
  sp.Fill(1.0);
  org.Fill(0.0);
  dir.SetIdentity();
  for (int i = 0; i < 3; ++i) {
    sp[i] = v.spacing[i];
    org[i] = v.origin[i];
    for (int j = 0; j < 3; ++j) dir[i][j] = v.direction[i * 3 + j];
  }
  img->SetSpacing(sp);
  img->SetOrigin(org);
  img->SetDirection(dir);
}

// Writes a one-channel 3D image of pixel type T (voxels [Z, Y, X], X fastest) with `v`'s geometry, through the
// ImageIO of `format` (compressed where the format allows).
template <class T>
void write_image3(const std::string& tmp, ImageFormat format, const Volume& v, const T* voxels) {
  using Image = itk::Image<T, 3>;
  auto img = Image::New();
  typename Image::SizeType size{{static_cast<itk::SizeValueType>(v.width()), static_cast<itk::SizeValueType>(v.height()),
                                 static_cast<itk::SizeValueType>(v.depth())}};
  img->SetRegions(typename Image::RegionType(size));
  set_geometry<Image>(img, v);
  img->Allocate();
  std::memcpy(static_cast<void*>(img->GetBufferPointer()), voxels, sizeof(T) * static_cast<size_t>(v.data.numel() / v.channels()));
  auto writer = itk::ImageFileWriter<Image>::New();
  writer->SetImageIO(make_image_io(format));
  writer->SetFileName(tmp);
  writer->SetInput(img);
  writer->UseCompressionOn();
  writer->Update();
}

}  // namespace

void write_volume(const std::string& path, const Volume& v) {
  TORCH_CHECK(v.data.defined() && v.data.dim() == 4, "write_volume expects data [C, Z, Y, X], got ",
              v.data.defined() ? v.data.sizes() : at::IntArrayRef{});
  torch::Tensor d = v.data.detach().to(torch::kCPU, torch::kFloat32).contiguous();  // [C, Z, Y, X]
  const int64_t C = d.size(0), Z = d.size(1), Y = d.size(2), X = d.size(3);
  const ImageFormat format = image_format(path);
  write_atomic(path, [&](const std::string& tmp) {
    try {
      if (C == 1) {
        write_image3(tmp, format, v, d.data_ptr<float>());
      } else {
        auto img = Image4::New();
        Image4::SizeType size{{static_cast<itk::SizeValueType>(X), static_cast<itk::SizeValueType>(Y),
                               static_cast<itk::SizeValueType>(Z), static_cast<itk::SizeValueType>(C)}};
        img->SetRegions(Image4::RegionType(size));
        set_geometry<Image4>(img, v);
        img->Allocate();
        std::memcpy(img->GetBufferPointer(), d.data_ptr<float>(), sizeof(float) * d.numel());
        auto writer = itk::ImageFileWriter<Image4>::New();
        writer->SetImageIO(make_image_io(format));
        writer->SetFileName(tmp);
        writer->SetInput(img);
        writer->UseCompressionOn();
        writer->Update();
      }
    } catch (const itk::ExceptionObject& e) {
      throw input_error(path, ": cannot write image: ", itk_message(e));
    }
  });
}

void write_label_volume(const std::string& path, const Volume& v) {
  TORCH_CHECK(v.data.defined() && v.data.dim() == 4 && v.data.size(0) == 1,
              "write_label_volume expects one channel [1, Z, Y, X], got ",
              v.data.defined() ? v.data.sizes() : at::IntArrayRef{});
  torch::Tensor d = v.data.detach().to(torch::kCPU, torch::kFloat64);
  TORCH_CHECK(d.numel() == 0 || (d.min().item<double>() >= 0 && d.max().item<double>() <= 255 &&
                                 torch::equal(d, d.round())),
              "write_label_volume: ", path, ": labels must be integers in [0, 255]");
  torch::Tensor u8 = d.to(torch::kUInt8).contiguous();  // [1, Z, Y, X]
  const ImageFormat format = image_format(path);
  write_atomic(path, [&](const std::string& tmp) {
    try {
      write_image3(tmp, format, v, u8.data_ptr<uint8_t>());
    } catch (const itk::ExceptionObject& e) {
      throw input_error(path, ": cannot write label image: ", itk_message(e));
    }
  });
}

Volume resample_like(const Volume& src, const Volume& ref, bool nearest, double fill) {
  // Reference index → physical → source index, as one affine map: idx_s = A * idx_r + b.
  auto m_src_inv = inverse3(index_matrix(src));
  auto A = matmul3(m_src_inv, index_matrix(ref));
  std::array<double, 3> b{};
  for (int r = 0; r < 3; ++r)
    for (int k = 0; k < 3; ++k) b[r] += m_src_inv[r * 3 + k] * (ref.origin[k] - src.origin[k]);
  const int64_t Z = ref.depth(), Y = ref.height(), X = ref.width();
  auto opts = torch::TensorOptions().dtype(torch::kFloat32);
  auto zi = torch::arange(Z, opts).view({Z, 1, 1});
  auto yi = torch::arange(Y, opts).view({1, Y, 1});
  auto xi = torch::arange(X, opts).view({1, 1, X});
  std::array<int64_t, 3> n_src{src.width(), src.height(), src.depth()};
  std::vector<torch::Tensor> norm;  // normalised source coordinates x, y, z, each [Z, Y, X]
  torch::Tensor inside = torch::ones({Z, Y, X}, torch::kBool);
  for (int r = 0; r < 3; ++r) {
    auto idx = xi * A[r * 3 + 0] + yi * A[r * 3 + 1] + zi * A[r * 3 + 2] + b[r];  // [Z, Y, X]
    idx = idx.expand({Z, Y, X});
    inside = inside & (idx >= -1e-3) & (idx <= static_cast<double>(n_src[r] - 1) + 1e-3);
    double n = static_cast<double>(n_src[r]);
    norm.push_back(n > 1 ? idx * (2.0 / (n - 1)) - 1.0 : torch::zeros_like(idx));
  }
  auto grid = torch::stack(norm, -1).unsqueeze(0);  // [1, Z, Y, X, 3]
  auto input = src.data.to(torch::kFloat32).unsqueeze(0);  // [1, C, Zs, Ys, Xs]
  namespace F = torch::nn::functional;
  auto opt = F::GridSampleFuncOptions().padding_mode(torch::kBorder).align_corners(true);
  if (nearest) opt.mode(torch::kNearest);
  else opt.mode(torch::kBilinear);
  auto out = F::grid_sample(input, grid, opt).squeeze(0);  // [C, Z, Y, X]
  out = torch::where(inside.unsqueeze(0), out, torch::full_like(out, fill));
  return ref.with_data(out.contiguous());
}

torch::Tensor read_png(const std::string& path) {
  int64_t payload_cap = -1;
  itk::ImageIOBase::Pointer io = open_image_io(path, &payload_cap);
  unsigned nd = io->GetNumberOfDimensions();
  if (nd != 2) throw input_error(path, ": expected a 2D image, got ", nd, "D");
  for (unsigned i = 0; i < 2; ++i)
    if (io->GetDimensions(i) > static_cast<size_t>(kMaxVolumeDim))
      throw input_error(path, ": image dimension ", io->GetDimensions(i), " exceeds ", kMaxVolumeDim);
  const int64_t png_bytes = static_cast<int64_t>(io->GetDimensions(0) * io->GetDimensions(1) * io->GetComponentSize() *
                                                 io->GetNumberOfComponents());
  if (payload_cap >= 0 && png_bytes > payload_cap)
    throw input_error(path, ": the header claims ", png_bytes, " bytes of pixels but the file can hold only ",
                      payload_cap, " (truncated file or corrupt header)");
  using Image2 = itk::Image<float, 2>;
  try {
    auto reader = itk::ImageFileReader<Image2>::New();  // RGB is converted to luminance by ITK
    reader->SetImageIO(io);
    reader->SetFileName(path);
    reader->Update();
    auto img = reader->GetOutput();
    auto size = img->GetLargestPossibleRegion().GetSize();
    return torch::from_blob(img->GetBufferPointer(), {static_cast<int64_t>(size[1]), static_cast<int64_t>(size[0])},
                            torch::kFloat32)
        .clone();  // [H, W]
  } catch (const itk::ExceptionObject& e) {
    throw input_error(path, ": cannot read the image data (truncated or corrupt file): ", itk_message(e));
  }
}

void write_png(const std::string& path, const torch::Tensor& image_u8) {
  TORCH_CHECK(image_u8.scalar_type() == torch::kUInt8, "write_png expects uint8, got ", image_u8.scalar_type());
  TORCH_CHECK(image_u8.dim() == 2 || (image_u8.dim() == 3 && image_u8.size(2) == 3),
              "write_png expects [H, W] or [H, W, 3], got ", image_u8.sizes());
  torch::Tensor d = image_u8.contiguous().cpu();
  const auto H = static_cast<itk::SizeValueType>(d.size(0)), W = static_cast<itk::SizeValueType>(d.size(1));
  write_atomic(path, [&](const std::string& tmp) {
    try {
      if (d.dim() == 2) {
        using ImageG = itk::Image<unsigned char, 2>;
        auto img = ImageG::New();
        img->SetRegions(ImageG::RegionType(ImageG::SizeType{{W, H}}));
        img->Allocate();
        std::memcpy(img->GetBufferPointer(), d.data_ptr<uint8_t>(), d.numel());
        auto writer = itk::ImageFileWriter<ImageG>::New();
        writer->SetImageIO(itk::PNGImageIO::New());
        writer->SetFileName(tmp);
        writer->SetInput(img);
        writer->Update();
      } else {
        using ImageC = itk::Image<itk::RGBPixel<unsigned char>, 2>;
        auto img = ImageC::New();
        img->SetRegions(ImageC::RegionType(ImageC::SizeType{{W, H}}));
        img->Allocate();
        std::memcpy(static_cast<void*>(img->GetBufferPointer()), d.data_ptr<uint8_t>(), d.numel());
        auto writer = itk::ImageFileWriter<ImageC>::New();
        writer->SetImageIO(itk::PNGImageIO::New());
        writer->SetFileName(tmp);
        writer->SetInput(img);
        writer->Update();
      }
    } catch (const itk::ExceptionObject& e) {
      throw input_error(path, ": cannot write PNG: ", itk_message(e));
    }
  });
}

}  // namespace brainspade
