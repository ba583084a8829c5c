-- Indexes built without blocking writes.  CREATE INDEX CONCURRENTLY cannot
-- run inside a transaction block, so this step runs each statement on its
-- own.  (A partitioned table such as rides cannot be indexed concurrently
-- in PostgreSQL 15; vehicles and users are plain tables.)
-- pgnear: no-transaction
-- pgnear: lock_timeout = 10s

CREATE INDEX CONCURRENTLY vehicles_owner_idx ON vehicles (city, owner_id);
CREATE INDEX CONCURRENTLY users_name_idx ON users (city, name);
