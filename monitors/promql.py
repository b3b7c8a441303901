"""PromQL templates: ``{{model}}``, ``{{version}}``, ``{{arm}}``, ``{{window}}``.

Values are escaped for use inside double-quoted label matchers
(``version="{{version}}"``), so a version string cannot break out of the matcher
and change the query. ``{{window}}`` renders as a PromQL duration (``300s``).
An unknown or malformed placeholder is a ``TemplateError`` found when the template
is parsed, i.e. at configuration time.
"""

from __future__ import annotations

import re

from monitors.errors import TemplateError
from monitors.measurement import Subject, Window

__all__ = ["PLACEHOLDERS", "escape_label_value", "parse_template", "render_template"]

PLACEHOLDERS: frozenset[str] = frozenset({"model", "version", "arm", "window"})
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def escape_label_value(value: str) -> str:
    """Escape ``value`` for a double-quoted PromQL string (label matcher value)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")


def parse_template(template: str) -> frozenset[str]:
    """Return the placeholders ``template`` uses; raise ``TemplateError`` on bad ones."""
    used = set()
    for match in _PLACEHOLDER.finditer(template):
        name = match.group(1)
        if name not in PLACEHOLDERS:
            raise TemplateError(
                f"unknown placeholder {{{{{name}}}}} in PromQL template {template!r}; "
                f"known: {', '.join('{{' + p + '}}' for p in sorted(PLACEHOLDERS))}"
            )
        used.add(name)
    leftover = _PLACEHOLDER.sub("", template)
    if "{{" in leftover or "}}" in leftover:
        raise TemplateError(f"malformed placeholder in PromQL template {template!r}")
    return frozenset(used)


def render_template(template: str, subject: Subject, window: Window) -> str:
    """Fill the placeholders of ``template`` for ``subject`` and ``window``."""
    parse_template(template)
    values = {
        "model": escape_label_value(subject.model),
        "version": escape_label_value(subject.version),
        "arm": escape_label_value(subject.arm),
        "window": window.promql_duration(),
    }
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
