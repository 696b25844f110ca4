"""Unit tests of the notification building blocks (no NATS, no database)."""
