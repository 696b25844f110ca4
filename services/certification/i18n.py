"""Words of the public pages and the printable certificate in the platform's languages (mn, en, ru), and
the choice of language for a request (`?lang=`, else `Accept-Language`, else English)."""

from __future__ import annotations

from typing import Final, cast

from iioe.events.common import Language

LANGUAGES: Final[tuple[Language, ...]] = ("mn", "en", "ru")
DEFAULT_LANGUAGE: Final[Language] = "en"
"""For a verifier whose browser asks for none of ours: the page is read abroad as often as at home."""

TEXT: Final[dict[str, dict[Language, str]]] = {
    "verification": {"mn": "Гэрчилгээ баталгаажуулалт", "en": "Certificate verification", "ru": "Проверка сертификата"},
    "certificate": {"mn": "Гэрчилгээ", "en": "Certificate", "ru": "Сертификат"},
    "status": {"mn": "Төлөв", "en": "Status", "ru": "Статус"},
    "active": {"mn": "Хүчинтэй", "en": "Valid", "ru": "Действителен"},
    "suspended": {"mn": "Түр түдгэлзүүлсэн", "en": "Suspended", "ru": "Приостановлен"},
    "revoked": {"mn": "Хүчингүй болгосон", "en": "Revoked", "ru": "Отозван"},
    "active_note": {
        "mn": "Энэ гэрчилгээг олгогч баталгаажуулж байна.",
        "en": "The issuer confirms this certificate.",
        "ru": "Издатель подтверждает этот сертификат.",
    },
    "reason": {"mn": "Шалтгаан", "en": "Reason", "ru": "Причина"},
    "no_reason": {"mn": "шалтгаан заагаагүй", "en": "no reason given", "ru": "причина не указана"},
    "since": {"mn": "Огноо", "en": "Since", "ru": "С"},
    "programme": {"mn": "Хөтөлбөр", "en": "Programme", "ru": "Программа"},
    "tier": {"mn": "Шат", "en": "Tier", "ru": "Ступень"},
    "courses": {"mn": "Хичээлүүд", "en": "Courses", "ru": "Курсы"},
    "credits": {"mn": "Кредит", "en": "Credits", "ru": "Кредиты"},
    "framework": {"mn": "Мэргэшлийн тогтолцооны түвшин", "en": "Framework level", "ru": "Уровень рамки квалификаций"},
    "issuer": {"mn": "Олгогч", "en": "Issuer", "ru": "Издатель"},
    "issued_on": {"mn": "Олгосон огноо", "en": "Issued on", "ru": "Дата выдачи"},
    "holder": {"mn": "Эзэмшигч", "en": "Holder", "ru": "Владелец"},
    "name_hidden": {
        "mn": "Нэр нуугдсан — эзэмшигч нэрээ нийтэд харуулахыг зөвшөөрөөгүй",
        "en": "Name hidden — the holder has not agreed to show it publicly",
        "ru": "Имя скрыто — владелец не давал согласия показывать его публично",
    },
    "certificate_id": {"mn": "Гэрчилгээний дугаар", "en": "Certificate ID", "ru": "Номер сертификата"},
    "criteria": {"mn": "Шалгуур", "en": "Criteria", "ru": "Критерии"},
    "scan": {
        "mn": "Энэ хуудсыг нээхийн тулд уншуулна уу",
        "en": "Scan to open this page",
        "ru": "Отсканируйте, чтобы открыть эту страницу",
    },
    "verify_at": {"mn": "Баталгаажуулах хаяг", "en": "Verify at", "ru": "Проверить по адресу"},
    "independent": {"mn": "Бие даан шалгах", "en": "Verify independently", "ru": "Как проверить самостоятельно"},
    "independent_intro": {
        "mn": "Гэрчилгээ нь Ed25519 (EdDSA) гарын үсэгтэй Open Badges 3.0 / W3C VC-JWT юм."
        " Дурын стандарт JOSE сангаар, сүлжээгүйгээр шалгаж болно:",
        "en": "The certificate is an Open Badges 3.0 / W3C VC-JWT credential signed with Ed25519 (EdDSA)."
        " Any standard JOSE library can check it, offline:",
        "ru": "Сертификат — учётные данные Open Badges 3.0 / W3C VC-JWT с подписью Ed25519 (EdDSA)."
        " Любая стандартная библиотека JOSE проверит его без сети:",
    },
    "step_credential": {
        "mn": "Гарын үсэгтэй гэрчилгээ (JSON, талбар credential)",
        "en": "The signed credential (JSON, field credential)",
        "ru": "Подписанный сертификат (JSON, поле credential)",
    },
    "step_jwks": {
        "mn": "Олгогчийн нийтийн түлхүүрүүд (JWKS)",
        "en": "The issuer's public keys (JWKS)",
        "ru": "Открытые ключи издателя (JWKS)",
    },
    "step_status": {
        "mn": "Төлөвийн жагсаалтууд (W3C Bitstring Status List)",
        "en": "Status lists (W3C Bitstring Status List)",
        "ru": "Списки статусов (W3C Bitstring Status List)",
    },
    "step_cli": {
        "mn": "IIOE-ийн хэрэгслээр:",
        "en": "With the IIOE command-line tool:",
        "ru": "С помощью утилиты IIOE:",
    },
    "issuer_profile": {"mn": "Олгогчийн танилцуулга", "en": "Issuer profile", "ru": "Профиль издателя"},
    "not_found": {"mn": "Гэрчилгээ олдсонгүй", "en": "Certificate not found", "ru": "Сертификат не найден"},
    "not_found_note": {
        "mn": "Энэ дугаартай гэрчилгээг олгогч бүртгээгүй байна. Дугаарыг шалгана уу.",
        "en": "The issuer has no record of a certificate with this ID. Please check the ID.",
        "ru": "У издателя нет сертификата с таким номером. Проверьте номер.",
    },
    "criteria_title": {"mn": "Гэрчилгээ авах шалгуур", "en": "Criteria for the certificate", "ru": "Критерии"},
    "min_score": {
        "mn": "Хичээл бүрт дор хаяж {score} оноо (хамгийн сайн оролдлого тооцогдоно)",
        "en": "At least {score} in each course (the best attempt counts)",
        "ru": "Не менее {score} баллов по каждому курсу (засчитывается лучшая попытка)",
    },
    "requires": {"mn": "Урьдчилсан гэрчилгээ", "en": "Prerequisite certificates", "ru": "Необходимые сертификаты"},
    "none": {"mn": "байхгүй", "en": "none", "ru": "нет"},
    "programme_not_found": {"mn": "Хөтөлбөр олдсонгүй", "en": "Programme not found", "ru": "Программа не найдена"},
    "printable": {"mn": "Хэвлэх хувилбар (PDF)", "en": "Printable certificate (PDF)", "ru": "Версия для печати (PDF)"},
}

TIERS: Final[dict[str, dict[Language, str]]] = {
    "foundational": {"mn": "Суурь", "en": "Foundational", "ru": "Базовый"},
    "intermediate": {"mn": "Дунд", "en": "Intermediate", "ru": "Средний"},
    "advanced": {"mn": "Ахисан", "en": "Advanced", "ru": "Продвинутый"},
    "standalone": {"mn": "Бие даасан", "en": "Standalone", "ru": "Самостоятельный"},
}


def words(language: Language) -> dict[str, str]:
    return {key: text[language] for key, text in TEXT.items()}


def tier_name(tier: str, language: Language) -> str:
    return TIERS.get(tier, {}).get(language, tier)


def choose_language(query: str | None, accept_language: str | None) -> Language:
    """`?lang=` if it is one of ours; else the best of `Accept-Language` (q-values honoured; `mn-MN` → mn);
    else English."""
    if query in LANGUAGES:
        return cast(Language, query)
    best: tuple[float, int, Language] | None = None
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGUAGES:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0 and (best is None or (quality, -position) > (best[0], best[1])):
            best = (quality, -position, cast(Language, primary))
    return best[2] if best else DEFAULT_LANGUAGE
