-- Undoes 0003.  MIGRATE DOWN runs a down script in one transaction with
-- its history row, so this drops the indexes without CONCURRENTLY: each
-- DROP INDEX holds its table's lock only for the moment it takes, and a
-- busy table makes it wait no longer than lock_timeout.
-- pgnear: lock_timeout = 5s

DROP INDEX users_name_idx;
DROP INDEX vehicles_owner_idx;
