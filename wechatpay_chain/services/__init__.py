"""What a client offers beside the chain: certificates, media uploads, bills, batches.

Each service reaches the client through ``Session`` (``session.py``), never ``Client``.
"""

from .batch import BatchCall, Batches, BatchSummary
from .bill_csv import BillReader, read_bill
from .bills import Bills
from .certificates import Certificates
from .journal import Journal, JournalRow
from .media import Media
from .refresh import AutoRefresh
from .session import Node, Session

__all__ = [
    "AutoRefresh",
    "BatchCall",
    "BatchSummary",
    "Batches",
    "BillReader",
    "Bills",
    "Certificates",
    "Journal",
    "JournalRow",
    "Media",
    "Node",
    "Session",
    "read_bill",
]
