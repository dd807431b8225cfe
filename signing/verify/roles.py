"""Decree 30/2020 role of a signature: competent person (người có thẩm quyền) or agency.

Heuristic, configurable through :class:`RoleRule` (there is no normative marker in Vietnamese
certificates that all CAs use):

1. certificate policy OIDs configured as agency / person markers decide first;
2. otherwise the subject: an organisation certificate names the organisation as its subject
   (``CN`` equal to ``O``, or an ``organizationIdentifier`` with no personal name attributes)
   -> agency; a ``CN`` different from ``O`` -> competent person;
3. otherwise signing order (Decree 30: the competent person signs first, the agency after).
"""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import x509

from signing.report import Role

__all__ = ["RoleRule", "classify_certificate"]

_PERSON_ATTRS = ("given_name", "surname", "pseudonym")


@dataclass(frozen=True)
class RoleRule:
    agency_policy_oids: frozenset[str] = frozenset()
    person_policy_oids: frozenset[str] = frozenset()
    use_subject: bool = True


def _policy_oids(cert: x509.Certificate) -> set[str]:
    ext = cert.certificate_policies_value
    if ext is None:
        return set()
    return {p["policy_identifier"].dotted for p in ext}


def classify_certificate(cert: x509.Certificate, rule: RoleRule = RoleRule()) -> Role | None:
    """Role from the certificate alone, or ``None`` when it is unclear."""
    if rule.agency_policy_oids or rule.person_policy_oids:
        oids = _policy_oids(cert)
        if oids & rule.agency_policy_oids:
            return Role.AGENCY
        if oids & rule.person_policy_oids:
            return Role.COMPETENT_PERSON
    if not rule.use_subject:
        return None
    subject = cert.subject.native
    cn = subject.get("common_name")
    org = subject.get("organization_name")
    if isinstance(org, list):
        org = org[0] if org else None
    personal = any(subject.get(a) for a in _PERSON_ATTRS)
    if cn and org:
        if cn.strip().casefold() == org.strip().casefold() and not personal:
            return Role.AGENCY
        return Role.COMPETENT_PERSON
    if subject.get("organization_identifier") and not personal:
        return Role.AGENCY
    if personal:
        return Role.COMPETENT_PERSON
    return None
