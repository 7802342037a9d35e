"""The quarantine: mail the filter held (``service``), the digests that list it
(``digest``) and the signed links that release it (``links``)."""
