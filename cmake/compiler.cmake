# Warnings, sanitizers and other per-target settings shared by the library, the program and the tests.
function(brainspade_configure_target target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare)
  if(BRAINSPADE_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${BRAINSPADE_SANITIZE} -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=${BRAINSPADE_SANITIZE})
  endif()
endfunction()
