"""Bill downloads (streamed, hash-checked, gzip), sink= on any endpoint, and bill parsing."""

from __future__ import annotations

import gzip
import hashlib
import io
from datetime import date
from pathlib import Path

import httpx
import pytest
from _paths import BENCH

from wechatpay_chain import (
    APIError,
    Client,
    InvalidArgumentError,
    Sink,
    VerificationError,
    read_bill,
)
from wechatpay_chain.protocol.v3 import is_unsigned_v3
from wechatpay_chain.testing import FakeWechatPay, make_bill

pytestmark = pytest.mark.anyio

DAY = "2024-01-31"
FIXTURE_SHA1 = "9bb6cd819be348f17a9cbcedddc8eb62fefbd790"


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --- parsing -------------------------------------------------------------------------------
def test_reads_the_real_bill_sample(fixtures_dir: Path) -> None:
    path = fixtures_dir / "bill.ALL.csv"
    assert hashlib.sha1(path.read_bytes()).hexdigest() == FIXTURE_SHA1
    bill = read_bill(path)
    records = list(bill)
    assert len(records) == 45
    assert bill.header is not None and len(bill.header) == 27
    assert bill.header[0] == "交易时间"  # the BOM is gone
    first = records[0]
    assert first["交易时间"] == "2019-02-19 05:01:46"
    assert first["微信订单号"] == "4200000263201902167700134212"
    assert first["商品名称"] == "系统拨测-cheeryin-test_micropay_succ"
    assert first["费率备注"] == ""
    assert all(not value.startswith("`") for r in records for value in r.values())
    assert bill.summary == {
        "总交易单数": "45.0",
        "应结订单总金额": "0.47",
        "退款总金额": "0.14",
        "充值券退款总金额": "0.0",
        "手续费总金额": "0.08",
        "订单总金额": "0.47",
        "申请退款总金额": "0.14",
    }


async def test_reads_gzip_bills_asynchronously(fixtures_dir: Path) -> None:
    raw = (fixtures_dir / "bill.ALL.csv").read_bytes()
    expected = list(read_bill(raw))
    bill = read_bill(io.BytesIO(gzip.compress(raw)))
    records = [record async for record in bill]
    assert records == expected
    assert bill.summary is not None and bill.summary["总交易单数"] == "45.0"


def test_values_may_hold_commas() -> None:
    records = list(read_bill(make_bill(DAY, records=2)))
    assert records[0]["商品名称"] == "咖啡,大杯"
    assert records[1]["商品名称"] == "测试商品"


def test_malformed_bills_raise_with_the_line_number() -> None:
    good = make_bill(DAY, records=2).decode()
    lines = good.split("\r\n")
    lines[2] = lines[2] + ",`extra"
    with pytest.raises(InvalidArgumentError, match="bill line 3 has 28 values; its header has 27"):
        list(read_bill("\r\n".join(lines).encode()))
    with pytest.raises(InvalidArgumentError, match="no header"):
        list(read_bill(b"`1,`2\r\n"))
    truncated = gzip.compress(good.encode())[:-20]
    with pytest.raises(InvalidArgumentError, match="cannot be read"):
        list(read_bill(truncated))
    bill = read_bill(good.encode())
    list(bill)
    with pytest.raises(InvalidArgumentError, match="iterated once"):
        list(bill)


# --- APIv3 bills ---------------------------------------------------------------------------
@pytest.mark.parametrize("tar_type", [None, "GZIP"])
async def test_trade_bill_downloads_checked_into_a_path(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path, tar_type: str | None
) -> None:
    content = make_bill(DAY, records=50)
    wechatpay_server.files.add_bill(content, bill_date=DAY)
    target = tmp_path / "bill.csv"
    resp = await wechatpay_client.bills.download(target, bill_date=DAY, tar_type=tar_type)
    assert target.read_bytes() == content
    assert resp.extensions["sink_size"] == len(content)
    assert leftovers(tmp_path) == ["bill.csv"]
    ask, fetch = wechatpay_server.requests[-2:]
    assert ask.path == "/v3/bill/tradebill" and ask.query["bill_date"] == DAY
    assert fetch.path == "/v3/billdownload/file" and fetch.mchid  # the download is signed too
    assert len(list(read_bill(target))) == 50


async def test_gzip_bill_kept_compressed_is_still_checked(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    content = make_bill(DAY, records=5)
    wechatpay_server.files.add_bill(content, bill_date=DAY)
    sink = io.BytesIO()
    await wechatpay_client.bills.download(sink, bill_date=date(2024, 1, 31), tar_type="GZIP",
                                          decompress=False)  # fmt: skip
    assert sink.getvalue()[:2] == b"\x1f\x8b"
    assert gzip.decompress(sink.getvalue()) == content
    wechatpay_server.files.misbehave("wrong_hash")
    sink = io.BytesIO(b"kept")
    sink.seek(4)
    with pytest.raises(VerificationError, match="SHA1 is"):
        await wechatpay_client.bills.download(sink, bill_date=DAY, tar_type="GZIP",
                                              decompress=False)  # fmt: skip
    assert sink.getvalue() == b"kept"  # a file object is truncated back


async def test_hash_mismatch_leaves_nothing_behind(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    target = tmp_path / "bill.csv"
    target.write_bytes(b"yesterday's bill")
    wechatpay_server.files.misbehave("wrong_hash")
    with pytest.raises(VerificationError, match="is corrupt or incomplete"):
        await wechatpay_client.bills.download(target, bill_date=DAY)
    assert target.read_bytes() == b"yesterday's bill"  # untouched: all or nothing
    assert leftovers(tmp_path) == ["bill.csv"]


async def test_truncated_download_raises_and_leaves_nothing(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    wechatpay_server.files.add_bill(make_bill(DAY, records=2000), bill_date=DAY)
    wechatpay_server.files.misbehave("truncate")
    with pytest.raises(httpx.RemoteProtocolError):
        await wechatpay_client.bills.download(tmp_path / "bill.csv", bill_date=DAY)
    assert leftovers(tmp_path) == []
    wechatpay_server.files.misbehave("truncate")
    with pytest.raises(httpx.RemoteProtocolError):
        await wechatpay_client.bills.download(tmp_path / "b.csv", bill_date=DAY, tar_type="GZIP")
    assert leftovers(tmp_path) == []


async def test_corrupt_gzip_raises_and_leaves_nothing(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    wechatpay_server.files.add_bill(make_bill(DAY, records=2000), bill_date=DAY)
    wechatpay_server.files.misbehave("corrupt_gzip")
    with pytest.raises(VerificationError, match="gzip data is corrupt"):
        await wechatpay_client.bills.download(tmp_path / "bill.csv", bill_date=DAY, tar_type="GZIP")
    assert leftovers(tmp_path) == []


async def test_streamed_gzip_of_unknown_length(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    block = make_bill(DAY, records=1).split(b"\r\n", 1)[0] + b"\r\n"  # the header line
    rows = [f"`{i},`x\r\n".encode() for i in range(200_000)]
    wechatpay_server.files.add_bill(lambda: [block, *rows], bill_date=DAY)
    resp = await wechatpay_client.bills.download(tmp_path / "b.csv", bill_date=DAY, tar_type="GZIP")
    assert "Content-Length" not in resp.headers  # chunked gzip, produced on the fly
    expected = block + b"".join(rows)
    assert (tmp_path / "b.csv").read_bytes() == expected


async def test_no_bill_is_an_api_error(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    wechatpay_server.files.misbehave("no_bill")
    with pytest.raises(APIError) as info:
        await wechatpay_client.bills.download(tmp_path / "bill.csv", bill_date=DAY)
    assert info.value.code == "NO_STATEMENT_EXIST"
    assert leftovers(tmp_path) == []


async def test_fundflow_bill(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    resp = await wechatpay_client.bills.download_fundflow(
        tmp_path / "flow.csv", bill_date=DAY, account_type="OPERATION", tar_type="GZIP"
    )
    assert resp.status_code == 200
    assert wechatpay_server.requests[-2].query["account_type"] == "OPERATION"
    bill = read_bill(tmp_path / "flow.csv")
    assert len(list(bill)) == 3
    assert bill.summary is not None and bill.summary["资金流水总笔数"] == "3"


async def test_bad_input_is_refused_before_sending(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    bills = wechatpay_client.bills
    with pytest.raises(InvalidArgumentError, match="bill_date"):
        await bills.download(tmp_path / "b.csv", bill_date="2024/01/31")
    with pytest.raises(InvalidArgumentError, match="tar_type"):
        await bills.download(tmp_path / "b.csv", bill_date=DAY, tar_type="ZIP")
    with pytest.raises(InvalidArgumentError, match="sink must be a path or a binary file"):
        await bills.download(42, bill_date=DAY)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="path or a binary file"):
        await bills.download(Sink(tmp_path / "b.csv"), bill_date=DAY)  # type: ignore[arg-type]
    assert wechatpay_server.requests == []


async def test_unwritable_sinks(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    with pytest.raises(InvalidArgumentError, match="cannot be written"):
        await wechatpay_client.bills.download(tmp_path / "missing" / "b.csv", bill_date=DAY)
    with pytest.raises(InvalidArgumentError, match="is a directory"):
        await wechatpay_client.bills.download(tmp_path, bill_date=DAY)
    (tmp_path / "r.csv").write_bytes(b"")
    with open(tmp_path / "r.csv", "rb") as read_only:
        with pytest.raises(InvalidArgumentError, match="not open for writing"):
            await wechatpay_client.bills.download(read_only, bill_date=DAY)
    with open(tmp_path / "t.csv", "w") as text:
        with pytest.raises(InvalidArgumentError, match="binary mode"):
            await wechatpay_client.bills.download(text, bill_date=DAY)  # type: ignore[arg-type]
    assert wechatpay_server.files.downloads == 0  # no file was fetched into a bad sink


async def test_fetch_refuses_an_answer_without_hash(wechatpay_client: Client) -> None:
    with pytest.raises(VerificationError, match="cannot be checked"):
        await wechatpay_client.bills.fetch(
            {"download_url": "https://api.mch.weixin.qq.com/v3/billdownload/file?token=x"},
            io.BytesIO(),
        )


# --- sink= on any endpoint -----------------------------------------------------------------
def test_unsigned_download_paths_are_exact() -> None:
    assert is_unsigned_v3("v3/billdownload/file")
    assert is_unsigned_v3("v3/billdownload/file?token=abc")
    assert is_unsigned_v3("v3/merchant-service/images/abc%2B")
    assert is_unsigned_v3("v3/new-tax-control-fapiao/download-invoice-file")
    assert not is_unsigned_v3("v3/merchant-service/images/upload", "POST")
    assert not is_unsigned_v3("v3/merchant-service/images/a/b")
    assert not is_unsigned_v3("v3/billdownload/filex")
    assert not is_unsigned_v3("v3/bill/tradebill")


async def test_signed_answers_streamed_to_a_sink_are_verified(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    node = wechatpay_client.v3.marketing.favor.users._openid_.coupons
    target = tmp_path / "coupons.json"
    resp = await node.get(openid="o-1", query={"appid": "wx1"}, sink=target)
    assert resp.headers["Wechatpay-Signature"]
    assert target.read_bytes().startswith(b'{"data": []')
    target.unlink()
    faults = (
        ("tamper_body", "does not verify"),
        ("no_signature", "not signed"),
        ("unknown_serial", "which certs does not hold"),
    )
    for fault, message in faults:
        wechatpay_server.misbehave(fault)
        with pytest.raises(VerificationError, match=message):
            await node.get(openid="o-1", query={"appid": "wx1"}, sink=target)
        assert leftovers(tmp_path) == []
    sink = io.BytesIO()
    wechatpay_server.misbehave("tamper_body")
    with pytest.raises(VerificationError):
        await node.get(openid="o-1", query={"appid": "wx1"}, sink=sink)
    assert sink.getvalue() == b""


async def test_error_answers_never_reach_the_sink(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    with pytest.raises(APIError) as info:
        await wechatpay_client.v3.billdownload.file.get(
            query={"token": "unknown"}, sink=tmp_path / "b.csv"
        )
    assert info.value.code == "INVALID_REQUEST"
    assert leftovers(tmp_path) == []


# --- APIv2 bills ---------------------------------------------------------------------------
@pytest.mark.parametrize("tar_type", [None, "GZIP"])
async def test_v2_downloadbill(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path, tar_type: str | None
) -> None:
    content = make_bill(DAY, records=7)
    wechatpay_server.files.add_bill(content, bill_date=DAY, bill_type="SUCCESS")
    target = tmp_path / "bill.csv"
    await wechatpay_client.bills.download_v2(
        target, appid="wx1", bill_date="20240131", bill_type="SUCCESS", tar_type=tar_type
    )
    assert target.read_bytes() == content
    sent = wechatpay_server.requests[-1]
    assert sent.data["bill_date"] == "20240131" and sent.data["sign"]


async def test_v2_no_bill_is_an_api_error_and_no_file(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    wechatpay_server.files.misbehave("no_bill")
    with pytest.raises(APIError) as info:
        await wechatpay_client.bills.download_v2(tmp_path / "b.csv", appid="wx1", bill_date=DAY)
    assert (info.value.return_code, info.value.return_msg) == ("FAIL", "No Bill Exist")
    assert leftovers(tmp_path) == []
    wechatpay_server.files.misbehave("no_bill")
    sink = io.BytesIO()
    with pytest.raises(APIError, match="No Bill Exist"):
        await wechatpay_client.v2.pay.downloadbill.post(
            xml={
                "appid": "wx1",
                "mch_id": wechatpay_server.merchant.mchid,
                "bill_date": "20240131",
                "bill_type": "ALL",
            },
            sink=sink,
        )
    assert sink.getvalue() == b""


async def test_v2_corrupt_gzip(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    wechatpay_server.files.add_bill(make_bill(DAY, records=500), bill_date=DAY)
    wechatpay_server.files.misbehave("corrupt_gzip")
    with pytest.raises(VerificationError, match="gzip"):
        await wechatpay_client.bills.download_v2(
            tmp_path / "b.csv", appid="wx1", bill_date=date(2024, 1, 31), tar_type="GZIP"
        )
    assert leftovers(tmp_path) == []


async def test_v2_fundflow_needs_the_merchant_certificate(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client, tmp_path: Path
) -> None:
    target = tmp_path / "flow.csv"
    await wechatpay_tls_client.bills.download_fundflow_v2(target, appid="wx1", bill_date=DAY)
    sent = wechatpay_tls_server.requests[-1]
    assert sent.tls_client_cert and sent.data["sign_type"] == "HMAC-SHA256"
    assert len(sent.data["sign"]) == 64
    assert target.read_bytes() == make_bill(
        DAY, kind="fundflow", mchid=wechatpay_tls_server.merchant.mchid
    )


def test_sink_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="both hash_type and hash_value"):
        Sink(tmp_path / "b.csv", hash_type="SHA1")
    with pytest.raises(InvalidArgumentError, match="not supported"):
        Sink(tmp_path / "b.csv", hash_type="CRC32", hash_value="00")
    with pytest.raises(InvalidArgumentError, match="must be hex"):
        Sink(tmp_path / "b.csv", hash_type="SHA1", hash_value="xyz")
    assert "SHA1=abcd" in repr(Sink(tmp_path / "b.csv", hash_type="SHA1", hash_value="ABCD"))


async def test_a_checked_sink_on_a_plain_chain_call(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    content = make_bill(DAY, records=3)
    wechatpay_server.files.add_bill(content, bill_date=DAY)
    info = (await wechatpay_client.v3.bill.tradebill.get(query={"bill_date": DAY})).json()
    token = info["download_url"].partition("token=")[2]
    target = tmp_path / "b.csv"
    checked = Sink(target, hash_type=info["hash_type"], hash_value=info["hash_value"])
    await wechatpay_client.v3.billdownload.file.get(query={"token": token}, sink=checked)
    assert target.read_bytes() == content
    wrong = Sink(target, hash_type="SHA1", hash_value=hashlib.sha1(b"x").hexdigest())
    with pytest.raises(VerificationError, match="SHA1"):
        await wechatpay_client.v3.billdownload.file.get(query={"token": token}, sink=wrong)
    assert target.read_bytes() == content  # the earlier file stays


async def test_v2_sink_on_a_signed_endpoint(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    from wechatpay_chain.testing import Reply

    wechatpay_server.route(
        "POST", "v2/pay/orderquery", lambda r: Reply(200, body=b"not xml", headers={})
    )
    fields = {"appid": "wx1", "mch_id": wechatpay_server.merchant.mchid, "out_trade_no": "1"}
    with pytest.raises(VerificationError, match="not XML"):
        await wechatpay_client.v2.pay.orderquery.post(xml=fields, sink=tmp_path / "a")
    assert leftovers(tmp_path) == []
    wechatpay_server.route("POST", "v2/pay/orderquery", lambda r: {"trade_state": "SUCCESS"})
    sink = io.BytesIO()
    resp = await wechatpay_client.v2.pay.orderquery.post(xml=fields, sink=sink)
    assert b"<trade_state><![CDATA[SUCCESS]]>" in resp.content  # verified, kept in memory
    assert sink.getvalue() == b""


@pytest.mark.slow
def test_memory_benchmark_runs() -> None:
    import subprocess
    import sys

    bench = BENCH / "memory.py"
    proc = subprocess.run(
        [sys.executable, str(bench), "--size-mib", "8"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    for scenario in ("sink", "bill", "upload"):
        assert any(line.startswith(scenario) and "  ok" in line for line in
                   proc.stdout.splitlines()), proc.stdout  # fmt: skip
