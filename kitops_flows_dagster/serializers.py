"""How a Python object returned by an asset becomes a file in a ModelKit layer, and back.

Built in: ``pickle`` (the default: any picklable object), ``json`` (JSON-safe values) and
``text`` (a ``str``). Anything else is named by import path, ``"package.module:attribute"``, an
object (or a class, instantiated with no arguments) with ``name``, ``extension``, ``dump`` and
``load``::

    class ParquetSerializer:
        name = "parquet"
        extension = ".parquet"
        def dump(self, obj, path): obj.to_parquet(path)
        def load(self, path): return pandas.read_parquet(path)

    ModelKitIOManager(kitops=..., serializer="my_project.io:ParquetSerializer")

A serializer may also have ``loads(data: bytes)``: the built-ins do, and the IO manager then reads
a small value's layer (verified) into memory instead of unpacking it to a directory.

Security: unpickling runs code chosen by whoever wrote the pickle. A digest proves the bytes
are the ones that were pushed, not who pushed them. Load pickles only from registries whose
writers you trust; otherwise return a file path (a model file, a CSV) or use ``json``.
"""

from __future__ import annotations

import importlib
import io
import json
import pickle
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from kitops_flows.errors import KitopsError


@runtime_checkable
class Serializer(Protocol):
    """Writes one object to one file and reads it back. ``dump`` must stream for big objects."""

    name: str
    extension: str

    def dump(self, obj: Any, path: Path) -> None: ...

    def load(self, path: Path) -> Any: ...


class PickleSerializer:
    """Any picklable object, written straight to the file (no in-memory copy of the bytes)."""

    name = "pickle"
    extension = ".pkl"

    def dump(self, obj: Any, path: Path) -> None:
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)

    def load(self, path: Path) -> Any:
        with open(path, "rb") as f:
            return pickle.load(f)  # noqa: S301 - see the module docstring's security note

    def loads(self, data: bytes) -> Any:
        """The object from bytes read into memory (a small layer, see ``kitops_flows.unpack_memory``)."""
        return pickle.loads(data)  # noqa: S301 - see the module docstring's security note


class JsonSerializer:
    """JSON-safe values (dicts, lists, numbers, strings); sorted keys so equal values give equal bytes."""

    name = "json"
    extension = ".json"

    def dump(self, obj: Any, path: Path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(obj, f, sort_keys=True, indent=1)

    def load(self, path: Path) -> Any:
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def loads(self, data: bytes) -> Any:
        return json.load(_text(data))


class TextSerializer:
    """A ``str``, written as UTF-8."""

    name = "text"
    extension = ".txt"

    def dump(self, obj: Any, path: Path) -> None:
        if not isinstance(obj, str):
            raise KitopsError(f"the text serializer writes str values, not {type(obj).__name__}; use pickle or json")
        path.write_text(obj, encoding="utf-8")

    def load(self, path: Path) -> Any:
        return path.read_text(encoding="utf-8")

    def loads(self, data: bytes) -> Any:
        return _text(data).read()


def _text(data: bytes) -> io.TextIOWrapper:
    """Bytes read as the text file ``load`` opens would read them (UTF-8, universal newlines)."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")


BUILTIN: dict[str, type] = {"pickle": PickleSerializer, "json": JsonSerializer, "text": TextSerializer}


def get_serializer(spec: str) -> Serializer:
    """A built-in serializer by name, or one named ``"module:attribute"`` (class or instance)."""
    if spec in BUILTIN:
        return BUILTIN[spec]()
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise KitopsError(
            f"unknown serializer {spec!r}: use one of {', '.join(BUILTIN)} or an import path 'package.module:Name'"
        )
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise KitopsError(f"serializer {spec!r} could not be imported: {e}") from None
    found = target() if isinstance(target, type) else target
    if not isinstance(found, Serializer):
        raise KitopsError(f"serializer {spec!r} needs attributes name, extension and methods dump(obj, path), load(path)")
    return found


__all__ = ["BUILTIN", "JsonSerializer", "PickleSerializer", "Serializer", "TextSerializer", "get_serializer"]
