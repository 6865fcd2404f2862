"""How GoPay's event store and views connect: the library's PostgreSQL, given the whole URL.

The eventsourcing library connects with a host, port, user, password and database name
alone. GOPAY_DATABASE_URL can say more that matters: `target_session_attrs=read-write` with
several hosts (libpq then connects only to the primary, so every new connection after a
failover finds the new one), `connect_timeout`, `sslmode`. Each pool gets the URL as its
conninfo; the library's own parameters, taken from the same URL, say the same.
"""

from __future__ import annotations

from eventsourcing import postgres
from eventsourcing.utils import Environment, EnvType

# How long a pool keeps retrying, in the background, a connection it lost. psycopg_pool's
# default (5 minutes, with the wait doubling each time) leaves a pool that lost its
# connections in a failover reconnecting up to twice the outage's length after the new
# primary is up. Given up soon, a connection is made again as soon as a request needs one.
RECONNECT_TIMEOUT = 1.0


class PostgresFactory(postgres.PostgresFactory):
    """The library's factory, whose pool connects with the URL in POSTGRES_CONNINFO."""

    POSTGRES_CONNINFO = "POSTGRES_CONNINFO"

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        # The pool opens on first use (the recorder's first query), so this comes in time.
        pool = self.datastore.pool
        pool.conninfo = self.env.get(self.POSTGRES_CONNINFO) or ""
        pool.reconnect_timeout = RECONNECT_TIMEOUT
