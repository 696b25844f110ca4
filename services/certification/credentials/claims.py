"""The claims of an Open Badges 3.0 `OpenBadgeCredential` in VC-JWT form (W3C VCDM 2.0).

Built from the programme and opaque ids only: the credential travels on the event log and to
third parties, so it never carries a name or an e-mail address. A later status-list module adds
`credentialStatus` entries here without touching signing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from iioe.events.common import Language
from services.certification.catalogue import LocalizedText, Programme

__all__ = [
    "CERTIFICATE_URN",
    "CREDENTIAL_CONTEXT",
    "CREDENTIAL_TYPE",
    "DEFAULT_ISSUER",
    "EDUCATOR_URN",
    "PROGRAMME_URN",
    "IssuerProfile",
    "build_credential_claims",
    "certificate_urn",
    "educator_urn",
    "programme_urn",
]

CREDENTIAL_CONTEXT = (
    "https://www.w3.org/ns/credentials/v2",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
)
CREDENTIAL_TYPE = ("VerifiableCredential", "OpenBadgeCredential")
OB_SCHEMA = "https://purl.imsglobal.org/spec/ob/v3p0/schema/json/ob_v3p0_achievementcredential_schema.json"
EDUCATOR_URN = "urn:iioe:educator:"
CERTIFICATE_URN = "urn:iioe:certificate:"
PROGRAMME_URN = "urn:iioe:programme:"
_EMAIL_LIKE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class IssuerProfile:
    """The OB 3.0 issuer `Profile`; `id` is the JWT `iss` (a URL where the JWKS is published, or a URN)."""

    id: str = "urn:iioe:issuer:unesco-ichei"
    name: str = "UNESCO-ICHEI International Institute of Online Education (IIOE)"
    url: str | None = None


DEFAULT_ISSUER = IssuerProfile()


def _urn(prefix: str, value: str) -> str:
    return prefix + quote(value, safe="")


def educator_urn(educator_id: str) -> str:
    return _urn(EDUCATOR_URN, educator_id)


def certificate_urn(certificate_id: str) -> str:
    return _urn(CERTIFICATE_URN, certificate_id)


def programme_urn(programme_id: str) -> str:
    return _urn(PROGRAMME_URN, programme_id)


def build_credential_claims(
    *,
    certificate_id: str,
    educator_id: str,
    programme: Programme,
    issued_at: datetime,
    issuer: IssuerProfile = DEFAULT_ISSUER,
    language: Language = "en",
    credit_system: str = "ECTS",
    credential_status: Sequence[Mapping[str, str]] = (),
    criteria_url: str | None = None,
    evidence: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """VC-JWT claims (`iss`, `sub`, `jti`, `iat`, `nbf`, `vc`) of the credential for one earned programme.

    Deliberately takes no e-mail or name: the educator appears only as `urn:iioe:educator:<id>`.
    `language` picks the plain `name`/`description`; all languages are in the `*Localized` fields.
    `credential_status`: W3C Bitstring Status List entries (`status_list.status_entry`), from contract 1.1 on.
    `criteria_url`: the programme's public criteria page, the achievement's `criteria.id`.
    `evidence`: OB 3.0 `Evidence` objects (e.g. `portfolio.evidence_of(entries, issued_at)`), omitted when empty.
    """
    if issued_at.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware")
    if _EMAIL_LIKE.search(educator_id):
        raise ValueError("educator_id looks like an e-mail address; credentials carry opaque ids only")
    issued = issued_at.astimezone(UTC).replace(microsecond=0)
    timestamp = int(issued.timestamp())
    jti, sub = certificate_urn(certificate_id), educator_urn(educator_id)
    credential = {
        "@context": list(CREDENTIAL_CONTEXT),
        "id": jti,
        "type": list(CREDENTIAL_TYPE),
        "issuer": _issuer(issuer),
        "validFrom": issued.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "name": programme.names.get(language),
        "credentialSubject": {
            "id": sub,
            "type": ["AchievementSubject"],
            "creditsEarned": programme.credits,
            "achievement": _achievement(programme, language, credit_system, criteria_url),
        },
        "credentialSchema": [{"id": OB_SCHEMA, "type": "1EdTechJsonSchemaValidator2019"}],
        "certificateId": certificate_id,
    }
    if credential_status:
        credential["credentialStatus"] = [dict(entry) for entry in credential_status]
    if evidence:
        credential["evidence"] = [dict(item) for item in evidence]
    return {"iss": issuer.id, "sub": sub, "jti": jti, "iat": timestamp, "nbf": timestamp, "vc": credential}


def _issuer(issuer: IssuerProfile) -> dict[str, Any]:
    profile: dict[str, Any] = {"id": issuer.id, "type": ["Profile"], "name": issuer.name}
    if issuer.url:
        profile["url"] = issuer.url
    return profile


def _localized(text: LocalizedText) -> list[dict[str, str]]:
    """JSON-LD language-tagged values, the VCDM 2.0 way to carry one text in several languages."""
    return [{"@value": value, "@language": lang} for lang, value in text.items()]


def _achievement(
    programme: Programme, language: Language, credit_system: str, criteria_url: str | None
) -> dict[str, Any]:
    criteria: dict[str, str] = {"narrative": _criteria_narrative(programme, language)}
    if criteria_url:
        criteria = {"id": criteria_url, **criteria}
    return {
        "id": programme_urn(programme.id),
        "type": ["Achievement"],
        "achievementType": "MicroCredential",
        "name": programme.names.get(language),
        "nameLocalized": _localized(programme.names),
        "description": programme.description.get(language),
        "descriptionLocalized": _localized(programme.description),
        "inLanguage": language,
        "criteria": criteria,
        "creditsAvailable": programme.credits,
        "creditSystem": credit_system,
        "alignment": [_alignment(programme)],
        "programmeId": programme.id,
        "tier": programme.tier,
        "courseIds": list(programme.course_ids),
        "requires": list(programme.requires),
    }


def _alignment(programme: Programme) -> dict[str, Any]:
    """Where the certificate sits in the national framework, which is what credit transfer relies on."""
    return {
        "type": ["Alignment"],
        "targetName": f"{programme.framework} — {programme.framework_level}",
        "targetFramework": programme.framework,
        "targetCode": programme.framework_level,
        "targetType": "ext:QualificationFrameworkLevel",
        "targetUrl": programme.framework_url or _urn("urn:iioe:framework-level:", programme.framework_level),
    }


_CRITERIA = {
    "en": ("Score at least {score} in each course (best attempt counts):", "Prerequisite certificates: {ids}."),
    "mn": (
        "Хичээл бүрт дор хаяж {score} оноо авсан байх (хамгийн сайн оролдлого тооцогдоно):",
        "Урьдчилан шаардагдах гэрчилгээ: {ids}.",
    ),
    "ru": (
        "Не менее {score} баллов по каждому курсу (засчитывается лучшая попытка):",
        "Необходимые сертификаты: {ids}.",
    ),
}


def _criteria_narrative(programme: Programme, language: Language) -> str:
    head, prerequisites = _CRITERIA[language]
    lines = [head.format(score=f"{programme.min_score:g}")]
    lines += [f"- {course.titles.get(language)}" for course in programme.courses]
    if programme.requires:
        lines.append(prerequisites.format(ids=", ".join(programme.requires)))
    return "\n".join(lines)
