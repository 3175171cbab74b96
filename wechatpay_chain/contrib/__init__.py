"""Framework integrations, each behind its extra: ``contrib.fastapi`` (``[fastapi]``) and
``contrib.aiohttp`` (``[aiohttp]``). Importing this package imports no framework.
"""
