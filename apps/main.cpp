// The single `brainspade` program: CLI11 parses, each subcommand file does the rest.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "app.h"
#include "brainspade/core/error.h"
#include "brainspade/core/run_rollback.h"
#include "brainspade/core/runtime.h"

namespace brainspade::app {

std::vector<std::pair<std::string, RegisterFn>>& registry() {
  static std::vector<std::pair<std::string, RegisterFn>> r;
  return r;
}
Registrar::Registrar(const std::string& order_key, RegisterFn fn) { registry().emplace_back(order_key, std::move(fn)); }

CLI::App* group(CLI::App& root, const std::string& name, const std::string& description) {
  for (auto* sub : root.get_subcommands([](CLI::App*) { return true; }))
    if (sub->get_name() == name) return sub;
  auto* g = root.add_subcommand(name, description);
  g->require_subcommand(1);
  return g;
}

void add_common_flags(CLI::App* cmd, CommonFlags& f, bool config_required) {
  auto* c = cmd->add_option("--config,-c", f.config, "YAML config file");
  if (config_required) c->required();
  cmd->add_option("--set", f.overrides, "override a config key: --set train.lr=1e-4 (repeatable)");
  cmd->add_option("--out,-o", f.out, "output folder (run.out_dir)");
  cmd->add_option("--seed", f.seed, "global seed (run.seed)");
  cmd->add_option("--device", f.device, "auto | cpu | cuda | cuda:N (run.device)");
  cmd->add_option("--threads", f.threads, "intra-op CPU threads, 0 = OMP_NUM_THREADS when set, else all cores (run.threads)");
}

namespace cmd_main {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace cmd_main

std::string unknown_command_message(CLI::App& root, int argc, char** argv) {
  CLI::App* app = &root;
  std::string path = "brainspade";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") break;
    if (!a.empty() && a[0] == '-') {
      // Skip an option's value so that it is not taken for a command; after an option of several values, CLI11
      // alone knows where they end.
      if (a.find('=') != std::string::npos) continue;
      const CLI::Option* opt = app->get_option_no_throw(a);
      if (!opt || opt->get_type_size() == 0) continue;  // unknown here (CLI11 reports it) or a flag
      if (opt->get_expected_max() > 1) break;
      ++i;
      continue;
    }
    std::vector<std::string> names;
    CLI::App* found = nullptr;
    for (auto* sub : app->get_subcommands([](CLI::App*) { return true; })) {
      names.push_back(sub->get_name());
      if (sub->get_name() == a) found = sub;
    }
    if (!found) {
      std::string list, nearest;
      size_t best = 3;  // suggest only a close name
      for (const auto& n : names) {
        list += (list.empty() ? "" : ", ") + n;
        const size_t d = cmd_main::edit_distance(a, n);
        if (d < best) best = d, nearest = n;
      }
      return "unknown command '" + a + "' for '" + path + "'" +
             (nearest.empty() ? std::string() : "; did you mean '" + nearest + "'?") + " (commands: " + list + ")";
    }
    // A command with subcommands of its own (train, sample) takes its word next; any other ends the check.
    if (found->get_subcommands([](CLI::App*) { return true; }).empty()) break;
    app = found;
    path += " " + a;
  }
  return "";
}

}  // namespace brainspade::app

int main(int argc, char** argv) {
  using namespace brainspade;
  ensure_thread_environment(argv);
  reuse_freed_memory();
  CLI::App root{"brainspade: synthetic labelled brain MRI (label diffusion + SPADE image generation)"};
  root.require_subcommand(1);
  root.set_version_flag("--version", std::string("brainspade ") + BRAINSPADE_VERSION + " (LibTorch " + TORCH_VERSION + ")");
  std::string log_level = "info";
  setup_console_logging(log_level);
  root.add_option("--log-level", log_level, "debug | info | warn | error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
      ->each([](const std::string& l) { setup_console_logging(l); });
  auto& reg = app::registry();
  std::sort(reg.begin(), reg.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& r : reg) r.second(root);
  // A mistyped command is named before CLI11 parses: CLI11 alone says "A subcommand is required" for `train vea`,
  // and prints the root help with exit 0 for `nosuch --help`.
  if (const std::string bad = app::unknown_command_message(root, argc, argv); !bad.empty()) {
    spdlog::error("{} (see brainspade --help)", bad);
    return 2;
  }
  try {
    root.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return root.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return root.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return root.exit(e);
  } catch (const CLI::ParseError& e) {
    root.exit(e);
    return 2;
  } catch (const InputError& e) {
    spdlog::error("{}", e.what());
    abandon_run();  // bad input leaves no output behind
    return 2;
  } catch (const c10::Error& e) {
    spdlog::error("LibTorch error: {}", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  return 0;
}
