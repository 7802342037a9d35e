"""SMTP listeners (``mx``, ``submission``) and their TLS helpers."""
