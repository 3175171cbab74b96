"""An aiohttp notify endpoint in its own process, de-duplicating on a shared store.

    python tests/_notify_worker.py CONFIG.json

CONFIG holds the client ``options`` (PEM strings), the ``store`` (``{"kind": "redis" or
"postgres", "url": ..., "in_progress_ttl": ...}``), the ``port`` and a ``log`` file. The
handler appends ``{"pid", "id", "event"}`` lines to the log (``start``, then ``end``) and
behaves as the notification's resource says: ``slow`` seconds of work, ``fail_once`` (a
marker file: the first run raises), ``hang`` (never returns; the test kills the process).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from wechatpay_chain import Client
from wechatpay_chain.contrib.aiohttp import notification_handler
from wechatpay_chain.notifications import Deduplicator
from wechatpay_chain.stores import PostgresDeduplicator, RedisDeduplicator


def make_store(spec: dict[str, Any]) -> Deduplicator:
    ttl = spec["in_progress_ttl"]
    if spec["kind"] == "redis":
        return RedisDeduplicator(spec["url"], prefix=spec["prefix"], in_progress_ttl=ttl)
    return PostgresDeduplicator(spec["url"], table=spec["table"], in_progress_ttl=ttl)


def main(config: dict[str, Any]) -> None:
    client = Client(**config["options"])
    log = Path(config["log"])

    def note(ident: str, event: str) -> None:
        line = json.dumps({"pid": os.getpid(), "id": ident, "event": event}) + "\n"
        with open(log, "a", encoding="utf-8") as out:
            out.write(line)
            out.flush()

    async def handle(request: web.Request, notification: Any) -> None:
        resource = notification.resource
        note(notification.id, "start")
        if resource.get("hang"):
            await asyncio.sleep(3600)
        await asyncio.sleep(resource.get("slow", 0))
        marker = resource.get("fail_once")
        if marker and not os.path.exists(marker):
            Path(marker).touch()
            note(notification.id, "fail")
            raise RuntimeError("handler failed once")
        note(notification.id, "end")

    app = web.Application()
    store = make_store(config["store"])
    app.router.add_post("/notify", notification_handler(client, handle, dedup=store))
    web.run_app(app, host="127.0.0.1", port=config["port"], print=None, access_log=None)


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as file:
        main(json.load(file))
