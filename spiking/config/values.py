"""Value specifications: constants, random distributions and expressions.

All numbers are already in base units (see ``spiking.config.units``) when these
objects exist; sampling happens when a network spec is built.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Dict, Mapping, Union

import numpy as np

DISTRIBUTIONS: Dict[str, tuple] = {
    # name -> required arguments
    "uniform": ("low", "high"),
    "normal": ("mean", "std"),
    "normal_clipped": ("mean", "std", "low", "high"),
    "lognormal": ("mu", "sigma"),
    "exponential": ("scale",),
}

# Names an expression may call or read besides its variables.
EXPR_FUNCTIONS = {
    "exp": np.exp, "sqrt": np.sqrt, "sin": np.sin, "cos": np.cos, "log": np.log,
    "abs": np.abs, "minimum": np.minimum, "maximum": np.maximum, "where": np.where,
    "clip": np.clip, "pi": np.pi,
}
_ALLOWED_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.IfExp,
    ast.Call, ast.Name, ast.Load, ast.Constant, ast.Add, ast.Sub, ast.Mult, ast.Div,
    ast.Pow, ast.Mod, ast.FloorDiv, ast.USub, ast.UAdd, ast.Lt, ast.LtE, ast.Gt,
    ast.GtE, ast.Eq, ast.NotEq, ast.And, ast.Or, ast.Not,
)


@dataclass(frozen=True)
class Constant:
    value: float

    def sample(self, n: int, rng: np.random.Generator, names: Mapping | None = None) -> np.ndarray:
        return np.full(n, self.value, dtype=np.float64)


@dataclass(frozen=True)
class Distribution:
    name: str
    args: Dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        if self.name not in DISTRIBUTIONS:
            raise ValueError(
                f"unknown distribution {self.name!r}; known: {', '.join(DISTRIBUTIONS)}")
        missing = [a for a in DISTRIBUTIONS[self.name] if a not in self.args]
        extra = [a for a in self.args if a not in DISTRIBUTIONS[self.name]]
        if missing or extra:
            raise ValueError(
                f"distribution {self.name!r} takes {', '.join(DISTRIBUTIONS[self.name])}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unexpected {', '.join(extra)}" if extra else ""))
        a = self.args
        if self.name == "uniform" and not a["low"] <= a["high"]:
            raise ValueError("uniform needs low <= high")
        if self.name in ("normal", "normal_clipped") and a["std"] < 0:
            raise ValueError("std must be >= 0")
        if self.name == "normal_clipped" and not a["low"] < a["high"]:
            raise ValueError("normal_clipped needs low < high")
        if self.name == "lognormal" and a["sigma"] < 0:
            raise ValueError("sigma must be >= 0")
        if self.name == "exponential" and a["scale"] <= 0:
            raise ValueError("scale must be > 0")

    def sample(self, n: int, rng: np.random.Generator, names: Mapping | None = None) -> np.ndarray:
        a = self.args
        if self.name == "uniform":
            return rng.uniform(a["low"], a["high"], n)
        if self.name == "normal":
            return rng.normal(a["mean"], a["std"], n)
        if self.name == "lognormal":
            return rng.lognormal(a["mu"], a["sigma"], n)
        if self.name == "exponential":
            return rng.exponential(a["scale"], n)
        # normal_clipped: resample values outside [low, high]
        out = rng.normal(a["mean"], a["std"], n)
        bad = (out < a["low"]) | (out > a["high"])
        for _ in range(1000):
            if not bad.any():
                break
            out[bad] = rng.normal(a["mean"], a["std"], int(bad.sum()))
            bad = (out < a["low"]) | (out > a["high"])
        if bad.any():
            raise ValueError("normal_clipped: the interval holds almost no probability mass")
        return out


@dataclass(frozen=True)
class Expression:
    expr: str

    def __post_init__(self):
        check_expression(self.expr)

    def sample(self, n: int, rng: np.random.Generator, names: Mapping | None = None) -> np.ndarray:
        """Evaluate with the variables in ``names`` (only those used are looked up)."""
        names = names if names is not None else {}
        used = self.names()
        missing = sorted(k for k in used if k not in names)
        if missing:
            raise ValueError(f"expression {self.expr!r}: unknown name(s) {', '.join(missing)}; "
                             f"available: {', '.join(sorted(names.keys()))}")
        scope = dict(EXPR_FUNCTIONS)
        scope.update({k: names[k] for k in used})
        code = compile(ast.parse(self.expr, mode="eval"), "<expr>", "eval")
        out = eval(code, {"__builtins__": {}}, scope)  # noqa: S307 - checked AST
        return np.broadcast_to(np.asarray(out, dtype=np.float64), (n,)).copy()

    def names(self) -> set:
        return {node.id for node in ast.walk(ast.parse(self.expr, mode="eval"))
                if isinstance(node, ast.Name)} - set(EXPR_FUNCTIONS)


def check_expression(expr: str) -> None:
    """Reject anything but arithmetic, comparisons and the whitelisted calls."""
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as e:
        raise ValueError(f"expression {expr!r} is not valid: {e.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ValueError(f"expression {expr!r}: {type(node).__name__} is not allowed")
        if isinstance(node, ast.Call) and not (
                isinstance(node.func, ast.Name) and node.func.id in EXPR_FUNCTIONS):
            raise ValueError(f"expression {expr!r}: only calls to "
                             f"{', '.join(k for k in EXPR_FUNCTIONS if k != 'pi')} are allowed")


ValueSpec = Union[Constant, Distribution, Expression]
