"""Load a network file: YAML with line numbers, ``base:`` inheritance, ``--set``
overrides and validation into a :class:`NetworkConfig`.

Every problem in the input becomes one :class:`ConfigError` naming the file,
line and key path (``net.yaml:12: populations.E.params.tau_m: ...``).
"""
from __future__ import annotations

import os
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import yaml
from pydantic import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from spiking.config.schema import PATH_KEYS, FieldError, NetworkConfig
from spiking.errors import ConfigError

Key = Union[str, int]
KeyPath = Tuple[Key, ...]
Location = Tuple[Optional[str], Optional[int]]  # file (or "--set key.path"), 1-based line
Overrides = Union[Iterable[str], Mapping[str, Any]]


class SourceMap:
    """Where each key path was written: file and line."""

    def __init__(self) -> None:
        self._where: Dict[KeyPath, Location] = {}

    def record(self, path: KeyPath, file: str, line: Optional[int]) -> None:
        self._where[path] = (file, line)

    def locate(self, path: Iterable[Key]) -> Location:
        """Location of ``path``, or of its closest recorded parent (for a missing key:
        the mapping that should hold it)."""
        path = tuple(path)
        for end in range(len(path), -1, -1):
            if path[:end] in self._where:
                return self._where[path[:end]]
        return (None, None)

    def paths(self) -> List[KeyPath]:
        return list(self._where)

    def drop(self, prefix: KeyPath) -> None:
        """Forget ``prefix`` and everything below it."""
        for path in [p for p in self._where if p[:len(prefix)] == prefix]:
            del self._where[path]

    def take(self, other: "SourceMap", prefix: KeyPath) -> None:
        """Copy ``other``'s locations of ``prefix`` and everything below it."""
        for path, where in other._where.items():
            if path[:len(prefix)] == prefix:
                self._where[path] = where


# ---------------------------------------------------------------- YAML with lines

_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


class _LocatingLoader(yaml.SafeLoader):
    """Safe loader that builds plain data while recording each key's line."""

    def __init__(self, text: str, file: str):
        super().__init__(text)
        self.file = file
        self.source = SourceMap()

    def load_located(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        self.source.record((), self.file, node.start_mark.line + 1)
        return self._build(node, (), frozenset())

    def _error(self, message: str, node: Node, path: KeyPath) -> ConfigError:
        return ConfigError(message, file=self.file, line=node.start_mark.line + 1, path=path)

    def _build(self, node: Node, path: KeyPath, active: frozenset) -> Any:
        if id(node) in active:
            raise self._error("recursive YAML alias", node, path)
        active = active | {id(node)}
        if isinstance(node, (MappingNode, SequenceNode)) and node.tag not in _PLAIN_TAGS:
            raise self._error(f"unsupported YAML tag {node.tag!r}", node, path)
        if isinstance(node, MappingNode):
            return self._mapping(node, path, active)
        if isinstance(node, SequenceNode):
            return [self._child(item, item, path + (k,), active)
                    for k, item in enumerate(node.value)]
        return self.construct_object(node, deep=True)

    def _child(self, key_node: Node, node: Node, path: KeyPath, active: frozenset) -> Any:
        self.source.record(path, self.file, key_node.start_mark.line + 1)
        return self._build(node, path, active)

    def _mapping(self, node: MappingNode, path: KeyPath, active: frozenset) -> dict:
        first_line: Dict[str, int] = {}
        for key_node, _ in node.value:
            key = self._key(key_node, path)
            if key in first_line and key_node.tag != "tag:yaml.org,2002:merge":
                raise self._error(f"duplicate key {key!r} (first written on line "
                                  f"{first_line[key]})", key_node, path + (key,))
            first_line[key] = key_node.start_mark.line + 1
        self.flatten_mapping(node)  # resolves YAML merge keys (<<: *anchor)
        out = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, path)
            out[key] = self._child(key_node, value_node, path + (key,), active)
        return out

    def _key(self, node: Node, path: KeyPath) -> str:
        """Keys are names: their text as written (so ``on:`` stays ``"on"``)."""
        if not isinstance(node, ScalarNode):
            raise self._error("a key must be a plain name", node, path)
        return node.value


def load_yaml(path: Union[str, os.PathLike]) -> Tuple[Any, SourceMap]:
    """Safely load one YAML file; also return where each key path was written."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read the file: {e.strerror}", file=file) from None
    except UnicodeDecodeError:
        raise ConfigError("not a UTF-8 text file", file=file) from None
    loader = _LocatingLoader(text, file)
    try:
        return loader.load_located(), loader.source
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        context = f" ({e.context})" if e.context else ""
        raise ConfigError(f"invalid YAML: {e.problem}{context}", file=file,
                          line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML: {e}", file=file) from None
    finally:
        loader.dispose()


# ---------------------------------------------------------------- base: inheritance

def load_tree(path: Union[str, os.PathLike],
              chain: Tuple[Path, ...] = ()) -> Tuple[Dict[str, Any], SourceMap]:
    """Load a network file and, recursively, the ``base:`` files it extends.

    ``chain`` holds the (resolved) files that extend this one, to catch cycles.
    """
    path = Path(path)
    data, source = load_yaml(path)
    if not isinstance(data, dict):
        what = "empty" if data is None else f"a {type(data).__name__}"
        raise ConfigError(f"a network file must be a mapping of keys, this one is {what}",
                          file=str(path), line=source.locate(())[1])
    _resolve_paths(data, source, path.parent)
    if "base" not in data:
        return data, source
    base_path = _base_path(data.pop("base"), path, source, chain)
    merged, merged_source = load_tree(base_path, chain + (path.resolve(),))
    merge(merged, data, merged_source, source)
    merged_source.record((), *source.locate(()))
    return merged, merged_source


def _base_path(base: Any, path: Path, source: SourceMap, chain: Tuple[Path, ...]) -> Path:
    """The file ``base:`` names (relative to ``path``'s folder), checked."""
    file, line = source.locate(("base",))
    if not isinstance(base, str) or not base:
        raise ConfigError(f"expected a file name, got {base!r}", file=file, line=line, path="base")
    base_path = Path(os.path.normpath(path.parent / base))
    cycle = chain + (path.resolve(),)
    if base_path.resolve() in cycle:
        names = [p.name for p in cycle[cycle.index(base_path.resolve()):]] + [base_path.name]
        raise ConfigError(f"base files form a cycle: {' -> '.join(names)}",
                          file=file, line=line, path="base")
    if not base_path.is_file():
        raise ConfigError(f"base file not found: {base_path}", file=file, line=line, path="base")
    return base_path


def merge(into: Dict[str, Any], child: Dict[str, Any], source: SourceMap,
          child_source: SourceMap, path: KeyPath = ()) -> None:
    """Merge ``child`` into ``into`` in place: mappings merge key by key, other
    values are replaced, a key set to null is removed. ``source`` (the locations
    of ``into``) takes the child's locations of what it sets."""
    for key, value in child.items():
        where = path + (key,)
        if isinstance(value, dict):
            if not isinstance(into.get(key), dict):
                source.drop(where)
                into[key] = {}
            source.record(where, *child_source.locate(where))
            merge(into[key], value, source, child_source, where)
            continue
        source.drop(where)
        if value is None:
            into.pop(key, None)
        else:
            into[key] = value
            source.take(child_source, where)


def _resolve_paths(data: Dict[str, Any], source: SourceMap, folder: Path) -> None:
    """Resolve the relative file names at PATH_KEYS against ``folder`` (the file's own)."""
    for path in source.paths():
        if not any(_matches(path, pattern) for pattern in PATH_KEYS):
            continue
        parent = _lookup(data, path[:-1])
        name = parent[path[-1]]
        if isinstance(name, str) and name:
            parent[path[-1]] = os.path.normpath(folder / Path(name).expanduser())


def _matches(path: KeyPath, pattern: str) -> bool:
    parts = pattern.split(".")
    return len(parts) == len(path) and all(fnmatchcase(str(k), p) for k, p in zip(path, parts))


def _lookup(data: Any, path: KeyPath) -> Any:
    for key in path:
        data = data[key]
    return data


# ---------------------------------------------------------------- --set overrides

def apply_overrides(data: Dict[str, Any], source: SourceMap, overrides: Overrides) -> None:
    """Apply ``["key.path=value", ...]`` or ``{"key.path": value}`` to ``data`` in place.

    String overrides are parsed as YAML (``size=100`` gives 100, ``x=[1,2]`` a
    list); dict values are used as given. Numeric segments index lists; null
    removes a key. Overridden keys are located as ``--set key.path``.
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    pairs = overrides.items() if isinstance(overrides, Mapping) else map(_parse_override, overrides)
    for dotted, value in pairs:
        if not isinstance(dotted, str) or not dotted or "" in dotted.split("."):
            raise ConfigError(f"malformed override key {dotted!r}; expected key.path")
        if dotted.split(".")[0] == "base":
            raise ConfigError("base: cannot be overridden", file=f"--set {dotted}")
        path = _set(data, dotted, value)
        source.drop(path)
        source.record(path, f"--set {dotted}", None)


def _parse_override(text: Any) -> Tuple[str, Any]:
    """``"populations.E.size=100"`` -> ``("populations.E.size", 100)``."""
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError(f"malformed override {text!r}; expected key.path=value")
    dotted, _, value = text.partition("=")
    dotted, value = dotted.strip(), value.strip()
    if not dotted or not value:
        raise ConfigError(f"malformed override {text!r}; expected key.path=value "
                          "(value null removes the key)")
    try:
        return dotted, yaml.safe_load(value)
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"override {text!r}: invalid YAML value: {problem}") from None


def _set(data: Dict[str, Any], dotted: str, value: Any) -> KeyPath:
    """Set ``dotted`` (creating missing mappings) and return its key path."""
    node: Any = data
    path: KeyPath = ()
    keys = dotted.split(".")
    for depth, name in enumerate(keys):
        key = _container_key(node, name, dotted, path)
        path += (key,)
        if depth == len(keys) - 1:
            if value is None and isinstance(node, dict):
                node.pop(key, None)
            else:
                node[key] = value
        else:
            if isinstance(node, dict) and node.get(key) is None:
                node[key] = {}
            node = node[key]
    return path


def _container_key(node: Any, name: str, dotted: str, path: KeyPath) -> Key:
    """The dict key or list index ``name`` stands for in ``node``."""
    where = f"--set {dotted}"
    if isinstance(node, dict):
        return name
    if not isinstance(node, list):
        raise ConfigError(f"{'.'.join(map(str, path))} is {node!r}, not a mapping", file=where)
    if not name.isdigit() or int(name) >= len(node):
        raise ConfigError(f"{'.'.join(map(str, path))} is a list of {len(node)}; "
                          f"{name!r} is not an index of it", file=where)
    return int(name)


# ---------------------------------------------------------------- validation

_MESSAGES = {
    "missing": "required key is missing",
    "extra_forbidden": "unknown key {key!r}",
    "int_type": "expected an integer, got {input}",
    "int_parsing": "expected an integer, got {input}",
    "int_from_float": "expected an integer, got {input}",
    "bool_type": "expected true or false, got {input}",
    "bool_parsing": "expected true or false, got {input}",
    "string_type": "expected a string, got {input}",
    "float_type": "expected a number, got {input}",
    "float_parsing": "expected a number, got {input}",
    "list_type": "expected a list, got {input}",
    "tuple_type": "expected a list, got {input}",
    "dict_type": "expected a mapping (key: value), got {input}",
    "model_type": "expected a mapping (key: value), got {input}",
    "model_attributes_type": "expected a mapping (key: value), got {input}",
    "greater_than": "must be > {gt}, got {input}",
    "greater_than_equal": "must be >= {ge}, got {input}",
    "less_than_equal": "must be <= {le}, got {input}",
    "literal_error": "must be {expected}, got {input}",
    "too_short": "must not be empty",
}


def validate(data: Dict[str, Any], source: SourceMap,
             file: Union[str, os.PathLike]) -> NetworkConfig:
    """Validate loaded ``data``; any problem becomes one ConfigError with file and line."""
    try:
        config = NetworkConfig.model_validate(data)
    except ValidationError as e:
        path, message = _first_error(e, data)
        where, line = source.locate(path)
        raise ConfigError(message, file=where or str(file), line=line, path=path) from None
    config.source_file = str(file)
    return config


def _first_error(error: ValidationError, data: Any, prefix: KeyPath = ()) -> Tuple[KeyPath, str]:
    """Key path (in ``data``) and message of the first error pydantic reports."""
    details = error.errors(include_url=False)[0]
    path = prefix + _data_path(_lookup_or_none(data, prefix), details["loc"],
                               missing=details["type"] == "missing")
    cause = details.get("ctx", {}).get("error")
    if isinstance(cause, FieldError):
        path += cause.path
        if isinstance(cause.__cause__, ValidationError):
            return _first_error(cause.__cause__, data, path)
    if cause is not None:
        return path, str(cause)
    template = _MESSAGES.get(details["type"])
    if template is None:
        return path, details["msg"]
    return path, template.format(**details.get("ctx", {}), input=_short(details["input"]),
                                 key=path[-1] if path else None)


def _data_path(data: Any, loc: Tuple[Key, ...], missing: bool) -> KeyPath:
    """Drop the parts of a pydantic location that are not keys of ``data`` (union
    tags, for instance), except the last one when it names a ``missing`` key."""
    path: KeyPath = ()
    for depth, key in enumerate(loc):
        is_key = isinstance(data, dict) and key in data
        is_index = isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data)
        if is_key or is_index:
            data = data[key]
            path += (key,)
        elif missing and depth == len(loc) - 1:
            path += (key,)
    return path


def _lookup_or_none(data: Any, path: KeyPath) -> Any:
    try:
        return _lookup(data, path)
    except (KeyError, IndexError, TypeError):
        return None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def load_config(path: Union[str, os.PathLike],
                overrides: Optional[Overrides] = None) -> NetworkConfig:
    """Load, merge (``base:``), override (``--set``) and validate a network file.

    Raises only ConfigError for bad input.
    """
    data, source = load_tree(path)
    apply_overrides(data, source, overrides or ())
    if isinstance(data, dict):
        import_section_providers(data)
    return validate(data, source, path)


# Top-level sections that models on top add, and the module that registers each.
SECTION_PROVIDERS = {"lsm": "networks.lsm", "readout": "networks.lsm", "task": "networks.reservoir"}


def import_section_providers(data: dict) -> None:
    """Import the modules that register the sections a file uses."""
    import importlib

    from spiking.config.schema import SECTIONS

    for key in data:
        module = SECTION_PROVIDERS.get(key)
        if module and key not in SECTIONS:
            try:
                importlib.import_module(module)
            except ImportError:
                pass  # the section stays unknown and validation says so
