"""Small network files shared by the core tests (written to a tmp folder)."""
from __future__ import annotations

import textwrap
from pathlib import Path

# LIF populations with all three receptors, heterogeneous parameters and
# delays, driven by a spike array and Poisson sources.
LIF_NET = """
name: lif_net
dt: 0.1 ms
duration: 200 ms
seed: 7
populations:
  drive:
    size: 20
    model: poisson_source
    params: {rate: {distribution: uniform, low: 200 Hz, high: 800 Hz}}
  kicks:
    size: 3
    model: spike_source_array
    params: {spike_times: [[5 ms, 50 ms], [20 ms], [30 ms, 31 ms, 32 ms]]}
  E:
    size: 60
    model: lif
    params:
      tau_m: {distribution: uniform, low: 15 ms, high: 25 ms}
      v_rest: -65 mV
      v_thresh: -52 mV
      v_reset: -70 mV
      tau_refrac: 2 ms
      tau_syn_E: 3 ms
      tau_syn_I: 8 ms
    initial: {v: {distribution: uniform, low: -70 mV, high: -55 mV}}
  I:
    size: 15
    model: lif
    params: {tau_m: 10 ms, v_thresh: -53 mV, tau_refrac: 1 ms, refractory: free}
projections:
  dE: {pre: drive, post: E, receptor_type: excitatory, connector: {type: fixed_probability, p: 0.3}, weight: 0.6 nA}
  kE: {pre: kicks, post: E, receptor_type: v, connector: {type: all_to_all}, weight: 4 mV, delay: 2.5 ms}
  EE: {pre: E, post: E, receptor_type: excitatory, connector: {type: fixed_indegree, n: 6, allow_self_connections: false},
       weight: {distribution: normal_clipped, mean: 0.3, std: 0.1, low: 0, high: 1}, delay: {distribution: uniform, low: 0.5 ms, high: 3 ms}}
  EI: {pre: E, post: I, receptor_type: excitatory, connector: {type: fixed_probability, p: 0.2}, weight: 0.5 nA, delay: 1 ms}
  IE: {pre: I, post: E, receptor_type: inhibitory, connector: {type: fixed_outdegree, n: 10}, weight: -0.8 nA, delay: 0.8 ms}
monitors:
  - {type: spikes, population: E}
  - {type: spikes, population: I}
  - {type: spikes, population: drive}
  - {type: state, population: E, variables: [v, i_syn_E], neurons: [0, 5, 17], every: 0.5 ms}
  - {type: rate, population: I, bin: 5 ms}
"""

IZH_NET = """
name: izh_net
dt: 0.5 ms
duration: 300 ms
seed: 3
populations:
  E:
    size: 80
    model: izhikevich
    params: {c: {expr: "-65 + 15 * r**2"}, d: {expr: "8 - 6 * r**2"}, i_offset: 4, i_noise: 5, scheme: SCHEME}
  I:
    size: 20
    model: izhikevich
    params: {a: {expr: "0.02 + 0.08 * r"}, b: {expr: "0.25 - 0.05 * r"}, d: 2, i_noise: 2,
             tau_syn_E: 2 ms, scheme: SCHEME}
projections:
  EE: {pre: E, post: E, receptor_type: excitatory, connector: {type: fixed_probability, p: 0.2}, weight: {distribution: uniform, low: 0, high: 1}, delay: {distribution: uniform, low: 0.5 ms, high: 5 ms}}
  EI: {pre: E, post: I, receptor_type: excitatory, connector: {type: fixed_probability, p: 0.3}, weight: 0.8, delay: 1 ms}
  IE: {pre: I, post: E, receptor_type: inhibitory, connector: {type: fixed_probability, p: 0.3}, weight: -1.5, delay: 1 ms}
  IEv: {pre: I, post: E, receptor_type: v, connector: {type: from_list, pre: [0, 1, 2], post: [0, 1, 2]}, weight: -1 mV, delay: 1 ms}
monitors:
  - {type: spikes, population: E}
  - {type: spikes, population: I}
  - {type: state, population: E, variables: [v, u], neurons: 4}
"""


def write(tmp_path: Path, text: str, name: str = "net.yaml", **replace) -> Path:
    text = textwrap.dedent(text)
    for key, value in replace.items():
        text = text.replace(key, value)
    path = Path(tmp_path) / name
    path.write_text(text)
    return path
