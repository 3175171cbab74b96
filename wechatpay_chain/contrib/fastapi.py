"""FastAPI integration (``pip install wechatpay-chain[fastapi]``).

    from fastapi import FastAPI
    from wechatpay_chain.contrib.fastapi import WechatpayNotification, install
    from wechatpay_chain.notifications import Notification

    app = FastAPI()
    install(app)
    verified = WechatpayNotification(client)

    @app.post("/wechatpay/notify")
    async def notify(notification: Notification = verified.depends()):
        ...                          # raise to have WeChat Pay re-send it later
        return verified.ack()

The dependency reads the raw body itself (so nothing re-serialises it), verifies and decrypts
it, and hands the handler the typed notification. A notification that does not verify never
reaches the handler: it is answered 4xx. A re-sent copy of one already handled is
acknowledged without running the handler (de-duplication by id, in memory unless a
``Deduplicator`` is given). ``install(app)`` makes those answers byte-exact (APIv2 needs XML)
and adds the middleware that records a notification as handled only when the answer the
handler actually sent is 2xx: a handler that returns ``JSONResponse(..., status_code=500)``
gets the re-sent copy again. De-duplication needs it (``dedup=False`` does not).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import Response

from .._exceptions import InvalidArgumentError, NotificationError
from ..notifications import (
    Answer,
    Deduplicator,
    Kind,
    finish_shielded,
    log_rejection,
)

if TYPE_CHECKING:
    from .._client import Client

__all__ = ["NotificationAnswer", "WechatpayNotification", "install", "respond"]

# Where Depends takes `scope`, its default ("request") closes a yield dependency only after
# the answer is sent, so a re-sent copy could arrive while the first is still marked in
# progress; "function" closes it before the answer. Older FastAPI gets a plain Depends.
_HAS_SCOPE = "scope" in inspect.signature(Depends).parameters


class NotificationAnswer(HTTPException):
    """What the dependency raises instead of running the handler (a rejection or a duplicate).

    It is an HTTPException, so FastAPI answers it even without ``install``: with the right
    status, but a JSON ``{"detail": ...}`` body. ``install(app)`` answers ``answer`` exactly.
    """

    def __init__(self, answer: Answer) -> None:
        if answer.content_type.startswith("application/json"):
            detail: Any = json.loads(answer.body)
        else:
            detail = answer.body.decode("utf-8")
        super().__init__(status_code=answer.status, detail=detail)
        self.answer = answer


def respond(answer: Answer) -> Response:
    """``answer`` as a FastAPI response."""
    return Response(content=answer.body, status_code=answer.status, headers=answer.headers)


async def _answer_exactly(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NotificationAnswer)
    return respond(exc.answer)


#: ASGI scope key: the (store, key) claims of this request, finished by ``_FinishClaims``.
_CLAIMS = "wechatpay_chain.claims"

_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]


class _FinishClaims:
    """Pure ASGI middleware: a claimed notification is recorded handled when the answer
    starts with a 2xx status, and released (re-sent copies run the handler) otherwise,
    including when the handler raised or the request was cancelled. Recorded before the
    answer leaves, so a re-sent copy never finds it still in progress after the ack."""

    def __init__(self, app: Callable[[_Scope, _Receive, _Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        claims: list[tuple[Deduplicator, str]] = []
        scope[_CLAIMS] = claims

        async def sending(message: _Message) -> None:
            if claims and message["type"] == "http.response.start":
                handled = 200 <= int(message["status"]) < 300
                while claims:
                    store, key = claims.pop()
                    await finish_shielded(store, key, handled=handled)
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            while claims:
                store, key = claims.pop()
                await finish_shielded(store, key, handled=False)


def install(app: FastAPI) -> None:
    """Answer rejected and duplicate notifications with exactly the bodies WeChat Pay
    expects, and record a notification as handled only if the handler's answer is 2xx."""
    if getattr(app.state, "wechatpay_chain_installed", False):
        return
    app.add_exception_handler(NotificationAnswer, _answer_exactly)
    app.add_middleware(_FinishClaims)
    app.state.wechatpay_chain_installed = True


class WechatpayNotification:
    """A FastAPI dependency giving the handler a verified notification of ``kind``.

    ``kind``: ``"v3"`` (:class:`~wechatpay_chain.notifications.Notification`), ``"v2_pay"``
    or ``"v2_refund"``. ``dedup``: a :class:`~wechatpay_chain.notifications.Deduplicator`
    (default: the client's in-memory one; ``False``: none). The client is checked now, so
    a missing ``apiv3_key``/``certs``/``secret`` fails at start-up, not at the first payment.
    """

    def __init__(
        self,
        client: Client,
        *,
        kind: Kind = "v3",
        dedup: Deduplicator | Literal[False] | None = None,
    ) -> None:
        notifications = client.notifications
        notifications.require(kind)
        self.kind: Kind = kind
        self._notifications = notifications
        self._dedup: Deduplicator | None = (
            None if dedup is False else notifications.dedup if dedup is None else dedup
        )

    def depends(self) -> Any:
        """``Depends(self)`` (use this, not ``Depends``): the claim is in place before the
        handler runs, and ``install``'s middleware settles it from the answer's status.
        """
        if _HAS_SCOPE:
            return Depends(self, scope="function")
        return Depends(self)  # pragma: no cover - FastAPI without Depends(scope=)

    def ack(self) -> Response:
        """The acknowledgement to return from the handler."""
        return respond(Answer.ack(self.kind))

    async def __call__(self, request: Request) -> AsyncIterator[Any]:
        kind = self.kind
        if kind != "v3" and NotificationAnswer not in request.app.exception_handlers:
            raise InvalidArgumentError(
                "APIv2 notifications are answered in XML: call "
                "wechatpay_chain.contrib.fastapi.install(app) once"
            )
        store = self._dedup
        claims: list[tuple[Deduplicator, str]] | None = request.scope.get(_CLAIMS)
        if store is not None and claims is None:
            # Without the middleware nothing sees the status the handler sends: a handler
            # answering 500 would have its notification recorded as handled, and lost.
            raise InvalidArgumentError(
                "notification de-duplication needs the status the handler answers: call "
                "wechatpay_chain.contrib.fastapi.install(app) once (or pass dedup=False)"
            )
        body = await request.body()
        try:
            if kind == "v3":
                notification: Any = await self._notifications.aparse(request.headers, body)
            else:
                notification = self._notifications.verify(kind, request.headers, body)
        except NotificationError as exc:
            log_rejection(kind, exc)
            raise NotificationAnswer(Answer.reject(kind, exc.reason)) from None
        if store is None or claims is None:
            yield notification
            return
        key = notification.dedup_key
        claim = await store.claim(key)
        if claim == "done":
            raise NotificationAnswer(Answer.ack(kind))
        if claim != "new":
            raise NotificationAnswer(Answer.reject(kind, "duplicate"))
        # Finished by the middleware from the status actually sent (or released on failure).
        claims.append((store, key))
        yield notification
