-- MovR: the riders, keyed by their city first, so that a city's rows stay
-- together and a region can hold the cities it serves.
-- pgnear: lock_timeout = 5s

CREATE TABLE users (
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    city        text NOT NULL,
    name        text NOT NULL,
    address     text,
    credit_card text,
    PRIMARY KEY (city, id)
);

COMMENT ON TABLE users IS 'MovR riders; the city leads the key';
