#pragma once
// The config keys every scheduler shares (private to src/schedulers/): the training schedule and what the network
// predicts. One definition, so the three schedulers document and bound them alike.
#include <cstdint>
#include <string>

#include "brainspade/core/config.h"

namespace brainspade {

template <class Options>
void visit_schedule_keys(ConfigVisitor& v, Options& o) {
  v("num_train_timesteps", o.num_train_timesteps, "diffusion steps T", Bounds::at_least(1));
  v.choice("beta_schedule", o.beta_schedule, {"linear", "scaled_linear", "cosine"},
           "noise schedule (CompVis 'linear' is scaled_linear)");
  v("beta_start", o.beta_start, "first beta", Bounds::range(0.0, 1.0));
  v("beta_end", o.beta_end, "last beta", Bounds::range(0.0, 1.0));
  v.choice("prediction_type", o.prediction_type, {"epsilon", "v_prediction", "sample"}, "what the network predicts");
}

/// Copies the training schedule of `from` (the LDM's DDPM options) into another scheduler's options.
template <class To, class From>
void copy_schedule(const From& from, To& to) {
  to.num_train_timesteps = from.num_train_timesteps;
  to.beta_schedule = from.beta_schedule;
  to.beta_start = from.beta_start;
  to.beta_end = from.beta_end;
  to.prediction_type = from.prediction_type;
}

}  // namespace brainspade
