#include "support/tiny_configs.h"

namespace brainspade::testutil {

VAETrainConfig tiny_vae(const std::string& dataset, const std::string& out, int64_t steps) {
  VAETrainConfig c;
  c.run.out_dir = out;
  c.run.device = "cpu";
  c.data.dataset = dataset;
  c.vae.in_channels = 6;
  c.vae.channels = {8, 16};
  c.vae.num_res_blocks = 1;
  c.vae.norm_groups = 4;
  c.discriminator.in_channels = 6;
  c.discriminator.ndf = 8;
  c.discriminator.num_layers = 2;
  c.loss.adv_start_step = 2;
  c.optim.lr = 2e-3;
  c.optim.lr_d = 2e-3;
  c.train.steps = steps;
  c.train.batch_size = 4;
  c.train.log_every = 2;
  c.train.checkpoint_every = 2;
  c.train.validate_every = 0;
  c.train.val_fraction = 0.2;
  return c;
}

LDMTrainConfig tiny_ldm(const std::string& dataset, const std::string& vae, const std::string& out, int64_t steps) {
  LDMTrainConfig c;
  c.run.out_dir = out;
  c.run.device = "cpu";
  c.data.dataset = dataset;
  c.vae_checkpoint = vae;
  c.unet.in_channels = 3;
  c.unet.out_channels = 3;
  c.unet.model_channels = 16;
  c.unet.channel_mult = {1, 2};
  c.unet.num_res_blocks = 1;
  c.unet.attention_levels = {1};
  c.unet.norm_groups = 4;
  c.unet.conditioning = "hybrid";
  c.unet.cond_dim = 1;
  c.optim.lr = 1e-3;
  c.optim.ema_decay = 0.9;
  c.train.steps = steps;
  c.train.batch_size = 4;
  c.train.log_every = 2;
  c.train.checkpoint_every = 2;
  c.train.validate_every = 0;
  c.train.val_fraction = 0.2;
  return c;
}

SPADETrainConfig tiny_spade(const std::string& dataset, const std::string& clf, const std::string& out, int64_t steps) {
  SPADETrainConfig c;
  c.run.out_dir = out;
  c.run.device = "cpu";
  c.data.dataset = dataset;
  c.classifier_checkpoint = clf;
  c.generator.label_channels = 6;
  c.generator.ngf = 4;
  c.generator.z_dim = 8;
  c.generator.num_upsampling_layers = "less";
  c.generator.height = 32;
  c.generator.width = 48;
  c.generator.norm = "instance";
  c.generator.spade_hidden = 8;
  c.encoder.ndf = 4;
  c.encoder.z_dim = 8;
  c.encoder.num_layers = 3;
  c.encoder.height = 32;
  c.encoder.width = 48;
  c.discriminator.label_channels = 6;
  c.discriminator.ndf = 4;
  c.discriminator.num_layers = 2;
  c.loss.lambda_perceptual = 1.0;
  c.train.steps = steps;
  c.train.batch_size = 4;
  c.train.log_every = 2;
  c.train.checkpoint_every = 2;
  c.train.validate_every = 0;
  c.train.val_fraction = 0.25;
  return c;
}

}  // namespace brainspade::testutil
