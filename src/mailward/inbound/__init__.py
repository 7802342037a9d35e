"""The intakes: MX (``mx``: recipient lookup, filter, quarantine, spool) and submission
(``submission``: sender ownership, DKIM signing, spool), composing the layers below."""
