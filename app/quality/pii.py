"""Finding personal data in text: e-mail addresses, phone numbers, payment card numbers, IBANs
and IP addresses, each with its span, so a rule can fail a record and a redaction can replace it.

Our own recognizers, written after Microsoft Presidio's pattern recognizers (presidio-analyzer's
``generic/``: e-mail, credit card, IBAN, IP): presidio-analyzer itself requires spaCy and, for
its default engine, a spaCy language model that is not on PyPI, so it cannot run offline from
a plain install. Like Presidio, a pattern only proposes a candidate; a check decides:

- card numbers: 13-19 digits (plain, or grouped 4-4-4-4 / Amex 4-6-5 / Diners 4-6-4) that pass
  the Luhn check and start like a card (2-6);
- IBANs: a country's registered length and the ISO 7064 mod-97 check;
- IP addresses: whatever Python's ``ipaddress`` accepts (so ``999.999.999.999`` is not one);
- phone numbers: ``+`` and a country code, or a common national layout (North American
  ``(555) 123-4567`` / ``555-123-4567``, or a trunk ``0`` then 9-12 digits in groups), with a
  plausible count of digits; dates, years, version numbers, prices and dotted quads do not fit.

Names and postal addresses are not looked for: no well-kept offline library finds them without a
language model, and a guess from capitalised words would flag most of a dataset.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

KINDS = ("email", "phone", "card", "iban", "ip")
PLACEHOLDERS = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]", "iban": "[IBAN]", "ip": "[IP]"}
_PRIORITY = ("email", "iban", "card", "ip", "phone")  # an overlap goes to the kind checked more strictly

# the registered IBAN length of each country (ISO 13616 registry)
IBAN_LENGTHS = dict(
    AD=24, AE=23, AL=28, AT=20, AZ=28, BA=20, BE=16, BG=22, BH=22, BI=27, BR=29, BY=28, CH=21, CR=22, CY=28,
    CZ=24, DE=22, DJ=27, DK=18, DO=28, EE=20, EG=29, ES=24, FI=18, FK=18, FO=18, FR=27, GB=22, GE=22, GI=23,
    GL=18, GR=27, GT=28, HN=28, HR=21, HU=28, IE=22, IL=23, IQ=23, IS=26, IT=27, JO=30, KW=30, KZ=20, LB=28,
    LC=32, LI=21, LT=20, LU=20, LV=21, LY=25, MC=27, MD=24, ME=22, MK=19, MN=20, MR=27, MT=31, MU=30, NI=28,
    NL=18, NO=15, OM=23, PK=24, PL=28, PS=29, PT=25, QA=29, RO=24, RS=22, RU=33, SA=24, SC=31, SD=18, SE=24,
    SI=19, SK=24, SM=27, SO=23, ST=25, SV=28, TL=23, TN=24, TR=26, UA=29, VA=22, VG=24, XK=20, YE=30,
)


@dataclass(frozen=True)
class PiiSpan:
    kind: str
    start: int
    end: int


_EMAIL = re.compile(r"(?<![\w.%+-])[\w%+-]+(?:\.[\w%+-]+)*@[^\W_](?:[\w-]*\w)?(?:\.[^\W_](?:[\w-]*\w)?)*"
                    r"\.[^\W\d_]{2,}(?![\w-])")
_CARD = re.compile(r"(?<![\w.,+-])(?:\d{13,19}|\d{4}(?P<s>[ -])\d{4}(?P=s)\d{4}(?P=s)\d{1,7}"
                   r"|\d{4}(?P<t>[ -])\d{6}(?P=t)\d{4,5})(?!\w|[.,-]\d)")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{1,4}){2,10}(?![a-z0-9])")
_IBAN_GROUP = re.compile(r"[ -]?[A-Z0-9]{1,4}")
_IPV4 = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?(?!\.?\d|\w)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?"
                   r"(?:%\w+)?(?:/\d{1,3})?(?![\w:]|\.\d)")
_SEP = r"[ .-]"
_PHONE = re.compile(
    r"(?<![\w.,/+-])(?:"
    rf"\+\d{{1,3}}(?:{_SEP}?\(0?\d{{1,4}}\))?(?:{_SEP}?\d{{1,5}}){{1,6}}"   # +44 20 7946 0958, +1 (555) 123-4567
    rf"|(?:1{_SEP}?)?\(\d{{3}}\){_SEP}?\d{{3}}[ .-]\d{{4}}"                 # (555) 123-4567
    r"|(?:1[ .-])?\d{3}(?P<p>[.-])\d{3}(?P=p)\d{4}"                          # 555-123-4567, 1-800-555-0199
    r"|\d{3} \d{3} \d{4}"                                                    # 555 123 4567
    rf"|0\d{{1,4}}(?:{_SEP}?\d{{2,4}}){{1,4}}"                                # 020 7946 0958, 01 23 45 67 89
    r")(?![\w]|[.,/-]\d)"
)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(compact: str) -> bool:
    """A registered country, its length and the mod-97 check (``compact``: no spaces, upper case)."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _emails(text: str) -> Iterator[tuple[int, int]]:
    for m in _EMAIL.finditer(text):
        yield m.span()


def _cards(text: str) -> Iterator[tuple[int, int]]:
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_ok(digits):
            yield m.span()


def _ibans(text: str) -> Iterator[tuple[int, int]]:
    for m in _IBAN.finditer(text):
        # the pattern may run into a following code or word in capitals: try the longest valid prefix
        ends = [m.start() + 4 + g.end() for g in _IBAN_GROUP.finditer(m.group()[4:])]
        for end in reversed(ends):
            if iban_ok(re.sub(r"[ -]", "", text[m.start():end])):
                yield m.start(), end
                break


def _ips(text: str) -> Iterator[tuple[int, int]]:
    # IPv6 first: one that ends in a dotted quad (::ffff:192.0.2.1) is one address, not a v4 inside
    for m in _IPV6.finditer(text):
        candidate = m.group()
        if not any(ch.isdigit() for ch in candidate):  # "dead::beef" is valid but reads as a word
            continue
        if not any(ch in "abcdefABCDEF" for ch in candidate) and candidate.count(":") < 7:
            continue  # all digits and shortened: a time ("11:27::1271", "10:30:15"), not an address
        address = candidate.split("/")[0].split("%")[0]
        try:
            ip = ipaddress.IPv6Address(address)
        except ValueError:
            continue
        if not ip.is_unspecified:
            yield m.span()
    for m in _IPV4.finditer(text):
        try:
            ipaddress.IPv4Network(m.group(), strict=False)  # a plain address is a /32 network
        except ValueError:
            continue
        yield m.span()


def _phones(text: str) -> Iterator[tuple[int, int]]:
    for m in _PHONE.finditer(text):
        s = m.group()
        digits = re.sub(r"\D", "", s)
        if s.startswith("+"):
            ok = 8 <= len(digits) <= 15
        elif s.startswith("0"):
            ok = 9 <= len(digits) <= 12  # a trunk 0, area code and number (dates have 8 digits at most)
        else:
            ok = len(digits) in (10, 11)
        if ok:
            yield m.span()


_FINDERS = {"email": _emails, "phone": _phones, "card": _cards, "iban": _ibans, "ip": _ips}


def find_pii(text: str, kinds: Iterable[str] = KINDS) -> list[PiiSpan]:
    """The personal data in ``text`` of the given kinds, in text order, never overlapping.

    Every kind is looked for so that overlaps resolve the same way whatever is asked for (the
    digits of an IBAN are never also a phone number); then only ``kinds`` are returned.
    """
    wanted = set(kinds)
    taken: list[PiiSpan] = []
    for kind in _PRIORITY:
        for start, end in _FINDERS[kind](text):
            if all(end <= s.start or start >= s.end for s in taken):
                taken.append(PiiSpan(kind, start, end))
    return sorted((s for s in taken if s.kind in wanted), key=lambda s: s.start)


def kinds_found(spans: Iterable[PiiSpan]) -> list[str]:
    """The kinds among ``spans``, in the order of :data:`KINDS`."""
    found = {s.kind for s in spans}
    return [k for k in KINDS if k in found]


def redact_text(text: str, kinds: Iterable[str] = KINDS) -> tuple[str, list[PiiSpan]]:
    """``text`` with each span of personal data replaced by its placeholder (``[EMAIL]``...), and the spans."""
    spans = find_pii(text, kinds)
    out, last = [], 0
    for s in spans:
        out += [text[last:s.start], PLACEHOLDERS[s.kind]]
        last = s.end
    out.append(text[last:])
    return "".join(out), spans
