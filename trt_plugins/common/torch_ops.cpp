// The CPU kernels of the PyTorch operators torch.ops.lictrt.* on the lictrt CPU kernels (the C API of
// liblictrt_cpu_ops, cpu_c_api.h): liblictrt_torch_ops, loaded with torch.ops.load_library by
// train/layers/native_scan.py. The operators' schemas, their reference kernels for other devices, fake kernels
// and autograd are defined in Python (train/layers/native_scan.py); this library only adds the CPU kernels
// (TORCH_LIBRARY_IMPL), which the dispatcher prefers to the reference for CPU tensors.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <tuple>

#include "cpu_c_api.h"

namespace {

using at::Tensor;

void check(int rc) { TORCH_CHECK(rc == 0, lictrt_cpu_last_error()); }

// fp32 or fp16 activations keep their type (the kernel's I/O types); anything else runs in fp32.
at::ScalarType ioType(Tensor const& t) { return t.scalar_type() == at::kHalf ? at::kHalf : at::kFloat; }

Tensor f32(Tensor const& t) { return t.to(at::kFloat).contiguous(); }

Tensor scanForward(Tensor const& u, Tensor const& dts, Tensor const& dtWeight, Tensor const& A, Tensor const& Bs,
                   Tensor const& Cs, Tensor const& D, Tensor const& deltaBias, int64_t deltaSoftplus) {
  TORCH_CHECK(u.dim() == 4 && dts.dim() == 5 && dtWeight.dim() == 2 && Bs.dim() == 5 && A.dim() == 2,
              "lictrt::selective_scan_2d: u [B,Di,H,W], dts [B,4,R,H,W], dt_weight [4Di,R], Bs [B,4,N,H,W]"
              ", A [4Di,N] expected");
  TORCH_CHECK(dts.size(2) == dtWeight.size(1) && dtWeight.size(0) == 4 * u.size(1),
              "lictrt::selective_scan_2d: dts [B,4,R,H,W] and dt_weight [4Di,R] disagree");
  at::ScalarType const io = ioType(u);
  Tensor const uc = u.to(io).contiguous(), dc = dts.to(io).contiguous(), bc = Bs.to(io).contiguous(),
               cc = Cs.to(io).contiguous();
  Tensor const w = f32(dtWeight), a = f32(A), d = f32(D), bias = f32(deltaBias);
  Tensor y = at::empty_like(uc);
  check(lictrt_cpu_ss2d_forward(uc.data_ptr(), dc.data_ptr(), w.data_ptr<float>(), a.data_ptr<float>(), bc.data_ptr(),
                                cc.data_ptr(), d.data_ptr<float>(), bias.data_ptr<float>(), y.data_ptr(), uc.size(0),
                                uc.size(1), uc.size(2), uc.size(3), a.size(1), w.size(1), deltaSoftplus ? 1 : 0,
                                io == at::kHalf ? 1 : 0, at::get_num_threads()));
  return y.to(u.scalar_type());
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> scanBackward(
    Tensor const& u, Tensor const& delta, Tensor const& A, Tensor const& Bs, Tensor const& Cs, Tensor const& D,
    Tensor const& deltaBias, Tensor const& dy, int64_t deltaSoftplus) {
  Tensor const uc = f32(u), dc = f32(delta), a = f32(A), bc = f32(Bs), cc = f32(Cs), d = f32(D), bias = f32(deltaBias),
               g = f32(dy);
  Tensor du = at::empty_like(uc), ddelta = at::empty_like(dc), dA = at::empty_like(a), dBs = at::empty_like(bc),
         dCs = at::empty_like(cc), dD = at::empty_like(d), dbias = at::empty_like(d);
  check(lictrt_cpu_ss2d_backward(
      uc.data_ptr<float>(), dc.data_ptr<float>(), a.data_ptr<float>(), bc.data_ptr<float>(), cc.data_ptr<float>(),
      d.data_ptr<float>(), bias.data_ptr<float>(), g.data_ptr<float>(), du.data_ptr<float>(), ddelta.data_ptr<float>(),
      dA.data_ptr<float>(), dBs.data_ptr<float>(), dCs.data_ptr<float>(), dD.data_ptr<float>(), dbias.data_ptr<float>(),
      uc.size(0), uc.size(1), uc.size(2), uc.size(3), a.size(1), deltaSoftplus ? 1 : 0, at::get_num_threads()));
  return {du, ddelta, dA, dBs, dCs, dD, dbias};
}

Tensor gdn(Tensor const& x, Tensor const& gamma, Tensor const& beta, int64_t inverse) {
  TORCH_CHECK(x.dim() >= 2, "lictrt::generalized_divisive_norm: x [B,C,...] expected");
  at::ScalarType const io = ioType(x);
  Tensor const xc = x.to(io).contiguous(), g = f32(gamma), b = f32(beta);
  Tensor y = at::empty_like(xc);
  int64_t const hw = xc.size(0) * xc.size(1) == 0 ? 0 : xc.numel() / (xc.size(0) * xc.size(1));
  check(lictrt_cpu_gdn_forward(xc.data_ptr(), g.data_ptr<float>(), b.data_ptr<float>(), y.data_ptr(), xc.size(0),
                               xc.size(1), hw, inverse ? 1 : 0, io == at::kHalf ? 1 : 0, at::get_num_threads()));
  return y.to(x.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(lictrt, CPU, m) {
  m.impl("selective_scan_2d", &scanForward);
  m.impl("selective_scan_2d_backward", &scanBackward);
  m.impl("generalized_divisive_norm", &gdn);
}
