#pragma once
/// The options the authors' code (virginiafdez/brainSPADE_RELEASE) trained a network with, translated into brainspade
/// config keys for `brainspade import-official --official-config FILE` (docs/import-official.md has the table):
///
/// * the label VAE: their stage-1 YAML (conditioned_ldm/configs/stage1/*.yaml: `stage1.params` for their
///   ae_kl_v1.AutoencoderKL, plus its learning rates, loss weights and patch discriminator);
/// * the LDM: their diffusion YAML (conditioned_ldm/configs/diffusion/*.yaml: `ldm.params` for their
///   ddpm_v2_conditioned.DDPM, `ldm.params.unet_config.params` for unet_v2_conditioned.UNetModel);
/// * SPADE: the opt.txt their train script writes into checkpoints/NAME/ (options/base_options.py save_options: one
///   `key: value` line per option, `[default: x]` after the options changed from their parser's default).
///
/// A key absent from their file takes the default of their code. A value brainspade cannot build, or a key the reader
/// does not know (YAML only: their opt.txt holds every option of their train script, most about data and logging),
/// is an InputError naming the file, the key and the value. The readers only translate; import_official applies the
/// result to the stage config.
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace brainspade {

/// One brainspade key set by the translation.
struct OfficialEntry {
  std::string key;   ///< brainspade key path, e.g. "vae.channels"
  YAML::Node value;  ///< its value as a config file would write it
  std::string from;  ///< their key(s) it came from ("stage1.params.hparams.n_channels × ..."), or "code" (hard-coded)
};

struct OfficialConfig {
  std::string file;  ///< their file
  /// What their weights were built with (network and noise schedule): a stage config (--config) that sets one of
  /// these keys to another value is refused, naming both values.
  std::vector<OfficialEntry> fixed;
  /// Their training settings (learning rates, loss weights, the VAE's discriminator; the LDM's conditioning when their
  /// file determines it): used where the stage config does not set the key.
  std::vector<OfficialEntry> defaults;
  /// SPADE: their `sequences` (the style classes), empty for the others.
  std::vector<std::string> modality_names;
};

/// Their stage-1 (AutoencoderKL) YAML → the `vae` section (fixed) and optim/loss/discriminator (defaults).
OfficialConfig read_official_vae_config(const std::string& path);
/// Their diffusion (DDPM + UNetModel) YAML → `unet`, `scheduler`, `latent` (fixed) and optim.lr, optim.loss and, for
/// up to one conditioning value, `conditioning` (defaults).
OfficialConfig read_official_ldm_config(const std::string& path);
/// Their SPADE opt.txt → `generator`, `encoder`, `discriminator` (fixed) and their sequences. Their opt.pkl (a pickled
/// argparse Namespace) is refused with a pointer to the opt.txt beside it.
OfficialConfig read_official_spade_options(const std::string& path);

/// A YAML value on one line (flow style), for messages: [32, 64], 1e-06, hybrid.
std::string yaml_flow(const YAML::Node& node);

}  // namespace brainspade
