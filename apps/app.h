#pragma once
/// Shared plumbing of the thin subcommand files: registration, common flags, config resolution.
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "brainspade/core/config.h"
#include "brainspade/core/runtime.h"

namespace brainspade::app {

/// Each apps/*.cpp registers its subcommands with a static Registrar; main() calls them in name order. A file keeps its
/// flags, registrar and helpers in a namespace of its own (cmd_<file>), not an anonymous one: the app is compiled as a
/// unity build (several files in one translation unit), where file-local names would collide.
using RegisterFn = std::function<void(CLI::App& root)>;
struct Registrar {
  Registrar(const std::string& order_key, RegisterFn fn);
};
std::vector<std::pair<std::string, RegisterFn>>& registry();

/// The group command `name` (e.g. "train", "sample"), created on first use so that several files can add to it.
CLI::App* group(CLI::App& root, const std::string& name, const std::string& description);

/// Flags every config-driven command takes.
struct CommonFlags {
  std::string config;                 ///< --config FILE
  std::vector<std::string> overrides; ///< --set a.b=v (repeatable)
  std::string out;                    ///< --out DIR (overrides run.out_dir)
  int64_t seed = -1;                  ///< --seed (overrides run.seed)
  std::string device;                 ///< --device
  int64_t threads = -1;               ///< --threads
  /// Values of a command's own flags (e.g. --spade, --num), applied after --set: typed, never re-parsed as YAML.
  std::vector<std::pair<std::string, YAML::Node>> values;
  template <class T>
  void set(const std::string& key, const T& value) {
    values.emplace_back(key, YAML::Node(value));
  }
};
void add_common_flags(CLI::App* cmd, CommonFlags& flags, bool config_required = true);

/// Loads Root (which has a `RunOptions run` member) from --config and --set, then applies --out/--seed/--device/--threads.
template <class Root>
Root resolve_config(const CommonFlags& f) {
  CommonFlags g = f;
  if (!f.out.empty()) g.set("run.out_dir", f.out);
  if (f.seed >= 0) g.set("run.seed", f.seed);
  if (!f.device.empty()) g.set("run.device", f.device);
  if (f.threads >= 0) g.set("run.threads", f.threads);
  ConfigSource src{f.config, f.overrides, g.values};
  return load_config<Root>(src);
}

}  // namespace brainspade::app
