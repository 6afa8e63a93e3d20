"""The torch backend's fast paths: compiled neuron steps, event tables (and their CSR
fallback), the exactness test that lets the dense path be chosen on the CPU, and
the shared-weight tables following weight changes. Each compares with the plain
or numba result, bit for bit."""
import numpy as np
import pytest
import torch

import spiking
from spiking.backends import torch_backend as tb
from spiking.models import izhikevich, lif
from spiking.models.base import N_STATE
from netfiles import LIF_NET, write
from test_parity import assert_same


def _step_args(n_coef, seed):
    g = torch.Generator().manual_seed(seed)
    state = torch.randn(N_STATE, 3, 40, generator=g) * 10 - 60
    state[3] = (torch.rand(3, 40, generator=g) < 0.2).float() * 3
    coef = torch.rand(n_coef, 40, generator=g)
    delivered = torch.randn(3, 3, 40, generator=g, dtype=torch.float64)   # ring slots [B, 3, n]
    return state, coef, delivered


@pytest.mark.parametrize("module,options", [(lif, {"refractory": "clamp"}),
                                            (izhikevich, {"scheme": "izhikevich2003"})])
def test_compiled_step_equals_plain(module, options):
    state, coef, delivered = _step_args(module.N_COEF, 0)
    if module is lif:
        coef[lif.V_THRESH] = -55.0
    else:
        coef[izhikevich.DT] = 0.5
    compiled = tb.CompiledStep(module.step_torch)
    a, b = state.clone(), state.clone()
    spikes_plain, bad_plain = tb.PlainStep(module.step_torch)(a, coef, delivered, options, None)
    spikes_fused, bad_fused = compiled(b[:, :, :], coef, delivered, options, None)
    if tb.CompiledStep.failed:
        pytest.skip("torch.compile is not available here")
    torch.testing.assert_close(b, a, rtol=0, atol=0)
    assert torch.equal(spikes_fused.bool(), spikes_plain) and torch.equal(bad_fused, bad_plain)
    assert spikes_plain.any()


def test_compile_switch(monkeypatch):
    monkeypatch.setenv("SPIKING_TORCH_COMPILE", "0")
    assert not tb.compile_wanted(torch.device("cuda"))
    monkeypatch.setenv("SPIKING_TORCH_COMPILE", "1")
    assert tb.compile_wanted(torch.device("cpu"))
    monkeypatch.delenv("SPIKING_TORCH_COMPILE")
    assert tb.compile_wanted(torch.device("cuda")) and not tb.compile_wanted(torch.device("cpu"), 1000)
    assert tb.compile_wanted(torch.device("cpu"), tb.CPU_COMPILE_MIN)
    monkeypatch.setenv("SPIKING_TORCH_COMPILE", "maybe")
    with pytest.raises(spiking.errors.SimulationError, match="SPIKING_TORCH_COMPILE"):
        tb.compile_wanted(torch.device("cpu"))


def test_event_tables_and_csr_fallback_agree(tmp_path, monkeypatch):
    path = str(write(tmp_path, LIF_NET))
    tables = spiking.load(path, backend="torch", instances=2, device="cpu")
    a = tables.run("80 ms", progress=False)
    assert tables.backend.events is not None and tables.backend.dense is None
    monkeypatch.setattr(tb.EventTables, "build", classmethod(lambda cls, backend: None))  # CSR rows
    csr = spiking.load(path, backend="torch", instances=2, device="cpu")
    b = csr.run("80 ms", progress=False)
    assert csr.backend.events is None
    assert_same(a, b)


def test_shared_weight_tables_follow_set_weights(tmp_path):
    path = str(write(tmp_path, LIF_NET))
    out = {}
    for backend in ("numba", "torch"):
        net = spiking.load(path, backend=backend, device="cpu")
        net.run("30 ms", progress=False)
        net.set_weights("EE", net.weights("EE") * 3)
        out[backend] = net.run("50 ms", progress=False)
    assert_same(out["numba"], out["torch"])


def test_exact_sums():
    assert tb.exact_sums(np.array([0.5, 0.25, -0.75], np.float32), 100, 1) == (True, True)
    assert tb.exact_sums(np.array([0.3], np.float32), 10, 1) == (False, False)
    assert tb.exact_sums(np.array([1.0, 2.0 ** -20], np.float32), 10, 1) == (True, False)
    assert not tb.exact_sums(np.array([1.0, 2.0 ** -20], np.float32), 64, 1)[0]


DENSE_NET = """
name: dense_net
dt: 1 ms
duration: 60 ms
seed: 2
populations:
  drive: {size: 30, model: poisson_source, params: {rate: 300 Hz}}
  A: {size: 40, model: lif, params: {tau_m: 10 ms, v_thresh: -60 mV}}
projections:
  dA: {pre: drive, post: A, receptor_type: excitatory, connector: {type: all_to_all}, weight: WEIGHT}
  AA: {pre: A, post: A, receptor_type: inhibitory, connector: {type: all_to_all}, weight: -0.25 nA}
monitors:
  - {type: spikes, population: A}
"""


@pytest.mark.parametrize("weight,dense", [("0.5 nA", True), ("0.3 nA", False)])
def test_auto_picks_dense_on_cpu_only_when_exact(tmp_path, weight, dense):
    path = str(write(tmp_path, DENSE_NET.replace("WEIGHT", weight)))
    ref = spiking.load(path, backend="numba", instances=8).run(progress=False)
    net = spiking.load(path, backend="torch", device="cpu", instances=8)
    res = net.run(progress=False)
    assert (net.backend.dense is not None) == dense
    assert_same(ref, res)


@pytest.mark.parametrize("shape,p", [((32, 2312), 0.005), ((3, 8), 0.5), ((7, 9), 0.9), ((4, 16), 0.0)])
def test_sparse_nonzero_equals_torch_nonzero(shape, p):
    g = torch.Generator().manual_seed(1)
    x = ((torch.rand(*shape, generator=g) < p) * torch.randint(1, 255, shape, generator=g)).to(torch.uint8)
    wide = torch.zeros(shape[0], shape[1] + 8, dtype=torch.uint8)
    for tensor in (x, wide[:, 3:3 + shape[1]].copy_(x), x.to(torch.int32)):   # fast path and fallbacks
        for got, want in zip(tb.sparse_nonzero(tensor), torch.nonzero(tensor, as_tuple=True)):
            assert torch.equal(got, want)
