"""MkDocs hook: the generated tables of the configuration reference (rlexp/commands/reference.py), put where a page
says `<!-- rlexp:config-keys -->` (every key outside algo.*) or `<!-- rlexp:algo-keys <algo> -->` (one algorithm's).
An unknown algorithm fails the build."""

from __future__ import annotations

import re
from typing import Any

from rlexp.commands.reference import algo_keys, common_keys

MARKER = re.compile(r"<!-- rlexp:(config-keys|algo-keys ([\w-]+)) -->")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return MARKER.sub(lambda m: common_keys() if m.group(2) is None else algo_keys(m.group(2)), markdown)
