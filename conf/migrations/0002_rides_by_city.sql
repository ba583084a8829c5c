-- MovR: vehicles and rides, keyed by city like users.  Rides are
-- partitioned by LIST (city), one partition for the cities of each region
-- and a default one for the rest.  Parents before children: a foreign key
-- always references a table created earlier in the step.
-- pgnear: lock_timeout = 5s
-- pgnear: statement_timeout = 1min

CREATE TABLE vehicles (
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    city        text NOT NULL,
    type        text NOT NULL,
    owner_id    uuid,
    status      text NOT NULL DEFAULT 'available',
    ext         jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (city, id),
    FOREIGN KEY (city, owner_id) REFERENCES users (city, id)
);

CREATE TABLE rides (
    id            uuid NOT NULL DEFAULT gen_random_uuid(),
    city          text NOT NULL,
    vehicle_id    uuid NOT NULL,
    rider_id      uuid NOT NULL,
    start_address text,
    end_address   text,
    start_time    timestamptz NOT NULL DEFAULT now(),
    end_time      timestamptz,
    revenue       numeric(10, 2),
    PRIMARY KEY (city, id),
    FOREIGN KEY (city, rider_id) REFERENCES users (city, id),
    FOREIGN KEY (city, vehicle_id) REFERENCES vehicles (city, id)
) PARTITION BY LIST (city);

CREATE TABLE rides_us_east PARTITION OF rides
    FOR VALUES IN ('new york', 'boston', 'washington dc');
CREATE TABLE rides_us_west PARTITION OF rides
    FOR VALUES IN ('seattle', 'san francisco', 'los angeles');
CREATE TABLE rides_eu_west PARTITION OF rides
    FOR VALUES IN ('amsterdam', 'paris', 'rome');
CREATE TABLE rides_elsewhere PARTITION OF rides DEFAULT;

-- A ride's revenue, from a SQL-standard function body: the semicolons
-- between BEGIN ATOMIC and END do not end the CREATE FUNCTION.
CREATE FUNCTION city_revenue(which_city text) RETURNS numeric
    LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT coalesce(sum(revenue), 0) FROM rides WHERE city = which_city;
END;
