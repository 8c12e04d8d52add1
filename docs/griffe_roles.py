"""A griffe extension for the API reference: the docstrings' Sphinx roles as code spans.

The package's docstrings name other objects with Sphinx roles (``:func:`image_grid```,
``:class:`~tf_genai.errors.DataError```), which read well in ``help()``; in Markdown they would
print as ``:func:`` followed by the name. This turns each into a code span of the name (the last
part after ``~``, as Sphinx shows it).
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc|const):`(~?)([^`]+)`")


def _name(match: re.Match) -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring's roles once it is loaded (packages get no ``on_object``)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_name, obj.docstring.value)

    on_object = on_instance
