-- pgnear: no-transaction

DROP INDEX CONCURRENTLY users_name_idx;
DROP INDEX CONCURRENTLY vehicles_owner_idx;
