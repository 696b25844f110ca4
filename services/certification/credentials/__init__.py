"""Certificates as Open Badges 3.0 credentials in VC-JWT form, signed with Ed25519.

`claims` builds what the credential says, `signing` holds the keys and signs, `verification` checks a
token offline against a JWKS. Callers import from here; a status-list module (W3C Bitstring Status
List, contract 11) slots in beside them.
"""

from services.certification.credentials.claims import (
    CREDENTIAL_CONTEXT,
    DEFAULT_ISSUER,
    IssuerProfile,
    build_credential_claims,
    certificate_urn,
    educator_urn,
    programme_urn,
)
from services.certification.credentials.signing import (
    ALGORITHM,
    KeyRecord,
    KeyRing,
    PublicKeyRecord,
    generate_signing_key,
    key_from_private_jwk,
    key_to_private_jwk,
    public_jwk,
    sign_credential,
)
from services.certification.credentials.verification import (
    CredentialError,
    CredentialErrorReason,
    VerifiedCredential,
    verify_credential,
)

__all__ = [
    "ALGORITHM",
    "CREDENTIAL_CONTEXT",
    "DEFAULT_ISSUER",
    "CredentialError",
    "CredentialErrorReason",
    "IssuerProfile",
    "KeyRecord",
    "KeyRing",
    "PublicKeyRecord",
    "VerifiedCredential",
    "build_credential_claims",
    "certificate_urn",
    "educator_urn",
    "generate_signing_key",
    "key_from_private_jwk",
    "key_to_private_jwk",
    "programme_urn",
    "public_jwk",
    "sign_credential",
    "verify_credential",
]
