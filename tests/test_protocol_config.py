"""Configuration and options the official SDKs refuse, refused at once and by name (issue 16).

Items 5, 7, 8 and 9: merchant identifiers and keys at construction, encrypted private keys
(``private_key_password=`` and the CLI's ``--private-key-password-env``), ``file://`` uploads,
and verb options with the wrong type or an httpx/requests name.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from wechatpay_chain import Client, InvalidArgumentError
from wechatpay_chain.middlewares.upload import UploadForm
from wechatpay_chain.testing import FakeWechatPay

PASSPHRASE = "correct horse battery staple"


@pytest.fixture(scope="module")
def server() -> FakeWechatPay:
    return FakeWechatPay()  # keys only; not started


def options(server: FakeWechatPay, **changes: object) -> dict[str, Any]:
    base = server.client_options()
    base.update(changes)
    return base


def encrypted_pem(server: FakeWechatPay) -> bytes:
    return server.merchant.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE.encode()),
    )


# --- 5. configuration the PHP/Go SDKs refuse ------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"serial": ""}, "serial must be a non-empty str"),
        ({"serial": "   "}, "serial is blank"),
        ({"serial": "\t\n"}, "serial is blank"),
        ({"serial": " 3775B6A45ACD588826D15E583A95F5DD00000000"}, "not a certificate serial"),
        ({"serial": "3775B6A45ACD588826D15E583A95F5DD0000000G"}, "not a certificate serial"),
        ({"serial": "37:75:B6:A4"}, "not a certificate serial"),
        ({"serial": "0x3775B6A4"}, "not a certificate serial"),
        ({"serial": "nop"}, "not a certificate serial"),
        ({"mchid": " 1900000001"}, "mchid has surrounding whitespace"),
        ({"mchid": "1900000001\n"}, "mchid has surrounding whitespace"),
        ({"secret": "#" * 31}, r"secret \(the APIv2 key\) must be 32 characters, got 31"),
        ({"secret": "#" * 33}, "must be 32 characters, got 33"),
        ({"secret": "#!"}, "must be 32 characters, got 2"),
    ],
)
def test_configuration_the_official_sdks_refuse_is_refused_by_name(
    server: FakeWechatPay, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=message) as info:
        Client(**options(server, **changes))
    if "secret" in changes:
        assert str(changes["secret"]) not in str(info.value)  # the key is never echoed


def test_certs_holding_the_merchants_own_serial_are_refused(server: FakeWechatPay) -> None:
    own = server.merchant.serial
    public = serialization.load_pem_public_key(server.public_key_signer.public)
    for serial in (own, own.lower()):
        with pytest.raises(InvalidArgumentError, match=f"certs holds {serial}, the merchant's own"):
            Client(**options(server, serial=serial, certs={serial: public}))


def test_shapes_the_fake_server_generates_are_accepted(server: FakeWechatPay) -> None:
    for _ in range(20):
        fake = FakeWechatPay()  # fresh serials, secrets and keys each time
        assert Client(**fake.client_options()).config.serial == fake.merchant.serial
    lower = Client(**options(server, serial=server.merchant.serial.lower()))
    assert lower.config.serial == server.merchant.serial.lower()  # sent as given


# --- 7. encrypted private keys ----------------------------------------------------------------
def test_encrypted_private_key_needs_and_takes_private_key_password(
    server: FakeWechatPay, tmp_path: Path
) -> None:
    pem = encrypted_pem(server)
    with pytest.raises(InvalidArgumentError, match="private_key_password=") as info:
        Client(**options(server, private_key=pem))
    assert PASSPHRASE not in str(info.value)
    with pytest.raises(InvalidArgumentError, match="wrong passphrase") as info:
        Client(**options(server, private_key=pem, private_key_password="not it"))
    assert "not it" not in str(info.value)
    path = tmp_path / "apiclient_key.pem"
    path.write_bytes(pem)
    for key, password in ((pem, PASSPHRASE), (f"file://{path}", PASSPHRASE.encode())):
        client = Client(**options(server, private_key=key, private_key_password=password))
        expected = server.merchant.private_key.private_numbers()
        assert client.config.private_key is not None
        assert client.config.private_key.private_numbers() == expected
        assert PASSPHRASE not in repr(client) + repr(client.config)
    merchant = client.for_merchant(
        mchid="1900000002",
        serial="ABCDEF",
        private_key=pem,
        private_key_password=PASSPHRASE,
    )
    assert merchant.config.private_key is not None
    with pytest.raises(InvalidArgumentError, match="private_key_password is given but"):
        Client(mchid="1900000001", private_key_password=PASSPHRASE)
    with pytest.raises(InvalidArgumentError, match="must be str or bytes"):
        Client(**options(server, private_key=pem, private_key_password=1234))


@pytest.mark.anyio
async def test_encrypted_private_key_signs_real_calls(
    wechatpay_server: FakeWechatPay,
) -> None:
    pem = encrypted_pem(wechatpay_server)
    async with wechatpay_server.client(private_key=pem, private_key_password=PASSPHRASE) as c:
        resp = await c.v3.marketing.favor.users._openid_.coupons.get(
            openid="o-1", query={"appid": "wx1"}
        )
    assert resp.status_code == 200


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WECHATPAY_")}
    return subprocess.run(
        [sys.executable, "-m", "wechatpay_chain", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment, **env},
    )


def test_cli_reads_the_private_key_password_from_the_environment(
    wechatpay_server: FakeWechatPay, tmp_path: Path
) -> None:
    key = tmp_path / "apiclient_key.pem"
    key.write_bytes(encrypted_pem(wechatpay_server))
    pub = tmp_path / "pub_key.pem"
    pub.write_bytes(wechatpay_server.public_key_signer.public)
    args = [
        "request",
        "v3/marketing/favor/users/o-cli/coupons",
        "--query",
        "appid=wx1",
        "-m",
        wechatpay_server.merchant.mchid,
        "-s",
        wechatpay_server.merchant.serial,
        "-k",
        str(key),
        "-c",
        f"{wechatpay_server.public_key_signer.serial}={pub}",
        "--base-url",
        wechatpay_server.base_url,
    ]
    by_default = run_cli(*args, env={"WECHATPAY_PRIVATE_KEY_PASSWORD": PASSPHRASE})
    assert by_default.returncode == 0, by_default.stderr
    named = run_cli(
        *args, "--private-key-password-env", "MY_KEY_PASS", env={"MY_KEY_PASS": PASSPHRASE}
    )
    assert named.returncode == 0, named.stderr
    missing = run_cli(*args, "--private-key-password-env", "MY_KEY_PASS", env={})
    assert missing.returncode != 0 and "MY_KEY_PASS is not set" in missing.stderr
    without = run_cli(*args, env={})
    assert without.returncode != 0 and "private_key_password" in without.stderr
    for done in (by_default, named, missing, without):
        assert PASSPHRASE not in done.stdout + done.stderr


# --- 8. UploadForm takes file:// URLs like every key loader ----------------------------------
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.mark.anyio
async def test_upload_form_takes_a_file_url(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    path = tmp_path / "logo image.png"
    path.write_bytes(PNG)
    url = path.as_uri()  # file:///…/logo%20image.png
    assert url.startswith("file:///")
    resp = await wechatpay_client.v3.merchant.media.upload.post(body=UploadForm(url))
    stored = wechatpay_server.files.media[resp.json()["media_id"]]
    assert (stored.content, stored.filename) == (PNG, "logo image.png")
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        UploadForm(url + ".missing")
    # A download's sink= takes the same URLs.
    target = tmp_path / "back again.png"
    await wechatpay_client.chain("v3/merchant-service/images/{media_id}").get(
        media_id=resp.json()["media_id"], sink=target.as_uri()
    )
    assert target.read_bytes() == PNG
    with pytest.raises(InvalidArgumentError, match="not an absolute file URL"):
        UploadForm("file://host/share/logo.png")


# --- 9. option types, and the names httpx/requests users try ----------------------------------
@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"timeout": "abc"}, r"timeout= must be seconds .*got str"),
        ({"timeout": -1}, "timeout= must be seconds"),
        ({"timeout": True}, "timeout= must be seconds"),
        ({"timeout": (1, 2)}, "timeout= must be seconds"),
        ({"security": "yes"}, "security= must be True or False, got str"),
        ({"nonceless": 1}, "nonceless= must be True or False, got int"),
        ({"extensions": ["x"]}, "extensions= must be a mapping"),
        ({"base_url": 8080}, "base_url= must be a str URL"),
        ({"body": {"a": 1}}, r"body= must be .* a dict goes in json="),
        ({"body": 12}, r"body= must be bytes, str, .*got int"),
        ({"query": [("a", "1")]}, "query= must be a mapping"),
        ({"sink": 3}, "sink= must be a path, a binary file"),
        ({"params": {"a": 1}}, r"params= -> use query="),
        ({"data": {"a": 1}}, r"data= -> use json="),
        ({"files": {"file": b""}}, r"files= -> use body=UploadForm"),
        ({"content": b""}, r"content= -> use body="),
        ({"stream": True}, r"stream= -> use sink="),
    ],
)
def test_wrong_option_types_and_foreign_names_are_refused_up_front(
    server: FakeWechatPay, given: dict[str, Any], message: str
) -> None:
    client = Client(**options(server))
    with pytest.raises(InvalidArgumentError, match=message):
        client.v3.pay.transactions.native.post_sync(**given)
    assert server.requests == []  # nothing was sent (the server is not even started)


def test_data_on_apiv2_suggests_xml(server: FakeWechatPay) -> None:
    client = Client(**options(server))
    with pytest.raises(InvalidArgumentError, match=r"data= -> use xml="):
        client.v2.pay.orderquery.post_sync(data={"a": 1})


@pytest.mark.anyio
async def test_good_option_types_are_accepted(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    node = wechatpay_client.v3.marketing.favor.users._openid_.coupons
    for timeout in (5, 5.0, None, httpx.Timeout(5.0), (5, 5, 5, None)):
        resp = await node.get(openid="o-1", query={"appid": "wx1"}, timeout=timeout)
        assert resp.status_code == 200
    sink = io.BytesIO()
    await node.get(openid="o-1", query={"appid": "wx1"}, sink=sink, extensions={})
    assert sink.getvalue().startswith(b"{")
