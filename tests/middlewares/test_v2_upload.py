"""APIv2 media upload (``POST v2/secapi/mch/uploadmedia``) against the fake WeChat Pay server
over real mutual TLS: the multipart form as WeChat Pay expects it (mch_id, media_hash,
sign_type, sign; file part ``media``), the signed answer, and the ways it is refused.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from wechatpay_chain import (
    APIError,
    Client,
    InvalidArgumentError,
    Transformer,
    UploadForm,
    VerificationError,
)
from wechatpay_chain.middlewares.pipeline import Handler, Request
from wechatpay_chain.middlewares.upload import V2Upload
from wechatpay_chain.protocol.v2 import sign_fields
from wechatpay_chain.testing import FakeWechatPay
from wechatpay_chain.testing._multipart import parts

pytestmark = pytest.mark.anyio

UPLOAD = "v2/secapi/mch/uploadmedia"
MIB = 1024 * 1024


@pytest.fixture
def logo(fixtures_dir: Path) -> Path:
    return fixtures_dir / "logo.png"


@pytest.fixture
def bad_secret_client(wechatpay_tls_server: FakeWechatPay) -> Iterator[Client]:
    client: Client = wechatpay_tls_server.client(secret="w" * 32)
    yield client
    client.close()


def media_id_of(response: httpx.Response) -> str:
    answer = Transformer.to_dict(response.content)
    assert answer["return_code"] == answer["result_code"] == "SUCCESS"
    media_id = answer["media_id"]
    assert isinstance(media_id, str) and media_id
    return media_id


def check_form(server: FakeWechatPay, data: bytes, filename: str, content_type: str) -> None:
    """The last request is the form WeChat Pay documents, signed with the APIv2 key."""
    sent = server.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/secapi/mch/uploadmedia")
    assert sent.tls_client_cert is True
    form = parts(sent.headers["Content-Type"], sent.body)
    assert list(form) == ["mch_id", "media_hash", "sign_type", "sign", "media"]
    text = {name: form[name][1].decode() for name in ("mch_id", "media_hash", "sign_type")}
    assert text == {
        "mch_id": server.merchant.mchid,
        "media_hash": hashlib.md5(data).hexdigest(),
        "sign_type": "HMAC-SHA256",
    }
    expected = sign_fields(text, server.merchant.secret, "HMAC-SHA256")
    assert form["sign"][1].decode() == expected and len(expected) == 64
    headers, content = form["media"]
    assert content == data
    assert headers["content-disposition"] == f'form-data; name="media"; filename="{filename}"'
    assert headers["content-type"] == content_type
    assert int(sent.headers["Content-Length"]) == len(sent.body)


async def test_upload_from_a_path_over_mutual_tls(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client, logo: Path
) -> None:
    server = wechatpay_tls_server
    resp = await wechatpay_tls_client.v2.secapi.mch.uploadmedia.post(
        body=UploadForm(logo), security=True
    )
    answer = Transformer.to_dict(resp.content)
    assert answer["mch_id"] == server.merchant.mchid
    assert len(answer["sign"]) == 64  # the answer is HMAC-SHA256 signed, and it verified
    stored = server.files.media[media_id_of(resp)]
    data = logo.read_bytes()
    assert (stored.template, stored.content, stored.filename) == (UPLOAD, data, "logo.png")
    assert stored.meta == {
        "mch_id": server.merchant.mchid,
        "media_hash": hashlib.md5(data).hexdigest(),
        "sign_type": "HMAC-SHA256",
    }
    check_form(server, data, "logo.png", "image/png")


async def test_upload_streams_a_large_file_and_bytes_in_three_forms(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client, tmp_path: Path
) -> None:
    server, c = wechatpay_tls_server, wechatpay_tls_client
    photo = tmp_path / "id_card.jpg"
    big = os.urandom(MIB + 12345)  # several chunks of the stream
    photo.write_bytes(big)
    uploads = [
        (c.v2.secapi.mch.uploadmedia, UploadForm(photo), big, "id_card.jpg"),
        (c.chain(UPLOAD), UploadForm(b"\xff\xd8jpeg", filename="a.jpg"), b"\xff\xd8jpeg", "a.jpg"),
        (c[UPLOAD], UploadForm(io.BytesIO(b"bmp!"), filename="b.bmp"), b"bmp!", "b.bmp"),
    ]
    ids = []
    for node, form, data, name in uploads:
        resp = await node.post(body=form, security=True)
        ids.append(media_id_of(resp))
        assert server.files.media[ids[-1]].content == data
        check_form(server, data, name, "image/jpeg" if name.endswith(".jpg") else "image/bmp")
    assert len(set(ids)) == 3


def test_upload_from_a_plain_script(wechatpay_tls_server: FakeWechatPay, logo: Path) -> None:
    with wechatpay_tls_server.client() as client:
        resp = client.v2.secapi.mch.uploadmedia.post_sync(
            body=UploadForm(b"GIF89a..", filename="a.gif"), security=True
        )
        assert wechatpay_tls_server.files.media[media_id_of(resp)].content == b"GIF89a.."
        check_form(wechatpay_tls_server, b"GIF89a..", "a.gif", "image/gif")
        resp = client.chain(UPLOAD).post_sync(body=UploadForm(logo), security=True)
        assert wechatpay_tls_server.files.media[media_id_of(resp)].content == logo.read_bytes()


async def test_a_forged_or_missing_answer_sign_is_refused(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client
) -> None:
    node = wechatpay_tls_client.v2.secapi.mch.uploadmedia
    for fault in ("v2_wrong_sign", "v2_unsigned"):
        wechatpay_tls_server.misbehave(fault, template=UPLOAD)
        with pytest.raises(VerificationError, match=r"\(HMAC-SHA256\)|no sign"):
            await node.post(body=UploadForm(b"png", filename="a.png"), security=True)
    assert len(wechatpay_tls_server.files.media) == 2  # stored, but the answers were not trusted
    wechatpay_tls_server.misbehave("status_500", template=UPLOAD)
    with pytest.raises(APIError) as caught:
        await node.post(body=UploadForm(b"png", filename="a.png"), security=True)
    assert caught.value.response.status_code == 500


async def test_a_wrong_secret_is_refused_by_the_server(
    wechatpay_tls_server: FakeWechatPay, bad_secret_client: Client
) -> None:
    with pytest.raises(APIError) as caught:
        await bad_secret_client.v2.secapi.mch.uploadmedia.post(
            body=UploadForm(b"png", filename="a.png"), security=True
        )
    assert (caught.value.err_code, caught.value.code) == ("SIGNERROR", "SIGNERROR")
    assert caught.value.return_code == "SUCCESS"
    assert wechatpay_tls_server.files.media == {}


async def test_a_media_hash_that_is_not_the_files_is_refused_by_the_server(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client
) -> None:
    async def wrong_hash(request: Request, call_next: Handler) -> httpx.Response:
        upload = request.content
        assert isinstance(upload, V2Upload)
        request.content = V2Upload(upload._form, upload._size, {**upload._digests, "md5": "0" * 32})
        return await call_next(request)

    client = wechatpay_tls_client.insert("wrong_hash", wrong_hash, before="signer")
    with pytest.raises(APIError) as caught:
        await client.v2.secapi.mch.uploadmedia.post(
            body=UploadForm(b"png", filename="a.png"), security=True
        )
    assert caught.value.err_code == "PARAM_ERROR"
    assert "media_hash" in (caught.value.err_code_des or "")
    assert wechatpay_tls_server.files.media == {}


async def test_size_limit_is_checked_before_sending(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client
) -> None:
    node = wechatpay_tls_client.v2.secapi.mch.uploadmedia
    too_big = b"\0" * (2 * MIB + 1)
    with pytest.raises(InvalidArgumentError, match="at most 2097152 bytes"):
        await node.post(body=UploadForm(too_big, filename="a.png"), security=True)
    with pytest.raises(InvalidArgumentError, match="at most 3 bytes"):
        await node.post(body=UploadForm(b"four", filename="a.png", max_size=3), security=True)
    assert wechatpay_tls_server.requests == []
    # max_size=None sends it anyway; WeChat Pay (the fake) refuses it.
    with pytest.raises(APIError) as caught:
        await node.post(body=UploadForm(too_big, filename="a.png", max_size=None), security=True)
    assert caught.value.err_code == "PARAM_ERROR"
    assert len(wechatpay_tls_server.requests) == 1
    resp = await node.post(body=UploadForm(b"\0" * 2 * MIB, filename="a.png"), security=True)
    assert wechatpay_tls_server.files.media[media_id_of(resp)].size == 2 * MIB


async def test_without_security_it_is_sent_as_asked_and_refused(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client
) -> None:
    with pytest.raises(APIError) as caught:
        await wechatpay_tls_client.v2.secapi.mch.uploadmedia.post(
            body=UploadForm(b"png", filename="a.png")
        )
    assert caught.value.err_code == "CA_ERROR"
    assert wechatpay_tls_server.requests[-1].tls_client_cert is False
    assert wechatpay_tls_server.files.media == {}


async def test_bad_combinations_are_refused_before_sending(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client
) -> None:
    node = wechatpay_tls_client.v2.secapi.mch.uploadmedia
    form = UploadForm(b"png", filename="a.png")
    with pytest.raises(InvalidArgumentError, match="one of json=, xml=, body="):
        await node.post(body=form, xml={"mch_id": wechatpay_tls_server.merchant.mchid})
    with pytest.raises(InvalidArgumentError, match="meta= and digest= are for APIv3"):
        await node.post(body=UploadForm(b"png", filename="a.png", meta={"x": "1"}), security=True)
    with pytest.raises(InvalidArgumentError, match="meta= and digest= are for APIv3"):
        await node.post(body=UploadForm(b"png", filename="a.png", digest={"d": "sm3"}))
    # A stack without the signer cannot send the form unsigned.
    with pytest.raises(InvalidArgumentError, match="was not signed"):
        await wechatpay_tls_client.without("signer", "verifier").chain(UPLOAD).post(
            body=form, security=True
        )
    assert wechatpay_tls_server.requests == []
    assert wechatpay_tls_server.files.media == {}


async def test_media_upload_helper_sends_with_the_merchant_certificate(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client, logo: Path
) -> None:
    resp = await wechatpay_tls_client.media.upload(logo, to=UPLOAD)
    assert wechatpay_tls_server.files.media[media_id_of(resp)].content == logo.read_bytes()
    check_form(wechatpay_tls_server, logo.read_bytes(), "logo.png", "image/png")
