"""Media uploads against the fake WeChat Pay server over real loopback HTTP."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest

from wechatpay_chain import (
    APIError,
    Client,
    InvalidArgumentError,
    UploadForm,
    VerificationError,
    crypto,
)
from wechatpay_chain.middlewares.upload import content_type_for
from wechatpay_chain.protocol.v3 import parse_authorization, request_message
from wechatpay_chain.testing import FakeWechatPay
from wechatpay_chain.testing._multipart import parts

pytestmark = pytest.mark.anyio

UPLOAD = "v3/merchant/media/upload"


@pytest.fixture
def logo(fixtures_dir: Path) -> Path:
    return fixtures_dir / "logo.png"


async def test_upload_in_three_chain_forms(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, logo: Path
) -> None:
    c = wechatpay_client
    answers = [
        await c.v3.merchant.media.upload.post(body=UploadForm(logo)),
        await c.chain(UPLOAD).post(body=c.media.form(logo)),
        await c[UPLOAD].post(body=UploadForm(str(logo))),
    ]
    ids = [answer.json()["media_id"] for answer in answers]
    assert len(set(ids)) == 3
    expected = hashlib.sha256(logo.read_bytes()).hexdigest()
    for media_id in ids:
        stored = wechatpay_server.files.media[media_id]
        assert stored.sha256 == expected
        assert stored.content == logo.read_bytes()
        assert (stored.filename, stored.content_type) == ("logo.png", "image/png")
        assert stored.meta == {"filename": "logo.png", "sha256": expected}


async def test_signature_covers_the_meta_json_only(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, logo: Path
) -> None:
    await wechatpay_client.media.upload(logo)
    sent = wechatpay_server.requests[-1]
    found = parts(sent.headers["Content-Type"], sent.body)
    meta = found["meta"][1]
    digest = hashlib.sha256(logo.read_bytes()).hexdigest()
    assert meta == b'{"filename":"logo.png","sha256":"' + digest.encode() + b'"}'
    assert found["file"][1] == logo.read_bytes()
    auth = parse_authorization(sent.headers["Authorization"])
    message = request_message("POST", f"/{UPLOAD}", auth["timestamp"], auth["nonce_str"], meta)
    key = wechatpay_server.merchant.private_key.public_key()
    assert crypto.verify_sha256_rsa(message, auth["signature"], key)
    # sized, not chunked: WeChat Pay wants a Content-Length
    assert sent.headers["Content-Length"] == str(len(sent.body))
    assert "Transfer-Encoding" not in sent.headers


async def test_bytes_and_file_objects(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, logo: Path, tmp_path: Path
) -> None:
    data = logo.read_bytes()
    by_bytes = await wechatpay_client.media.upload(data, filename="a.jpg")
    stored = wechatpay_server.files.media[by_bytes.json()["media_id"]]
    assert (stored.filename, stored.content_type, stored.content) == ("a.jpg", "image/jpeg", data)
    with open(logo, "rb") as fh:
        fh.read(10)  # read from the current position
        by_file = await wechatpay_client.media.upload(fh)
        assert fh.tell() == len(data)
    stored = wechatpay_server.files.media[by_file.json()["media_id"]]
    assert (stored.filename, stored.content) == ("logo.png", data[10:])
    nameless = io.BytesIO(data)
    with pytest.raises(InvalidArgumentError, match="filename= is required"):
        UploadForm(nameless)
    resp = await wechatpay_client.media.upload(nameless, filename="b.bmp")
    assert wechatpay_server.files.media[resp.json()["media_id"]].content_type == "image/bmp"


def test_content_type_comes_from_the_extension() -> None:
    assert content_type_for("a.JPG") == "image/jpeg"
    assert content_type_for("clip.mp4") == "video/mp4"
    assert content_type_for("clip.rmvb") == "application/vnd.rn-realmedia-vbr"
    assert content_type_for("fapiao.pdf") == "application/pdf"
    assert content_type_for("noext") == "application/octet-stream"
    assert UploadForm(b"x", filename="a.png", content_type="image/x-custom").content_type == (
        "image/x-custom"
    )


async def test_other_upload_endpoints(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    video = await wechatpay_client.media.upload(
        b"\x00" * 1000, filename="clip.mp4", to="v3/merchant/media/video_upload"
    )
    assert wechatpay_server.files.media[video.json()["media_id"]].content_type == "video/mp4"
    image = await wechatpay_client.media.upload(
        b"img", filename="x.png", to=wechatpay_client.v3.marketing.favor.media["image-upload"]
    )
    assert image.json()["media_url"].startswith("https://")


async def test_fapiao_upload_with_sm3_digest(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    pdf = b"%PDF-1.4 fapiao"
    resp = await wechatpay_client.media.upload(
        pdf,
        filename="fapiao.pdf",
        to="v3/new-tax-control-fapiao/fapiao-applications/upload-fapiao-file",
        meta={"filename": None, "sub_mchid": "1900000109", "file_type": "PDF",
              "digest_algorithm": "SM3"},
        digest={"digest": "SM3"},
    )  # fmt: skip
    stored = wechatpay_server.files.media[resp.json()["fapiao_media_id"]]
    assert stored.meta == {
        "sub_mchid": "1900000109",
        "file_type": "PDF",
        "digest_algorithm": "SM3",
        "digest": crypto.sm3(pdf),
    }


async def test_the_fake_refuses_a_digest_that_does_not_match(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    wrong = UploadForm(b"img", filename="a.png", digest={"sha256": "sha1"})
    with pytest.raises(APIError) as info:
        await wechatpay_client.media.upload(wrong)
    assert (info.value.status_code, info.value.code) == (400, "PARAM_ERROR")
    assert "sha256 does not match" in info.value.message
    assert wechatpay_server.files.media == {}


async def test_unusual_filenames_round_trip(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    name = '发票 "1";x.png'
    resp = await wechatpay_client.media.upload(b"png", filename=name)
    stored = wechatpay_server.files.media[resp.json()["media_id"]]
    assert stored.filename == name and stored.meta["filename"] == name
    with pytest.raises(InvalidArgumentError, match="line breaks"):
        UploadForm(b"png", filename="a\r\nX-Evil: 1.png")


async def test_file_too_large_for_the_endpoint_sends_nothing(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    with pytest.raises(InvalidArgumentError, match=r"accepts at most 2097152 bytes"):
        await wechatpay_client.media.upload(b"\x00" * (2 * 1024 * 1024 + 1), filename="a.png")
    with pytest.raises(InvalidArgumentError, match=r"accepts at most 5242880 bytes"):
        await wechatpay_client.media.upload(
            b"\x00" * (5 * 1024 * 1024 + 1), filename="a.mp4", to="v3/merchant/media/video_upload"
        )
    with pytest.raises(InvalidArgumentError, match="is empty"):
        await wechatpay_client.media.upload(b"", filename="a.png")
    assert wechatpay_server.requests == []
    # the fake enforces the documented limit too, for clients that override it
    with pytest.raises(APIError, match="文件大小超过限制"):
        await wechatpay_client.media.upload(
            b"\x00" * (2 * 1024 * 1024 + 1), filename="a.png", max_size=None
        )


async def test_large_upload_streams_from_disk(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    big = tmp_path / "big.mp4"
    block = os.urandom(1024 * 1024)
    with open(big, "wb") as fh:
        for _ in range(20):
            fh.write(block)
    wechatpay_server.files.accept_uploads("v3/test/big-upload")
    resp = await wechatpay_client.media.upload(big, to="v3/test/big-upload", max_size=None)
    stored = wechatpay_server.files.media[resp.json()["media_id"]]
    assert stored.size == 20 * 1024 * 1024
    assert stored.sha256 == hashlib.sha256(block * 20).hexdigest()
    assert wechatpay_server.requests[-1].body_file is not None  # spooled, not in memory


async def test_missing_and_unreadable_files(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        UploadForm(tmp_path / "nope.png")
    gone = tmp_path / "gone.png"
    gone.write_bytes(b"png")
    form = UploadForm(gone)
    gone.unlink()
    with pytest.raises(InvalidArgumentError, match="cannot be read"):
        await wechatpay_client.media.upload(form)
    with open(tmp_path / "t.png", "w") as text:
        with pytest.raises(InvalidArgumentError, match="binary mode"):
            UploadForm(text)
    with pytest.raises(InvalidArgumentError, match="must be a path, bytes or a binary file"):
        UploadForm(42)  # type: ignore[arg-type]
    assert wechatpay_server.requests == []


class _Unseekable(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


def test_unseekable_file_objects_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="seekable"):
        UploadForm(_Unseekable(), filename="a.png")  # type: ignore[arg-type]


class _ChangesWhileUploading(io.BytesIO):
    """Its content changes after the digest pass, before the upload pass."""

    rewinds = 0

    def seek(self, pos: int, whence: int = 0) -> int:
        if (pos, whence) == (0, 0):
            self.rewinds += 1
            if self.rewinds == 3:  # size check, digest pass, then the upload pass
                self.getbuffer()[100] ^= 1
        return super().seek(pos, whence)


async def test_file_changed_during_upload_is_aborted(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    source = _ChangesWhileUploading(b"x" * 600_000)
    with pytest.raises(InvalidArgumentError, match="changed while it was being uploaded"):
        await wechatpay_client.media.upload(source, filename="a.png")
    assert wechatpay_server.files.media == {}
    # the client is fine afterwards
    resp = await wechatpay_client.media.upload(b"ok", filename="a.png")
    assert resp.status_code == 200


async def test_upload_answers_are_verified_and_images_download_unsigned(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, logo: Path, tmp_path: Path
) -> None:
    template = "v3/merchant-service/images/upload"
    wechatpay_server.misbehave("tamper_body", template=template)
    with pytest.raises(VerificationError, match="does not verify"):
        await wechatpay_client.media.upload(logo, to=template)
    media_id = (await wechatpay_client.media.upload(logo, to=template)).json()["media_id"]
    target = tmp_path / "image.png"
    resp = await wechatpay_client.v3["merchant-service/images/{media_id}"].get(
        media_id=media_id, sink=target
    )
    assert "Wechatpay-Signature" not in resp.headers
    assert target.read_bytes() == logo.read_bytes()


async def test_upload_form_options_for_apiv3_only(wechatpay_client: Client) -> None:
    # APIv2 uploads work (tests/test_v2_upload.py); their form has no meta JSON to add to.
    with pytest.raises(InvalidArgumentError, match="for APIv3 uploads"):
        await wechatpay_client.v2.secapi.mch.uploadmedia.post(
            body=UploadForm(b"x", filename="a.jpg", meta={"sub_mchid": "1900000109"})
        )
    with pytest.raises(InvalidArgumentError, match="not an UploadForm"):
        await wechatpay_client.media.upload(UploadForm(b"x", filename="a.jpg"), filename="b.jpg")


def test_upload_from_a_plain_script(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, logo: Path
) -> None:
    resp = wechatpay_client.v3.merchant.media.upload.post_sync(body=UploadForm(logo))
    assert resp.json()["media_id"] in wechatpay_server.files.media
    meta = json.loads(parts(wechatpay_server.requests[-1].headers["Content-Type"],
                            wechatpay_server.requests[-1].body)["meta"][1])  # fmt: skip
    assert meta["filename"] == "logo.png"
