#include "brainspade/core/pickle_check.h"

#include <cstdint>
#include <cstdio>
#include <unordered_set>
#include <vector>

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

// What an opcode does to the unpickler's stack: items it needs above the top mark, items it pops and pushes, or
// "to mark" (pops everything above the top mark and the mark itself).
struct Effect {
  int need = 0, pop = 0, push = 0;
  bool to_mark = false;
  int mark_push = 0;     // to_mark: items pushed after popping to the mark
  bool even = false;     // to_mark: the items above the mark come in key/value pairs
  int below_mark = 0;    // to_mark: items that must lie below the mark (the list or dict appended to)
  int min_above = 0;     // to_mark: items that must lie above the mark
};

Effect effect_of(unsigned char op) {
  switch (op) {
    case '0': return {1, 1, 0};                                           // POP
    case '2': return {1, 0, 1};                                             // DUP
    case 'Q': return {1, 1, 1};                                             // BINPERSID
    case 'R': case 'b': case 0x81: case 0x93: return {2, 2, 1};             // REDUCE, BUILD, NEWOBJ, STACK_GLOBAL
    case 0x92: return {3, 3, 1};                                            // NEWOBJ_EX
    case 'a': return {2, 1, 0};                                             // APPEND
    case 's': return {3, 2, 0};                                             // SETITEM
    case 0x85: return {1, 1, 1};                                            // TUPLE1
    case 0x86: return {2, 2, 1};                                            // TUPLE2
    case 0x87: return {3, 3, 1};                                            // TUPLE3
    case 'q': case 'r': case 'p': case 0x94: case 0x98: return {1, 0, 0};   // PUT forms, MEMOIZE, READONLY_BUFFER
    case '(': case '.': case 0x80: case 0x95: return {};                    // MARK, STOP, PROTO, FRAME: handled apart
    case '1': { Effect e; e.to_mark = true; return e; }                     // POP_MARK
    case 'e': case 0x90: { Effect e; e.to_mark = true; e.below_mark = 1; return e; }  // APPENDS, ADDITEMS
    case 'u': { Effect e; e.to_mark = true; e.below_mark = 1; e.even = true; return e; }  // SETITEMS
    case 't': case 'l': case 0x91: case 'i': { Effect e; e.to_mark = true; e.mark_push = 1; return e; }
    case 'd': { Effect e; e.to_mark = true; e.mark_push = 1; e.even = true; return e; }  // DICT
    case 'o': { Effect e; e.to_mark = true; e.mark_push = 1; e.min_above = 1; return e; }  // OBJ
    default: return {0, 0, 1};  // everything else pushes one value
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
  // LibTorch's unpickler trusts the stack: BUILD on an empty stack read stack_.back() of an empty vector (a SEGV
  // found by fuzz_checkpoint, 2026-12-01). The stack depth, the marks and the memo are followed here.
  size_t depth = 0;
  std::vector<size_t> marks;
  std::unordered_set<uint64_t> memo;
  while (pos < size) {
    const size_t at = pos;
    const unsigned char op = data[pos++];
    const Layout l = layout_of(op);
    if (l.arg != Arg::Unknown) {
      const Effect e = effect_of(op);
      const size_t floor = marks.empty() ? 0 : marks.back();
      if (op == '(') {
        marks.push_back(depth);
      } else if (e.to_mark) {
        if (marks.empty()) fail(at, op, "pops to a mark that was never set");
        const size_t above = depth - marks.back();
        const size_t outer = marks.size() > 1 ? marks[marks.size() - 2] : 0;  // the enclosing mark's depth
        if (marks.back() - outer < static_cast<size_t>(e.below_mark)) fail(at, op, "has no container below its mark");
        if (e.even && above % 2 != 0) fail(at, op, "has an odd number of keys and values");
        if (above < static_cast<size_t>(e.min_above)) fail(at, op, "has nothing above its mark");
        depth = marks.back() + static_cast<size_t>(e.mark_push);
        marks.pop_back();
      } else if (op == '.') {
        if (depth != 1 || !marks.empty())
          fail(at, op, "(STOP) leaves " + std::to_string(depth) + " values and " + std::to_string(marks.size()) +
                           " marks on the stack, not one value");
      } else {
        if (depth - floor < static_cast<size_t>(e.need))
          fail(at, op, "needs " + std::to_string(e.need) + " values on the stack, it holds " + std::to_string(depth - floor));
        depth = depth - static_cast<size_t>(e.pop) + static_cast<size_t>(e.push);
      }
    }

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
        if (op == 0x94) memo.insert(memo.size());  // MEMOIZE: the next slot
        if (op == '.') {
          if (pos != size) fail(at, op, "(STOP) is followed by " + std::to_string(size - pos) + " more bytes");
          return;
        }
        break;
      case Arg::Fixed:
      case Arg::MemoFixed:
        if (l.width > left) fail(at, op, "needs " + std::to_string(l.width) + " argument bytes, the stream has " +
                                             std::to_string(left));
        if (l.arg == Arg::MemoFixed) {
          const uint64_t slot = little_endian(data + pos, l.width);
          if (slot >= size)
            fail(at, op, "names memo slot " + std::to_string(slot) + " in a " + std::to_string(size) + "-byte stream");
          if (op == 'q' || op == 'r') memo.insert(slot);
          else if (!memo.count(slot)) fail(at, op, "reads memo slot " + std::to_string(slot) + " that was never written");
        }
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
          if (op == 'p') memo.insert(v);
          else if (!memo.count(v)) fail(at, op, "reads memo slot " + std::to_string(v) + " that was never written");
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
