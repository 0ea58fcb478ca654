// `brainspade phantom-lesions`: a simulated lesion cohort from one labelled subject (library: data/phantom.h).
#include "app.h"
#include "brainspade/data/phantom.h"

namespace brainspade::app {
namespace cmd_phantom {

Registrar reg("11-phantom", [](CLI::App& root) {
  auto flags = std::make_shared<CommonFlags>();
  auto* cmd = root.add_subcommand("phantom-lesions",
                                  "simulated lesion cohort (T1, PD, PV maps with tumour and edema) from one subject");
  add_common_flags(cmd, *flags);
  cmd->callback([flags] {
    auto cfg = resolve_config<PhantomConfig>(*flags);
    check_phantom_config(cfg);
    configure_threads(cfg.run.threads);
    run_phantom_lesions(cfg, dump_config(cfg));
  });
});

}  // namespace cmd_phantom
}  // namespace brainspade::app
