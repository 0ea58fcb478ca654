#include "brainspade/training/import_official.h"

#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/checkpoint.h"
#include "brainspade/core/config.h"
#include "brainspade/core/error.h"
#include "brainspade/core/zip_check.h"
#include "brainspade/models/autoencoder_kl.h"
#include "brainspade/models/diffusion_unet.h"
#include "brainspade/models/modality_classifier.h"
#include "brainspade/models/official_names.h"
#include "brainspade/models/spade_discriminator.h"
#include "brainspade/models/spade_encoder.h"
#include "brainspade/models/spade_generator.h"
#include "brainspade/schedulers/ddpm_scheduler.h"
#include "brainspade/training/official_config.h"
#include "brainspade/training/train_classifier.h"
#include "brainspade/training/train_ldm.h"
#include "brainspade/training/train_spade.h"
#include "brainspade/training/train_vae.h"

namespace brainspade {

namespace {

// A state dict saved with torch.save. Module.state_dict() is a collections.OrderedDict, which LibTorch 1.13's C++
// unpickler turns into None (it expects OrderedDicts only inside tensors): such a file is named with the one-line
// conversion to a plain dict; anything else goes through the checks every archive brainspade reads passes.
std::map<std::string, c10::IValue> read_state_dict(const std::string& path) {
  const std::string what = "weights file";
  std::ifstream in(path, std::ios::binary);
  BRAINSPADE_CHECK_INPUT(in.good(), path, ": ", what, " not found or unreadable");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  BRAINSPADE_CHECK_INPUT(!bytes.empty(), path, ": ", what, " is empty");
  std::vector<ZipEntry> entries;
  check_zip_container(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), path, what, &entries);
  static const std::string kOrderedDict = std::string("\x80\x02", 2) + "ccollections\nOrderedDict\n";
  for (const auto& e : entries) {
    const std::string leaf = e.name.substr(e.name.find_last_of('/') + 1);
    BRAINSPADE_CHECK_INPUT(leaf != "data.pkl" || bytes.compare(e.offset, kOrderedDict.size(), kOrderedDict) != 0, path,
                           ": holds an OrderedDict (Module.state_dict() as torch.save writes it), which LibTorch's C++ "
                           "reader cannot read; convert it once to a plain dict with python3 -c \"import torch; "
                           "torch.save(dict(torch.load('", path, "', map_location='cpu')), '", path,
                           ".dict.pth')\" and import that file");
  }
  return read_pickle_dict(path, what);
}

// Copies every tensor of `theirs` (their name → tensor) into `module` through `rename`; InputError naming the key for
// an entry without a counterpart, a shape mismatch, or a parameter (with every_buffer: or buffer) left unfilled.
template <typename Rename>
int64_t copy_official(const std::map<std::string, c10::IValue>& theirs, torch::nn::Module& module, Rename rename,
                      const std::string& weights, bool every_buffer = false) {
  torch::NoGradGuard no_grad;
  auto ours = module.named_parameters();
  auto buffers = module.named_buffers();
  std::set<std::string> filled;
  for (const auto& [name, value] : theirs) {
    BRAINSPADE_CHECK_INPUT(value.isTensor(), weights, ": entry '", name, "' is not a tensor (is this a state dict? ",
                           "their checkpoint.pth also holds the optimizer: use final_model.pth or best_model.pth)");
    const std::string mine = rename(name);
    torch::Tensor* p = ours.find(mine);
    if (!p) p = buffers.find(mine);
    BRAINSPADE_CHECK_INPUT(p != nullptr, weights, ": entry '", name, "' (brainspade name '", mine,
                           "') has no counterpart in the network the config builds");
    const auto t = value.toTensor();
    BRAINSPADE_CHECK_INPUT(p->sizes() == t.sizes(), weights, ": entry '", name, "' has shape ", t.sizes(),
                           ", the config's network has ", p->sizes(), " for '", mine, "' (does the config match the ",
                           "architecture they trained?)");
    p->copy_(t.to(p->dtype()));
    filled.insert(mine);
  }
  std::vector<std::string> missing;
  for (const auto& kv : ours)
    if (!filled.count(kv.key())) missing.push_back(kv.key());
  if (every_buffer)
    for (const auto& kv : buffers)
      if (!filled.count(kv.key())) missing.push_back(kv.key());
  BRAINSPADE_CHECK_INPUT(missing.empty(), weights, ": holds no weights for ", missing.size(),
                         every_buffer ? " parameters and buffers" : " parameters", " of the config's network, e.g. '",
                         missing.empty() ? "" : missing.front(), "'");
  return static_cast<int64_t>(filled.size());
}

// A "section.key" path of a config tree; an undefined node when absent.
YAML::Node find_key(const YAML::Node& tree, const std::string& key) {
  const auto dot = key.find('.');
  const YAML::Node section = tree[key.substr(0, dot)];
  if (!section.IsDefined() || !section.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  return section[key.substr(dot + 1)];
}
void set_key(YAML::Node& tree, const std::string& key, const YAML::Node& value) {
  const auto dot = key.find('.');
  tree[key.substr(0, dot)][key.substr(dot + 1)] = YAML::Clone(value);
}

// The stage config: --config (or brainspade's defaults without one), then their options translated (`official`, may
// be null): their network keys replace the config's, where --config sets one to another value every such key is named
// with both values (exit 2); their training settings fill what --config leaves out (a --config value is kept, with a
// warning naming theirs).
template <class Root>
Root resolve_stage_config(const ImportOfficialJob& job, const OfficialConfig* official) {
  const ConfigSource given_source{job.config, {}, {}};
  const Root given = load_config<Root>(given_source);  // the file alone must be a valid config
  if (!official) return given;
  const YAML::Node tree = read_config_tree(given_source);
  auto visit = [](void* r, ConfigVisitor& v) { static_cast<Root*>(r)->visit(v); };
  auto resolve = [&](bool their_defaults_win) {
    YAML::Node merged = YAML::Clone(tree);
    for (const auto& e : official->fixed) set_key(merged, e.key, e.value);
    for (const auto& e : official->defaults)
      if (their_defaults_win || !find_key(tree, e.key).IsDefined()) set_key(merged, e.key, e.value);
    Root cfg;
    load_config_tree(merged, ConfigSource{official->file, {}, {}}, visit, &cfg);
    return cfg;
  };
  const Root cfg = resolve(false);
  const YAML::Node ours = YAML::Load(dump_config(given)), theirs = YAML::Load(dump_config(resolve(true)));
  std::vector<std::string> clashes;
  for (const auto& e : official->fixed) {
    if (!find_key(tree, e.key).IsDefined()) continue;
    const std::string a = yaml_flow(find_key(ours, e.key)), b = yaml_flow(find_key(theirs, e.key));
    if (a != b) clashes.push_back(fmt::format("{} is {} there, {} from their {}", e.key, a, b, e.from));
  }
  BRAINSPADE_CHECK_INPUT(clashes.empty(), job.config, " does not describe the network of ", official->file, ": ",
                         fmt::format("{}", fmt::join(clashes, "; ")),
                         ". Leave these keys out of --config (the translation sets them) or fix them");
  for (const auto& e : official->defaults) {
    if (!find_key(tree, e.key).IsDefined()) continue;
    const std::string a = yaml_flow(find_key(ours, e.key)), b = yaml_flow(find_key(theirs, e.key));
    if (a != b)
      spdlog::warn("import-official: {} keeps {}: {} (their {} gives {})", job.config, e.key, a, e.from, b);
  }
  return cfg;
}

// The resolved config beside the checkpoint (`out`.yaml): what was read, and a `train STAGE` config to fine-tune with.
void write_resolved_config(const ImportOfficialJob& job, const std::string& yaml) {
  std::string header = "# brainspade import-official --network " + job.network + " of " + job.weights + "\n";
  if (!job.official_config.empty()) header += "# their options: " + job.official_config + "\n";
  if (!job.config.empty()) header += "# stage config: " + job.config + "\n";
  write_text_atomic(job.out + ".yaml", header + yaml);
}

}  // namespace

ImportOfficialSummary import_official(const ImportOfficialJob& job) {
  BRAINSPADE_CHECK_INPUT(job.network == "vae" || job.network == "ldm" || job.network == "spade" ||
                             job.network == "classifier",
                         "--network '", job.network, "': importable networks are: vae, ldm, spade, classifier");
  BRAINSPADE_CHECK_INPUT(!job.weights.empty(), "--weights: the authors' state dict (.pth) is required");
  BRAINSPADE_CHECK_INPUT(job.official_config.empty() || job.network != "classifier", "--official-config ",
                         job.official_config, ": their options are read for vae, ldm and spade; the classifier takes ",
                         "--config, --modalities and --datasets");
  BRAINSPADE_CHECK_INPUT(!job.config.empty() || !job.official_config.empty(), "--config: a brainspade `train ",
                         job.network, "` config giving the architecture is required",
                         job.network == "classifier" ? "" : " (or --official-config: the options they trained with)");
  std::optional<OfficialConfig> official;
  if (job.network == "vae" && !job.official_config.empty()) official = read_official_vae_config(job.official_config);
  if (job.network == "ldm" && !job.official_config.empty()) official = read_official_ldm_config(job.official_config);
  if (job.network == "spade" && !job.official_config.empty())
    official = read_official_spade_options(job.official_config);
  const OfficialConfig* their = official ? &*official : nullptr;
  const std::string config_name = job.config.empty() ? job.official_config : job.config;
  BRAINSPADE_CHECK_INPUT(!job.out.empty(), "--out: the checkpoint to write is required");
  BRAINSPADE_CHECK_INPUT(job.out + ".yaml" != job.config && job.out + ".yaml" != job.official_config, "--out ", job.out,
                         ": the resolved config is written to ", job.out, ".yaml, which is an input here");
  std::vector<std::string> names = job.channel_names;
  if (names.empty()) names = {"background", "csf", "gm", "wm", "deep_gm", "brainstem"};
  auto check_channels = [&](int64_t channels, const std::string& key) {
    BRAINSPADE_CHECK_INPUT(static_cast<int64_t>(names.size()) == channels, "--channels: ", names.size(), " names (",
                           fmt::format("{}", fmt::join(names, ",")), ") for a network of ", channels, " channels (",
                           config_name, ": ", key, ")");
  };
  ImportOfficialSummary s;
  Checkpoint ck;
  ck.set_int("step", 0);
  if (job.network != "classifier") ck.set_strings("channel_names", names);  // a classifier reads images only
  ck.set_string("imported_from", job.weights);
  if (job.network == "vae") {
    const auto cfg = resolve_stage_config<VAETrainConfig>(job, their);
    check_channels(cfg.vae.in_channels, "vae.in_channels");
    const auto theirs = read_state_dict(job.weights);
    AutoencoderKL vae(cfg.vae);
    s.entries = copy_official(theirs, *vae, [&](const std::string& k) { return official_vae_name(k, cfg.vae); },
                              job.weights);
    ck.set_string("stage", "vae");
    ck.set_string("config", dump_config(cfg));
    ck.set_string("model_config", dump_section("vae", cfg.vae));
    ck.add_module("vae", *vae);
  } else if (job.network == "ldm") {
    BRAINSPADE_CHECK_INPUT(!job.vae_checkpoint.empty(), "--vae: the brainspade VAE checkpoint this LDM decodes with ",
                           "is required (import their VAE first: import-official --network vae)");
    const auto cfg = resolve_stage_config<LDMTrainConfig>(job, their);
    if (their) {
      // Which values their conditioning vector holds is not in their file (their train script's --lesions).
      const int64_t k = cfg.conditioning.dim(), want = cfg.unet.conditioning == "none" ? 0 : cfg.unet.cond_dim;
      std::string from;
      for (const auto& e : their->fixed)
        if (e.key == "unet.cond_dim") from = e.from;
      BRAINSPADE_CHECK_INPUT(k == want, job.official_config, ": their U-Net takes ", want, " conditioning values (",
                             from, ") but the conditioning section gives ", k, " (", cfg.conditioning.lesions.size(),
                             " lesion flags", cfg.conditioning.slice_position ? " + slice position" : "",
                             "): name their lesions in --config's conditioning.lesions (in their order; ",
                             "conditioning.slice_position: true for their slice_no)");
    }
    BRAINSPADE_CHECK_INPUT(!cfg.latent.estimate_scale, config_name, ": latent.estimate_scale is true; an imported LDM ",
                           "takes the scale its latents were trained with: set latent.scale_factor (the authors: 1.0)");
    auto vck = Checkpoint::load(job.vae_checkpoint);
    check_checkpoint_stage(vck, "vae");
    const auto vae_opts = load_section<AutoencoderKLOptions>("vae", vck.get_string("model_config"), job.vae_checkpoint);
    names = vck.get_strings("channel_names");
    // Their DDPM wrapper: the U-Net under model.diffusion_model., the noise schedule as buffers beside it.
    const std::string prefix = "model.diffusion_model.";
    std::map<std::string, c10::IValue> unet_entries;
    const auto theirs = read_state_dict(job.weights);
    for (const auto& [k, v] : theirs)
      if (k.rfind(prefix, 0) == 0) unet_entries[k.substr(prefix.size())] = v;
    BRAINSPADE_CHECK_INPUT(!unet_entries.empty(), job.weights, ": no '", prefix, "*' entries; is this the state dict ",
                           "of their LDM (DDPM) run?");
    if (theirs.count("betas") && theirs.at("betas").isTensor()) {
      const auto betas = theirs.at("betas").toTensor().to(torch::kDouble);
      const auto ours = DDPMScheduler(cfg.scheduler).betas().to(torch::kDouble);
      BRAINSPADE_CHECK_INPUT(betas.sizes() == ours.sizes() && (betas - ours).abs().max().item<double>() < 1e-6,
                             job.weights, ": their noise schedule ('betas', ", betas.numel(), " steps) differs from ",
                             config_name, "'s scheduler section (", ours.numel(), " steps); set it to theirs");
    }
    DiffusionUNet unet(cfg.unet);
    s.entries = copy_official(unet_entries, *unet, official_unet_name, job.weights);
    const int64_t f = AutoencoderKL(vae_opts)->downsampling_factor();
    BRAINSPADE_CHECK_INPUT(job.image_size[0] % f == 0 && job.image_size[1] % f == 0, "--image-size ",
                           job.image_size[0], "x", job.image_size[1], " is not divisible by the VAE's factor ", f);
    ck.set_string("stage", "ldm");
    ck.set_string("config", dump_config(cfg));
    ck.set_string("model_config", dump_section("unet", cfg.unet));
    ck.add_module("unet", *unet);
    ck.set_string("scheduler_config", dump_section("scheduler", cfg.scheduler));
    ck.set_string("conditioning_config", dump_section("conditioning", cfg.conditioning));
    ck.set_string("vae_checkpoint", job.vae_checkpoint);
    ck.set_string("vae_model_config", vck.get_string("model_config"));
    ck.set_double("latent_scale", cfg.latent.scale_factor);
    ck.set("latent_shape", torch::tensor({vae_opts.latent_channels, job.image_size[0] / f, job.image_size[1] / f}));
    ck.set_strings("channel_names", names);
  } else if (job.network == "classifier") {
    // Their Modisc (modisc_v2.py): MONAI DenseNet-121 under base_model., a second Linear head for the datasets. The
    // checkpoint is what `train classifier` writes, read by the SPADE trainer's classifier_checkpoint and sampling.
    const auto cfg = load_config<ClassifierTrainConfig>(ConfigSource{job.config, {}, {}});
    BRAINSPADE_CHECK_INPUT(cfg.classifier.arch == "densenet121", job.config, ": classifier.arch is '",
                           cfg.classifier.arch, "'; their classifier is a DenseNet-121 (arch: densenet121)");
    BRAINSPADE_CHECK_INPUT(!job.dataset_names.empty(), "--datasets: the dataset classes their classifier was trained ",
                           "on, in their order (their opt.datasets), are required");
    auto check_classes = [&](const std::vector<std::string>& given, int64_t n, const std::string& option,
                             const std::string& key) {
      BRAINSPADE_CHECK_INPUT(static_cast<int64_t>(given.size()) == n, option, ": ", given.size(), " names (",
                             fmt::format("{}", fmt::join(given, ",")), ") for a classifier of ", n, " (", job.config,
                             ": ", key, ")");
    };
    const std::vector<std::string> modalities =
        job.modality_names.empty() ? std::vector<std::string>{"T1", "FLAIR"} : job.modality_names;
    check_classes(modalities, cfg.classifier.n_modalities, "--modalities", "classifier.n_modalities");
    check_classes(job.dataset_names, cfg.classifier.n_datasets, "--datasets", "classifier.n_datasets");
    const auto theirs = read_state_dict(job.weights);
    ModalityClassifier net(cfg.classifier);
    s.entries = copy_official(theirs, *net, official_classifier_name, job.weights, /*every_buffer=*/true);
    ck.set_string("stage", "classifier");
    ck.set_string("config", dump_config(cfg));
    ck.set_string("model_config", dump_section("classifier", cfg.classifier));
    ck.add_module("classifier", *net);
    ck.set_strings("modality_names", modalities);
    ck.set_strings("dataset_names", job.dataset_names);
  } else {
    BRAINSPADE_CHECK_INPUT(!job.encoder_weights.empty(), "--encoder-weights: SPADE needs its style encoder's state ",
                           "dict too (their latest_net_E.pth)");
    const auto cfg = resolve_stage_config<SPADETrainConfig>(job, their);
    check_channels(cfg.generator.label_channels, "generator.label_channels");
    std::vector<std::string> modalities = job.modality_names;
    if (their) {
      BRAINSPADE_CHECK_INPUT(modalities.empty() || modalities == their->modality_names, "--modalities ",
                             fmt::format("{}", fmt::join(modalities, ",")), " differs from their sequences in ",
                             job.official_config, " (", fmt::format("{}", fmt::join(their->modality_names, ",")),
                             "); leave --modalities out to take theirs");
      modalities = their->modality_names;
    }
    if (modalities.empty()) modalities = {"T1", "FLAIR"};
    const auto same = [](const std::string& k) { return k; };
    const auto g_theirs = read_state_dict(job.weights);
    const auto e_theirs = read_state_dict(job.encoder_weights);
    SPADEGenerator G(cfg.generator);
    ConvEncoder E(cfg.encoder);
    s.entries = copy_official(g_theirs, *G, same, job.weights) + copy_official(e_theirs, *E, same, job.encoder_weights);
    if (!job.discriminator_weights.empty()) {
      MultiscaleDiscriminator D(cfg.discriminator);
      s.entries += copy_official(read_state_dict(job.discriminator_weights), *D, same, job.discriminator_weights);
      ck.add_module("discriminator", *D);
    }
    ck.set_string("stage", "spade");
    ck.set_string("config", dump_config(cfg));
    ck.set_string("model_config", dump_section("generator", cfg.generator) + dump_section("encoder", cfg.encoder));
    ck.add_module("generator", *G);
    ck.add_module("encoder", *E);
    ck.set_strings("modality_names", modalities);
    ck.set_int("downsample", cfg.data.downsample);
    ck.set("slice_spacing", torch::tensor(std::vector<double>(job.spacing.begin(), job.spacing.end()), torch::kDouble));
  }
  ck.save(job.out);
  write_resolved_config(job, ck.get_string("config"));
  spdlog::info("import-official: {} entries of {} → {} (a '{}' checkpoint)", s.entries, job.weights, job.out,
               job.network);
  return s;
}

}  // namespace brainspade
