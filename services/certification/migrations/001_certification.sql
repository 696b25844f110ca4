-- Educators as registration announced them (no personal data: ids, institution, language, role).
CREATE TABLE educators (
    educator_id   text PRIMARY KEY,
    institution   text NOT NULL,
    language      text NOT NULL,
    role          text NOT NULL,
    registered_at timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Best attempt per (educator, course); only the best counts, attempts is for progress and analytics.
CREATE TABLE completions (
    educator_id       text NOT NULL REFERENCES educators (educator_id),
    course_id         text NOT NULL,
    best_score        double precision NOT NULL,
    attempts          integer NOT NULL,
    first_completed_at timestamptz NOT NULL,
    best_completed_at timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (educator_id, course_id)
);

-- Completions that arrived before the educator's registration: applied (or dead-lettered) when it arrives.
CREATE TABLE pending_completions (
    event_id     text PRIMARY KEY,
    educator_id  text NOT NULL,
    institution  text NOT NULL,
    course_id    text NOT NULL,
    score        double precision NOT NULL,
    completed_at timestamptz NOT NULL,
    subject      text NOT NULL,
    raw          bytea NOT NULL,
    durable      text NOT NULL,
    stream       text,
    stream_seq   bigint,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pending_completions_educator ON pending_completions (educator_id);

-- Exactly one certificate per (educator, programme), whatever duplicates, replays or replicas do.
CREATE TABLE certificates (
    certificate_id text PRIMARY KEY,
    educator_id    text NOT NULL REFERENCES educators (educator_id),
    institution    text NOT NULL,
    programme_id   text NOT NULL,
    course_ids     text[] NOT NULL,
    credits        double precision NOT NULL,
    issued_at      timestamptz NOT NULL,
    kid            text NOT NULL,
    credential     text NOT NULL,
    UNIQUE (educator_id, programme_id)
);

CREATE TABLE revocations (
    certificate_id text PRIMARY KEY REFERENCES certificates (certificate_id),
    reason         text NOT NULL,
    revoked_at     timestamptz NOT NULL
);

-- One recognition per (certificate, receiving institution, receiving programme).
CREATE TABLE recognitions (
    recognition_id        text PRIMARY KEY,
    certificate_id        text NOT NULL REFERENCES certificates (certificate_id),
    receiving_institution text NOT NULL,
    receiving_programme   text NOT NULL,
    credits               double precision NOT NULL,
    recognized_at         timestamptz NOT NULL,
    UNIQUE (certificate_id, receiving_institution, receiving_programme)
);

-- Ed25519 signing keys; retired keys stay (their public halves remain in the JWKS).
CREATE TABLE signing_keys (
    kid         text PRIMARY KEY,
    private_jwk jsonb NOT NULL,
    created_at  timestamptz NOT NULL,
    active      boolean NOT NULL
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (active) WHERE active;
