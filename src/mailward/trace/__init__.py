"""The message trace: every event of a message's life, recorded once, across nodes.

``events`` defines what is recorded, ``recorder`` writes it (and the counters the
dashboard charts read), ``search``/``stats`` read it back within a tenant's scope and
``retention`` prunes it.
"""
