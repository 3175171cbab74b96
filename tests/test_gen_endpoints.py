"""tools/gen_endpoints.py's extraction, on a small documentation tree written here in the
format of the wechatpay-im/website pages (CI has no documentation checkout)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from _paths import PROJECT

sys.path.insert(0, str(PROJECT / "tools"))

from _render import attribute, render
from gen_endpoints import extract

SINGLE = """\
---
title: 下单
description: 不会被复制的描述。
---

# {{ $frontmatter.title }} {#post}

{{ $frontmatter.description }}

| 请求参数 | 类型 {.type} | 描述 {.desc}
| --- | --- | ---
| order_no {data-required} | string | 单号
| json {data-required} | object {data-tooltip="对应PHP的array"} | 声明请求的`JSON`数据结构
| mchid {data-required data-indent=1} | string | 商户号
| amount {data-required data-indent=1} | object {data-tooltip="对应PHP的array"} | 金额
| total {data-required data-indent=2} | integer | 总金额
| currency {data-indent=2} | string | 货币<br/>`CNY` \\| `USD` 枚举值之一
| goods {data-indent=1} | object[] {data-tooltip="对应PHP的array"} | 商品
| id {data-required data-indent=2} | string | 编号
| scene {data-indent=1} | string {data-tooltip=使用json_encode后的字符串 data-encoded=by-json_encode} | 场景
| {colspan=3 .im-table-line}
| ip {data-indent=2} | string | 终端IP
| name {data-indent=1} | string {data-tooltip=加密 data-encrypted=by-rsa-pubkey} | 姓名
| headers {data-required} | object {data-tooltip="对应PHP的array"} | 声明请求的头参数
| Wechatpay-Serial {data-required data-indent=1} | string | 序列号

{.im-table #request}

```php [同步纯链式]
| not | a | row
```

| 返回字典 | 类型 {.type} | 描述 {.desc}
| --- | --- | ---
| state {data-required} | string | 状态<br/>`OK` \\| `FAIL` 枚举值之一
| items | object[] {data-tooltip="对应PHP的array"} | 明细
| n {data-indent=1} | integer | 数量

{.im-table #response}

参阅 [官方文档](https://pay.weixin.qq.com/doc/v3/merchant/1)
"""

MIX = """\
---
title: 申请及查询
---

# {{ $frontmatter.title }} {#mix}

## 申请 {#post}

| 请求参数 | 类型 {.type} | 描述 {.desc}
| --- | --- | ---
| json {data-required} | object | 数据
| no {data-required data-indent=1} | string | 编号

{.im-table #request}

| 返回字典 | 类型 {.type} | 描述 {.desc}
| --- | --- | ---
| -- | -- | --

{.im-table #response}

参阅 [官方文档](https://pay.weixin.qq.com/doc/v3/merchant/2)

## 查询 {#get}

| 请求参数 | 类型 {.type} | 描述 {.desc}
| --- | --- | ---
| query {data-required} | object | 查询参数
| offset {data-indent=1} | integer | 偏移

{.im-table #request}

参阅 [官方文档](https://pay.weixin.qq.com/doc/v3/merchant/3)
"""

V2 = """\
---
title: 退款
---

# {{ $frontmatter.title }} {#post}

| 请求参数 | 类型 {.type} | 描述 {.desc}
| --- | --- | ---
| xml {data-required} | object | 声明请求的`XML`数据结构
| mch_id {data-required data-indent=1} | string | 商户号
| nonce_str {data-required data-indent=1} | string | 随机字符串
| sign_type {data-indent=1} | string | 签名类型<br/>`MD5` \\| `HMAC-SHA256` 枚举值之一
| security {data-required} | `true` | 声明加载商户API证书

{.im-table #request}
"""


def docs(tmp_path: Path) -> Path:
    pages = {
        "openapi/v3/demo/orders/{order_no}/pay.md": SINGLE,
        "openapi/v3/demo/orders/index.md": MIX,
        "openapi/v2/secapi/demo/refund.md": V2,
        "openapi/index.md": "# not an endpoint\n",
    }
    for rel, text in pages.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


def by_name(fields: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f["n"]: f for f in fields}


def test_pages_become_calls_with_templates_methods_titles_and_links(tmp_path: Path) -> None:
    calls = extract(docs(tmp_path))["endpoints"]
    assert [(c["method"], c["template"], c["title"], c["link"][-1:]) for c in calls] == [
        ("POST", "v2/secapi/demo/refund", "退款", ""),
        ("GET", "v3/demo/orders/", "查询", "3"),
        ("POST", "v3/demo/orders/", "申请", "2"),
        ("POST", "v3/demo/orders/{order_no}/pay", "下单", "1"),
    ]
    assert "不会被复制" not in str(calls)  # facts only, no description text


def test_rows_nest_by_indent_with_types_required_flags_and_enums(tmp_path: Path) -> None:
    pay = extract(docs(tmp_path))["endpoints"][-1]
    request = by_name(pay["request"])
    assert request["order_no"] == {"n": "order_no", "t": "string", "r": 1}
    body = by_name(request["json"]["f"])
    assert body["amount"]["f"] == [
        {"n": "total", "t": "integer", "r": 1},
        {"n": "currency", "t": "string", "e": ["CNY", "USD"]},
    ]
    assert body["goods"]["t"] == "object[]" and body["goods"]["f"][0]["r"] == 1
    assert body["scene"]["j"] == 1 and body["scene"]["f"] == [{"n": "ip", "t": "string"}]
    assert body["name"]["x"] == 1
    assert by_name(pay["response"])["state"]["e"] == ["OK", "FAIL"]
    assert "not" not in by_name(pay["response"])  # a table row inside a code block is not one


def test_the_stubs_made_from_it_spell_what_the_chain_spells(tmp_path: Path) -> None:
    files = render(extract(docs(tmp_path)))
    demo = files["v3/demo.pyi"]
    assert "class Demo_Orders_ByOrderNo(Node):" in demo
    assert "def _order_no_(self) -> Demo_Orders_ByOrderNo: ..." in demo
    assert "def __getitem__(self, path: Literal['']) -> Demo_Orders_Slash: ..." in demo
    assert "currency: Literal['CNY', 'USD']" in demo
    assert "scene: str" in demo  # a JSON-encoded string stays a string
    assert (
        "def post(self, *, order_no: str | int, json: Demo_Orders_ByOrderNo_Pay_Post_Json" in demo
    )
    assert (
        "def get_sync(self, *, query: Demo_Orders_Slash_Get_Query, headers: Headers = ..." in demo
    )
    refund = files["v2/secapi.pyi"]
    assert "nonce_str: str" in refund and "mch_id: Required[str]" in refund  # the SDK adds it
    assert "security: bool, nonceless: bool = ..." in refund
    root = files["__init__.pyi"]
    assert (
        "def __getitem__(self, path: Literal['v3/demo/orders/']) -> _v3_demo.Demo_Orders_Slash"
        in root
    )
    assert attribute("out-trade-no") == "outTradeNo" and attribute("{x}") == "_x_"
    assert attribute("global") == "global_" and attribute("addInstitutionsub") is None
