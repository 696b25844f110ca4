"""Test helpers (outside the installed package): servers, polling, stream reads, partner events."""
