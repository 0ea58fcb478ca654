#include "brainspade/inference/image_generator.h"

#include "brainspade/core/checkpoint.h"
#include "brainspade/core/config.h"
#include "brainspade/core/error.h"
#include "brainspade/inference/slice_spacing.h"

namespace brainspade {

ModalityClassifierBundle load_classifier(const std::string& path, torch::Device device) {
  auto ck = Checkpoint::load(path);
  check_checkpoint_stage(ck, "classifier");
  auto opts = load_section<ModalityClassifierOptions>("classifier", ck.get_string("model_config"), path);
  ModalityClassifierBundle b;
  b.net = ModalityClassifier(opts);
  ck.load_module("classifier", *b.net, "classifier checkpoint " + path);
  b.net->to(device);
  b.net->eval();
  for (auto& p : b.net->parameters()) p.set_requires_grad(false);  // frozen
  b.modality_names = ck.get_strings("modality_names");
  b.dataset_names = ck.get_strings("dataset_names");
  return b;
}

ImageGenerator load_image_generator(const std::string& path, torch::Device device) {
  auto ck = Checkpoint::load(path);
  check_checkpoint_stage(ck, "spade");
  const std::string yaml = ck.get_string("model_config");
  ImageGenerator g;
  auto gen_opts = load_section<SPADEGeneratorOptions>("generator", yaml, path);
  auto enc_opts = load_section<ConvEncoderOptions>("encoder", yaml, path);
  g.generator = SPADEGenerator(gen_opts);
  g.encoder = ConvEncoder(enc_opts);
  ck.load_module("generator", *g.generator, "SPADE checkpoint " + path);
  ck.load_module("encoder", *g.encoder, "SPADE checkpoint " + path);
  g.generator->to(device);
  g.encoder->to(device);
  g.generator->eval();
  g.encoder->eval();
  g.channel_names = ck.get_strings("channel_names");
  g.modality_names = ck.get_strings("modality_names");
  g.downsample = ck.get_int("downsample");
  g.spacing = read_slice_spacing(ck, path);
  return g;
}

}  // namespace brainspade
