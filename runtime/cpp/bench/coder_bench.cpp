// Standalone coder benchmark: the 320x48x32 Gaussian-conditional latent of benchmarks/coder.py ("channel"
// regime) with CompressAI-like 64-scale Gaussian tables built here, coded in compat and fast mode.
// Prints the median (and best, and median by thread CPU time) Msym/s of --repeats runs per coder. With --once it runs
// each coder once (for `valgrind --tool=callgrind --toggle-collect=...`, which counts instructions deterministically).
//   coder_bench [--repeats R] [--once] [--regime channel|uniform_idx] [--mode fast|compat|both]
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lictrt/coder.hpp"

namespace {

struct Table {
  std::vector<int32_t> cdf, len, off;
  int T = 0, Lmax = 0;
};

double phi(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

/// 64 Gaussian rows at scales exp(linspace(log 0.11, log 256, 64)), tails at +-6.11 sigma (tail mass 1e-9),
/// an escape bin carrying the tail mass, 16-bit frequencies >= 1 with the largest bin absorbing the rounding.
Table gaussian_tables(std::vector<double>& scales) {
  Table t;
  t.T = 64;
  for (int i = 0; i < t.T; ++i)
    scales.push_back(std::exp(std::log(0.11) + (std::log(256.0) - std::log(0.11)) * i / 63));
  std::vector<std::vector<int32_t>> rows;
  for (double s : scales) {
    const int center = static_cast<int>(std::ceil(s * 6.109410204869));
    std::vector<double> p;
    for (int v = -center; v <= center; ++v) p.push_back(phi((0.5 - std::abs(v)) / s) - phi((-0.5 - std::abs(v)) / s));
    p.push_back(2 * phi(-(center + 0.5) / s));
    std::vector<int64_t> f(p.size());
    int64_t sum = 0;
    size_t big = 0;
    for (size_t k = 0; k < p.size(); ++k) {
      f[k] = std::max<int64_t>(1, std::llround(p[k] * 65536));
      sum += f[k];
      if (f[k] > f[big]) big = k;
    }
    f[big] += 65536 - sum;  // may go <= 0 on wide rows: take the excess from every bin above 1 instead
    for (size_t k = 0; f[big] < 1; k = (k + 1) % f.size())
      if (k != big && f[k] > 1) --f[k], ++f[big];
    std::vector<int32_t> cdf{0};
    for (int64_t x : f) cdf.push_back(cdf.back() + static_cast<int32_t>(x));
    t.len.push_back(static_cast<int32_t>(cdf.size()));
    t.off.push_back(-center);
    t.Lmax = std::max<int>(t.Lmax, static_cast<int>(cdf.size()));
    rows.push_back(cdf);
  }
  t.cdf.assign(static_cast<size_t>(t.T) * t.Lmax, 0);
  for (int i = 0; i < t.T; ++i)
    std::copy(rows[i].begin(), rows[i].end(), t.cdf.begin() + static_cast<size_t>(i) * t.Lmax);
  return t;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double best(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

/// CPU time of this thread (excludes time descheduled on a shared machine).
double thread_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  int repeats = 21;
  bool once = false;
  std::string regime = "channel", mode = "both";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--repeats" && i + 1 < argc)
      repeats = std::max(1, std::atoi(argv[++i]));
    else if (a == "--once")
      once = true;
    else if (a == "--regime" && i + 1 < argc)
      regime = argv[++i];
    else if (a == "--mode" && i + 1 < argc)
      mode = argv[++i];
    else {
      std::fprintf(
          stderr,
          "usage: coder_bench [--repeats R] [--once] [--regime channel|uniform_idx] [--mode fast|compat|both]\n");
      return 2;
    }
  }
  std::vector<double> scales;
  const Table tb = gaussian_tables(scales);
  const lictrt::Tables tables(tb.cdf.data(), tb.T, tb.Lmax, tb.len.data(), tb.off.data());

  const int C = 320, HW = 48 * 32;
  const size_t n = static_cast<size_t>(C) * HW;
  std::mt19937_64 rng(0);
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  std::normal_distribution<double> nrm(0.0, 1.0);
  std::vector<int32_t> sym(n), idx(n);
  for (int c = 0; c < C; ++c) {
    const double base = std::exp(std::log(0.11) + uni(rng) * (std::log(4.0) - std::log(0.11)));
    for (int k = 0; k < HW; ++k) {
      double s = regime == "uniform_idx" ? std::exp(std::log(0.11) + uni(rng) * (std::log(256.0) - std::log(0.11)))
                                         : base * std::exp(0.25 * nrm(rng));
      s = std::max(s, scales[0]);
      const size_t i = static_cast<size_t>(c) * HW + k;
      idx[i] = static_cast<int32_t>(
          std::min<size_t>(std::lower_bound(scales.begin(), scales.end() - 1, s) - scales.begin(), 63));
      sym[i] = static_cast<int32_t>(std::lround(nrm(rng) * s));
    }
  }

  std::vector<int32_t> out(n);
  const int runs = once ? 1 : repeats;
  std::printf("%zu symbols, regime %s, %d run(s) each (median)\n", n, regime.c_str(), runs);
  for (const lictrt::Mode m : {lictrt::Mode::Fast, lictrt::Mode::Compat}) {
    const char* name = m == lictrt::Mode::Fast ? "fast" : "compat";
    if (mode != "both" && mode != name) continue;
    lictrt::EncodeOptions opt;
    opt.mode = m;
    opt.threads = 1;
    std::vector<uint8_t> data;
    std::vector<double> te, td, ce, cd;
    for (int r = 0; r < runs; ++r) {
      const double c0 = thread_seconds();
      auto t0 = std::chrono::steady_clock::now();
      data = lictrt::encode(tables, sym.data(), idx.data(), n, opt);
      auto t1 = std::chrono::steady_clock::now();
      const double c1 = thread_seconds();
      lictrt::decode(tables, data.data(), data.size(), idx.data(), n, out.data(), m, 1);
      auto t2 = std::chrono::steady_clock::now();
      const double c2 = thread_seconds();
      te.push_back(std::chrono::duration<double>(t1 - t0).count());
      td.push_back(std::chrono::duration<double>(t2 - t1).count());
      ce.push_back(c1 - c0);
      cd.push_back(c2 - c1);
    }
    if (out != sym) {
      std::fprintf(stderr, "%s: decode mismatch\n", name);
      return 1;
    }
    std::printf(
        "%-7s encode %7.1f Msym/s  decode %7.1f Msym/s (best %.1f / %.1f; thread CPU time %.1f / %.1f)  "
        "%zu bytes (%.3f bits/sym)\n",
        name, n / median(te) / 1e6, n / median(td) / 1e6, n / best(te) / 1e6, n / best(td) / 1e6, n / median(ce) / 1e6,
        n / median(cd) / 1e6, data.size(), 8.0 * data.size() / n);
  }
  return 0;
}
