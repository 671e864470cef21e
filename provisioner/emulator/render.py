"""Response bodies in the two formats of the RPC API.

JSON is compact UTF-8. XML follows the reference's samples: the root element is
``<{Action}Response>`` (``<Error>`` for gateway errors), a mapping becomes child
elements, a list under a name becomes that element repeated (so
``{"ApplyDeviceList": {"ApplyDeviceInfo": [a, b]}}`` renders two
``<ApplyDeviceInfo>`` inside ``<ApplyDeviceList>``), booleans are ``true``/``false``
and ``None`` values are left out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

__all__ = [
    "JSON_CONTENT_TYPE",
    "XML_CONTENT_TYPE",
    "content_type",
    "render",
    "render_json",
    "render_xml",
]

#: Exactly what the official SDK compares against to parse an XML error.
XML_CONTENT_TYPE = "text/xml;charset=utf-8"
JSON_CONTENT_TYPE = "application/json;charset=utf-8"

_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'


def render_json(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def _element(out: list[str], name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, list | tuple):
        for item in value:
            _element(out, name, item)
        return
    out.append(f"<{name}>")
    if isinstance(value, Mapping):
        for key, child in value.items():
            _element(out, key, child)
    else:
        out.append(_scalar(value))
    out.append(f"</{name}>")


def render_xml(root: str, body: Mapping[str, Any]) -> bytes:
    out = [_XML_DECLARATION]
    _element(out, root, body)
    if len(out) == 1:  # a root whose mapping was None: still a document
        out.append(f"<{root}></{root}>")
    return "".join(out).encode("utf-8")


def render(fmt: str, root: str, body: Mapping[str, Any]) -> bytes:
    """``fmt`` is ``"JSON"`` or ``"XML"``; ``root`` names the XML root element."""
    return render_json(body) if fmt == "JSON" else render_xml(root, body)


def content_type(fmt: str) -> str:
    return JSON_CONTENT_TYPE if fmt == "JSON" else XML_CONTENT_TYPE
