"""``client.media``: upload a file to WeChat Pay's media endpoints in one call."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, BinaryIO

import httpx

from .._exceptions import InvalidArgumentError
from ..middlewares.upload import UploadForm

if TYPE_CHECKING:
    from .session import Node, Session

__all__ = ["Media"]


class Media:
    """``client.media``: upload helpers (``upload``), and ``form`` for the chain forms."""

    __slots__ = ("_client",)

    def __init__(self, client: Session) -> None:
        self._client = client

    @staticmethod
    def form(file: str | os.PathLike[str] | bytes | BinaryIO, **options: Any) -> UploadForm:
        """``UploadForm(file, **options)``, for ``node.post(body=client.media.form(path))``."""
        return UploadForm(file, **options)

    async def upload(
        self,
        file: str | os.PathLike[str] | bytes | BinaryIO | UploadForm,
        *,
        to: str | Node = "v3/merchant/media/upload",
        **options: Any,
    ) -> httpx.Response:
        """POST ``file`` to the upload endpoint ``to`` (a template or a chain node).

        Returns the verified answer: ``media_id`` for the merchant media endpoints,
        ``media_url`` for the marketing image upload. ``options`` go to ``UploadForm``.
        A ``v2/`` endpoint (``v2/secapi/mch/uploadmedia``) is called with ``security=True``
        and answers XML (``Transformer.to_dict(resp.content)["media_id"]``).
        """
        if isinstance(file, UploadForm):
            if options:
                raise InvalidArgumentError(
                    f"options {sorted(options)} are for a path, bytes or file, not an UploadForm"
                )
            form = file
        else:
            form = UploadForm(file, **options)
        node = self._client.chain(to) if isinstance(to, str) else to
        if str(node).startswith("v2/"):  # the APIv2 upload needs the merchant certificate
            return await node.post(body=form, security=True)
        return await node.post(body=form)
