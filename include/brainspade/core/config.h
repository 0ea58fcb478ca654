#pragma once
/// Strict configuration: struct defaults, then a YAML file, then `--set a.b=value` overrides.
///
/// A config section is a plain struct with a `visit(ConfigVisitor&)` member that names every key once:
///
///   struct TrainOptions {
///     double lr = 1e-4;
///     std::string loss = "l1";
///     void visit(ConfigVisitor& v) {
///       v("lr", lr, "learning rate", Bounds::positive());
///       v.choice("loss", loss, {"l1", "l2"}, "diffusion loss");
///     }
///   };
///
/// The same visit() loads (unknown keys, wrong types and out-of-range values are InputErrors that name the
/// key and the file), writes the resolved YAML saved beside every output, and documents the keys.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "brainspade/core/error.h"

namespace brainspade {

/// Inclusive numeric range for a config value.
struct Bounds {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  static Bounds any() { return {}; }
  static Bounds positive() { return {std::numeric_limits<double>::min(), std::numeric_limits<double>::infinity()}; }
  static Bounds non_negative() { return {0.0, std::numeric_limits<double>::infinity()}; }
  static Bounds at_least(double lo) { return {lo, std::numeric_limits<double>::infinity()}; }
  static Bounds range(double lo, double hi) { return {lo, hi}; }
  static Bounds unit() { return {0.0, 1.0}; }
};

class ConfigVisitor {
 public:
  virtual ~ConfigVisitor() = default;
  virtual void operator()(const char* key, int64_t& value, const char* doc, Bounds b = {}) = 0;
  virtual void operator()(const char* key, double& value, const char* doc, Bounds b = {}) = 0;
  virtual void operator()(const char* key, bool& value, const char* doc) = 0;
  virtual void operator()(const char* key, std::string& value, const char* doc) = 0;
  virtual void operator()(const char* key, std::vector<int64_t>& value, const char* doc, Bounds b = {}) = 0;
  virtual void operator()(const char* key, std::vector<double>& value, const char* doc, Bounds b = {}) = 0;
  virtual void operator()(const char* key, std::vector<std::string>& value, const char* doc) = 0;
  /// A string that must be one of `choices`.
  virtual void choice(const char* key, std::string& value, const std::vector<std::string>& choices,
                      const char* doc) = 0;
  /// `old_key` of this section is read as `new_key` (a key renamed since a release: old configs and the model configs
  /// stored in old checkpoints still load, with a warning). Call before visiting `new_key`. Giving both is an error.
  virtual void renamed(const char* old_key, const char* new_key) { (void)old_key, (void)new_key; }
  /// A nested section: `v.section("vae", vae)` visits vae.visit(v) under the key "vae".
  template <class Section>
  void section(const char* key, Section& s, const char* doc = "") {
    begin_section(key, doc);
    s.visit(*this);
    end_section();
  }

 protected:
  virtual void begin_section(const char* key, const char* doc) = 0;
  virtual void end_section() = 0;
};

/// Where a config came from, for error messages and the saved copy.
struct ConfigSource {
  std::string file;                    ///< YAML path ("" when only defaults and overrides)
  std::vector<std::string> overrides;  ///< "a.b=value" strings (--set; the value is YAML), applied in order after the file
  /// Typed values from command-line flags, applied last: a path or a number is stored as it is, never re-parsed as
  /// YAML text (a path holding ": " or a quote, or a double beyond 6 digits, survives exactly).
  std::vector<std::pair<std::string, YAML::Node>> values;
};

/// Parses the YAML file (if any) and applies the overrides; throws InputError naming the file or the override.
YAML::Node read_config_tree(const ConfigSource& source);
/// Loads `tree` into a section through its visitor; every key of `tree` must be known.
void load_config_tree(const YAML::Node& tree, const ConfigSource& source,
                      void (*visit)(void* root, ConfigVisitor& v), void* root);
/// Writes the section as YAML text (all keys, resolved values).
std::string dump_config(void (*visit)(void* root, ConfigVisitor& v), void* root);
/// Markdown table of every key (name, type, default, doc) — used to generate docs/config.md.
std::string document_config(void (*visit)(void* root, ConfigVisitor& v), void* root, const std::string& title);

/// Convenience wrappers for a root struct with a visit() member.
template <class Root>
Root load_config(const ConfigSource& source) {
  Root root;
  YAML::Node tree = read_config_tree(source);
  load_config_tree(tree, source, [](void* r, ConfigVisitor& v) { static_cast<Root*>(r)->visit(v); }, &root);
  return root;
}
template <class Root>
Root load_config_text(const std::string& yaml_text, const std::string& name = "<config>") {
  Root root;
  YAML::Node tree;
  try {
    tree = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw input_error(name, ": invalid YAML: ", e.what());
  }
  ConfigSource source{name, {}, {}};
  load_config_tree(tree, source, [](void* r, ConfigVisitor& v) { static_cast<Root*>(r)->visit(v); }, &root);
  return root;
}
template <class Root>
std::string dump_config(const Root& root) {
  auto copy = root;
  return dump_config([](void* r, ConfigVisitor& v) { static_cast<Root*>(r)->visit(v); }, &copy);
}
template <class Root>
std::string document_config(const std::string& title) {
  Root root;
  return document_config([](void* r, ConfigVisitor& v) { static_cast<Root*>(r)->visit(v); }, &root, title);
}

/// One section as YAML text ("key:\n  a: 1 ..."): what a checkpoint stores so that a later stage can rebuild
/// the network without the original config file.
template <class T>
std::string dump_section(const char* key, const T& value) {
  struct Wrap {
    const char* key;
    T v;
    void visit(ConfigVisitor& vis) { vis.section(key, v); }
  } w{key, value};
  return dump_config(w);
}
/// Reads a section written by dump_section; `what` names the source (e.g. the checkpoint) in errors.
template <class T>
T load_section(const char* key, const std::string& yaml, const std::string& what) {
  struct Wrap {
    const char* key = nullptr;
    T v;
    void visit(ConfigVisitor& vis) { vis.section(key, v); }
  } w;
  w.key = key;
  YAML::Node tree;
  try {
    tree = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    throw input_error(what, ": stored config is not valid YAML: ", e.what());
  }
  if (!tree.IsMap()) throw input_error(what, ": stored config is not a map");
  YAML::Node only(YAML::NodeType::Map);
  only[key] = tree[key];  // other sections stored alongside are ignored
  load_config_tree(only, ConfigSource{what, {}, {}}, [](void* r, ConfigVisitor& vis) { static_cast<Wrap*>(r)->visit(vis); }, &w);
  return w.v;
}

/// The keys whose values differ between two config texts, one "a.b: <in before> -> <in after>" line each ("(absent)"
/// for a key only one side has), in the order of `before` then `after`; empty when they hold the same values.
/// Used to name what differs when a stored network config does not match the current one.
std::vector<std::string> config_differences(const std::string& before, const std::string& after);
/// config_differences joined with "; " for an error message ("" when they hold the same values).
std::string describe_config_differences(const std::string& before, const std::string& after);

/// Settings every command shares: where outputs go, seed, device, threads.
struct RunOptions {
  std::string out_dir = "runs/default";  ///< output folder (created; holds log, config, results)
  int64_t seed = 0;
  std::string device = "auto";  ///< auto | cpu | cuda | cuda:N
  int64_t threads = 0;           ///< intra-op threads; 0 = number of cores
  void visit(ConfigVisitor& v);
};

}  // namespace brainspade
