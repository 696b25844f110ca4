-- Contract 1.1: suspension/reinstatement history, the operator behind each change, W3C Bitstring Status Lists.
ALTER TABLE revocations ADD COLUMN actor text;

-- Suspensions and reinstatements, numbered per certificate; the latest one says whether it is suspended.
CREATE TABLE status_changes (
    certificate_id text NOT NULL REFERENCES certificates (certificate_id),
    seq            integer NOT NULL,
    action         text NOT NULL CHECK (action IN ('suspended', 'reinstated')),
    reason         text,
    at             timestamptz NOT NULL,
    actor          text,
    PRIMARY KEY (certificate_id, seq)
);

-- Published bitstrings, one purpose each (revocation-1, suspension-1, …); updated_at = last bit flip.
CREATE TABLE status_lists (
    list_id    text PRIMARY KEY,
    purpose    text NOT NULL CHECK (purpose IN ('revocation', 'suspension')),
    seq        integer NOT NULL,
    size       integer NOT NULL CHECK (size >= 131072 AND size % 8 = 0),
    updated_at timestamptz NOT NULL,
    UNIQUE (purpose, seq)
);

-- One random, unused index per (list, certificate); is_set is the bit as the rules decided it.
CREATE TABLE status_entries (
    list_id        text NOT NULL REFERENCES status_lists (list_id),
    status_index   integer NOT NULL,
    certificate_id text NOT NULL,
    purpose        text NOT NULL,
    is_set         boolean NOT NULL DEFAULT false,
    PRIMARY KEY (list_id, status_index)
);
CREATE INDEX status_entries_certificate ON status_entries (certificate_id);
CREATE INDEX status_entries_set ON status_entries (list_id) WHERE is_set;
