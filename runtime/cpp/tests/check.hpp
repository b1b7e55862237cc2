// Minimal check macro shared by the C++ test programs: a failed CHECK prints its location and is counted;
// each program returns non-zero when g_failures > 0.
#pragma once

#include <cstdio>

inline int g_failures = 0;

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++g_failures;                                                                 \
    }                                                                               \
  } while (0)
