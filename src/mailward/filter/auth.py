"""Sender authentication for the filter: SPF (pyspf), DKIM (dkimpy), DMARC (the
``dmarc`` package, organisational domains from publicsuffixlist) and the ARC chain
(RFC 8617, dkimpy), written up as an ``Authentication-Results:`` header (RFC 8601,
authres) and scored as findings.

A DMARC failure of a message whose ARC chain passes and whose newest ARC-Seal is by a
trusted sealer (``filter_trusted_arc_sealers``: a mailing list or forwarder that breaks
signatures but vouches for what it saw) is overridden when that sealer's own
ARC-Authentication-Results say the message passed on arrival (DMARC pass for the From
domain, or an SPF or DKIM pass aligned with it): the result stays ``fail``, but the
published policy is not applied and the failure scores nothing. A trusted sealer that
recorded a failure (it relayed a forgery) excuses nothing.

Every lookup goes to the configured resolvers (``dns_nameservers``) with the DNS tools'
timeout, in a worker thread (both libraries ask DNS themselves, blocking). A DNS failure
is a ``temperror`` result and scores nothing: a slow or broken DNS never costs a good
message its delivery.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from email.utils import getaddresses
from typing import TypeVar

import authres
import authres.arc
import authres.dmarc
import dkim
import dmarc
import dns.exception
import dns.resolver
import spf
from publicsuffixlist import PublicSuffixList

from mailward.config import Settings
from mailward.filter.features import header_text
from mailward.filter.parsed import HeaderIndex
from mailward.filter.pipeline import FilterInput, Finding, headers_of
from mailward.filter.stub import TXT, Stub, StubCache
from mailward.filter.stub import A as A_RECORD
from mailward.net.resolver import answer_cache, make_sync_resolver

__all__ = ["AuthCheck", "AuthOutcome", "Authenticator"]

SCORES = {  # (check, result) → points
    ("spf", "fail"): 3.0, ("spf", "softfail"): 1.0, ("spf", "permerror"): 0.5,
    ("dkim", "fail"): 2.0,
    ("dmarc", "reject"): 9.0, ("dmarc", "quarantine"): 6.0, ("dmarc", "none"): 1.0,
    ("spf", "pass"): -0.5, ("dkim", "pass"): -0.5, ("dmarc", "pass"): -1.0,
    ("arc", "fail"): 1.0, ("arc", "trusted"): -0.5,
}
_PSL = PublicSuffixList()
_DMARC_TAG = re.compile(r"^\s*v\s*=\s*DMARC1\b", re.I)
_INSTANCE_TAG = re.compile(r"^\s*i\s*=\s*\d+\s*;")
AUTH_THREADS = 32  # threads mostly waiting on DNS answers, not using a CPU
_pools: dict[int, ThreadPoolExecutor] = {}  # process id → its pool (none survive a fork)
T = TypeVar("T")


def _pool() -> ThreadPoolExecutor:
    """This process's threads for authentication jobs (``Authenticator.run``)."""
    pool = _pools.get(os.getpid())
    if pool is None:
        pool = _pools[os.getpid()] = ThreadPoolExecutor(AUTH_THREADS, "filter-auth")
    return pool


class _Suffixes:
    """publicsuffixlist behind the interface the ``dmarc`` package expects."""

    def get_public_suffix(self, domain: str) -> str:
        return _PSL.privatesuffix(domain.lower().rstrip(".")) or domain.lower().rstrip(".")


@dataclass(frozen=True, slots=True)
class DkimOutcome:
    result: str  # pass / fail / temperror / permerror
    domain: str  # d=
    selector: str  # s=


@dataclass(frozen=True, slots=True)
class AuthOutcome:
    """What the three checks found for one message."""

    spf: str  # pass fail softfail neutral none temperror permerror
    spf_domain: str  # the domain SPF was checked for (MAIL FROM's, or HELO's for <>)
    from_domain: str  # the RFC5322.From domain ("" when there is none)
    dkim: tuple[DkimOutcome, ...] = ()
    dmarc: str = "none"  # pass fail none temperror
    dmarc_policy: str = ""  # the published p= (or sp=) when DMARC failed: none/quarantine/reject
    #   ("" when it failed but a trusted ARC sealer overrides it, see dmarc_override)
    arc: str = "none"  # the ARC chain: none (no ARC sets) pass fail temperror
    arc_sealer: str = ""  # d= of the newest ARC-Seal, when the chain passes
    arc_trusted: bool = False  # the chain passes and arc_sealer is a trusted sealer
    dmarc_override: str = ""  # "arc": DMARC failed, excused by a trusted ARC sealer
    header: str = field(default="", compare=False)


class Authenticator:
    """SPF, DKIM, DMARC and ARC for messages, through the configured resolvers."""

    def __init__(self, settings: Settings, authserv_id: str | None = None) -> None:
        self.timeout = settings.dns_timeout_seconds
        # answers kept for their TTL: a sender's records serve its next messages too
        self.resolver = make_sync_resolver(settings.dns_nameservers, self.timeout,
                                           cache=answer_cache())
        # the frequent questions first go to a lean stub (dnspython for what it leaves)
        self.stub = StubCache(Stub(self.resolver))
        self.authserv_id = authserv_id or settings.node_name
        self.trusted_sealers = tuple(
            domain.strip().lower().rstrip(".") for domain in settings.filter_trusted_arc_sealers
            if domain.strip().rstrip("."))

    async def check(self, message: FilterInput) -> AuthOutcome:
        return await self.run(self.check_blocking, message)

    @staticmethod
    async def run(work: Callable[..., T], *args: object) -> T:
        """``work(*args)`` in this process's authentication threads: a job that waits on DNS
        there holds none of the default pool's threads, which the CPU work of the filter
        and the spool's writes queue for."""
        return await asyncio.get_running_loop().run_in_executor(_pool(), work, *args)

    def check_blocking(self, message: FilterInput) -> AuthOutcome:
        """The outcome (blocking: DNS, CPU). The headers are read from the message's header
        index (``FilterInput.headers``, made here when the caller has none)."""
        headers = headers_of(message)
        from_domain = _from_domain(headers)
        mail_from = message.sender or f"postmaster@{message.helo}"
        spf_domain = mail_from.rsplit("@", 1)[-1].lower()
        spf_result = self._spf(message.peer, mail_from, message.helo)
        signatures = self._dkim(headers)
        dmarc_result, policy = self._dmarc(from_domain, spf_result, spf_domain, signatures)
        arc, sealer, recorded = self._arc(headers)
        trusted = arc == "pass" and self.trusts(sealer)
        override = "arc" if (trusted and dmarc_result == "fail"
                             and vouches_for(recorded, from_domain)) else ""
        outcome = AuthOutcome(spf_result, spf_domain, from_domain, signatures, dmarc_result,
                              "" if override else policy, arc, sealer, trusted, override)
        return replace(outcome, header=self._header(outcome, mail_from))

    def trusts(self, sealer: str) -> bool:
        """Whether ``sealer`` is a trusted ARC sealer: listed, or a subdomain of one."""
        sealer = sealer.lower().rstrip(".")
        return bool(sealer) and any(sealer == domain or sealer.endswith(f".{domain}")
                                    for domain in self.trusted_sealers)

    # -- the checks ----------------------------------------------------------------------

    def _spf(self, ip: str, mail_from: str, helo: str) -> str:
        # pyspf looks names up through its module-level DNSLookup: point it at our
        # resolvers (one configuration per process, so sharing it is safe)
        spf.DNSLookup = self._spf_lookup
        try:
            result, _code, _explanation = spf.query(
                i=ip, s=mail_from, h=helo, timeout=self.timeout).check()
        except Exception:  # the library's own errors are results; anything else: temperror
            return "temperror"
        return {"error": "temperror", "unknown": "permerror", "ambiguous": "permerror"}.get(
            result, result)

    def _dkim(self, headers: HeaderIndex) -> tuple[DkimOutcome, ...]:
        found = []
        for index in range(min(headers.count("dkim-signature"), 5)):  # a few are plenty
            verifier = _verifier(dkim.DKIM, headers, self.timeout)
            txt, timeouts = self._recording_txt()
            try:
                if headers.malformed:  # what dkimpy's own parse refuses
                    raise dkim.MessageFormatError("unexpected characters in the header")
                ok = verifier.verify(idx=index, dnsfunc=txt)
                # dkimpy reports a key lookup that timed out as a bad signature
                result = "pass" if ok else "temperror" if timeouts else "fail"
            except dkim.KeyFormatError:
                result = "permerror"
            except dkim.DnsTimeoutError:
                result = "temperror"
            except dkim.DKIMException:
                result = "fail"
            domain = (verifier.domain or b"").decode("ascii", "replace").lower()
            selector = (verifier.selector or b"").decode("ascii", "replace")
            found.append(DkimOutcome(result, domain, selector))
        return tuple(found)

    def _arc(self, headers: HeaderIndex) -> tuple[str, str, str]:
        """The ARC chain's validation (RFC 8617 5.2) and, if it passes, the newest seal's d=
        and that instance's ARC-Authentication-Results value."""
        if not headers.malformed and not any(
                name.lower() in dkim.ARC.ARC_HEADERS for name, _ in headers.fields):
            return "none", "", ""  # what dkimpy finds without ARC fields, unparsed here
        txt, timeouts = self._recording_txt()
        try:
            if headers.malformed:  # what dkimpy's own parse refuses
                raise dkim.MessageFormatError("unexpected characters in the header")
            cv, sets, _reason = _verifier(dkim.ARC, headers, self.timeout).verify(
                dnsfunc=txt)
        except Exception:  # dkimpy's errors, and what malformed ARC sets make of its parser
            cv, sets = dkim.CV_Fail, []
        if cv == dkim.CV_Pass and sets:  # sets: newest instance first
            newest = sets[0]
            return ("pass", newest["as-domain"].decode("ascii", "replace").lower(),
                    newest.get("aar-value", b"").decode("utf-8", "replace"))
        if timeouts:  # dkimpy reports a key lookup that timed out as an invalid seal
            return "temperror", "", ""
        # None: an earlier sealer already said cv=fail, so the chain is over (a failure)
        return ("none" if cv == dkim.CV_None else "fail"), "", ""

    def _dmarc(self, from_domain: str, spf_result: str, spf_domain: str,
               signatures: Sequence[DkimOutcome]) -> tuple[str, str]:
        if not from_domain:
            return "none", ""
        org = _Suffixes().get_public_suffix(from_domain)
        try:
            record, at = self._dmarc_record(from_domain), from_domain
            if record is None and org != from_domain:
                record, at = self._dmarc_record(org), org
        except (dns.exception.Timeout, dns.resolver.NoNameservers):
            return "temperror", ""
        if record is None:
            return "none", ""
        checker = dmarc.DMARC(publicsuffix=_Suffixes())
        try:
            policy = checker.parse_record(record, domain=at, org_domain=org)
        except (dmarc.RecordSyntaxError, dmarc.RecordValueError):
            return "permerror", ""
        passing = next((s for s in signatures if s.result == "pass"), None)
        result = checker.get_result(
            policy,
            spf=dmarc.SPF(domain=spf_domain, result=_spf_code(spf_result)),
            dkim=dmarc.DKIM(domain=passing.domain, result=dmarc.DKIM_PASS) if passing else None)
        if result.result == dmarc.POLICY_PASS:
            return "pass", ""
        wanted = {dmarc.POLICY_DIS_REJECT: "reject",
                  dmarc.POLICY_DIS_QUARANTINE: "quarantine"}.get(result.disposition, "none")
        return "fail", wanted

    # -- DNS ------------------------------------------------------------------------------

    def _txt(self, name: bytes | str, timeout: int = 5) -> bytes | None:
        """dkimpy's DNS function: the TXT record of ``name`` (strings joined), or None."""
        qname = name.decode("ascii") if isinstance(name, bytes) else name
        reply = self.stub.ask(qname, TXT)
        if reply is not None:
            return b"".join(reply.values[0]) if reply.values else None  # type: ignore[arg-type]
        try:
            answer = self.resolver.resolve(qname, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise dkim.DnsTimeoutError(str(exc)) from None
        for rdata in answer:
            return b"".join(rdata.strings)
        return None

    def _recording_txt(self) -> tuple[Callable[..., bytes | None], list[str]]:
        """``_txt`` plus the list of names whose lookup timed out (dkimpy swallows those
        errors, turning them into failed signatures): one pair per verification."""
        timeouts: list[str] = []

        def txt(name: bytes | str, timeout: int = 5) -> bytes | None:
            try:
                return self._txt(name, timeout)
            except dkim.DnsTimeoutError:
                timeouts.append(name.decode("ascii") if isinstance(name, bytes) else name)
                raise

        return txt, timeouts

    def _spf_lookup(self, name: str, qtype: str, tcpfallback: bool = True,
                    timeout: float = 30) -> list[tuple[tuple[str, str], object]]:
        """pyspf's DNS function, on our resolver: ``[((name, type), value), ...]``."""
        kind = {"TXT": TXT, "A": A_RECORD}.get(qtype)
        reply = self.stub.ask(name, kind) if kind is not None else None
        if reply is not None:
            return [((name, qtype), value) for value in reply.values]
        try:
            answer = self.resolver.resolve(name, qtype)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise spf.TempError(f"DNS {exc}") from None
        found: list[tuple[tuple[str, str], object]] = []
        for rdata in answer:
            if qtype in ("A", "AAAA"):
                found.append(((name, qtype), rdata.address))
            elif qtype == "MX":
                found.append(((name, qtype), (rdata.preference, rdata.exchange)))
            elif qtype == "PTR":
                found.append(((name, qtype), rdata.target.to_text(True)))
            elif qtype in ("TXT", "SPF"):
                found.append(((name, qtype), rdata.strings))
        return found

    def _dmarc_record(self, domain: str) -> str | None:
        reply = self.stub.ask(f"_dmarc.{domain}", TXT)
        if reply is not None:
            strings: list[tuple[bytes, ...]] = list(reply.values)  # type: ignore[arg-type]
        else:
            try:
                answer = self.resolver.resolve(f"_dmarc.{domain}", "TXT")
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                return None
            strings = [r.strings for r in answer]
        records = [b"".join(parts).decode("utf-8", "replace") for parts in strings]
        matching = [r for r in records if _DMARC_TAG.match(r)]
        return matching[0] if len(matching) == 1 else None

    def _header(self, outcome: AuthOutcome, mail_from: str) -> str:
        results: list[authres.AuthenticationResult] = [
            authres.SPFAuthenticationResult(result=outcome.spf, smtp_mailfrom=mail_from)]
        results += [authres.DKIMAuthenticationResult(result=s.result, header_d=s.domain,
                                                     header_s=s.selector)
                    for s in outcome.dkim] or [authres.DKIMAuthenticationResult(result="none")]
        results.append(authres.dmarc.DMARCAuthenticationResult(
            result=outcome.dmarc, header_from=outcome.from_domain or None))
        results.append(authres.arc.ARCAuthenticationResult(result=outcome.arc))
        header = authres.AuthenticationResultsHeader(authserv_id=self.authserv_id,
                                                     results=results)
        return str(header).split(":", 1)[1].strip()


def vouches_for(recorded: str, from_domain: str) -> bool:
    """Whether an ARC-Authentication-Results value (``i=N; authserv-id; results``) records
    that the message passed authentication for ``from_domain`` when the sealer received it:
    DMARC pass for that domain, or an SPF or DKIM pass aligned with it (same organisational
    domain). An unreadable record vouches for nothing."""
    if not from_domain:
        return False
    value = _INSTANCE_TAG.sub("", recorded, count=1)
    try:
        parsed = authres.AuthenticationResultsHeader.parse_value(value)
    except Exception:  # authres raises its own SyntaxError and more on malformed input
        return False
    org = _Suffixes().get_public_suffix(from_domain)
    for result in parsed.results:
        if str(result.result).lower() != "pass":
            continue
        method = str(result.method).lower()
        wanted = {"dmarc": ("header", "from"), "dkim": ("header", "d"),
                  "spf": ("smtp", "mailfrom")}.get(method)
        for prop in result.properties if wanted else ():
            if (str(prop.type).lower(), str(prop.name).lower()) != wanted:
                continue
            domain = str(prop.value).rsplit("@", 1)[-1].strip().lower().rstrip(".")
            if domain and (domain == from_domain if method == "dmarc"
                           else _Suffixes().get_public_suffix(domain) == org):
                return True
    return False


def _spf_code(result: str) -> object:
    return {"pass": dmarc.SPF_PASS, "fail": dmarc.SPF_FAIL, "softfail": dmarc.SPF_SOFTFAIL,
            "neutral": dmarc.SPF_NEUTRAL, "temperror": dmarc.SPF_TEMPFAIL,
            "permerror": dmarc.SPF_PERMFAIL}.get(result, dmarc.SPF_NEUTRAL)


_Verifier = TypeVar("_Verifier", dkim.DKIM, dkim.ARC)


def _verifier(kind: type[_Verifier], headers: HeaderIndex, timeout: float) -> _Verifier:
    """A dkimpy verifier reading the message's header index (dkimpy would split the whole
    message again for each one it is given)."""
    verifier = kind(None, timeout=int(timeout) or 1)
    verifier.headers, verifier.body = headers.dkim_headers(), headers.body()
    return verifier


def _from_domain(headers: HeaderIndex) -> str:
    """The one From: domain ("" for none or several)."""
    addresses = getaddresses([header_text(str(v)) for v in headers.get_all("From")])
    domains = {a.rsplit("@", 1)[1].lower().rstrip(".") for _n, a in addresses if "@" in a}
    return domains.pop() if len(domains) == 1 else ""


def findings(outcome: AuthOutcome) -> list[Finding]:
    """Points for what authentication found (nothing for temperror)."""
    found = []
    spf_points = SCORES.get(("spf", outcome.spf))
    if spf_points is not None:
        found.append(Finding("spf", spf_points, f"SPF {outcome.spf} for {outcome.spf_domain}"))
    for signature in outcome.dkim[:1]:
        points = SCORES.get(("dkim", signature.result))
        if points is not None:
            found.append(Finding("dkim", points,
                                 f"DKIM {signature.result} (d={signature.domain})"))
    if outcome.dmarc == "pass":
        found.append(Finding("dmarc", SCORES[("dmarc", "pass")],
                             f"DMARC pass for {outcome.from_domain}"))
    elif outcome.dmarc == "fail" and outcome.dmarc_override == "arc":
        found.append(Finding("dmarc", 0.0, f"DMARC fail for {outcome.from_domain} overridden "
                                           f"by trusted ARC sealer {outcome.arc_sealer}"))
    elif outcome.dmarc == "fail":
        points = SCORES[("dmarc", outcome.dmarc_policy or "none")]
        unvouched = (f"; trusted ARC sealer {outcome.arc_sealer} recorded no pass"
                     if outcome.arc_trusted else "")
        found.append(Finding("dmarc", points, f"DMARC fail for {outcome.from_domain} "
                                              f"(policy {outcome.dmarc_policy or 'none'}"
                                              f"{unvouched})"))
    if outcome.arc == "pass" and outcome.arc_trusted:
        found.append(Finding("arc", SCORES[("arc", "trusted")],
                             f"ARC pass, sealed by trusted {outcome.arc_sealer}"))
    elif outcome.arc == "fail":
        found.append(Finding("arc", SCORES[("arc", "fail")], "ARC chain fail"))
    return found


class AuthCheck:
    """Pipeline check: SPF, DKIM, DMARC, ARC as findings (the header is the caller's to add)."""

    name = "auth"

    def __init__(self, settings: Settings) -> None:
        self.authenticator = Authenticator(settings)

    async def __call__(self, message: FilterInput) -> Sequence[Finding]:
        outcome = message.auth if isinstance(message.auth, AuthOutcome) else \
            await self.authenticator.check(message)
        return findings(outcome)
