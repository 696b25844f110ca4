"""The connection type every PostgreSQL repository of this service is built on (`store.py`)."""

from __future__ import annotations

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Conn = asyncpg.Connection | PoolConnectionProxy
"""A connection, inside the caller's transaction."""
