#include "brainspade/core/config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>

namespace brainspade {

void RunOptions::visit(ConfigVisitor& v) {
  v("out_dir", out_dir, "output folder; created if missing; holds the log, the resolved config and results");
  v("seed", seed, "global seed: same seed + same config gives bit-identical results on CPU", Bounds::non_negative());
  v.choice("device", device, {"auto", "cpu", "cuda", "cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:4", "cuda:5",
                              "cuda:6", "cuda:7"},
           "compute device; auto = first CUDA device when present, else CPU");
  v("threads", threads, "intra-op CPU threads; 0 = OMP_NUM_THREADS when set, else the number of cores", Bounds::non_negative());
}

namespace {

std::string join_path(const std::vector<std::string>& stack, const char* key) {
  std::string out;
  for (const auto& s : stack) out += s + ".";
  return out + key;
}

std::string describe(const ConfigSource& src, const std::string& path,
                     const std::set<std::string>& overridden) {
  for (const auto& v : src.values)
    if (v.first == path) return "the command line (" + path + ")";
  if (overridden.count(path)) return "--set " + path;
  return src.file.empty() ? std::string("<defaults>") : src.file;
}

/// Loads values from a YAML tree, tracking which keys were used so that unknown ones are reported.
class Loader final : public ConfigVisitor {
 public:
  Loader(const YAML::Node& root, const ConfigSource& src) : src_(src) {
    nodes_.push_back(root);
    for (const auto& o : src.overrides) overridden_.insert(o.substr(0, o.find('=')));
  }

  void operator()(const char* key, int64_t& value, const char* doc, Bounds b) override {
    auto found = take(key);
    if (!found) return;
    const YAML::Node& n = *found;
    double d = scalar_number(n, key, "an integer");
    if (std::floor(d) != d) fail(key, "expected an integer, got '", n.Scalar(), "'");
    // Beyond 2^53 a double no longer holds every integer, and beyond 2^63 the conversion is undefined (fuzz_config
    // found 1e34 read as -2^63): integers are limited to +-2^53.
    constexpr double kMaxExact = 9007199254740992.0;  // 2^53
    if (std::abs(d) > kMaxExact) fail(key, "integer '", n.Scalar(), "' is too large (at most 2^53 = 9007199254740992)");
    check_bounds(key, d, b);
    value = static_cast<int64_t>(d);
  }
  void operator()(const char* key, double& value, const char* doc, Bounds b) override {
    auto found = take(key);
    if (!found) return;
    const YAML::Node& n = *found;
    double d = scalar_number(n, key, "a number");
    check_bounds(key, d, b);
    value = d;
  }
  void operator()(const char* key, bool& value, const char* doc) override {
    auto found = take(key);
    if (!found) return;
    const YAML::Node& n = *found;
    if (!n.IsScalar()) fail(key, "expected true or false");
    std::string s = n.Scalar();
    if (s == "true" || s == "True" || s == "yes") value = true;
    else if (s == "false" || s == "False" || s == "no") value = false;
    else fail(key, "expected true or false, got '", s, "'");
  }
  void operator()(const char* key, std::string& value, const char* doc) override {
    auto found = take(key);
    if (!found) return;
    const YAML::Node& n = *found;
    if (n.IsNull()) { value.clear(); return; }
    if (!n.IsScalar()) fail(key, "expected a string");
    value = n.Scalar();
  }
  void operator()(const char* key, std::vector<int64_t>& value, const char* doc, Bounds b) override {
    auto found = take(key);
    if (!found) return;
    const YAML::Node& n = *found;
    if (!n.IsSequence()) fail(key, "expected a list of integers, e.g. [1, 2]");
    std::vector<int64_t> out;
    for (const auto& e : n) {
      double d = scalar_number(e, key, "a list of integers");
      if (std::floor(d) != d) fail(key, "expected a list of integers, got element '", e.Scalar(), "'");
      check_bounds(key, d, b);
      out.push_back(static_cast<int64_t>(d));
    }
    value = out;
  }
  void operator()(const char* key, std::vector<double>& value, const char* doc, Bounds b) override {
    auto found = take(key);
    if (!found) return;
    const YAML::Node& n = *found;
    if (!n.IsSequence()) fail(key, "expected a list of numbers, e.g. [0.5, 1.0]");
    std::vector<double> out;
    for (const auto& e : n) {
      double d = scalar_number(e, key, "a list of numbers");
      check_bounds(key, d, b);
      out.push_back(d);
    }
    value = out;
  }
  void operator()(const char* key, std::vector<std::string>& value, const char* doc) override {
    auto found = take(key);
    if (!found) return;
    const YAML::Node& n = *found;
    if (n.IsNull()) { value.clear(); return; }
    if (!n.IsSequence()) fail(key, "expected a list of strings, e.g. [a, b]");
    std::vector<std::string> out;
    for (const auto& e : n) {
      if (!e.IsScalar()) fail(key, "expected a list of strings");
      out.push_back(e.Scalar());
    }
    value = out;
  }
  void choice(const char* key, std::string& value, const std::vector<std::string>& choices,
              const char* doc) override {
    std::string v = value;
    (*this)(key, v, doc);
    bool ok = false;
    for (const auto& c : choices) ok = ok || c == v;
    if (!ok) {
      std::string list;
      for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
      fail(key, "expected one of {", list, "}, got '", v, "'");
    }
    value = v;
  }

  /// After the root section: every key of the tree must have been visited.
  void finish() { check_unknown(); }

  void renamed(const char* old_key, const char* new_key) override {
    YAML::Node cur = nodes_.back();
    if (!cur.IsMap()) return;
    const YAML::Node old_node = static_cast<const YAML::Node&>(cur)[old_key];
    if (!old_node.IsDefined()) return;
    if (static_cast<const YAML::Node&>(cur)[new_key].IsDefined())
      fail(old_key, "was renamed to '", new_key, "'; give only '", new_key, "'");
    spdlog::warn("{}: config key '{}' is now '{}' (read as that)", describe(src_, join_path(stack_, old_key), overridden_),
                 join_path(stack_, old_key), join_path(stack_, new_key));
    YAML::Node value = YAML::Clone(old_node);
    cur.remove(old_key);
    cur[new_key] = value;
  }

 protected:
  void begin_section(const char* key, const char* doc) override {
    auto n = take(key);
    if (n && !n->IsMap() && !n->IsNull()) fail(key, "expected a section (a map of keys)");
    stack_.push_back(key);
    nodes_.push_back(n && n->IsMap() ? *n : YAML::Node(YAML::NodeType::Map));
    used_.emplace_back();
  }
  void end_section() override {
    check_unknown();
    stack_.pop_back();
    nodes_.pop_back();
    used_.pop_back();
  }

 private:
  /// The node under `key` in the current section, or nullopt when the key is absent (default kept).
  std::optional<YAML::Node> take(const char* key) {
    if (used_.size() < nodes_.size()) used_.resize(nodes_.size());
    used_[nodes_.size() - 1].insert(key);
    const YAML::Node& cur = nodes_.back();
    if (!cur.IsMap()) return std::nullopt;
    const YAML::Node n = static_cast<const YAML::Node&>(cur)[key];
    if (!n.IsDefined()) return std::nullopt;
    return n;
  }
  double scalar_number(const YAML::Node& n, const char* key, const char* what) {
    if (!n.IsScalar()) fail(key, "expected ", what);
    const std::string& s = n.Scalar();
    try {
      size_t pos = 0;
      double d = std::stod(s, &pos);
      if (pos != s.size()) throw std::invalid_argument(s);
      if (!std::isfinite(d)) fail(key, "expected a finite number, got '", s, "'");
      return d;
    } catch (const std::logic_error&) {
      fail(key, "expected ", what, ", got '", s, "'");
    }
    return 0;
  }
  void check_bounds(const char* key, double d, const Bounds& b) {
    if (d < b.lo || d > b.hi) {
      std::ostringstream r;
      r << "[" << b.lo << ", " << b.hi << "]";
      fail(key, "value ", d, " is out of range ", r.str());
    }
  }
  void check_unknown() {
    const YAML::Node& cur = nodes_.back();
    if (!cur.IsMap()) return;
    if (used_.size() < nodes_.size()) used_.resize(nodes_.size());
    const auto& used = used_[nodes_.size() - 1];
    for (const auto& kv : cur) {
      std::string k = kv.first.as<std::string>();
      if (!used.count(k)) {
        std::string known;
        for (const auto& u : used) known += (known.empty() ? "" : ", ") + u;
        std::string path = join_path(stack_, k.c_str());
        throw input_error(describe(src_, path, overridden_), ": unknown config key '", path,
                          "' (known keys here: ", known, ")");
      }
    }
  }
  template <class... Parts>
  [[noreturn]] void fail(const char* key, const Parts&... parts) {
    std::string path = join_path(stack_, key);
    throw input_error(describe(src_, path, overridden_), ": config key '", path, "': ", parts...);
  }

  const ConfigSource& src_;
  std::vector<YAML::Node> nodes_;
  std::vector<std::string> stack_;
  std::vector<std::set<std::string>> used_{1};
  std::set<std::string> overridden_;
};

/// Emits the resolved values as YAML.
class Dumper final : public ConfigVisitor {
 public:
  Dumper() { out_ << YAML::BeginMap; }
  std::string str() {
    out_ << YAML::EndMap;
    return std::string(out_.c_str()) + "\n";
  }
  void operator()(const char* key, int64_t& v, const char*, Bounds) override { out_ << YAML::Key << key << YAML::Value << v; }
  void operator()(const char* key, double& v, const char*, Bounds) override {
    out_ << YAML::Key << key << YAML::Value << format(v);
  }
  void operator()(const char* key, bool& v, const char*) override { out_ << YAML::Key << key << YAML::Value << v; }
  void operator()(const char* key, std::string& v, const char*) override {
    out_ << YAML::Key << key << YAML::Value << YAML::DoubleQuoted << v;
  }
  void operator()(const char* key, std::vector<int64_t>& v, const char*, Bounds) override {
    out_ << YAML::Key << key << YAML::Value << YAML::Flow << v;
  }
  void operator()(const char* key, std::vector<double>& v, const char*, Bounds) override {
    out_ << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (double d : v) out_ << format(d);
    out_ << YAML::EndSeq;
  }
  void operator()(const char* key, std::vector<std::string>& v, const char*) override {
    out_ << YAML::Key << key << YAML::Value << YAML::Flow << v;
  }
  void choice(const char* key, std::string& v, const std::vector<std::string>&, const char* doc) override {
    (*this)(key, v, doc);
  }

 protected:
  void begin_section(const char* key, const char*) override { out_ << YAML::Key << key << YAML::Value << YAML::BeginMap; }
  void end_section() override { out_ << YAML::EndMap; }

 private:
  static std::string format(double d) {
    // The shortest decimal that reads back to the same double (0.15, not 0.14999999999999999).
    std::string s;
    for (int precision = 6; precision <= 17; ++precision) {
      std::ostringstream os;
      os.precision(precision);
      os << d;
      s = os.str();
      if (std::stod(s) == d) break;
    }
    // Keep a decimal point so that the value reads back as a number that is visibly a float.
    if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
    return s;
  }
  YAML::Emitter out_;
};

/// Writes a Markdown table with one row per key.
class Documenter final : public ConfigVisitor {
 public:
  explicit Documenter(const std::string& title) { out_ << "### " << title << "\n\n| key | type | default | meaning |\n|---|---|---|---|\n"; }
  std::string str() const { return out_.str(); }
  void operator()(const char* key, int64_t& v, const char* doc, Bounds b) override { row(key, "int" + range(b), std::to_string(v), doc); }
  void operator()(const char* key, double& v, const char* doc, Bounds b) override {
    std::ostringstream os;
    os << v;
    row(key, "float" + range(b), os.str(), doc);
  }
  void operator()(const char* key, bool& v, const char* doc) override { row(key, "bool", v ? "true" : "false", doc); }
  void operator()(const char* key, std::string& v, const char* doc) override { row(key, "string", "\"" + v + "\"", doc); }
  void operator()(const char* key, std::vector<int64_t>& v, const char* doc, Bounds b) override {
    std::string s;
    for (auto x : v) s += (s.empty() ? "" : ", ") + std::to_string(x);
    row(key, "list[int]" + range(b), "[" + s + "]", doc);
  }
  void operator()(const char* key, std::vector<double>& v, const char* doc, Bounds b) override {
    std::ostringstream os;
    for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
    row(key, "list[float]" + range(b), "[" + os.str() + "]", doc);
  }
  void operator()(const char* key, std::vector<std::string>& v, const char* doc) override {
    std::string s;
    for (auto& x : v) s += (s.empty() ? "" : ", ") + x;
    row(key, "list[string]", "[" + s + "]", doc);
  }
  void choice(const char* key, std::string& v, const std::vector<std::string>& choices, const char* doc) override {
    std::string s;
    for (auto& c : choices) s += (s.empty() ? "" : " \\| ") + c;
    row(key, s, "\"" + v + "\"", doc);
  }

 protected:
  void begin_section(const char* key, const char*) override { stack_.push_back(key); }
  void end_section() override { stack_.pop_back(); }

 private:
  static std::string range(const Bounds& b) {
    if (std::isinf(b.lo) && std::isinf(b.hi)) return "";
    std::ostringstream os;
    os << " in [" << (std::isinf(b.lo) ? std::string("-inf") : num(b.lo)) << ", "
       << (std::isinf(b.hi) ? std::string("inf") : num(b.hi)) << "]";
    return os.str();
  }
  static std::string num(double d) {
    std::ostringstream os;
    if (d > 0 && d < 1e-300) return "0+";
    os << d;
    return os.str();
  }
  void row(const char* key, const std::string& type, const std::string& def, const char* doc) {
    out_ << "| `" << join_path(stack_, key) << "` | " << type << " | `" << def << "` | " << doc << " |\n";
  }
  std::vector<std::string> stack_;
  std::ostringstream out_;
};

}  // namespace

namespace {

// Every mapping key of a config must be a plain scalar name. YAML also allows a sequence or a map as a key
// (`? [a, b]: 1`), which yaml-cpp cannot convert to a string; found by fuzz_config, it escaped as
// YAML::TypedBadConversion without the file's name. The key's line and column are named instead.
// A config is a small tree. yaml-cpp shares the node an alias names instead of copying it, so an alias inside its own
// anchor (`run: &x {out_dir: *x}`) makes a cycle that every recursive pass followed until the stack overflowed (a
// SIGSEGV, found 2026-12-01), and nested aliases expand to exponentially many values (an "alias bomb"). Both are
// refused here, before any other pass walks the tree, together with keys that are not plain names.
constexpr size_t kMaxConfigValues = 100000;

void check_tree(const YAML::Node& node, const std::string& where, std::vector<YAML::Node>& path, size_t& count) {
  auto at = [&](const YAML::Node& n) {
    const YAML::Mark m = n.Mark();
    return m.is_null() ? std::string() : "line " + std::to_string(m.line + 1) + ", column " + std::to_string(m.column + 1) + ": ";
  };
  if (++count > kMaxConfigValues)
    throw input_error(where, ": ", at(node), "the config expands to more than ", kMaxConfigValues,
                      " values (nested YAML aliases?)");
  for (const auto& ancestor : path)
    if (ancestor.is(node))
      throw input_error(where, ": ", at(node), "a YAML alias refers to a node that contains it (a recursive anchor)");
  if (!node.IsMap() && !node.IsSequence()) return;
  path.push_back(node);
  if (node.IsMap()) {
    for (const auto& kv : node) {
      if (!kv.first.IsScalar())
        throw input_error(where, ": ", at(kv.first), "a config key must be a plain name, not a ",
                          kv.first.IsSequence() ? "list" : kv.first.IsMap() ? "map" : "null value");
      check_tree(kv.second, where, path, count);
    }
  } else {
    for (const auto& e : node) check_tree(e, where, path, count);
  }
  path.pop_back();
}

void check_keys_are_names(const YAML::Node& node, const std::string& where) {
  std::vector<YAML::Node> path;
  size_t count = 0;
  check_tree(node, where, path, count);
}

// Sets tree[parts[0]][parts[1]]... = value, creating sections on the way.
void set_path(YAML::Node& tree, const std::vector<std::string>& parts, const YAML::Node& value, const std::string& what) {
  // Walk down with explicit copies: yaml-cpp nodes are references, so reassigning would alias.
  std::vector<YAML::Node> chain{tree};
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node child = chain.back()[parts[i]];
    if (!child.IsDefined() || child.IsNull()) {
      chain.back()[parts[i]] = YAML::Node(YAML::NodeType::Map);
      child = chain.back()[parts[i]];
    } else if (!child.IsMap()) {
      throw input_error(what, ": '", parts[i], "' is a value, not a section");
    }
    chain.push_back(child);
  }
  chain.back()[parts.back()] = value;
}

}  // namespace

YAML::Node read_config_tree(const ConfigSource& source) {
  YAML::Node tree(YAML::NodeType::Map);
  if (!source.file.empty()) {
    std::ifstream in(source.file);
    if (!in) throw input_error(source.file, ": cannot open config file");
    try {
      tree = YAML::LoadFile(source.file);
    } catch (const YAML::Exception& e) {
      throw input_error(source.file, ": invalid YAML: ", e.what());
    }
    if (tree.IsNull()) tree = YAML::Node(YAML::NodeType::Map);
    if (!tree.IsMap()) throw input_error(source.file, ": the top level of a config must be a map of sections");
    // Before the command-line values are set into it: they can cut an alias loop and hide it.
    check_keys_are_names(tree, source.file);
  }
  for (const auto& o : source.overrides) {
    auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0)
      throw input_error("--set ", o, ": expected key.path=value, e.g. --set train.lr=1e-4");
    std::string path = o.substr(0, eq), value = o.substr(eq + 1);
    std::vector<std::string> parts;
    std::stringstream ss(path);
    for (std::string p; std::getline(ss, p, '.');) {
      if (p.empty()) throw input_error("--set ", o, ": empty component in key path '", path, "'");
      parts.push_back(p);
    }
    YAML::Node parsed;
    try {
      parsed = YAML::Load(value);
    } catch (const YAML::Exception& e) {
      throw input_error("--set ", o, ": value is not valid YAML: ", e.what());
    }
    check_keys_are_names(parsed, "--set " + o);
    set_path(tree, parts, parsed, "--set " + o);
  }
  for (const auto& [path, value] : source.values) {
    std::vector<std::string> parts;
    std::stringstream ss(path);
    for (std::string p; std::getline(ss, p, '.');) parts.push_back(p);
    set_path(tree, parts, value, path);
  }
  return tree;
}

void load_config_tree(const YAML::Node& tree, const ConfigSource& source,
                      void (*visit)(void* root, ConfigVisitor& v), void* root) {
  // Backstop: any other conversion yaml-cpp refuses becomes an input error naming the file.
  try {
    check_keys_are_names(tree, source.file.empty() ? std::string("config") : source.file);
    Loader loader(tree, source);
    visit(root, loader);
    loader.finish();
  } catch (const YAML::Exception& e) {
    throw input_error(source.file.empty() ? std::string("config") : source.file, ": ", e.what());
  }
}

std::string dump_config(void (*visit)(void* root, ConfigVisitor& v), void* root) {
  Dumper d;
  visit(root, d);
  return d.str();
}

std::string document_config(void (*visit)(void* root, ConfigVisitor& v), void* root, const std::string& title) {
  Documenter d(title);
  visit(root, d);
  return d.str();
}

namespace {

// `map[key]` on a const node without that key gives an invalid node that throws when asked anything: look it up.
std::optional<YAML::Node> child(const YAML::Node& map, const std::string& key) {
  for (const auto& kv : map)
    if (kv.first.as<std::string>() == key) return kv.second;
  return std::nullopt;
}

std::string flow_text(const std::optional<YAML::Node>& node) {
  if (!node) return "(absent)";
  const YAML::Node& n = *node;
  if (n.IsNull()) return "null";
  if (n.IsScalar()) return n.Scalar();
  YAML::Emitter out;
  out << YAML::Flow << n;
  return out.c_str();
}

void collect_differences(const std::optional<YAML::Node>& a, const std::optional<YAML::Node>& b,
                         const std::string& path, std::vector<std::string>& out) {
  if (a && b && a->IsMap() && b->IsMap()) {
    std::vector<std::string> keys;
    for (const auto& side : {*a, *b})
      for (const auto& kv : side) {
        auto k = kv.first.as<std::string>();
        if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
      }
    for (const auto& k : keys) collect_differences(child(*a, k), child(*b, k), path.empty() ? k : path + "." + k, out);
    return;
  }
  const std::string ta = flow_text(a), tb = flow_text(b);
  if (ta != tb) out.push_back((path.empty() ? std::string("(root)") : path) + ": " + ta + " -> " + tb);
}

YAML::Node parse_for_diff(const std::string& text, const char* side) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw input_error(side, " config is not valid YAML: ", e.what());
  }
}

}  // namespace

std::vector<std::string> config_differences(const std::string& before, const std::string& after) {
  std::vector<std::string> out;
  collect_differences(parse_for_diff(before, "the first"), parse_for_diff(after, "the second"), "", out);
  return out;
}

std::string describe_config_differences(const std::string& before, const std::string& after) {
  std::string text;
  for (const auto& d : config_differences(before, after)) text += (text.empty() ? "" : "; ") + d;
  return text;
}

}  // namespace brainspade
