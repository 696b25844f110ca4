-- One registration per (institution, e-mail): the natural key makes registration idempotent.
CREATE TABLE educators (
    educator_id   text PRIMARY KEY,
    institution   text NOT NULL,
    email_key     text NOT NULL,
    email         text NOT NULL,
    full_name     text NOT NULL,
    language      text NOT NULL,
    role          text NOT NULL,
    registered_at timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (institution, email_key)
);
