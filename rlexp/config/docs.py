"""Each config key's documentation, read from where the key is defined: the docstring under its field in the
schema dataclass (as CleanRL documents its settings). `rlexp train --help` and the README's key reference read
these; nothing else keeps a second copy.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
import typing
from collections.abc import Iterator
from enum import Enum
from typing import Any


@functools.cache
def field_docs(schema: type) -> dict[str, str]:
    """{field name: the docstring written under it} for a dataclass and the dataclasses it extends."""
    docs: dict[str, str] = {}
    for cls in reversed(schema.__mro__):
        if not dataclasses.is_dataclass(cls) or cls is object:
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, body[1:]):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and \
                    isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and \
                    isinstance(after.value.value, str):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def type_name(hint: Any) -> str:
    """int, float, bool, str, list[int], a choice (a | b | c), optional ones with `| null`."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Union:
        return " | ".join(type_name(a) for a in args if a is not type(None)) + " | null"
    if isinstance(hint, type) and issubclass(hint, Enum):
        return " | ".join(member.value for member in hint)
    if typing.get_origin(hint) in (list, typing.List):
        return f"list[{type_name(args[0])}]"
    if typing.get_origin(hint) in (dict, typing.Dict):
        return "dict"
    return getattr(hint, "__name__", str(hint)).replace("Any", "any")


def keys(schema: type, prefix: str = "", algo: type | None = None) -> Iterator[tuple[str, str, str]]:
    """(dotted key, type, documentation) of every key of `schema`, nested sections expanded; `algo`: the
    algorithm's schema, for the `algo` section."""
    hints = typing.get_type_hints(schema)
    docs = field_docs(schema)
    for f in dataclasses.fields(schema):
        hint = algo if (f.name == "algo" and algo is not None and not prefix) else hints[f.name]
        nested = next((t for t in (hint, *typing.get_args(hint)) if dataclasses.is_dataclass(t)), None)
        if isinstance(nested, type):
            yield from keys(nested, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", type_name(hint), docs.get(f.name, "")


def undocumented(schema: type, algo: type | None = None) -> list[str]:
    """The keys whose field has no docstring."""
    return [key for key, _, doc in keys(schema, algo=algo) if not doc]


def describe(schema: type, algo: type | None = None, width: int = 110) -> str:
    """The keys as `rlexp train --help` prints them: one per line, its type, its documentation wrapped."""
    lines = []
    for key, kind, doc in keys(schema, algo=algo):
        lines.append(f"  {key} ({kind})")
        lines.extend(textwrap.wrap(doc, width, initial_indent="      ", subsequent_indent="      "))
    return "\n".join(lines)
