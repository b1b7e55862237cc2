"""The standalone C++ project runtime/cpp: configure, build and run its ctest programs (C++ coder tests on the
CompressAI fixtures, C API test), then install it and build a consumer with find_package(lictrt)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CPP = Path(__file__).resolve().parents[2] / "runtime" / "cpp"
pytestmark = pytest.mark.skipif(
    shutil.which("cmake") is None or shutil.which("ctest") is None, reason="cmake/ctest not installed"
)

CONSUMER_CMAKE = """cmake_minimum_required(VERSION 3.20)
project(consumer LANGUAGES C CXX)
find_package(lictrt 0.1 REQUIRED)
add_executable(consumer_cpp main.cpp)
target_link_libraries(consumer_cpp PRIVATE lictrt::static)
add_executable(consumer_c main.c)
target_link_libraries(consumer_c PRIVATE lictrt::lictrt)
"""

CONSUMER_CPP = """#include <lictrt/coder.hpp>
#include <lictrt/crc32.hpp>
int main() {
  const int32_t cdf[4] = {0, 40000, 60000, 65536}, len[1] = {4}, off[1] = {0};
  lictrt::Tables t(cdf, 1, 4, len, off);
  const int32_t s[3] = {0, 1, 9}, idx[3] = {0, 0, 0};
  auto d = lictrt::encode(t, s, idx, 3);
  int32_t out[3];
  lictrt::decode(t, d.data(), d.size(), idx, 3, out);
  return (out[0] == 0 && out[1] == 1 && out[2] == 9 && lictrt::crc32("123456789", 9) == 0xCBF43926u) ? 0 : 1;
}
"""

CONSUMER_C = """#include <lictrt/lictrt.h>
int main(void) { return lictrt_crc32("123456789", 9, 0) == 0xCBF43926u ? 0 : 1; }
"""


def run(cmd, cwd=None):
    env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL="2")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def test_cpp_project_builds_passes_ctest_and_installs_a_cmake_package(tmp_path):
    build, prefix = tmp_path / "build", tmp_path / "prefix"
    run(["cmake", "-S", CPP, "-B", build, "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_INSTALL_PREFIX={prefix}"])
    run(["cmake", "--build", build])
    out = run(["ctest", "--test-dir", build, "--output-on-failure"])
    assert "100% tests passed" in out
    run(["cmake", "--install", build])
    assert list(prefix.glob("lib*/cmake/lictrt/lictrtConfig.cmake"))
    assert (prefix / "include" / "lictrt" / "lictrt.h").is_file()

    consumer = tmp_path / "consumer"
    consumer.mkdir()
    (consumer / "CMakeLists.txt").write_text(CONSUMER_CMAKE)
    (consumer / "main.cpp").write_text(CONSUMER_CPP)
    (consumer / "main.c").write_text(CONSUMER_C)
    run(["cmake", "-S", consumer, "-B", consumer / "build", f"-DCMAKE_PREFIX_PATH={prefix}"])
    run(["cmake", "--build", consumer / "build"])
    run([consumer / "build" / "consumer_cpp"])
    env_lib = {"LD_LIBRARY_PATH": ":".join(str(p) for p in prefix.glob("lib*"))}
    proc = subprocess.run([consumer / "build" / "consumer_c"], env={**os.environ, **env_lib})
    assert proc.returncode == 0
