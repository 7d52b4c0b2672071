"""The multiplicative LSTM written step by step from its equations (Krause et al., 2016): the
reference the fast recurrences are tested against, here and in ``benchmarks/gpu_suite.py``."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def naive_mlstm(x, layers, h0=None, c0=None):
    """Step-by-step mLSTM written from the equations; returns last-layer ``(h, c)`` ``[B, L, H]``."""
    inp = x
    for k, p in enumerate(layers):
        b, n, _ = inp.shape
        hid = p.hidden_size
        h = torch.zeros(b, hid, dtype=x.dtype, device=x.device) if h0 is None else h0[k]
        c = torch.zeros(b, hid, dtype=x.dtype, device=x.device) if c0 is None else c0[k]
        hs, cs = [], []
        for t in range(n):
            xt = inp[:, t]
            m = F.linear(xt, p.weight_im, p.bias_im) * F.linear(h, p.weight_hm, p.bias_hm)
            z = F.linear(xt, p.weight_ih) + F.linear(m, p.weight_mh) + p.bias
            zi, zf, zg, zo = z.chunk(4, dim=1)
            c = torch.sigmoid(zf) * c + torch.sigmoid(zi) * torch.tanh(zg)
            h = torch.sigmoid(zo) * torch.tanh(c)
            hs.append(h)
            cs.append(c)
        inp = torch.stack(hs, 1)
        out_c = torch.stack(cs, 1)
    return inp, out_c
