"""The ``spiking`` command.

    spiking validate CONFIG [--set key.path=value ...]
    spiking run CONFIG [--set ...] [--backend numba|torch] [--out DIR]
                                (a file with a task: block runs its task)
    spiking data ...            (event data: synth, download, info)

Human-readable output goes to stdout; ``metrics.json`` in ``--out`` is for
machines. Bad input ends with one message on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from spiking.errors import SpikingError


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="network YAML file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value, e.g. --set duration='10 s' (repeatable)")


def cmd_validate(args) -> int:
    from spiking.build.builder import estimate_bytes, expected_synapses
    from spiking.config import load_config

    if "diffusion" in _sections_of(args.config):   # not a network file
        from networks.diffusion.config import load_config as load_diffusion
        load_diffusion(args.config, args.overrides)
        print(f"{args.config}: valid (spiking diffusion model)")
        return 0
    config = load_config(args.config, args.overrides)
    synapses = expected_synapses(config)
    print(f"{args.config}: valid")
    print(f"  dt {config.dt:g} ms, duration {config.duration:g} ms, seed {config.seed}, "
          f"backend {config.backend}, instances {config.instances}")
    for name, p in config.populations.items():
        print(f"  population {name}: {p.size} x {p.model}")
    for name, p in config.projections.items():
        print(f"  projection {name}: {p.pre} -> {p.post} ({p.receptor_type}), "
              f"{p.connector.type}, ~{synapses[name]:.4g} synapses")
    print(f"  estimated memory: {estimate_bytes(config, config.instances) / 2**20:.0f} MiB")
    return 0


def cmd_run(args) -> int:
    from spiking.config import load_config
    from spiking.network import Network
    from spiking.results import write_run

    tasks = [k for k in _sections_of(args.config) if k in RUN_TASKS]
    if tasks:   # a file with a task block: run the task, as ``spiking train`` does
        return _entry(TRAINERS[tasks[0]])(args)
    overrides = list(args.overrides)
    if args.duration:
        overrides.append(f"duration={args.duration}")
    config = load_config(args.config, overrides)
    net = Network(config, backend=args.backend, instances=args.instances, device=args.device)
    net.build()
    print(f"{config.name or args.config}: {net.spec.n_total} neurons, {net.n_synapses} synapses, "
          f"built in {net.timing['build_s']:.2f} s; backend {net.backend_name}")
    result = net.run(progress=False if args.no_progress else None)
    summary = result.population_summary()
    for name, s in summary.items():
        print(f"  {name:>12}: {s['size']:>7} neurons, {s['spikes']:>9} spikes, {s['rate_hz']:8.2f} Hz")
    print(f"  simulated {result.duration_ms:g} ms in {result.timing['run_s']:.2f} s")
    if args.out:
        write_run(args.out, net, result)
        weights = ", weights.npz, weights.png" if result.weights else ""
        print(f"  results: {args.out}/metrics.json, spikes.npz, raster.png{weights}")
    if args.json:
        from spiking.results import run_metrics
        print(json.dumps(run_metrics(net, result), default=float))
    return 0


# Models on top register here: the top-level section of a file names the trainer
# (``module:function`` taking the parsed arguments and returning an exit code).
TRAINERS = {
    "lsm": "networks.lsm_cli:train",
    "diffusion": "networks.diffusion.cli:train_command",
    "task": "networks.reservoir_cli:train",
    "zero_shot": "networks.zero_shot:train_command",
}
# Sections that ``spiking run`` runs like ``spiking train`` (a task block: the
# network file plus its experiment; ``--out`` optional there).
RUN_TASKS = ("task",)
# ``spiking evaluate`` / ``spiking sample`` read ``kind`` from the model folder's model.json.
EVALUATORS = {"lsm": "networks.lsm_cli:evaluate", "diffusion": "networks.diffusion.cli:evaluate_command"}
SAMPLERS = {"diffusion": "networks.diffusion.cli:sample_command"}
# Kinds whose ``train`` and ``evaluate`` share their samples out under torchrun
# (docs/distributed.md); every other command refuses to run in a process group.
SHARDED = ("lsm",)


def _single_process_only(what: str, kind: Optional[str] = None) -> None:
    """Refuse to run ``what`` in a process group, unless its model ``kind`` is SHARDED."""
    from spiking import distributed

    ctx = distributed.context()
    if ctx.active and kind not in SHARDED:
        raise SpikingError(f"{what} does not share its work across processes: run it without "
                           f"torchrun (this is process {ctx.rank} of {ctx.world_size}); "
                           f"`spiking train` and `spiking evaluate` of {', '.join(SHARDED)} models do")


def _entry(spec: str):
    import importlib

    module, function = spec.split(":")
    return getattr(importlib.import_module(module), function)


def _sections_of(config_path: str) -> List[str]:
    from spiking.config.loader import load_tree

    data, _ = load_tree(config_path)
    return list(data) if isinstance(data, dict) else []


def cmd_train(args) -> int:
    from spiking.errors import ConfigError

    kinds = [k for k in _sections_of(args.config) if k in TRAINERS]
    if not kinds:
        raise ConfigError(f"nothing to train: the file has none of the sections "
                          f"{', '.join(TRAINERS)}", file=args.config)
    _single_process_only(f"`spiking train` of a {kinds[0]} file", kinds[0])
    return _entry(TRAINERS[kinds[0]])(args)


def _model_kind(model_dir: str, table: dict, verb: str) -> str:
    import os

    path = os.path.join(model_dir, "model.json")
    try:
        with open(path) as f:
            kind = json.load(f).get("kind")
    except (OSError, ValueError) as e:
        raise SpikingError(f"{model_dir} is not a trained model folder ({path}: "
                           f"{getattr(e, 'strerror', None) or e})") from None
    if kind not in table:
        raise SpikingError(f"{path}: cannot {verb} a model of kind {kind!r}; "
                           f"kinds: {', '.join(table)}")
    return kind


def cmd_evaluate(args) -> int:
    kind = _model_kind(args.model, EVALUATORS, "evaluate")
    _single_process_only(f"`spiking evaluate` of a {kind} model", kind)
    return _entry(EVALUATORS[kind])(args)


def cmd_sample(args) -> int:
    return _entry(SAMPLERS[_model_kind(args.model, SAMPLERS, "sample from")])(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spiking", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("validate", help="check a network file and print what it describes")
    _add_config_args(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("run", help="simulate a network file")
    _add_config_args(p)
    p.add_argument("--backend", choices=["numba", "torch"], help="override the file's backend")
    p.add_argument("--instances", type=int, help="independent instances (batched on torch)")
    p.add_argument("--device", help="torch device: auto, cpu, cuda, cuda:N")
    p.add_argument("--duration", help="run length, e.g. '10 s' (same as --set duration=...)")
    p.add_argument("--out", help="results folder (metrics.json, spikes.npz, raster.png)")
    p.add_argument("--json", action="store_true", help="also print the metrics as JSON")
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("train", help="train a model described by a file "
                                     "(LSM, diffusion, reservoir, zero-shot)")
    _add_config_args(p)
    p.add_argument("--out", required=True, help="run folder (model, checkpoints, metrics.json, plots)")
    p.add_argument("--data", help="data folder (default: $SPIKING_DATA, the cache, then synthetic)")
    p.add_argument("--backend", choices=["numba", "torch"], help="override the file's backend")
    p.add_argument("--device", help="torch device: auto, cpu, cuda, cuda:N")
    p.add_argument("--batch-size", type=int, help="samples simulated at once")
    p.add_argument("--restart", action="store_true", help="ignore checkpoints in --out and start over")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score a trained model on a data folder")
    p.add_argument("model", help="run folder written by spiking train")
    p.add_argument("--data", help="data folder in the N-MNIST layout")
    p.add_argument("--split", default="Test", help="Test or Train")
    p.add_argument("--out", help="where to write the accuracy JSON (default: MODEL/evaluate_SPLIT.json)")
    p.add_argument("--backend", choices=["numba", "torch"])
    p.add_argument("--device")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("sample", help="draw samples from a trained generative model")
    p.add_argument("model", help="run folder written by spiking train")
    p.add_argument("--n", type=int, default=64, help="number of samples")
    p.add_argument("--sampler", choices=["ddpm", "ddim"], default="ddim")
    p.add_argument("--steps", type=int, help="sampling steps (default: the config's; fewer ddpm steps respace "
                                             "the schedule)")
    p.add_argument("--delta", action="append", type=float, help="threshold guidance δ (repeat for a grid)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="samples.png", help="PNG grid to write")
    p.add_argument("--device")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("hardware", help="resistive-memory tools: noise sweeps")
    hardware_commands = p.add_subparsers(dest="hardware_command", metavar="COMMAND")
    hardware_commands.required = True
    from hardware.sweep import add_parser as add_sweep
    add_sweep(hardware_commands)

    for module in ("spiking.data.cli",):
        try:
            mod = __import__(module, fromlist=["add_parser"])
        except ImportError:
            continue
        if hasattr(mod, "add_parser"):
            mod.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    import os

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:   # started by torchrun
            from spiking import distributed
            distributed.init_from_env()
            if args.func not in (cmd_train, cmd_evaluate):
                _single_process_only(f"`spiking {args.command}`")
        return int(args.func(args) or 0)
    except SpikingError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        from spiking import distributed
        distributed.shutdown()


if __name__ == "__main__":
    sys.exit(main())
