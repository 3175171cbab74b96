"""XML <-> dict for APIv2 bodies, hardened against hostile documents.

Parsing refuses any DOCTYPE outright, so no entity is ever declared, expanded or fetched
(no XXE, no "billion laughs"). Writing only produces what WeChat Pay's flat ``<xml>`` bodies
hold: one element per field, text values, nothing that could inject markup.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, NoReturn
from xml.parsers import expat

import xmltodict

from .._exceptions import InvalidArgumentError

__all__ = ["Transformer", "field_text"]

# WeChat Pay's field names are ASCII; keeping to an ASCII subset of XML's NCName also keeps
# every name acceptable to every parser (expat's non-ASCII name tables predate XML 1.0 5th ed.).
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
# Characters XML 1.0 cannot carry at all, not even as a character reference.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# A value with one of these is written as CDATA. `"` is not required by XML there, but it
# marks JSON text (`detail`, `scene_info`), which WeChat Pay's own samples wrap in CDATA.
# `\r` is in the set because parsers turn a literal CR into LF, even inside CDATA.
_NEEDS_CDATA = re.compile('[<>&"\r]')


def field_text(key: object, value: object) -> str | None:
    """The text an APIv2 field is written (and signed) as; None means "leave it out".

    ``str`` is kept as is and ``int`` written in decimal. Refused, with an
    ``InvalidArgumentError`` naming the field:

    - ``bool``: "True", "true" and "1" are all plausible and APIv2 uses each of "Y"/"N",
      "true"/"false"; pass the exact string the API documents;
    - ``float``/``Decimal``: money is an integer number of fen;
    - ``dict``/``list``/...: structured fields (``detail``, ``scene_info``, ...) are JSON
      text in APIv2; pass ``json.dumps(value)``;
    - ``bytes`` and anything else; text holding characters XML 1.0 cannot carry.

    Keys must be ASCII XML names: a letter or ``_``, then letters, digits, ``_``, ``-``, ``.``.
    """
    if not isinstance(key, str) or _NAME.fullmatch(key) is None:
        raise InvalidArgumentError(
            f"xml key {key!r} is not a valid XML element name: use ASCII letters, digits, "
            "'_', '-' and '.', starting with a letter or '_'"
        )
    if value is None:
        return None
    if isinstance(value, str):
        text = str.__str__(value)  # the plain text of a str subclass (e.g. an enum), not its repr
    elif isinstance(value, bool):
        _refuse(key, "is a bool; pass the exact text the API documents, e.g. 'Y'/'N' or 'true'")
    elif isinstance(value, int):
        text = int.__repr__(value)
    elif isinstance(value, (float, Decimal)):
        _refuse(key, f"is a {type(value).__name__}; money is an integer number of fen: pass an int")
    elif isinstance(value, (Mapping, list, tuple, set, frozenset)):
        _refuse(
            key,
            f"is a {type(value).__name__}; APIv2 carries structured fields as JSON text: "
            "pass json.dumps(value)",
        )
    else:
        _refuse(key, f"is a {type(value).__name__}; APIv2 fields are str or int")
    bad = _NOT_XML_CHAR.search(text)
    if bad is not None:
        _refuse(
            key,
            f"holds U+{ord(bad.group()):04X} at index {bad.start()}, "
            "a character XML 1.0 cannot carry",
        )
    return text


def _refuse(key: str, why: str) -> NoReturn:
    # Never echo the value itself: it may be personal data.
    raise InvalidArgumentError(f"xml field {key!r} {why}")


def _refuse_doctype(name: str, *_rest: object) -> NoReturn:
    if name.lower() == "html":
        raise InvalidArgumentError(_HTML)
    raise InvalidArgumentError("XML: DOCTYPE is not allowed (it could declare entities)")


_HTML = "XML: got an HTML page, not an XML answer"


def _looks_like_html(xml: str | bytes) -> bool:
    head = xml[:64].lstrip()
    if isinstance(head, bytes):
        return head[:5].lower() == b"<html"
    return head[:5].lower() == "<html"


def _create_parser(encoding: str | None, namespace_separator: str | None) -> Any:
    parser = expat.ParserCreate(encoding, namespace_separator)
    # Every entity declaration lives in a DOCTYPE, so this shuts out XXE and entity bombs
    # before a single declaration is read. xmltodict's `disable_entities` stays on as well.
    parser.StartDoctypeDeclHandler = _refuse_doctype
    return parser


# What xmltodict calls `expat`: the real module, except that its parsers refuse DOCTYPE.
_HARDENED_EXPAT = SimpleNamespace(ParserCreate=_create_parser)


def _leaf_or_child(_path: object, key: str, value: Any) -> tuple[str, Any] | None:
    if key == "#text":
        # Text beside child elements: layout whitespace in WeChat Pay's answers.
        return None
    return key, "" if value is None else value


class Transformer:
    """Converts APIv2 XML bodies to dicts and back."""

    @staticmethod
    def to_dict(xml: str | bytes) -> dict[str, Any]:
        """The fields of an XML document: the children of its root element, whatever its name.

        Leaves are ``str`` exactly as sent (whitespace kept, CDATA unwrapped, an empty element
        is ``""``); an element with children is a ``dict``; a repeated element is a ``list``
        (so an injected duplicate never silently replaces the first value). Attributes,
        comments, processing instructions and text beside child elements are ignored: APIv2
        uses none of them.

        Raises ``InvalidArgumentError`` ("XML: ...") for a DOCTYPE, a document that is not
        well-formed (with line and column, never the content), an HTML page, or a root that
        holds text instead of fields.
        """
        if not isinstance(xml, (str, bytes)):
            raise InvalidArgumentError(f"XML: expected str or bytes, got {type(xml).__name__}")
        try:
            document = xmltodict.parse(
                xml,
                expat=_HARDENED_EXPAT,
                disable_entities=True,
                xml_attribs=False,
                strip_whitespace=False,
                postprocessor=_leaf_or_child,
            )
        except expat.ExpatError as exc:
            where = f"at line {exc.lineno}, column {exc.offset}"
            if _looks_like_html(xml):
                raise InvalidArgumentError(f"{_HTML} (not well-formed {where})") from None
            reason = expat.ErrorString(exc.code)
            raise InvalidArgumentError(f"XML: not well-formed ({reason}) {where}") from None
        except InvalidArgumentError:
            raise
        except (ValueError, LookupError) as exc:
            # pyexpat refusing a declared encoding it cannot decode (GBK, an unknown name).
            raise InvalidArgumentError(f"XML: cannot be read ({exc})") from None
        except RecursionError:
            raise InvalidArgumentError("XML: nested too deeply to be read") from None
        root, fields = next(iter(document.items()))
        if root.lower() == "html":
            raise InvalidArgumentError(_HTML)
        if isinstance(fields, dict):
            return fields
        if isinstance(fields, str) and not fields.strip():
            return {}
        raise InvalidArgumentError(f"XML: root element <{root}> holds text, not fields")

    @staticmethod
    def to_xml(data: Mapping[str, Any]) -> str:
        """``<xml><key>value</key>...</xml>``, one element per field, in the given order.

        Values follow ``field_text`` (``None`` is left out; bool, float, dict, list, bytes are
        refused). A value holding any of ``< > & "`` or CR is written as CDATA; a ``]]>``
        inside it is split across two sections and a CR becomes ``&#13;``, so
        ``to_dict(to_xml(d)) == d`` for every text.
        """
        if not isinstance(data, Mapping):
            raise InvalidArgumentError(f"xml must be a mapping, got {type(data).__name__}")
        parts = ["<xml>"]
        for key, value in data.items():
            text = field_text(key, value)
            if text is None:
                continue
            if _NEEDS_CDATA.search(text) is not None:
                text = (
                    "<![CDATA["
                    + text.replace("]]>", "]]]]><![CDATA[>").replace("\r", "]]>&#13;<![CDATA[")
                    + "]]>"
                )
            parts.append(f"<{key}>{text}</{key}>")
        parts.append("</xml>")
        return "".join(parts)
