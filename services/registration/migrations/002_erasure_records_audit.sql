-- Erasure (contract v1.1): name and e-mail are deleted, the id and institution stay. A NULL e-mail
-- key leaves the (institution, email_key) constraint, so the same e-mail registers a new educator.
ALTER TABLE educators ALTER COLUMN email_key DROP NOT NULL;
ALTER TABLE educators ALTER COLUMN email DROP NOT NULL;
ALTER TABLE educators ALTER COLUMN full_name DROP NOT NULL;
ALTER TABLE educators ADD COLUMN erased_at timestamptz;
CREATE INDEX educators_by_institution ON educators (institution, registered_at, educator_id);

-- Cascade and portfolio records entered over HTTP: one row per (kind, id) makes intake idempotent
-- (training sessions, attendance per (session, educator), portfolio entries, practice reports).
CREATE TABLE records (
    kind        text NOT NULL,
    record_id   text NOT NULL,
    institution text NOT NULL,
    data        jsonb NOT NULL,
    recorded_by text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, record_id)
);

-- Who changed an educator (role changes, erasure): actors are token names, never personal data.
CREATE TABLE educator_audit (
    seq         bigserial PRIMARY KEY,
    educator_id text NOT NULL,
    action      text NOT NULL,
    actor       text NOT NULL,
    detail      jsonb NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX educator_audit_by_educator ON educator_audit (educator_id, seq);
