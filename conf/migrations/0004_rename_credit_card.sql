-- Renames users.credit_card to payment_method.  Client traffic to the
-- database is held at transaction boundaries while this step runs, so no
-- query sees the table half-renamed; the view users_v1 keeps the old
-- column name for clients that have not been updated yet.
-- pgnear: pause
-- pgnear: statement_timeout = 30s

ALTER TABLE users RENAME COLUMN credit_card TO payment_method;

CREATE VIEW users_v1 AS
    SELECT id, city, name, address, payment_method AS credit_card
    FROM users;
