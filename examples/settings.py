"""The merchant configuration every example reads from the environment.

    WECHATPAY_MCHID          merchant id
    WECHATPAY_SERIAL         serial of the merchant API certificate
    WECHATPAY_PRIVATE_KEY    path of apiclient_key.pem
    WECHATPAY_PUBLIC_KEY_ID  PUB_KEY_ID_… of the platform public key
    WECHATPAY_PUBLIC_KEY     path of pub_key.pem
    WECHATPAY_APIV3_KEY      APIv3 key (decrypts notifications and certificates)
    WECHATPAY_SECRET         APIv2 key (optional: APIv2 calls and notifications)
    WECHATPAY_BASE_URL       optional: another host, e.g. the fake server in tests

Keys stay in files and in the environment, never in code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from wechatpay_chain import Client


def client_from_env(**options: Any) -> Client:
    """A client for the merchant the environment names; ``options`` go to ``Client``."""
    env = os.environ
    config: dict[str, Any] = {
        "mchid": env["WECHATPAY_MCHID"],
        "serial": env["WECHATPAY_SERIAL"],
        "private_key": Path(env["WECHATPAY_PRIVATE_KEY"]),
        "certs": {env["WECHATPAY_PUBLIC_KEY_ID"]: Path(env["WECHATPAY_PUBLIC_KEY"])},
        "apiv3_key": env["WECHATPAY_APIV3_KEY"],
    }
    if env.get("WECHATPAY_SECRET"):
        config["secret"] = env["WECHATPAY_SECRET"]
    if env.get("WECHATPAY_BASE_URL"):
        config["base_url"] = env["WECHATPAY_BASE_URL"]
    return Client(**config, **options)
