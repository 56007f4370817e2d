"""Decorator registries for datasets, models, methods and mechanisms (the timm shape).

A new component is one file with one decorator; ``kdx list``, the config validator and the
test-suite pick it up from here, so nothing else is edited when one is added.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A name that is not registered; its message lists what is."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered component: the object, a one-line description and free-form metadata."""

    name: str
    obj: T
    description: str
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Name -> component map filled by a decorator at import time."""

    def __init__(self, kind: str, package: str) -> None:
        self.kind = kind
        self._package = package
        self._entries: dict[str, Entry[T]] = {}
        self._loaded = False

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator: register ``obj`` under ``name``; its docstring's first line describes it."""

        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name].obj is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            doc = (getattr(obj, "__doc__", None) or "").strip()
            self._entries[name] = Entry(name, obj, doc.splitlines()[0] if doc else "", dict(meta))
            return obj

        return decorator

    def _load(self) -> None:
        """Import every module of the package once, so that all decorators have run."""
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self._package)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self._package}.{info.name}")

    def entry(self, name: str) -> Entry[T]:
        self._load()
        if name not in self._entries:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; allowed: {', '.join(self.names())}")
        return self._entries[name]

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        self._load()
        return iter(sorted(self._entries.values(), key=lambda e: e.name))


DATASETS: Registry[Any] = Registry("dataset", "kdcore.data")
MODELS: Registry[Any] = Registry("model", "kdcore.models")
METHODS: Registry[Any] = Registry("method", "kdcore.methods")
MECHANISMS: Registry[Any] = Registry("mechanism", "kdcore.mechanisms")

register_dataset = DATASETS.register
register_model = MODELS.register
register_method = METHODS.register
register_mechanism = MECHANISMS.register


def data_meta(data: Any) -> dict[str, Any]:
    """What a dataset gives its models (``input_shape``, ``num_classes``, ``modality``, ``inputs``, ``targets``,
    ``views``, ``classes``), for a registered name or a data config. A built-in dataset declares it when it
    registers; a data source (``source=True``: csv, imagefolder, ...) reads it from the user's files through
    the ``describe(cfg)`` it registers, once per config."""
    name = data if isinstance(data, str) else data.name
    entry = DATASETS.entry(name)
    if not entry.meta.get("source"):
        return entry.meta
    if isinstance(data, str):
        raise ValueError(f"dataset {name} reads your files; describe it with a data config (data.path)")
    paths = [getattr(data, key, None) for key in ("path", "paired_path", "shifted_path")]
    return _described(name, data.model_dump_json(), tuple(_stamp(p) for p in paths if p))


def _stamp(path: str) -> tuple[int, ...]:
    """A cheap change marker of a file or folder: sizes and modification times of it and of the folders two
    levels down (where class folders are), so a description is read again when files come or go."""
    root = Path(path).expanduser()
    if not root.exists():
        return (-1,)
    if root.is_file():
        info = root.stat()
        return (info.st_size, info.st_mtime_ns)
    folders = [root, *(d for d in root.iterdir() if d.is_dir())]
    folders += [d for folder in folders[1:] for d in folder.iterdir() if d.is_dir()]
    return tuple(folder.stat().st_mtime_ns for folder in folders)


@functools.lru_cache(maxsize=64)
def _described(name: str, data_json: str, stamps: tuple[tuple[int, ...], ...]) -> dict[str, Any]:
    from kdcore.config import DataConfig  # the config module imports this one

    entry = DATASETS.entry(name)
    return entry.meta | entry.meta["describe"](DataConfig.model_validate_json(data_json))


def inputs_of(data: Any) -> str:
    """What a dataset feeds its models: ``tokens`` (integer ids) or ``tensor`` (numbers)."""
    meta = data_meta(data)
    return meta.get("inputs") or ("tokens" if meta.get("targets") == "tokens" else "tensor")


def model_fits(model: str, data: Any) -> bool:
    """Whether a registered model takes a dataset's inputs (a name or a data config): the same kind, and the
    rank it needs and the targets it predicts (next tokens, or a class per sample); a model source
    (``inputs="any"``) takes what its own code takes."""
    meta, data_info = MODELS.entry(model).meta, data_meta(data)
    rank = meta.get("input_rank")
    targets = "tokens" if data_info.get("targets") == "tokens" else "classes"
    return ((rank is None or rank == len(data_info["input_shape"]))
            and meta.get("inputs", "tensor") in ("any", inputs_of(data))
            and meta.get("targets", "any" if meta.get("inputs") == "any" else "classes") in ("any", targets))


def fitting_models(data: Any) -> list[str]:
    """Every built-in model that takes the dataset's inputs (a source such as ``import`` takes what its
    factory builds)."""
    return [e.name for e in MODELS if not e.meta.get("source") and model_fits(e.name, data)]
