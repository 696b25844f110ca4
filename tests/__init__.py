"""Cross-service tests: contract, integration (real NATS + PostgreSQL), end-to-end."""
