"""Griffe extension: render Sphinx cross-reference roles in docstrings for mkdocstrings.

Our docstrings use numpydoc with Sphinx roles (``:func:`open_catalog```,
``:class:`~proxcompute.Catalog```, ``:meth:`compute```...), which mkdocstrings prints
literally. This rewrites each role, before the docstring is parsed, into an *optional*
autorefs cross-reference: a link when the target is documented on some page of the site,
plain code otherwise (never a warning, so ``mkdocs build --strict`` stays meaningful).
Targets are resolved like Sphinx does: in the scope of the documented object, then as a
full path; ``~`` shows only the last component.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(
    r":(?:py:)?(?:func|class|meth|mod|attr|exc|data|obj|const):`(?P<tilde>~?)(?P<target>[^`]+?)`"
)


def _lookup(pkg: griffe.Module, path: str) -> str | None:
    root, _, rest = path.partition(".")
    if root != pkg.name:
        return None
    try:
        obj = pkg[rest] if rest else pkg
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    return obj.path


def _resolve(obj: griffe.Object, pkg: griffe.Module, target: str) -> str | None:
    target = target.removesuffix("()")
    head, _, tail = target.partition(".")
    scope: Any = obj
    while scope is not None:  # the object's own scope, then its parents' (as Sphinx does)
        try:
            base = scope.resolve(head)
        except (griffe.NameResolutionError, AttributeError):
            base = None
        if base:
            found = _lookup(pkg, f"{base}.{tail}" if tail else base)
            if found:
                return found
        scope = scope.parent
    return _lookup(pkg, target)


class SphinxRoles(griffe.Extension):
    """Turn ``:role:`target``` into optional autorefs links (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        seen: set[int] = set()
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if obj.docstring is not None:
                obj.docstring.value = ROLE.sub(lambda m, o=obj: self._link(m, o, pkg), obj.docstring.value)
            stack.extend(m for m in obj.members.values() if not m.is_alias)

    @staticmethod
    def _link(match: re.Match[str], obj: griffe.Object, pkg: griffe.Module) -> str:
        target = match["target"].strip()
        title = target.rsplit(".", 1)[-1] if match["tilde"] else target
        path = _resolve(obj, pkg, target) or target
        return (
            f'<autoref identifier="{html.escape(path)}" optional><code>{html.escape(title)}</code></autoref>'
        )
