"""Certificates as Open Badges 3.0 credentials in VC-JWT form, signed with Ed25519.

`claims` builds what the credential says, `signing` holds the keys and signs, `verification` checks a
token offline against a JWKS, `status_list` encodes and reads W3C Bitstring Status Lists (contract 11).
Callers import from here.
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
from services.certification.credentials.status_list import (
    STATUS_LIST_MEDIA_TYPE,
    ListStatus,
    bit_is_set,
    build_status_list_claims,
    decode_status_list,
    encode_status_list,
    status_entry,
    verify_status_list,
)
from services.certification.credentials.verification import (
    CredentialError,
    CredentialErrorReason,
    VerifiedCredential,
    verify_credential,
    verify_signature,
)

__all__ = [
    "ALGORITHM",
    "CREDENTIAL_CONTEXT",
    "DEFAULT_ISSUER",
    "STATUS_LIST_MEDIA_TYPE",
    "CredentialError",
    "CredentialErrorReason",
    "IssuerProfile",
    "KeyRecord",
    "KeyRing",
    "ListStatus",
    "PublicKeyRecord",
    "VerifiedCredential",
    "bit_is_set",
    "build_credential_claims",
    "build_status_list_claims",
    "certificate_urn",
    "decode_status_list",
    "educator_urn",
    "encode_status_list",
    "generate_signing_key",
    "key_from_private_jwk",
    "key_to_private_jwk",
    "programme_urn",
    "public_jwk",
    "sign_credential",
    "status_entry",
    "verify_credential",
    "verify_signature",
    "verify_status_list",
]
