"""Plain-text tables, as the sweep summary and `rlexp plot` print them."""

from __future__ import annotations

from collections.abc import Sequence


def shorten_floats(overrides: str) -> str:
    """`algo.lr=0.00064664227` -> `algo.lr=0.0006466` for the printed table (summary.csv keeps them whole)."""
    def short(override: str) -> str:
        key, sep, value = override.partition("=")
        if not sep or "." not in value:
            return override
        try:
            return f"{key}={float(value):.4g}"
        except ValueError:
            return override
    return " ".join(short(o) for o in overrides.split(" "))


def text_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Left-aligned columns under a dashed rule, as the sweep and plot summaries print them."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*row).rstrip() for row in (header, tuple("-" * w for w in widths), *rows)]
