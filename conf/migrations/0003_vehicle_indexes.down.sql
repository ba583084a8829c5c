-- Undoes 0003 without blocking writes either: DROP INDEX CONCURRENTLY,
-- like the CREATE, cannot run in a transaction block.
-- pgnear: no-transaction

DROP INDEX CONCURRENTLY users_name_idx;
DROP INDEX CONCURRENTLY vehicles_owner_idx;
