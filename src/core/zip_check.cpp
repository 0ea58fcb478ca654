#include "brainspade/core/zip_check.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <limits>

#include "brainspade/core/error.h"

namespace brainspade {

namespace {

constexpr uint32_t kLocalHeader = 0x04034b50;
constexpr uint32_t kCentralHeader = 0x02014b50;
constexpr uint32_t kEndOfCentralDir = 0x06054b50;
constexpr uint32_t kZip64EndOfCentralDir = 0x06064b50;
constexpr uint32_t kZip64Locator = 0x07064b50;
constexpr size_t kEocdSize = 22, kLocatorSize = 20, kZip64EocdSize = 56, kCentralSize = 46, kLocalSize = 30;
constexpr uint64_t kMax32 = 0xffffffffu;
constexpr uint64_t kMax16 = 0xffffu;

// Little-endian readers over a bounds-checked view: every read names the structure it belongs to when it would run
// past the end, so no offset taken from the file is trusted before it is compared with the size.
class View {
 public:
  View(const unsigned char* data, size_t size, const std::string& path, const std::string& what)
      : data_(data), size_(size), path_(path), what_(what) {}

  size_t size() const { return size_; }
  const unsigned char* at(uint64_t offset) const { return data_ + offset; }

  void need(uint64_t offset, uint64_t length, const char* structure) const {
    if (offset > size_ || length > size_ - offset) fail(structure, " lies outside the file (offset ", offset, ", ", length,
                                                        " bytes, file has ", size_, ")");
  }
  uint16_t u16(uint64_t offset) const { return static_cast<uint16_t>(data_[offset] | (data_[offset + 1] << 8)); }
  uint32_t u32(uint64_t offset) const {
    return static_cast<uint32_t>(data_[offset]) | (static_cast<uint32_t>(data_[offset + 1]) << 8) |
           (static_cast<uint32_t>(data_[offset + 2]) << 16) | (static_cast<uint32_t>(data_[offset + 3]) << 24);
  }
  uint64_t u64(uint64_t offset) const { return u32(offset) | (static_cast<uint64_t>(u32(offset + 4)) << 32); }

  template <class... Parts>
  [[noreturn]] void fail(const Parts&... parts) const {
    throw input_error(path_, ": not a readable brainspade ", what_, " (damaged archive: ", parts..., ")");
  }

 private:
  const unsigned char* data_;
  size_t size_;
  const std::string& path_;
  const std::string& what_;
};

struct Directory {
  uint64_t entries = 0, offset = 0, size = 0, end = 0;  // end: where the central directory must stop
};

Directory find_directory(const View& v) {
  if (v.size() < kEocdSize) v.fail("too short to be a ZIP archive, ", v.size(), " bytes");
  // The end record sits at the end, followed only by a comment of at most 65535 bytes.
  const uint64_t lowest = v.size() - kEocdSize > kMax16 ? v.size() - kEocdSize - kMax16 : 0;
  uint64_t eocd = v.size() - kEocdSize;
  for (;; --eocd) {
    if (v.u32(eocd) == kEndOfCentralDir && eocd + kEocdSize + v.u16(eocd + 20) == v.size()) break;
    if (eocd == lowest) v.fail("no end-of-central-directory record; the file is truncated or not a ZIP archive");
  }
  if (v.u16(eocd + 4) != 0 || v.u16(eocd + 6) != 0) v.fail("multi-disk archives are not supported");
  Directory d;
  d.entries = v.u16(eocd + 10);
  d.size = v.u32(eocd + 12);
  d.offset = v.u32(eocd + 16);
  d.end = eocd;
  if (v.u16(eocd + 8) != d.entries) v.fail("entry counts disagree in the end record");
  const bool zip64 = d.entries == kMax16 || d.size == kMax32 || d.offset == kMax32;
  if (eocd >= kLocatorSize && v.u32(eocd - kLocatorSize) == kZip64Locator) {
    const uint64_t locator = eocd - kLocatorSize;
    const uint64_t record = v.u64(locator + 8);
    if (record > locator || locator - record < kZip64EocdSize) v.fail("ZIP64 end record offset ", record, " is invalid");
    if (v.u32(record) != kZip64EndOfCentralDir) v.fail("no ZIP64 end record at offset ", record);
    const Directory classic = d;
    d.entries = v.u64(record + 32);
    if (v.u64(record + 24) != d.entries) v.fail("entry counts disagree in the ZIP64 end record");
    d.size = v.u64(record + 40);
    d.offset = v.u64(record + 48);
    d.end = record;
    // PyTorch writes both records; a 32-bit field that is not saturated must agree with its 64-bit twin.
    if ((classic.entries != kMax16 && classic.entries != d.entries) || (classic.size != kMax32 && classic.size != d.size) ||
        (classic.offset != kMax32 && classic.offset != d.offset))
      v.fail("the end record and the ZIP64 end record disagree on the central directory");
  } else if (zip64) {
    v.fail("the end record needs ZIP64 fields but there is no ZIP64 locator");
  }
  if (d.offset > d.end || d.size != d.end - d.offset)
    v.fail("central directory (offset ", d.offset, ", ", d.size, " bytes) does not end where the end record starts (",
           d.end, ")");
  if (d.entries == 0) v.fail("the archive holds no entries");
  return d;
}

}  // namespace

uint32_t crc32_ieee(const unsigned char* data, size_t size, uint32_t crc) {
  // zlib's crc32 is the IEEE 802.3 CRC-32 of ZIP; it takes at most 4 GiB per call.
  uLong c = crc;
  while (size > 0) {
    const uInt n = static_cast<uInt>(std::min<size_t>(size, 1u << 30));
    c = ::crc32(c, data, n);
    data += n;
    size -= n;
  }
  return static_cast<uint32_t>(c);
}

size_t check_zip_container(const unsigned char* data, size_t size, const std::string& path, const std::string& what,
                           std::vector<ZipEntry>* entries) {
  const View v(data, size, path, what);
  if (entries) entries->clear();
  const Directory d = find_directory(v);
  uint64_t pos = d.offset;
  for (uint64_t i = 0; i < d.entries; ++i) {
    v.need(pos, kCentralSize, "a central directory entry");
    if (pos + kCentralSize > d.end) v.fail("central directory entry ", i, " runs past the directory");
    if (v.u32(pos) != kCentralHeader) v.fail("central directory entry ", i, " has no signature");
    const uint16_t flags = v.u16(pos + 8), method = v.u16(pos + 10);
    const uint32_t crc = v.u32(pos + 16);
    uint64_t compressed = v.u32(pos + 20), uncompressed = v.u32(pos + 24);
    const uint64_t name_len = v.u16(pos + 28), extra_len = v.u16(pos + 30), comment_len = v.u16(pos + 32);
    uint64_t local = v.u32(pos + 42);
    const uint64_t record = kCentralSize + name_len + extra_len + comment_len;
    if (record > d.end - pos) v.fail("central directory entry ", i, " runs past the directory");
    if (flags & 0x1u) v.fail("entry ", i, " is encrypted");
    if (method != 0) v.fail("entry ", i, " is compressed (method ", method, "); PyTorch archives store entries");
    // ZIP64 extended information: the 64-bit values, in this order, for the fields that hold 0xffffffff.
    uint64_t x = pos + kCentralSize + name_len;
    const uint64_t x_end = x + extra_len;
    while (x + 4 <= x_end) {
      const uint16_t id = v.u16(x), len = v.u16(x + 2);
      if (x + 4 + len > x_end) v.fail("entry ", i, " has a malformed extra field");
      if (id == 0x0001) {
        uint64_t f = x + 4;
        auto take = [&](uint64_t& field) {
          if (field != kMax32) return;
          if (f + 8 > x + 4 + len) v.fail("entry ", i, " has a short ZIP64 extra field");
          field = v.u64(f);
          f += 8;
        };
        take(uncompressed);
        take(compressed);
        take(local);
      }
      x += 4 + len;
    }
    if (compressed != uncompressed) v.fail("entry ", i, " sizes disagree for a stored entry");
    // Local header, then the data; both before the central directory.
    if (local > d.offset || d.offset - local < kLocalSize) v.fail("entry ", i, " local header offset ", local, " is invalid");
    if (v.u32(local) != kLocalHeader) v.fail("entry ", i, " has no local header at offset ", local);
    const uint64_t data_at = local + kLocalSize + v.u16(local + 26) + v.u16(local + 28);
    if (data_at > d.offset || compressed > d.offset - data_at)
      v.fail("entry ", i, " data (", compressed, " bytes at offset ", data_at, ") runs into the central directory");
    if (crc32_ieee(v.at(data_at), static_cast<size_t>(compressed)) != crc)
      v.fail("entry ", i, " fails its CRC-32 check; the file is corrupted");
    if (entries)
      entries->push_back({std::string(reinterpret_cast<const char*>(v.at(pos + kCentralSize)), name_len), data_at, compressed});
    pos += record;
  }
  if (pos != d.end) v.fail("central directory holds more than the ", d.entries, " announced entries");
  return static_cast<size_t>(d.entries);
}

}  // namespace brainspade
