#include "brainspade/losses/losses.h"

namespace brainspade {

torch::Tensor loss_kl(const Posterior& posterior) { return posterior.kl(); }

torch::Tensor loss_adversarial(const torch::Tensor& logits, GanTarget target, bool for_discriminator,
                               const std::string& criterion) {
  const bool real = target == GanTarget::Real;
  if (criterion == "least_squares") return real ? (logits - 1.0).pow(2).mean() : logits.pow(2).mean();
  if (criterion == "bce") {
    auto labels = real ? torch::ones_like(logits) : torch::zeros_like(logits);
    return torch::binary_cross_entropy_with_logits(logits, labels);
  }
  if (criterion == "hinge") {
    if (!for_discriminator) {
      TORCH_CHECK(real, "the hinge generator loss is only defined for the Real target");
      return -logits.mean();
    }
    return real ? torch::relu(1.0 - logits).mean() : torch::relu(1.0 + logits).mean();
  }
  TORCH_CHECK(false, "unknown adversarial criterion '", criterion, "' (expected least_squares, hinge or bce)");
}

torch::Tensor loss_diffusion(const torch::Tensor& prediction, const torch::Tensor& target, const std::string& kind,
                             const torch::Tensor& weight) {
  TORCH_CHECK(prediction.sizes() == target.sizes(), "loss_diffusion needs equal shapes; got ", prediction.sizes(),
              " and ", target.sizes());
  auto weighted = [&](const torch::Tensor& err) { return weight.defined() ? (err * weight).mean() : err.mean(); };
  if (kind == "l1") return weighted((prediction - target).abs());
  if (kind == "l2") return weighted((prediction - target).pow(2));
  TORCH_CHECK(false, "unknown diffusion loss '", kind, "' (expected l1 or l2)");
}

namespace {
void check_dice_inputs(const char* name, const torch::Tensor& probs, const torch::Tensor& target) {
  TORCH_CHECK(probs.dim() == 4 && probs.sizes() == target.sizes(), name, " needs two [B, C, H, W] tensors of one shape; got ",
              probs.sizes(), " and ", target.sizes());
}
}  // namespace

torch::Tensor loss_soft_dice(const torch::Tensor& probs, const torch::Tensor& target, double smooth) {
  check_dice_inputs("loss_soft_dice", probs, target);
  auto intersection = (probs * target).sum({2, 3});        // [B, C]
  auto denominator = probs.sum({2, 3}) + target.sum({2, 3});
  return (1.0 - (2.0 * intersection + smooth) / (denominator + smooth)).mean();
}

torch::Tensor loss_generalized_dice(const torch::Tensor& probs, const torch::Tensor& target, double smooth,
                                    bool absent_max) {
  check_dice_inputs("loss_generalized_dice", probs, target);
  auto intersection = (probs * target).sum({2, 3});  // [B, C]
  auto denominator = probs.sum({2, 3}) + target.sum({2, 3});
  auto w = 1.0 / target.sum({2, 3}).pow(2);
  auto absent = torch::isinf(w);
  w = w.masked_fill(absent, 0.0);
  if (absent_max) w = w + absent.to(w.dtype()) * std::get<0>(w.max(1, true));
  auto numer = 2.0 * (intersection * w).sum(1) + smooth;  // [B]
  auto denom = (denominator * w).sum(1) + smooth;
  return (1.0 - numer / denom).mean();
}

torch::Tensor loss_soft_cross_entropy(const torch::Tensor& logits, const torch::Tensor& target) {
  TORCH_CHECK(logits.dim() == 4 && logits.sizes() == target.sizes(), "loss_soft_cross_entropy: logits ",
              logits.sizes(), " and target ", target.sizes(), " must be the same [B, C, H, W]");
  return -(target * torch::log_softmax(logits, 1)).sum(1).mean();
}

}  // namespace brainspade
