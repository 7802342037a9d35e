"""Well-known brands' domains that phishing imitates (``phishing.PhishingCheck`` compares a
message's From and link domains with them and with the recipients' own domains).

A modest hand-kept list of registrable domains, by kind: banks, payment services, the big
mail and cloud providers, parcel services. Only what is impersonated often and whose name is
distinctive: words in everyday use (``office.com``, ``live.com``, ``box.com``, ``wise.com``)
are left out, since the check would then flag every domain one letter away from a word.
Names shorter than ``phishing.EDIT_MIN`` characters are only compared for homoglyphs
(``paypal`` against ``paypal`` written with a Cyrillic ``a``, U+0430), never by edit distance.

To protect another brand, add its registrable domain (as ``publicsuffixlist`` reads it:
``barclays.co.uk``, not ``www.barclays.co.uk``) to the kind it belongs to.
"""

from __future__ import annotations

__all__ = ["BRANDS", "BRAND_DOMAINS"]

BRANDS: dict[str, tuple[str, ...]] = {
    "banks": (
        "bankofamerica.com", "chase.com", "wellsfargo.com", "citibank.com", "capitalone.com",
        "usbank.com", "hsbc.com", "hsbc.co.uk", "barclays.co.uk", "lloydsbank.com",
        "natwest.com", "santander.com", "deutsche-bank.de", "commerzbank.de", "sparkasse.de",
        "postbank.de", "bnpparibas.com", "societegenerale.fr", "creditagricole.fr",
        "rabobank.nl", "abnamro.nl", "ubs.com", "raiffeisen.ch", "unicredit.it",
    ),
    "payment": (
        "paypal.com", "stripe.com", "squareup.com", "revolut.com", "venmo.com",
        "klarna.com", "americanexpress.com", "mastercard.com", "visa.com", "coinbase.com",
        "binance.com",
    ),
    "mail-and-cloud": (
        "google.com", "gmail.com", "microsoft.com", "microsoftonline.com", "outlook.com",
        "hotmail.com", "sharepoint.com", "apple.com", "icloud.com", "yahoo.com", "aol.com",
        "gmx.net", "gmx.de", "proton.me", "protonmail.com", "zoho.com", "dropbox.com",
        "docusign.com", "docusign.net", "adobe.com", "amazon.com", "amazonaws.com",
        "salesforce.com", "github.com", "linkedin.com", "facebook.com", "instagram.com",
        "netflix.com", "ebay.com", "wetransfer.com",
    ),
    "parcel": (
        "ups.com", "fedex.com", "dhl.com", "dhl.de", "usps.com", "royalmail.com",
        "parcelforce.com", "dpd.com", "gls-group.eu", "hermesworld.com", "postnl.nl",
        "laposte.fr", "canadapost.ca", "auspost.com.au", "correos.es", "poste.it",
    ),
}

BRAND_DOMAINS: frozenset[str] = frozenset(d for domains in BRANDS.values() for d in domains)
