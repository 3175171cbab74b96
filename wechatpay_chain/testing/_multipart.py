"""Reading the ``meta`` part of a multipart upload, which is what the merchant signs."""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP

__all__ = ["meta_part", "parts"]


def parts(content_type: str, body: bytes) -> dict[str, tuple[dict[str, str], bytes]]:
    """name -> (headers, content) of each part of a multipart/form-data body."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    found: dict[str, tuple[dict[str, str], bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            payload = part.get_payload(decode=True)
            found[name] = (dict(part.items()), payload if isinstance(payload, bytes) else b"")
    return found


def meta_part(content_type: str, body: bytes) -> bytes:
    """The ``meta`` JSON of an upload, or the whole body when there is none."""
    return parts(content_type, body).get("meta", ({}, body))[1]
