#include "brainspade/core/pickle_check.h"

#include <cstdint>
#include <cstdio>

#include "brainspade/core/error.h"

namespace brainspade {

namespace {

// How an opcode's argument is laid out after the opcode byte.
enum class Arg { None, Fixed, Length, Line, TwoLines, MemoFixed, MemoLine, Unknown };

struct Layout {
  Arg arg = Arg::Unknown;
  unsigned width = 0;  // Fixed/MemoFixed: argument bytes; Length: bytes of the little-endian length that precedes the data
};

Layout layout_of(unsigned char op) {
  switch (op) {
    // No argument.
    case '(': case '.': case '0': case '1': case '2': case 'N': case 'Q': case 'R': case 'a': case 'b': case 'd':
    case '}': case 'e': case 'l': case ']': case 'o': case 's': case 't': case ')': case 'u':
    case 0x81: case 0x85: case 0x86: case 0x87: case 0x88: case 0x89: case 0x8f: case 0x90: case 0x91: case 0x92:
    case 0x93: case 0x94: case 0x97: case 0x98:
      return {Arg::None, 0};
    case 'K': case 0x80: case 0x82: return {Arg::Fixed, 1};  // BININT1, PROTO, EXT1
    case 'M': case 0x83: return {Arg::Fixed, 2};             // BININT2, EXT2
    case 'J': case 0x84: return {Arg::Fixed, 4};             // BININT, EXT4
    case 'G': case 0x95: return {Arg::Fixed, 8};             // BINFLOAT, FRAME
    case 'h': case 'q': return {Arg::MemoFixed, 1};          // BINGET, BINPUT
    case 'j': case 'r': return {Arg::MemoFixed, 4};          // LONG_BINGET, LONG_BINPUT
    case 'U': case 0x8c: case 'C': case 0x8a: return {Arg::Length, 1};  // SHORT_BINSTRING/_BINUNICODE/_BINBYTES, LONG1
    case 'T': case 'X': case 'B': case 0x8b: return {Arg::Length, 4};   // BINSTRING, BINUNICODE, BINBYTES, LONG4
    case 0x8d: case 0x8e: case 0x96: return {Arg::Length, 8};           // BINUNICODE8, BINBYTES8, BYTEARRAY8
    case 'I': case 'L': case 'F': case 'S': case 'V': case 'P': return {Arg::Line, 0};
    case 'g': case 'p': return {Arg::MemoLine, 0};           // GET, PUT
    case 'c': case 'i': return {Arg::TwoLines, 0};           // GLOBAL, INST
    default: return {};
  }
}

uint64_t little_endian(const unsigned char* p, unsigned width) {
  uint64_t v = 0;
  for (unsigned i = 0; i < width; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

}  // namespace

void check_pickle_stream(const unsigned char* data, size_t size, const std::string& path, const std::string& what) {
  auto fail = [&](size_t at, unsigned char op, const std::string& problem) {
    char code[8];
    std::snprintf(code, sizeof code, "0x%02x", op);
    throw input_error(path, ": not a readable brainspade ", what, " (damaged pickle: opcode ", code, " at byte ", at,
                      " ", problem, ")");
  };
  size_t pos = 0;
  while (pos < size) {
    const size_t at = pos;
    const unsigned char op = data[pos++];
    const Layout l = layout_of(op);
    const size_t left = size - pos;
    auto line_end = [&](size_t from) {
      for (size_t i = from; i < size; ++i)
        if (data[i] == '\n') return i;
      fail(at, op, "has an argument line that never ends");
      return size;  // not reached: fail throws
    };
    switch (l.arg) {
      case Arg::Unknown: fail(at, op, "is not a pickle opcode"); break;
      case Arg::None:
        if (op == '.') {
          if (pos != size) fail(at, op, "(STOP) is followed by " + std::to_string(size - pos) + " more bytes");
          return;
        }
        break;
      case Arg::Fixed:
      case Arg::MemoFixed:
        if (l.width > left) fail(at, op, "needs " + std::to_string(l.width) + " argument bytes, the stream has " +
                                             std::to_string(left));
        if (l.arg == Arg::MemoFixed && little_endian(data + pos, l.width) >= size)
          fail(at, op, "names memo slot " + std::to_string(little_endian(data + pos, l.width)) + " in a " +
                           std::to_string(size) + "-byte stream");
        pos += l.width;
        break;
      case Arg::Length: {
        if (l.width > left) fail(at, op, "has a truncated length");
        const uint64_t n = little_endian(data + pos, l.width);
        pos += l.width;
        if (n > size - pos)
          fail(at, op, "claims " + std::to_string(n) + " bytes, the stream has " + std::to_string(size - pos) + " left");
        pos += static_cast<size_t>(n);
        break;
      }
      case Arg::Line:
      case Arg::MemoLine: {
        const size_t end = line_end(pos);
        if (l.arg == Arg::MemoLine) {
          // A decimal memo index: too many digits, or a value past the stream, cannot be a real one.
          if (end - pos > 20) fail(at, op, "has a memo index of " + std::to_string(end - pos) + " digits");
          uint64_t v = 0;
          for (size_t i = pos; i < end; ++i) {
            if (data[i] < '0' || data[i] > '9') fail(at, op, "has a memo index that is not a number");
            v = v * 10 + static_cast<uint64_t>(data[i] - '0');
            if (v >= size) fail(at, op, "names a memo slot past the " + std::to_string(size) + "-byte stream");
          }
        }
        pos = end + 1;
        break;
      }
      case Arg::TwoLines: pos = line_end(line_end(pos) + 1) + 1; break;
    }
  }
  throw input_error(path, ": not a readable brainspade ", what, " (damaged pickle: no STOP opcode; truncated)");
}

}  // namespace brainspade
