"""IMAP4rev1 access server.

``parse`` (and ``grammar/``) turn command bytes into typed commands, pure and
fuzzable with no I/O; the session state machine and the store backend live apart.
"""
