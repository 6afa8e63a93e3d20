"""torch.distributed scale-out on the CPU (gloo): 2 processes equal 1 process."""
import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Each sample is an event stream through a small recurrent liquid; the feature
# row of a sample is its spike count per liquid neuron.
WORKER = textwrap.dedent("""
    import os, sys
    import numpy as np
    import spiking
    from spiking import distributed
    from spiking.config import load_config
    from spiking.network import Network

    NET = '''
    dt: 1 ms
    duration: 40 ms
    seed: 4
    populations:
      ev: {size: 20, model: event_source}
      L: {size: 50, model: lif, params: {tau_m: 20 ms, v_rest: 0 mV, v_reset: 0 mV, v_thresh: 5 mV}}
    projections:
      inp: {pre: ev, post: L, receptor_type: v, connector: {type: fixed_probability, p: 0.3}, weight: 3 mV}
      rec: {pre: L, post: L, receptor_type: v, connector: {type: fixed_probability, p: 0.1}, weight: 1.5 mV, delay: 2 ms}
    '''
    path, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    open(path, "w").write(NET)
    ctx = distributed.init_from_env()
    events = (np.random.default_rng(0).random((n, 40, 20)) < 0.1).astype(np.uint8)

    def features(indices):
        net = Network(load_config(path), instances=len(indices))
        res = net.run(inputs={"ev": events[indices].transpose(1, 0, 2)}, progress=False)
        return res.counts("L")

    rows = distributed.map_samples(features, n)
    if ctx.is_main:
        np.save(out, rows)
    distributed.shutdown()
""")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(tmp_path, world, n=9, extra_env=None, timeout=300):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / f"rows{world}.npy"
    port = free_port()
    procs = []
    for rank in range(world):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), CUDA_VISIBLE_DEVICES="",
                   **(extra_env or {}))
        if world == 1:
            for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
                env.pop(key)
        procs.append(subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / f"net{rank}.yaml"), str(out), str(n)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = [p.communicate(timeout=timeout) + (p.returncode,) for p in procs]
    return results, out


def test_two_gloo_processes_equal_one(tmp_path):
    results, single = launch(tmp_path, 1)
    assert results[0][2] == 0, results[0][1]
    results, double = launch(tmp_path, 2)
    for stdout, stderr, code in results:
        assert code == 0, stderr
    a, b = np.load(single), np.load(double)
    assert a.shape == (9, 50) and a.sum() > 0
    np.testing.assert_array_equal(a, b)


def test_missing_rendezvous_is_an_error_not_a_hang(tmp_path):
    from spiking import distributed
    from spiking.errors import SpikingError

    env = {"WORLD_SIZE": "2", "RANK": "0"}
    old = {k: os.environ.get(k) for k in (*env, "MASTER_ADDR", "MASTER_PORT")}
    try:
        os.environ.update(env)
        os.environ.pop("MASTER_ADDR", None)
        os.environ.pop("MASTER_PORT", None)
        with pytest.raises(SpikingError, match="MASTER_ADDR"):
            distributed.init_from_env()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    # a world of 2 where the second process never comes: ends with an error
    script = tmp_path / "alone.py"
    script.write_text("from spiking import distributed\ndistributed.init_from_env()\n")
    env = dict(os.environ, RANK="0", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(free_port()), SPIKING_DIST_TIMEOUT="5")
    began = time.time()
    proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    assert "could not join the process group" in proc.stderr
    assert time.time() - began < 90


def test_two_process_lsm_training_equals_one(tmp_path):
    """`spiking train` of a liquid under a 2-process gloo group (as torchrun starts it):
    the samples are shared out and the run folder equals a single-process run's."""
    from test_lsm import _same_run, make_dataset, write_config

    data = make_dataset(tmp_path / "nmnist", train_per_class=4, test_per_class=2)
    config = write_config(tmp_path, "astrocyte")
    command = [sys.executable, "-m", "spiking", "train", str(config), "--data", str(data), "--no-progress"]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", SPIKING_CACHE=str(tmp_path / "cache"))
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "SPIKING_LSM_INTERRUPT_AFTER"):
        env.pop(key, None)
    single = subprocess.run(command + ["--out", str(tmp_path / "one")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    port = free_port()
    procs = [subprocess.Popen(command + ["--out", str(tmp_path / "two")], cwd=ROOT, text=True,
                              env=dict(env, RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank),
                                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for rank in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (stdout, stderr) in zip(procs, outputs):
        assert p.returncode == 0, stderr
    assert "samples shared by 2 processes" in outputs[0][0]
    assert not outputs[1][0].strip() or "accuracy" not in outputs[1][0]   # one process reports
    _same_run(tmp_path / "one", tmp_path / "two")
    assert not list((tmp_path / "two" / "checkpoints").glob("features-*"))


def test_commands_that_do_not_shard_refuse_a_process_group(tmp_path):
    """Under torchrun, a job that would only run twice (and write the same folder twice)
    stops with a clear error on every process instead."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
               WORLD_SIZE="2")
    command = [sys.executable, "-m", "spiking", "train", os.path.join(ROOT, "configs", "sdm_mnist.yaml"),
               "--out", str(tmp_path / "sdm")]
    procs = [subprocess.Popen(command, cwd=ROOT, env=dict(env, RANK=str(rank), LOCAL_RANK=str(rank)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in range(2)]
    for p in procs:
        _, stderr = p.communicate(timeout=120)
        assert p.returncode != 0 and "does not share its work across processes" in stderr, stderr
    assert not (tmp_path / "sdm").exists()
