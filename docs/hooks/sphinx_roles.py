"""
mkdocs hook: Sphinx roles in docstrings render as plain code on the reference page.

A few docstrings write ``:class:`Name``` or ``:meth:`name```; mkdocstrings renders the backquoted
part as code and leaves the role in front of it. The hook drops the role.
"""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|exc|data|mod|obj):(?=<code>)")


def on_page_content(html: str, **kwargs: Any) -> str:
    return ROLE.sub("", html)
