"""IMAP4rev1 formal syntax (RFC 3501 §9) building blocks used by :mod:`mailward.imap.parse`."""
