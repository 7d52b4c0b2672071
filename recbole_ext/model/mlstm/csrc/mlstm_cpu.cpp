// Forward and backward (BPTT) recurrence of one multiplicative-LSTM layer on the CPU, for
// recbole_ext's mLSTM. Built on first use by recbole_ext/model/mlstm/native.py
// (torch.utils.cpp_extension.load); the element-wise gate work is written as plain loops so that
// the compiler vectorises them (-O3 -march=native -ffast-math), the matrix products go through
// ATen into preallocated buffers. Equations and tensor layout: recbole_ext/model/mlstm/recurrence.py
// (forward reproduces _mlstm_recurrence_fwd's outputs, backward _mlstm_recurrence_bwd's).
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


// One row of the backward step: from the carried gradients dh (of h_t from step t + 1, updated to
// include grad_h) and dc (of c_t, replaced by that of c_{t-1}), the gate activations a [4H] (i, f,
// g, o) and the cells c_t, c_{t-1}, write the gradients of the gate pre-activations into dg [4H].
// __restrict: without it GCC gives up vectorising (too many pointers to check for overlap).
template <typename scalar_t>
inline void backward_cell_row(const scalar_t* __restrict a, const scalar_t* __restrict c,
                              const scalar_t* __restrict c_prev, const scalar_t* __restrict gh,
                              const scalar_t* __restrict gc, scalar_t* __restrict dg, scalar_t* __restrict dh,
                              scalar_t* __restrict dc, int64_t H) {
  const scalar_t tanh_lim = sizeof(scalar_t) == 4 ? scalar_t(15) : scalar_t(40);  // as in forward()
  for (int64_t j = 0; j < H; ++j) {
    const scalar_t i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
    const scalar_t tc = std::tanh(std::min(std::max(c[j], -tanh_lim), tanh_lim));
    const scalar_t dhj = dh[j] + gh[j];
    const scalar_t dct = dc[j] + gc[j] + dhj * (o * (scalar_t(1) - tc * tc));
    dg[j] = dct * (g * i * (scalar_t(1) - i));
    dg[H + j] = dct * (c_prev[j] * f * (scalar_t(1) - f));
    dg[2 * H + j] = dct * (i * (scalar_t(1) - g * g));
    dg[3 * H + j] = dhj * (tc * o * (scalar_t(1) - o));
    dc[j] = dct * f;
  }
}

// Backpropagation through time for forward() (CPU tensors of one dtype): returns what
// the TorchScript _mlstm_recurrence_bwd returns, the gradients of xg [L,B,4H], xm [L,B,H], h0,
// c0 [B,H], w_mh [4H,H], w_hm [H,H], b_hm [H] (and b_hm again, a placeholder). grad_h/grad_c
// [L,B,H] are the gradients of hs/cs; None stands for zeros (and is not read). Per step, one loop
// over the rows computes the carried state gradients and the four gate gradients (written into
// the d_xg output), then dm = dgate w_mh and dh = (dm * xm_t) w_hm are ATen matmuls into
// preallocated buffers; the weight gradients of all steps are single matmuls after the loop.
std::vector<at::Tensor> backward(const c10::optional<at::Tensor>& grad_h, const c10::optional<at::Tensor>& grad_c,
                                 const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& xm,
                                 const at::Tensor& w_mh, const at::Tensor& w_hm, const at::Tensor& hs,
                                 const at::Tensor& cs, const at::Tensor& hms, const at::Tensor& ms,
                                 const at::Tensor& acts) {
  const int64_t L = hs.size(0), B = hs.size(1), H = h0.size(1);
  TORCH_CHECK(L > 0, "mlstm backward: no steps");
  const auto dtype = hs.scalar_type();
  // read as flat arrays below: contiguous (a no-op for what forward() saved), one dtype, CPU
  auto flat = [&](const at::Tensor& t) {
    TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == dtype, "mlstm backward: CPU tensors of one dtype only");
    return t.contiguous();
  };
  const bool has_gh = grad_h.has_value() && grad_h->defined();
  const bool has_gc = grad_c.has_value() && grad_c->defined();
  const at::Tensor gh = has_gh ? flat(*grad_h) : at::Tensor(), gc = has_gc ? flat(*grad_c) : at::Tensor();
  const at::Tensor h0c = flat(h0), c0c = flat(c0), xmc = flat(xm), hsc = flat(hs), csc = flat(cs), hmc = flat(hms);
  const at::Tensor msc = flat(ms), actc = flat(acts);
  const auto opts = hs.options();
  auto d_xg = at::empty({L, B, 4 * H}, opts);
  auto d_xm = at::empty({L, B, H}, opts);
  auto d_hm = at::empty({L, B, H}, opts);
  auto dh = at::zeros({B, H}, opts);  // carried: gradient of h_t from step t + 1
  auto dc = at::zeros({B, H}, opts);  // carried: gradient of c_t from step t + 1
  auto zero = has_gh && has_gc ? at::Tensor() : at::zeros({B, H}, opts);  // stands for a None grad
  for (int64_t t = L - 1; t >= 0; --t) {
    at::Tensor dgate = d_xg[t], dm = d_xm[t], dhm = d_hm[t];
    AT_DISPATCH_FLOATING_TYPES(dtype, "mlstm_backward_cell", [&] {
      const scalar_t* ghp = has_gh ? gh.data_ptr<scalar_t>() + t * B * H : zero.data_ptr<scalar_t>();
      const scalar_t* gcp = has_gc ? gc.data_ptr<scalar_t>() + t * B * H : zero.data_ptr<scalar_t>();
      const scalar_t* cp = csc.data_ptr<scalar_t>() + t * B * H;
      const scalar_t* cpp = t > 0 ? csc.data_ptr<scalar_t>() + (t - 1) * B * H : c0c.data_ptr<scalar_t>();
      const scalar_t* ap = actc.data_ptr<scalar_t>() + t * B * 4 * H;
      scalar_t* dgp = dgate.data_ptr<scalar_t>();
      scalar_t* dhp = dh.data_ptr<scalar_t>();
      scalar_t* dcp = dc.data_ptr<scalar_t>();
      at::parallel_for(0, B, 16, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b)
          backward_cell_row(ap + b * 4 * H, cp + b * H, cpp + b * H, ghp + b * H, gcp + b * H, dgp + b * 4 * H,
                            dhp + b * H, dcp + b * H, H);
      });
    });
    at::mm_out(dm, dgate, w_mh);  // the gradient of m_t, [B,H], into d_xm[t]
    AT_DISPATCH_FLOATING_TYPES(dtype, "mlstm_backward_m", [&] {
      const scalar_t* __restrict xp = xmc.data_ptr<scalar_t>() + t * B * H;
      const scalar_t* __restrict hmp = hmc.data_ptr<scalar_t>() + t * B * H;
      scalar_t* __restrict dmp = dm.data_ptr<scalar_t>();
      scalar_t* __restrict dhmp = dhm.data_ptr<scalar_t>();
      for (int64_t k = 0; k < B * H; ++k) {  // m_t = xm_t * hm_t
        dhmp[k] = dmp[k] * xp[k];
        dmp[k] *= hmp[k];
      }
    });
    at::mm_out(dh, dhm, w_hm);  // the gradient of h_{t-1} through W_hm h_{t-1}
  }
  const int64_t N = L * B;
  auto d_w_mh = at::mm(d_xg.view({N, 4 * H}).t(), msc.view({N, H}));
  auto d_w_hm = at::mm(d_hm[0].t(), h0c);  // h_{t-1} is h0 at t = 0, hs[t-1] after
  if (L > 1) d_w_hm.addmm_(d_hm.narrow(0, 1, L - 1).view({N - B, H}).t(), hsc.narrow(0, 0, L - 1).view({N - B, H}));
  auto d_b_hm = d_hm.sum(at::IntArrayRef({0, 1}));
  return {d_xg, d_xm, dh, dc, d_w_mh, d_w_hm, d_b_hm, d_b_hm};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "mLSTM forward recurrence (CPU)", py::arg("xg"), py::arg("xm"), py::arg("h0"),
        py::arg("c0"), py::arg("w_mh"), py::arg("w_hm"), py::arg("b_hm"), py::arg("save"),
        py::arg("hms_out") = py::none(), py::arg("ms_out") = py::none(), py::arg("acts_out") = py::none());
  m.def("backward", &backward, "mLSTM backward recurrence, BPTT (CPU)", py::arg("grad_h"), py::arg("grad_c"),
        py::arg("h0"), py::arg("c0"), py::arg("xm"), py::arg("w_mh"), py::arg("w_hm"), py::arg("hs"), py::arg("cs"),
        py::arg("hms"), py::arg("ms"), py::arg("acts"));
}
