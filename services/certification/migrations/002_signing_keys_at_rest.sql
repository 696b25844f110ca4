-- Signing keys at rest (#9): the private JWK is sealed (AES-256-GCM) with a key-encryption key that is not in
-- the database; the public half is kept beside it so the JWKS never needs the private key.
-- Existing plaintext rows are sealed by the service on its first start with a KEK (key_vault.py); until then
-- `private_jwk` still holds them, and never again afterwards.
ALTER TABLE signing_keys ALTER COLUMN private_jwk DROP NOT NULL;
ALTER TABLE signing_keys ADD COLUMN public_jwk jsonb;
ALTER TABLE signing_keys ADD COLUMN sealed_private bytea;
ALTER TABLE signing_keys ADD COLUMN kek_id text;
ALTER TABLE signing_keys ADD COLUMN compromised_at timestamptz;
UPDATE signing_keys
   SET public_jwk = jsonb_build_object('kty', 'OKP', 'crv', private_jwk ->> 'crv', 'x', private_jwk ->> 'x')
 WHERE public_jwk IS NULL;
ALTER TABLE signing_keys ALTER COLUMN public_jwk SET NOT NULL;
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_private_somewhere
    CHECK (private_jwk IS NOT NULL OR (sealed_private IS NOT NULL AND kek_id IS NOT NULL));
