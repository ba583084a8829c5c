-- pgnear: pause

DROP VIEW users_v1;
ALTER TABLE users RENAME COLUMN payment_method TO credit_card;
