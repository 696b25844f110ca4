-- Credit transfer requests and their (final) decisions (#12 item 3); one request per (certificate, receiving
-- institution, receiving programme). An accepted one is also a row of `recognitions` (CreditRecognized).
CREATE TABLE credit_transfers (
    request_id            text PRIMARY KEY,
    educator_id           text NOT NULL,
    institution           text NOT NULL,
    certificate_id        text NOT NULL REFERENCES certificates (certificate_id),
    receiving_institution text NOT NULL,
    receiving_programme   text NOT NULL,
    requested_at          timestamptz NOT NULL,
    decision              text CHECK (decision IN ('accepted', 'rejected')),
    credits               double precision,
    reason                text,
    decided_at            timestamptz,
    UNIQUE (certificate_id, receiving_institution, receiving_programme)
);
CREATE INDEX credit_transfers_institution ON credit_transfers (institution);
CREATE INDEX credit_transfers_receiving ON credit_transfers (receiving_institution);
