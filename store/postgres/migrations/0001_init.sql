-- Baton's first PostgreSQL schema (SCALEOUT.md §6.2). Records are the JSON
-- Baton writes (type json: kept as written, \u0000 and all); the columns
-- beside them are what is looked up, ordered or counted. Times in columns
-- are Unix nanoseconds (bigint, 0 for none), as store/bolt's keys are, so
-- nothing is rounded to PostgreSQL's microseconds. Keys are COLLATE "C":
-- byte order, the order store/bolt lists them in.
--
-- Every row of one thread's data carries shard, a hash of (page, PSID)
-- into baton_meta's shard count, so that shard leases and epoch fencing
-- come without a new layout.
--
-- Ids and sequence numbers are their columns (id, seq), assigned by the
-- insert; a record's own id or seq field is not read back.

CREATE TABLE baton_meta (
    key   text COLLATE "C" PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO baton_meta (key, value) VALUES ('shards', '256');

CREATE TABLE baton_threads (
    page     text COLLATE "C" NOT NULL,
    psid     text COLLATE "C" NOT NULL,
    shard    int NOT NULL,
    state    text COLLATE "C" NOT NULL,
    owner    text COLLATE "C" NOT NULL,
    timer_at bigint,                      -- NULL: no timer
    record   json NOT NULL,
    PRIMARY KEY (page, psid)
);
CREATE INDEX baton_threads_timer ON baton_threads (timer_at, page, psid) WHERE timer_at IS NOT NULL;
CREATE INDEX baton_threads_owner ON baton_threads (owner, page, psid);

-- Threads per state and shard, so that metrics never count the threads.
CREATE TABLE baton_counts (
    shard int NOT NULL,
    state text COLLATE "C" NOT NULL,
    n     bigint NOT NULL,
    PRIMARY KEY (shard, state)
);

CREATE TABLE baton_history (
    page   text COLLATE "C" NOT NULL,
    psid   text COLLATE "C" NOT NULL,
    id     bigint GENERATED ALWAYS AS IDENTITY,
    shard  int NOT NULL,
    record json NOT NULL,
    PRIMARY KEY (page, psid, id)
);

-- The journal: the header as JSON, the event's bytes as received. psid is
-- the person the event is about (its sender, or an echo's recipient), for
-- an erase to find their entries without a scan.
CREATE TABLE baton_journal (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at bigint NOT NULL,
    page        text COLLATE "C" NOT NULL,
    psid        text COLLATE "C" NOT NULL,
    header      json NOT NULL,
    event       bytea NOT NULL
);
CREATE INDEX baton_journal_person ON baton_journal (page, psid);

-- Dedup marks: a mark is (key, the event's own time); day is the UTC day
-- it was made (days since 1970), which a sweep drops whole.
CREATE TABLE baton_seen (
    key text COLLATE "C" NOT NULL,
    at  bigint NOT NULL,                 -- milliseconds
    day int NOT NULL,
    PRIMARY KEY (key, at)
);
CREATE INDEX baton_seen_day ON baton_seen (day);

-- Delivery ids: one sequence for the outbox and the dead letters, so an id
-- stays unique as a delivery moves between them.
CREATE SEQUENCE baton_delivery_id;

-- The outbox. A record holds its event, as store/bolt's do, unless it
-- reads it from journal entry journal_seq. retried: revived from the dead
-- letters (Delivery.RetriedDeadAt); later_delivered: Delivery.LaterDelivered,
-- set by the delivery of a later one of its lane.
CREATE TABLE baton_outbox (
    id              bigint PRIMARY KEY DEFAULT nextval('baton_delivery_id'),
    shard           int NOT NULL,
    app             text COLLATE "C" NOT NULL,
    page            text COLLATE "C" NOT NULL,
    psid            text COLLATE "C" NOT NULL,
    attempts        int NOT NULL,
    created_at      bigint NOT NULL,
    next_attempt    bigint NOT NULL,
    journal_seq     bigint,               -- set when it reads the journal's event
    retried         boolean NOT NULL DEFAULT false,
    later_delivered boolean NOT NULL DEFAULT false,
    record          json NOT NULL
);
CREATE INDEX baton_outbox_lane ON baton_outbox (app, page, psid, id);
CREATE INDEX baton_outbox_person ON baton_outbox (page, psid);
CREATE INDEX baton_outbox_journal ON baton_outbox (journal_seq) WHERE journal_seq IS NOT NULL;

-- Pending deliveries per app, so that metrics never count the outbox.
CREATE TABLE baton_pending_counts (
    app text COLLATE "C" PRIMARY KEY,
    n   bigint NOT NULL
);

-- Dead letters, each with its own copy of the event in its record.
CREATE TABLE baton_dead (
    id              bigint PRIMARY KEY,
    shard           int NOT NULL,
    app             text COLLATE "C" NOT NULL,
    page            text COLLATE "C" NOT NULL,
    psid            text COLLATE "C" NOT NULL,
    later_delivered boolean NOT NULL DEFAULT false,
    record          json NOT NULL
);
CREATE INDEX baton_dead_lane ON baton_dead (app, page, psid, id);
CREATE INDEX baton_dead_person ON baton_dead (page, psid);

CREATE TABLE baton_intents (
    page   text COLLATE "C" NOT NULL,
    psid   text COLLATE "C" NOT NULL,
    shard  int NOT NULL,
    record json NOT NULL,
    PRIMARY KEY (page, psid)
);

CREATE TABLE baton_jobs (
    rule   text COLLATE "C" NOT NULL,
    page   text COLLATE "C" NOT NULL,
    psid   text COLLATE "C" NOT NULL,
    shard  int NOT NULL,
    at     bigint NOT NULL,
    record json NOT NULL,
    PRIMARY KEY (rule, page, psid)
);
CREATE INDEX baton_jobs_at ON baton_jobs (at, rule, page, psid);
CREATE INDEX baton_jobs_thread ON baton_jobs (page, psid);

CREATE TABLE baton_otn (
    token  text COLLATE "C" PRIMARY KEY,
    page   text COLLATE "C" NOT NULL,
    psid   text COLLATE "C" NOT NULL,
    shard  int NOT NULL,
    record json NOT NULL
);
CREATE INDEX baton_otn_person ON baton_otn (page, psid);

CREATE TABLE baton_deletions (
    code   text COLLATE "C" PRIMARY KEY,
    status text COLLATE "C" NOT NULL,
    record json NOT NULL
);

CREATE TABLE baton_transcript (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    page        text COLLATE "C" NOT NULL,
    psid        text COLLATE "C" NOT NULL,
    shard       int NOT NULL,
    at          bigint NOT NULL,
    recorded_at bigint NOT NULL,
    record      json NOT NULL
);
CREATE INDEX baton_transcript_thread ON baton_transcript (page, psid, at, seq);

CREATE TABLE baton_people (
    page   text COLLATE "C" NOT NULL,
    psid   text COLLATE "C" NOT NULL,
    shard  int NOT NULL,
    record json NOT NULL,
    PRIMARY KEY (page, psid)
);
