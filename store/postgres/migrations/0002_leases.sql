-- Shard leases (SCALEOUT.md §6.1): one row per shard, written only by an
-- acquire (owner and epoch + 1), a renewal or a release. Every fenced
-- write checks its shard's row in its own transaction. Times are the
-- database's clock (clock_timestamp()), never a replica's.
--
-- epoch is the fence: it grows at every acquire, so a write under an
-- older epoch is refused, whatever the writer's clock says.
CREATE TABLE baton_shards (
    shard      int PRIMARY KEY,
    owner      text COLLATE "C" NOT NULL DEFAULT '',  -- '': never held
    epoch      bigint NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO baton_shards (shard)
    SELECT generate_series(0, (SELECT value::int FROM baton_meta WHERE key = 'shards') - 1);

-- Replicas and their heartbeats: who is alive, and where it listens, for
-- spreading the shards over the live ones (rendezvous hashing) and for
-- forwarding a thread's calls to its shard's owner.
CREATE TABLE baton_replicas (
    id         text COLLATE "C" PRIMARY KEY,
    addr       text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamptz NOT NULL
);
