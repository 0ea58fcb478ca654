// The single `brainspade` program: CLI11 parses, each subcommand file does the rest.
#include <algorithm>
#include <cstdio>

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
  cmd->add_option("--threads", f.threads, "intra-op CPU threads, 0 = all cores (run.threads)");
}

}  // namespace brainspade::app

int main(int argc, char** argv) {
  using namespace brainspade;
  ensure_passive_openmp_wait(argv);
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
