"""Griffe extension: numpydoc docstrings as mkdocstrings should read them.

**Sphinx roles become links.**

The docstrings cite objects the numpydoc way (``:class:`Chip```, ``:func:`~delgrad_rs.datasets.encode```,
``:meth:`Network.create```). mkdocstrings reads docstrings as Markdown, where such a role is plain
text. This extension rewrites each role into an optional cross-reference: a link to the object's
documentation when the site documents it, the name in code font otherwise (never a warning). Names are
resolved the way Python would from the docstring's own scope (its object, then the enclosing class and
module, including their imports); a dotted name that does not resolve that way is taken as a full path.

**Shared parameter entries are split.** numpydoc lets one entry document several parameters
(``tau_m, tau_s : float``); griffe gives every name of such an entry the default of the first, so
the entry becomes one entry per name with the same type and description, and each name shows its own
default from the signature.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_SHARED_SECTIONS = ("Parameters", "Other Parameters")
_SHARED_ENTRY = re.compile(r"^(?P<names>\w+(?:, *\w+)+) *: *(?P<type>.*)$")
_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|exc|data|obj|const):`(?P<target>~?[\w.]+)`")


def _resolve(obj: griffe.Object, name: str) -> str:
    """Return the full path ``name`` denotes in the scope of ``obj`` (``name`` itself if unknown)."""
    head, _, rest = name.partition(".")
    try:
        path = obj.resolve(head)
    except griffe.NameResolutionError:
        return name
    return f"{path}.{rest}" if rest else path


def _split_shared_entries(text: str) -> str:
    """Write each ``a, b : T`` entry of a Parameters section as one entry per name."""
    lines = text.split("\n")
    out: list[str] = []
    section = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if i + 1 < len(lines) and re.fullmatch(r"-{3,}", lines[i + 1].strip()) and line.strip():
            section = line.strip()
        m = _SHARED_ENTRY.match(line) if section in _SHARED_SECTIONS else None
        if m is None:
            out.append(line)
            i += 1
            continue
        j = i + 1
        while j < len(lines) and (lines[j].startswith((" ", "\t")) or not lines[j].strip()):
            j += 1
        while j > i + 1 and not lines[j - 1].strip():  # blank lines belong to what follows
            j -= 1
        for name in (n.strip() for n in m["names"].split(",")):
            out.append(f"{name} : {m['type']}".rstrip())
            out.extend(lines[i + 1 : j])
        i = j
    return "\n".join(out)


def _rewrite(obj: griffe.Object, text: str) -> str:
    def link(m: re.Match[str]) -> str:
        target = m["target"]
        shorten = target.startswith("~")
        name = target.lstrip("~")
        title = name.rsplit(".", 1)[-1] if shorten else name
        identifier = html.escape(_resolve(obj, name), quote=True)
        return f'<autoref identifier="{identifier}" optional><code>{html.escape(title)}</code></autoref>'

    return _ROLE.sub(link, _split_shared_entries(text))


class NumpydocForMkdocstrings(griffe.Extension):
    """Rewrite every docstring of a package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Rewrite the docstrings of ``pkg`` and of everything it defines."""
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            if obj.docstring is not None:
                obj.docstring.value = _rewrite(obj, obj.docstring.value)
            stack.extend(m for m in obj.members.values() if not m.is_alias)  # type: ignore[misc]
