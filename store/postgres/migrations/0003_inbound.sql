-- The inbound queue (store.InboundEntry): webhook events that any replica
-- accepted, durable before its 200, waiting for the owner of their
-- thread's shard to route them. Any replica appends, under no lease, so
-- that ingress goes on while shards change hands; the owner deletes an
-- entry in the fenced transaction that routes it. Like the journal's, the
-- event is its bytes as Meta sent them and received_at is Unix
-- nanoseconds.
--
-- seq is the routing order: an entry appended after another committed has
-- a higher seq. The owner reads its shards' oldest through (shard, seq).
CREATE TABLE baton_inbound (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shard       int NOT NULL,
    app         text COLLATE "C" NOT NULL,
    page        text COLLATE "C" NOT NULL,
    psid        text COLLATE "C" NOT NULL,   -- '' for a page-level event
    channel     text COLLATE "C" NOT NULL,
    received_at bigint NOT NULL,
    event       bytea NOT NULL
);
CREATE INDEX baton_inbound_shard ON baton_inbound (shard, seq);
