// Paper-scale timings of the image networks on this CPU. Disabled by default; run with
//   OMP_NUM_THREADS=2 build-in/tests/brainspade_tests --gtest_also_run_disabled_tests --gtest_filter='*SpadeBench*'
#include <gtest/gtest.h>

#include <chrono>

#include "brainspade/models/spade_discriminator.h"
#include "brainspade/models/spade_encoder.h"
#include "brainspade/models/spade_generator.h"

using namespace brainspade;

namespace {
template <class Fn>
double seconds_per_call(Fn fn, int reps) {
  fn();  // warm-up
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
}
int64_t count_params(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}
}  // namespace

TEST(SpadeBench, DISABLED_PaperScaleForwardAndBackward) {
  torch::set_num_threads(2);
  torch::manual_seed(0);
  const int64_t B = 2, reps = 3;
  SPADEGeneratorOptions go;  // 192x256, ngf 64, z 256, label_channels 6, normal
  SPADEGenerator gen(go);
  ConvEncoderOptions eo;
  ConvEncoder enc(eo);
  MultiscaleDiscriminatorOptions dopt;
  MultiscaleDiscriminator disc(dopt);
  std::cout << "params: G " << count_params(*gen) << ", E " << count_params(*enc) << ", D " << count_params(*disc)
            << "\n";
  auto seg = torch::softmax(torch::randn({B, 6, 192, 256}), 1);
  auto z = torch::randn({B, 256});
  auto img = torch::randn({B, 1, 192, 256});
  auto report = [&](const char* what, double s) {
    std::cout << what << ": " << s / B * 1000 << " ms per sample (batch " << B << ", 2 threads)\n";
  };
  report("G forward (eval, no grad)", seconds_per_call([&] {
           torch::NoGradGuard ng;
           gen->eval();
           gen->forward(seg, z);
         }, reps));
  gen->train();
  report("G forward+backward (train)", seconds_per_call([&] {
           gen->zero_grad();
           gen->forward(seg, z).mean().backward();
         }, reps));
  report("E forward (no grad)", seconds_per_call([&] {
           torch::NoGradGuard ng;
           enc->encode(img);
         }, reps));
  report("E forward+backward", seconds_per_call([&] {
           enc->zero_grad();
           enc->forward(img).z.sum().backward();
         }, reps));
  report("D forward (no grad)", seconds_per_call([&] {
           torch::NoGradGuard ng;
           disc->forward(seg, img);
         }, reps));
  report("D forward+backward", seconds_per_call([&] {
           disc->zero_grad();
           auto f = disc->forward(seg, img);
           (f[0].back().mean() + f[1].back().mean()).backward();
         }, reps));
}
