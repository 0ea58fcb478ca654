// Uses the installed library: a config section, a CSV row and a Dice, printed for the test to check.
#include <iostream>

#include "brainspade/core/csv.h"
#include "brainspade/eval/dice.h"

int main() {
  auto a = torch::tensor({0, 1, 1, 2}, torch::kLong), b = torch::tensor({0, 1, 2, 2}, torch::kLong);
  std::cout << brainspade::csv_row({"dice", std::to_string(brainspade::dice_of_class(a, b, 1, brainspade::EmptyDice::NaN))});
  return 0;
}
