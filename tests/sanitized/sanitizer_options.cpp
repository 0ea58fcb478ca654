// Default sanitizer options of brainspade_sanitized_tests, built into the binary so that they hold under ctest and
// when the binary is run by hand (an ASAN_OPTIONS / UBSAN_OPTIONS variable still overrides them).
// detect_leaks=0: LibTorch keeps allocator caches and thread pools alive until exit, and its unpickler leaks a few
// hundred bytes on some malformed checkpoints (seen with the fuzz_checkpoint corpus: 359 bytes in 4 allocations, all
// inside libtorch_cpu.so) — leaks in Debian's uninstrumented library, not what these tests look for.
extern "C" const char* __asan_default_options() { return "detect_leaks=0"; }
extern "C" const char* __ubsan_default_options() { return "print_stacktrace=1"; }
