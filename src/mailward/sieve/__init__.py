"""Sieve (RFC 5228) filtering at local delivery: scripts stored per mailbox and checked
when saved (:mod:`~mailward.sieve.scripts`), parsed by ``sievelib``
(:mod:`~mailward.sieve.grammar`), run by our own interpreter
(:mod:`~mailward.sieve.interpreter`), vacation replies (:mod:`~mailward.sieve.vacation`)."""
