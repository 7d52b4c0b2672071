// Forward recurrence of one multiplicative-LSTM layer on the CPU, for recbole_ext's mLSTM.
// Built on first use by recbole_ext/model/mlstm/native.py (torch.utils.cpp_extension.load);
// the gate nonlinearities are written as plain loops so that the compiler vectorises them
// (-O3 -march=native -ffast-math). Equations and tensor layout: recbole_ext/model/mlstm/recurrence.py
// (_mlstm_recurrence_fwd, whose outputs this reproduces; its TorchScript BPTT consumes them).
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <vector>

namespace {

// Forward recurrence of one multiplicative-LSTM layer (CPU, contiguous tensors).
// xg [L,B,4H] input-side gate terms (with bias), xm [L,B,H] input-side multiplicative term
// (with bias), h0/c0 [B,H]. Returns hs, cs [L,B,H]; when save: hms, ms [L,B,H], acts [L,B,4H].
// The buffers for hms, ms and acts may be passed in (from a pool kept by the caller: fresh large
// allocations page-fault on every call, which cost more than the recurrence itself).
std::vector<at::Tensor> forward(const at::Tensor& xg, const at::Tensor& xm, const at::Tensor& h0,
                                const at::Tensor& c0, const at::Tensor& w_mh, const at::Tensor& w_hm,
                                const at::Tensor& b_hm, bool save, c10::optional<at::Tensor> hms_out,
                                c10::optional<at::Tensor> ms_out, c10::optional<at::Tensor> acts_out) {
  const int64_t L = xg.size(0), B = xg.size(1), H = h0.size(1);
  const int64_t n = save ? L : 1;
  auto buffer = [&](const c10::optional<at::Tensor>& given, int64_t width) {
    if (given.has_value() && given->defined() && given->is_contiguous() &&
        given->sizes() == at::IntArrayRef({n, B, width}) && given->scalar_type() == xg.scalar_type())
      return *given;
    return at::empty({n, B, width}, xg.options());
  };
  auto hs = at::empty({L, B, H}, xg.options());
  auto cs = at::empty({L, B, H}, xg.options());
  auto hms = buffer(hms_out, H);
  auto ms = buffer(ms_out, H);
  auto acts = buffer(acts_out, 4 * H);
  auto gates = at::empty({B, 4 * H}, xg.options());
  const auto w_mh_t = w_mh.t();
  const auto w_hm_t = w_hm.t();
  at::Tensor h = h0.contiguous(), c = c0.contiguous();
  for (int64_t t = 0; t < L; ++t) {
    const int64_t k = save ? t : 0;
    at::Tensor hm = hms[k], m = ms[k], act = acts[k];
    at::addmm_out(hm, b_hm, h, w_hm_t);
    at::mul_out(m, xm[t], hm);
    at::addmm_out(gates, xg[t], m, w_mh_t);
    at::Tensor h_new = hs[t], c_new = cs[t];
    AT_DISPATCH_FLOATING_TYPES(xg.scalar_type(), "mlstm_forward_cell", [&] {
      // -ffast-math assumes no infinities: keep exp/tanh arguments where they stay finite
      // (beyond these bounds sigmoid and tanh are already 0/1 and +-1 in this precision)
      const scalar_t exp_lim = sizeof(scalar_t) == 4 ? scalar_t(80) : scalar_t(700);
      const scalar_t tanh_lim = sizeof(scalar_t) == 4 ? scalar_t(15) : scalar_t(40);
      const scalar_t* gp = gates.data_ptr<scalar_t>();
      const scalar_t* cp = c.data_ptr<scalar_t>();
      scalar_t* ap = act.data_ptr<scalar_t>();
      scalar_t* hp = h_new.data_ptr<scalar_t>();
      scalar_t* cn = c_new.data_ptr<scalar_t>();
      at::parallel_for(0, B, 16, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          const scalar_t* g = gp + b * 4 * H;
          scalar_t* a = ap + b * 4 * H;
          // sigmoid on the i, f gates [0, 2H) and the o gate [3H, 4H); tanh on g [2H, 3H)
          for (int64_t j = 0; j < 2 * H; ++j) {
            const scalar_t v = std::min(std::max(g[j], -exp_lim), exp_lim);
            a[j] = scalar_t(1) / (scalar_t(1) + std::exp(-v));
          }
          for (int64_t j = 3 * H; j < 4 * H; ++j) {
            const scalar_t v = std::min(std::max(g[j], -exp_lim), exp_lim);
            a[j] = scalar_t(1) / (scalar_t(1) + std::exp(-v));
          }
          for (int64_t j = 2 * H; j < 3 * H; ++j) a[j] = std::tanh(std::min(std::max(g[j], -tanh_lim), tanh_lim));
          const scalar_t* cpb = cp + b * H;
          scalar_t* cnb = cn + b * H;
          scalar_t* hpb = hp + b * H;
          for (int64_t j = 0; j < H; ++j) cnb[j] = a[H + j] * cpb[j] + a[j] * a[2 * H + j];
          for (int64_t j = 0; j < H; ++j)
            hpb[j] = a[3 * H + j] * std::tanh(std::min(std::max(cnb[j], -tanh_lim), tanh_lim));
        }
      });
    });
    h = h_new;
    c = c_new;
  }
  return {hs, cs, hms, ms, acts};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "mLSTM forward recurrence (CPU)", py::arg("xg"), py::arg("xm"), py::arg("h0"),
        py::arg("c0"), py::arg("w_mh"), py::arg("w_hm"), py::arg("b_hm"), py::arg("save"),
        py::arg("hms_out") = py::none(), py::arg("ms_out") = py::none(), py::arg("acts_out") = py::none());
}
