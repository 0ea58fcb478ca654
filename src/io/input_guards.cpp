// Input guards (see input_guards.h). No ITK here: zlib and the file's bytes only.
#include "io/input_guards.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include <zlib.h>

#include "brainspade/core/error.h"
#include "brainspade/core/strings.h"
#include "brainspade/io/image_io.h"

namespace brainspade {

// Checks a NIfTI-1 header before ITK sees it. niftilib and ITK trust the header's numbers: a NaN or infinite entry in
// the qform/sform or the voxel spacing reaches vnl_svd inside NiftiImageIO::SetImageIOOrientationFromNIfTI, which
// abort()s the process (found by fuzz_nifti). So every number ITK turns into geometry must be finite here, and the
// header must be a NIfTI-1 single-file header (sizeof_hdr 348, magic "n+1"); the field at fault is named.
void check_nifti_header(const std::string& path, const std::vector<char>& h) {
  if (h.size() < 348)
    throw input_error(path, ": not a readable image: truncated NIfTI header (", h.size(), " of 348 bytes)");
  int32_t sizeof_hdr;
  std::memcpy(&sizeof_hdr, h.data(), 4);
  const int32_t swapped = static_cast<int32_t>(__builtin_bswap32(static_cast<uint32_t>(sizeof_hdr)));
  if (sizeof_hdr == 540 || swapped == 540)
    throw input_error(path, ": NIfTI-2 headers are not supported (this ITK reads NIfTI-1); save the file as NIfTI-1");
  if (sizeof_hdr != 348 && swapped != 348)
    throw input_error(path, ": not a readable image: not a NIfTI-1 header (sizeof_hdr is ", sizeof_hdr,
                      ", expected 348)");
  const bool swap = sizeof_hdr != 348;
  auto f32 = [&](int off) {
    uint32_t bits;
    std::memcpy(&bits, h.data() + off, 4);
    if (swap) bits = __builtin_bswap32(bits);
    float x;
    std::memcpy(&x, &bits, 4);
    return x;
  };
  auto i16 = [&](int off) {
    uint16_t x;
    std::memcpy(&x, h.data() + off, 2);
    if (swap) x = static_cast<uint16_t>((x >> 8) | (x << 8));
    return static_cast<int16_t>(x);
  };
  auto finite = [&](const char* field, int off, int count) {
    for (int k = 0; k < count; ++k) {
      const float x = f32(off + 4 * k);
      if (!std::isfinite(x))
        throw input_error(path, ": corrupt NIfTI header: ", field, count > 1 ? "[" + std::to_string(k) + "]" : "",
                          " is ", x, " (the image geometry must be finite)");
    }
  };
  const int ndim = i16(40);
  if (ndim < 1 || ndim > 7) throw input_error(path, ": corrupt NIfTI header: dim[0] is ", ndim, " (1 to 7 dimensions)");
  for (int k = 1; k <= ndim; ++k)
    if (i16(40 + 2 * k) < 1) throw input_error(path, ": corrupt NIfTI header: dim[", k, "] is ", i16(40 + 2 * k));
  finite("pixdim", 76, ndim + 1);  // pixdim[0] is qfac, pixdim[1..ndim] the voxel spacing
  finite("scl_slope", 112, 1);
  finite("scl_inter", 116, 1);
  // Finite is not enough: ITK runs an SVD on the orientation matrix, and one built from subnormal or huge numbers
  // (a spacing of 1e-44 mm, an affine entry of 1e35) made vnl_svd loop for minutes (found by fuzz_nifti). A voxel
  // size must lie in [1e-6, 1e6] mm and no coordinate may exceed 1e6 mm.
  auto plausible = [&](const char* field, double size, double lo, double hi) {
    if (!(size >= lo && size <= hi))
      throw input_error(path, ": corrupt NIfTI header: ", field, " is ", size, " (expected ", lo, " to ", hi, ")");
  };
  for (int k = 1; k <= std::min(ndim, 3); ++k)
    plausible(("pixdim[" + std::to_string(k) + "] (voxel size, mm)").c_str(), std::abs(f32(76 + 4 * k)), 1e-6, 1e6);
  if (i16(252) != 0) {  // qform_code: the quaternion and offset are used
    finite("quatern_b/c/d", 256, 3);
    finite("qoffset_x/y/z", 268, 3);
    for (int k = 0; k < 3; ++k) plausible("a quaternion component", std::abs(f32(256 + 4 * k)), 0.0, 1.0 + 1e-3);
    for (int k = 0; k < 3; ++k) plausible("a qoffset", std::abs(f32(268 + 4 * k)), 0.0, 1e6);
  }
  if (i16(254) != 0) {  // sform_code: the affine rows are used
    finite("srow_x", 280, 4);
    finite("srow_y", 296, 4);
    finite("srow_z", 312, 4);
    for (int c = 0; c < 3; ++c) {  // column c of the 3x3 part: the direction and size of voxel axis c
      double norm2 = 0;
      for (int r = 0; r < 3; ++r) {
        const double x = f32(280 + 16 * r + 4 * c);
        plausible("an srow entry", std::abs(x), 0.0, 1e6);
        norm2 += x * x;
      }
      plausible(("the voxel size along axis " + std::to_string(c) + " in the sform (mm)").c_str(), std::sqrt(norm2),
                1e-6, 1e6);
    }
    for (int r = 0; r < 3; ++r) plausible("an srow offset", std::abs(f32(280 + 16 * r + 12)), 0.0, 1e6);
  }
  if (std::memcmp(h.data() + 344, "n+1", 4) != 0)
    throw input_error(path, ": not a readable image: the NIfTI-1 magic at byte 344 is not \"n+1\" (a .nii file must be ",
                      "a single-file NIfTI-1 image)");
}

StreamCheck check_stream_and_count_non_finite(const std::string& path) {
  const bool nifti = ends_with(path, ".nii") || ends_with(path, ".nii.gz");
  const bool gz = ends_with(path, ".gz");
  if (!nifti && !gz) return {};
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw input_error(path, ": cannot open");
  std::vector<char> buf(1 << 20);
  int64_t pos = 0, non_finite = 0;
  int64_t vox_offset = -1, elem = 0;
  bool swap = false, is_float = false;
  std::vector<char> header;
  int n = 0;
  while ((n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()))) > 0) {
    if (nifti && header.size() < 352) {
      header.insert(header.end(), buf.data(), buf.data() + std::min<int64_t>(n, 352 - static_cast<int64_t>(header.size())));
      if (header.size() >= 352 && vox_offset < 0) {
        int32_t sizeof_hdr;
        std::memcpy(&sizeof_hdr, header.data(), 4);
        swap = sizeof_hdr != 348;
        auto rd16 = [&](int off) {
          uint16_t x;
          std::memcpy(&x, header.data() + off, 2);
          return swap ? static_cast<uint16_t>((x >> 8) | (x << 8)) : x;
        };
        uint32_t vo_bits;
        std::memcpy(&vo_bits, header.data() + 108, 4);
        if (swap) vo_bits = __builtin_bswap32(vo_bits);
        float vo;
        std::memcpy(&vo, &vo_bits, 4);
        const uint16_t datatype = rd16(70);
        is_float = (datatype == 16 || datatype == 64) && !swap;  // byte-swapped floats: left to ITK
        elem = datatype == 64 ? 8 : 4;
        vox_offset = std::max<int64_t>(352, static_cast<int64_t>(vo));
      }
    }
    if (is_float) {
      // Scan the part of this chunk that lies in the payload, element-aligned from vox_offset.
      int64_t begin = std::max<int64_t>(pos, vox_offset);
      begin += (elem - (begin - vox_offset) % elem) % elem;
      for (int64_t at = begin; at + elem <= pos + n; at += elem) {
        double x;
        if (elem == 4) {
          float fx;
          std::memcpy(&fx, buf.data() + (at - pos), 4);
          x = fx;
        } else {
          std::memcpy(&x, buf.data() + (at - pos), 8);
        }
        if (!std::isfinite(x)) ++non_finite;
      }
    }
    pos += n;
  }
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  std::string what = msg ? msg : "";
  gzclose(f);
  if (n < 0 || (err != Z_OK && err != Z_STREAM_END))
    throw input_error(path, ": truncated or corrupt gzip data (", what, ")");
  if (nifti) check_nifti_header(path, header);
  return {non_finite, pos};
}

// ITK 5.2's PNG reader calls libpng without an error handler of its own: libpng's default reaction to a corrupt chunk
// is abort(), which would end the program instead of raising InputError (found by fuzz_png and fuzz_nifti — ITK picks
// the PNG reader by the file's magic bytes, whatever its name). So a PNG is checked here first, against everything
// libpng treats as a hard error: chunk framing and CRCs, the IHDR fields, the order of critical chunks, and an IDAT
// stream that inflates to exactly the image's rows with valid filter bytes.
void check_png_structure(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto bad = [&](const std::string& why) { return input_error(path, ": corrupt PNG (", why, ")"); };
  static const uint8_t magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (b.size() < 8 || std::memcmp(b.data(), magic, 8) != 0) throw bad("no PNG signature");
  auto be32 = [&](size_t at) {
    return (uint32_t(b[at]) << 24) | (uint32_t(b[at + 1]) << 16) | (uint32_t(b[at + 2]) << 8) | uint32_t(b[at + 3]);
  };
  uint32_t width = 0, height = 0;
  int bit_depth = 0, colour = -1, interlace = 0;
  bool seen_plte = false, seen_idat = false, idat_ended = false, seen_iend = false;
  std::vector<uint8_t> idat;
  size_t at = 8;
  for (int index = 0; !seen_iend; ++index) {
    if (b.size() - at < 12) throw bad("truncated chunk");
    const uint32_t len = be32(at);
    if (len > 0x7fffffffu || len > b.size() - at - 12) throw bad("chunk length past the end of the file");
    const uint8_t* type = b.data() + at + 4;
    const uint8_t* data = type + 4;
    for (int k = 0; k < 4; ++k)
      if (!std::isalpha(type[k])) throw bad("invalid chunk name");
    const uint32_t crc = static_cast<uint32_t>(crc32(crc32(0L, Z_NULL, 0), type, len + 4));
    if (crc != be32(at + 8 + len)) throw bad("CRC mismatch");
    const std::string name(reinterpret_cast<const char*>(type), 4);
    if (index == 0 && name != "IHDR") throw bad("first chunk is not IHDR");
    if (name == "IHDR") {
      if (index != 0 || len != 13) throw bad("misplaced or malformed IHDR");
      width = be32(at + 8);
      height = be32(at + 12);
      bit_depth = data[8];
      colour = data[9];
      interlace = data[12];
      if (width < 1 || height < 1 || width > kMaxVolumeDim || height > kMaxVolumeDim)
        throw bad("image size " + std::to_string(width) + "x" + std::to_string(height) + " outside [1, 4096]");
      const bool depth_ok = (colour == 0 && (bit_depth == 1 || bit_depth == 2 || bit_depth == 4 || bit_depth == 8 ||
                                             bit_depth == 16)) ||
                            (colour == 3 && (bit_depth == 1 || bit_depth == 2 || bit_depth == 4 || bit_depth == 8)) ||
                            ((colour == 2 || colour == 4 || colour == 6) && (bit_depth == 8 || bit_depth == 16));
      if (!depth_ok || data[10] != 0 || data[11] != 0 || interlace > 1) throw bad("invalid IHDR fields");
    } else if (name == "PLTE") {
      if (seen_plte || seen_idat || len == 0 || len % 3 != 0 || len > 768 || colour == 0 || colour == 4)
        throw bad("misplaced or malformed PLTE");
      seen_plte = true;
    } else if (name == "IDAT") {
      if (idat_ended) throw bad("IDAT chunks are not consecutive");
      seen_idat = true;
      idat.insert(idat.end(), data, data + len);
    } else if (name == "IEND") {
      if (len != 0) throw bad("malformed IEND");
      seen_iend = true;
    } else if (std::isupper(type[0])) {
      throw bad("unknown critical chunk " + name);
    }
    if (seen_idat && name != "IDAT") idat_ended = true;
    at += 12 + len;
  }
  if (!seen_idat) throw bad("no image data");
  if (colour == 3 && !seen_plte) throw bad("palette image without PLTE");
  // Row layout: one pass, or the 7 Adam7 passes of an interlaced image.
  const int channels = colour == 2 ? 3 : colour == 4 ? 2 : colour == 6 ? 4 : 1;
  std::vector<std::pair<uint64_t, uint64_t>> passes;  // (rows, pixels per row)
  if (interlace == 0) {
    passes.push_back({height, width});
  } else {
    const int x0[7] = {0, 4, 0, 2, 0, 1, 0}, dx[7] = {8, 8, 4, 4, 2, 2, 1};
    const int y0[7] = {0, 0, 4, 0, 2, 0, 1}, dy[7] = {8, 8, 8, 4, 4, 2, 2};
    for (int p = 0; p < 7; ++p) {
      uint64_t w = width > uint32_t(x0[p]) ? (width - x0[p] + dx[p] - 1) / dx[p] : 0;
      uint64_t h = height > uint32_t(y0[p]) ? (height - y0[p] + dy[p] - 1) / dy[p] : 0;
      if (w > 0 && h > 0) passes.push_back({h, w});
    }
  }
  uint64_t expected = 0;
  for (const auto& [h, w] : passes) expected += h * (1 + (w * channels * bit_depth + 7) / 8);
  std::vector<uint8_t> raw(expected + 1);
  z_stream zs{};
  if (inflateInit(&zs) != Z_OK) throw bad("zlib");
  zs.next_in = idat.data();
  zs.avail_in = static_cast<uInt>(idat.size());
  zs.next_out = raw.data();
  zs.avail_out = static_cast<uInt>(raw.size());
  const int rc = inflate(&zs, Z_FINISH);
  const uint64_t produced = zs.total_out;
  inflateEnd(&zs);
  if (rc != Z_STREAM_END || produced != expected)
    throw bad("image data does not inflate to " + std::to_string(expected) + " bytes");
  uint64_t pos = 0;
  for (const auto& [h, w] : passes) {
    const uint64_t row = 1 + (w * channels * bit_depth + 7) / 8;
    for (uint64_t r = 0; r < h; ++r, pos += row)
      if (raw[pos] > 4) throw bad("invalid row filter");
  }
}

}  // namespace brainspade
