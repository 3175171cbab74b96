"""``python -m wechatpay_chain``: the same as the ``wechatpay-chain`` command."""

from .cli import main

raise SystemExit(main())
