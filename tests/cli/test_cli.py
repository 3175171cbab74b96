"""The ``wechatpay-chain`` command, run as a subprocess against the fake server."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import wechatpay_chain
from wechatpay_chain.cli import build_parser, main
from wechatpay_chain.cli.commands import EXIT_API, EXIT_LOCAL, EXIT_NETWORK, EXIT_VERIFICATION
from wechatpay_chain.testing import FakeWechatPay
from wechatpay_chain.testing._fake import private_pem
from wechatpay_chain.testing._notify import build_notification


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wechatpay_chain", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )


def run_together(*commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Independent commands at once: each subprocess spends most of its time importing."""
    started = [
        (
            command,
            subprocess.Popen(
                [sys.executable, "-m", "wechatpay_chain", *command],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for command in commands
    ]
    done = []
    for command, process in started:
        out, err = process.communicate(timeout=30)
        done.append(subprocess.CompletedProcess(command, process.returncode, out, err))
    return done


def in_process(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Commands that fail before sending anything: exit status and stderr."""
    status = main(list(args))
    return status, capsys.readouterr().err


def merchant_args(server: FakeWechatPay, folder: Path) -> list[str]:
    key = folder / "apiclient_key.pem"
    key.write_bytes(private_pem(server.merchant.private_key))
    return [
        "-m",
        server.merchant.mchid,
        "-s",
        server.merchant.serial,
        "-k",
        str(key),
        "--base-url",
        server.base_url,
    ]


def public_key_arg(server: FakeWechatPay, folder: Path) -> list[str]:
    path = folder / "pub_key.pem"
    path.write_bytes(server.public_key_signer.public)
    return ["-c", f"{server.public_key_signer.serial}={path}"]


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["certificates"],
        ["certificates", "download"],
        ["request"],
        ["notification"],
        ["notification", "verify"],
    ],
)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: wechatpay-chain")
    assert " ".join(["wechatpay-chain", *command]) in out


def test_certificates_download_writes_the_verified_certificates(
    wechatpay_server: FakeWechatPay, tmp_path: Path
) -> None:
    wechatpay_server.mode = "certificate"  # no -c: the answer verifies by what it carries
    out = tmp_path / "certs"
    done = run(
        "certificates",
        "download",
        *merchant_args(wechatpay_server, tmp_path),
        "-o",
        str(out),
        env={"WECHATPAY_APIV3_KEY": wechatpay_server.merchant.apiv3_key},
    )
    assert done.returncode == 0, done.stderr
    serial = wechatpay_server.certificate_signer.serial
    written = out / f"wechatpay_{serial}.pem"
    assert [p.name for p in out.iterdir()] == [written.name]
    assert written.read_bytes() == wechatpay_server.certificate_signer.public
    assert done.stdout.startswith(serial)
    assert str(written) in done.stdout
    assert wechatpay_server.merchant.apiv3_key not in done.stdout + done.stderr


def test_certificates_download_fails_closed(
    wechatpay_server: FakeWechatPay, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wechatpay_server.mode = "certificate"
    wechatpay_server.misbehave("tamper_signature", template="v3/certificates")
    out = tmp_path / "certs"
    args = [*merchant_args(wechatpay_server, tmp_path), "-o", str(out)]
    key = ["--apiv3-key", wechatpay_server.merchant.apiv3_key]
    tampered = run("certificates", "download", *args, *key)
    assert tampered.returncode == EXIT_VERIFICATION
    assert "does not verify" in tampered.stderr
    assert not out.exists()

    wechatpay_server.platform_certificates.mode = "public_key_only"
    public_key_only = run("certificates", "download", *args, *key)
    assert public_key_only.returncode == EXIT_API
    assert "public-key mode" in public_key_only.stderr
    assert "give it as -c PUB_KEY_ID_…=pub_key.pem" in public_key_only.stderr
    assert not out.exists()

    status, err = in_process("certificates", "download", *args, capsys=capsys)
    assert status == EXIT_LOCAL
    assert "APIv3 key is required" in err


def test_request_makes_a_signed_call_and_prints_the_verified_answer(
    wechatpay_server: FakeWechatPay, tmp_path: Path
) -> None:
    args = [*merchant_args(wechatpay_server, tmp_path), *public_key_arg(wechatpay_server, tmp_path)]
    body = {
        "stock_id": "9856000",
        "out_request_no": "cli-1",
        "appid": "wx1",
        "stock_creator_mchid": wechatpay_server.merchant.mchid,
    }
    posted = run(
        "request",
        "v3/marketing/favor/users/{openid}/coupons",
        "-P",
        "openid=o-cli",
        "--method",
        "POST",
        "--json",
        json.dumps(body),
        *args,
    )
    assert posted.returncode == 0, posted.stderr
    coupon_id = json.loads(posted.stdout)["coupon_id"]
    assert wechatpay_server.requests[-1].data == body

    listed = run(
        "request",
        "v3/marketing/favor/users/o-cli/coupons",
        "--query",
        "appid=wx1",
        "--query",
        "limit=5",
        "-i",
        *args,
    )
    assert listed.returncode == 0, listed.stderr
    head, _, payload = listed.stdout.partition("\n\n")
    assert head.startswith("HTTP/1.1 200")
    assert f"wechatpay-serial: {wechatpay_server.public_key_signer.serial}" in head
    page = json.loads(payload)
    assert [c["coupon_id"] for c in page["data"]] == [coupon_id]
    assert wechatpay_server.requests[-1].query == {"appid": "wx1", "limit": "5"}


def test_request_refuses_unverifiable_answers(
    wechatpay_server: FakeWechatPay, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [*merchant_args(wechatpay_server, tmp_path), *public_key_arg(wechatpay_server, tmp_path)]
    wechatpay_server.misbehave("tamper_body")
    tampered = run("request", "v3/marketing/favor/users/o/coupons", "--query", "appid=a", *args)
    assert tampered.returncode == EXIT_VERIFICATION
    assert "does not verify" in tampered.stderr
    assert tampered.stdout == ""

    wechatpay_server.mode = "certificate"  # no -c: certificates are downloaded first
    key = ["--apiv3-key", wechatpay_server.merchant.apiv3_key]
    bare = merchant_args(wechatpay_server, tmp_path)
    fetched = run(
        "request", "v3/marketing/favor/users/o/coupons", "--query", "appid=a", *bare, *key
    )
    assert fetched.returncode == 0, fetched.stderr
    assert json.loads(fetched.stdout)["total_count"] == 0
    assert [r.path for r in wechatpay_server.requests[-2:]] == [
        "/v3/certificates",
        "/v3/marketing/favor/users/o/coupons",
    ]

    status, err = in_process("request", "v3/marketing/favor/users/o/coupons", *bare, capsys=capsys)
    assert status == EXIT_LOCAL
    assert "answers must be verified" in err

    wechatpay_server.mode = "public_key"
    error, included = run_together(
        ["request", "v3/marketing/favor/users/o/coupons", *args],
        ["request", "v3/marketing/favor/users/o/coupons", "-i", *args],
    )
    assert error.returncode == EXIT_API
    assert "PARAM_ERROR" in error.stderr
    assert error.stdout == ""
    # -i shows an error answer as it shows a successful one: head, blank line, body
    assert included.returncode == EXIT_API
    head, _, payload = included.stdout.partition("\n\n")
    assert head.startswith("HTTP/1.1 400")
    assert "content-type: application/json" in head.lower()
    assert json.loads(payload)["code"] == "PARAM_ERROR"
    assert included.stderr.count("PARAM_ERROR") == 1


def test_request_signs_apiv2_calls_and_verifies_their_answers(
    wechatpay_server: FakeWechatPay, tmp_path: Path
) -> None:
    args = merchant_args(wechatpay_server, tmp_path)
    fields = {"coupon_stock_id": "1717", "appid": "wx1", "mch_id": wechatpay_server.merchant.mchid}
    query = ["request", "v2/mmpaymkttransfers/query_coupon_stock", "-X", "POST"]
    secret = ["--secret", wechatpay_server.merchant.secret]
    asked = run(*query, "--xml", json.dumps(fields), *secret, *args)
    assert asked.returncode == 0, asked.stderr
    assert "<coupon_stock_id><![CDATA[1717]]></coupon_stock_id>" in asked.stdout
    sent = wechatpay_server.requests[-1]
    assert sent.path == "/mmpaymkttransfers/query_coupon_stock"  # the v2/ prefix is dropped
    assert b"<sign>" in sent.body and b"<nonce_str>" in sent.body

    wechatpay_server.misbehave("v2_wrong_sign")
    forged = run(*query, "--xml", json.dumps(fields), *secret, *args)
    assert forged.returncode == EXIT_VERIFICATION
    assert "sign" in forged.stderr.lower() and forged.stdout == ""

    wrong_key = run(*query, "--xml", json.dumps(fields), "--secret", "x" * 32, *args)
    assert wrong_key.returncode == EXIT_API  # the fake server refuses the request's sign
    assert wrong_key.stdout == ""

    mixed = run(*query, "--json", "{}", *secret, *args)
    assert mixed.returncode == EXIT_LOCAL
    assert "--json is for APIv3" in mixed.stderr


def test_notification_verify_checks_a_saved_notification(
    wechatpay_server: FakeWechatPay, tmp_path: Path
) -> None:
    resource = {"out_trade_no": "1217752501", "trade_state": "SUCCESS"}
    headers, body = build_notification(wechatpay_server, "TRANSACTION.SUCCESS", resource)
    (tmp_path / "headers.json").write_text(json.dumps(headers))
    (tmp_path / "headers.txt").write_text(
        "POST /notify HTTP/1.1\n" + "".join(f"{k}: {v}\n" for k, v in headers.items())
    )
    (tmp_path / "body.json").write_bytes(body)
    (tmp_path / "tampered.json").write_bytes(body.replace(b'"summary":"', b'"summary":"!', 1))
    trust = [
        *public_key_arg(wechatpay_server, tmp_path),
        "--apiv3-key",
        wechatpay_server.merchant.apiv3_key,
    ]

    verify = ["notification", "verify", *trust, "--headers"]
    ok, as_lines, tampered = run_together(
        [*verify, str(tmp_path / "headers.json"), "--body", str(tmp_path / "body.json"),
         "--show-resource"],
        [*verify, str(tmp_path / "headers.txt"), "--body", str(tmp_path / "body.json")],
        [*verify, str(tmp_path / "headers.json"), "--body", str(tmp_path / "tampered.json")],
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "verified: id=" in ok.stdout and "event_type=TRANSACTION.SUCCESS" in ok.stdout
    assert '"out_trade_no": "1217752501"' in ok.stdout
    assert as_lines.returncode == 0, as_lines.stderr
    assert "1217752501" not in as_lines.stdout  # the resource only on request
    assert tampered.returncode == EXIT_VERIFICATION
    assert "rejected (bad_signature)" in tampered.stderr
    assert tampered.stderr.count("bad_signature") == 1  # the reason, printed once


def test_version_is_the_packages(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("--version", "-V"):
        with pytest.raises(SystemExit) as exited:
            main([flag])
        assert exited.value.code == 0
        assert capsys.readouterr().out == f"wechatpay-chain {wechatpay_chain.__version__}\n"


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


def test_a_short_flag_means_one_thing_in_every_command() -> None:
    meaning: dict[str, set[str]] = {}
    for parser in _parsers(build_parser()):
        for action in parser._actions:
            shorts = [o for o in action.option_strings if not o.startswith("--")]
            longs = [o for o in action.option_strings if o.startswith("--")]
            for short in shorts:
                meaning.setdefault(short, set()).update(longs)
    assert meaning["-q"] == {"--quiet"}
    assert meaning["-c"] == {"--cert"}
    assert {short: longs for short, longs in meaning.items() if len(longs) != 1} == {}


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ([], ["request"], ["certificates", "download"], ["notification", "verify"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        out = capsys.readouterr().out
        assert "exit status:" in out
        for code in (EXIT_API, EXIT_LOCAL, EXIT_VERIFICATION, EXIT_NETWORK):
            assert f"\n  {code}  " in out
    assert len({EXIT_API, EXIT_LOCAL, EXIT_VERIFICATION, EXIT_NETWORK, 0}) == 5


def test_messages_name_flags_not_python_parameters(
    wechatpay_server: FakeWechatPay, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    headers, body = build_notification(wechatpay_server, "TRANSACTION.SUCCESS", {"a": 1})
    (tmp_path / "headers.json").write_text(json.dumps(headers))
    (tmp_path / "body.json").write_bytes(body)
    files = ["--headers", str(tmp_path / "headers.json"), "--body", str(tmp_path / "body.json")]
    status, err = in_process("notification", "verify", *files, capsys=capsys)
    assert status == EXIT_LOCAL
    assert "-c/--cert is required" in err
    assert "certs" not in err

    wechatpay_server.mode = "certificate"
    args = [*merchant_args(wechatpay_server, tmp_path), "-o", str(tmp_path / "certs")]
    key = ["--apiv3-key", wechatpay_server.merchant.apiv3_key]
    refused = run("certificates", "download", "--no-bootstrap", *args, *key)
    assert refused.returncode == EXIT_VERIFICATION
    assert "--no-bootstrap forbids" in refused.stderr
    assert "bootstrap=False" not in refused.stderr

    no_cert = run(
        "request", "v2/mmpaymkttransfers/send_coupon", "-X", "POST", "--security",
        "--xml", "{}", "--secret", wechatpay_server.merchant.secret, *args[:-2],
    )  # fmt: skip
    assert no_cert.returncode == EXIT_LOCAL
    assert "--merchant-cert" in no_cert.stderr
    assert "merchant_cert" not in no_cert.stderr


def test_stale_notification_points_at_ignore_time(
    wechatpay_server: FakeWechatPay, tmp_path: Path
) -> None:
    long_ago = time.time() - 86400
    headers, body = build_notification(wechatpay_server, "REFUND.SUCCESS", {"a": 1}, now=long_ago)
    (tmp_path / "headers.json").write_text(json.dumps(headers))
    (tmp_path / "body.json").write_bytes(body)
    verify = [
        "notification", "verify", *public_key_arg(wechatpay_server, tmp_path),
        "--apiv3-key", wechatpay_server.merchant.apiv3_key,
        "--headers", str(tmp_path / "headers.json"), "--body", str(tmp_path / "body.json"),
    ]  # fmt: skip
    stale, as_of_then = run_together(verify, [*verify, "--ignore-time"])
    assert stale.returncode == EXIT_VERIFICATION
    assert "rejected (stale)" in stale.stderr
    assert stale.stderr.count("stale") == 1
    assert "--ignore-time" in stale.stderr
    assert as_of_then.returncode == 0, as_of_then.stderr
    assert "event_type=REFUND.SUCCESS" in as_of_then.stdout


def test_a_closed_pipe_is_neither_an_error_nor_noise(
    wechatpay_server: FakeWechatPay, tmp_path: Path
) -> None:
    headers, body = build_notification(wechatpay_server, "TRANSACTION.SUCCESS", {"a": "x" * 9000})
    (tmp_path / "headers.json").write_text(json.dumps(headers))
    (tmp_path / "body.json").write_bytes(body)
    verify = [
        "notification", "verify", *public_key_arg(wechatpay_server, tmp_path),
        "--apiv3-key", wechatpay_server.merchant.apiv3_key, "--show-resource",
        "--headers", str(tmp_path / "headers.json"), "--body", str(tmp_path / "body.json"),
    ]  # fmt: skip
    reader, writer = os.pipe()
    os.close(reader)  # like `| head` that has already gone: every write fails with EPIPE
    try:
        for command in (verify, ["--help"], ["--version"]):
            done = subprocess.run(
                [sys.executable, "-m", "wechatpay_chain", *command],
                stdout=writer,
                stderr=subprocess.PIPE,
                text=True,
                timeout=30,
            )
            assert (done.returncode, done.stderr) == (0, ""), command
    finally:
        os.close(writer)
    # the same verification fails as before when the notification does not check out
    tampered = tmp_path / "tampered.json"
    tampered.write_bytes(body.replace(b'"summary":"', b'"summary":"!', 1))
    failed = run(*verify[:-1], str(tampered))
    assert failed.returncode == EXIT_VERIFICATION


def test_request_security_presents_the_merchant_certificate(
    wechatpay_tls_server: FakeWechatPay, tmp_path: Path
) -> None:
    server = wechatpay_tls_server
    assert server.ca is not None
    m = server.merchant
    (tmp_path / "ca.pem").write_bytes(server.ca.pem)
    (tmp_path / "apiclient_cert.pem").write_bytes(server.ca.client_pem(m.mchid, m.private_key))
    fields = {
        "coupon_stock_id": "1717", "openid_count": 1, "partner_trade_no": "cli-mtls-1",
        "openid": "o-cli", "appid": "wx1", "mch_id": m.mchid,
    }  # fmt: skip
    command = [
        "request", "v2/mmpaymkttransfers/send_coupon", "-X", "POST", "--security",
        "--xml", json.dumps(fields), "--secret", m.secret,
        *merchant_args(server, tmp_path), "--merchant-cert", str(tmp_path / "apiclient_cert.pem"),
    ]  # fmt: skip
    sent, untrusted = run_together(
        [*command, "--cacert", str(tmp_path / "ca.pem")],
        command,  # the system's CAs do not know the test CA
    )
    assert sent.returncode == 0, sent.stderr
    assert "<result_code><![CDATA[SUCCESS]]></result_code>" in sent.stdout
    assert server.requests[-1].template == "v2/mmpaymkttransfers/send_coupon"
    assert untrusted.returncode == EXIT_NETWORK
    assert "the server's certificate did not verify" in untrusted.stderr
    assert "--cacert" in untrusted.stderr
    assert "merchant" not in untrusted.stderr
    assert "security=True" not in untrusted.stderr and "--security request" in untrusted.stderr
    assert untrusted.stdout == ""
