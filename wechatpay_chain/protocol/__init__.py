"""Sans-I/O protocol logic: pure functions over bytes and dicts, no sockets, no event loop.

APIv3 signing and answer verification (``v3``), APIv2 XML signing (``v2``), URI templates
(``template``), the XML transformer, the formatter (nonces, timestamps, signed messages),
client-side payment parameters (``paysign``), sensitive-field serials (``sensitive``) and the
platform-certificate download (``certificates``). Nothing here imports httpx or anyio.
"""
