"""DNS tools: lookups as the world sees them, and the records a customer must publish.

:mod:`~mailward.dns.model` holds the shared shapes, :mod:`~mailward.dns.lookup` the
lookups and :mod:`~mailward.dns.records` what to paste (resolvers: :mod:`mailward.net.resolver`).
"""

from mailward.dns.lookup import DnsTools
from mailward.dns.model import Lookup, Outcome, Record, RecordToPaste
from mailward.dns.records import records_to_paste, registrar_rows, zone_lines

__all__ = [
    "DnsTools",
    "Lookup",
    "Outcome",
    "Record",
    "RecordToPaste",
    "records_to_paste",
    "registrar_rows",
    "zone_lines",
]
