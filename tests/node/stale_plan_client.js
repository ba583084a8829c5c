#!/usr/bin/env node
// stale_plan_client.js: a prepared statement whose result type changes
// under a client, for 251_txn_drivers.t.  With each driver, postgres.js
// (which describes a statement once and decodes its rows by that
// description from then on) and node-postgres (a named statement, its rows
// decoded by each execution's portal description):
//
//   1. the table stale_t (x bytea) is made directly on the server;
//   2. client A runs 'SELECT x, pg_backend_pid() AS pid FROM stale_t' as a
//      prepared statement through pgnear: a bytea;
//   3. the table is made again directly, x int[] holding {1,NULL,3};
//   4. client H, of the same driver and startup parameters, opens a
//      transaction through pgnear and holds it: under pool_size = 2 it gets
//      the connection A last used (the pool gives the last returned first);
//   5. A runs its statement again: on the other connection, which never
//      had the statement and plans it afresh there.
//
// It prints one JSON line: {"drivers": {NAME: {"first": x as text,
// "first_pid", "held_pid", "second": x as JSON or null, "second_pid",
// "error": SQLSTATE or null}}} or {"fatal": message}.  Directly, A's own
// statement is refused with 0A000 (postgres.js then prepares it again and
// gets [1,null,3]); the wrong answer is an int[] decoded as bytea.
//
//   node tests/node/stale_plan_client.js --port PGNEAR_PORT
//        --direct-port PORT [--host H] [--user U] [--password P] [--database D]
'use strict';

const pg = require('pg');
const postgres = require('postgres');
const { parseFlags } = require('./flags');

function usage(msg) {
    process.stderr.write(`stale_plan_client.js: ${msg}\n`);
    process.exit(2);
}

const o = parseFlags(
    process.argv.slice(2),
    { host: '127.0.0.1', user: 'app', password: 'app-secret', database: 'movr' },
    {
        '--port': ['port', 'number'],
        '--direct-port': ['directPort', 'number'],
        '--host': ['host', 'string'],
        '--user': ['user', 'string'],
        '--password': ['password', 'string'],
        '--database': ['database', 'string'],
    },
    usage,
);
if (!o.port || !o.directPort) usage('--port and --direct-port are needed');

// The statement (postgres.js's tagged template below is the same text).
const QUERY = 'SELECT x, pg_backend_pid() AS pid FROM stale_t';

async function direct(sql) {
    const c = new pg.Client({ host: o.host, port: o.directPort, user: o.user,
                              password: o.password, database: o.database });
    await c.connect();
    try {
        await c.query(sql);
    } finally {
        await c.end();
    }
}

const makeBytea = `DROP TABLE IF EXISTS stale_t;
    CREATE TABLE stale_t (x bytea); INSERT INTO stale_t VALUES ('\\x010203')`;
const makeArray = `DROP TABLE stale_t;
    CREATE TABLE stale_t (x int[]); INSERT INTO stale_t VALUES ('{1,NULL,3}')`;

// What a driver needs: connect() gives {run(): the row, hold(): the pid of a
// transaction held open, release(), end()}.
const drivers = {
    'postgres.js': () => {
        const sql = postgres({ host: o.host, port: o.port, user: o.user, pass: o.password,
                               database: o.database, max: 1, prepare: true, ssl: false,
                               idle_timeout: 0, onnotice: () => {} });
        let release;
        return {
            run: async () => (await sql`SELECT x, pg_backend_pid() AS pid FROM stale_t`)[0],
            hold: () => new Promise((held, fail) => {
                sql.begin(async (tx) => {
                    const [r] = await tx`SELECT pg_backend_pid() AS pid`;
                    held(r.pid);
                    await new Promise((r2) => { release = r2; });
                }).catch(fail);
            }),
            release: () => release(),
            end: () => sql.end({ timeout: 5 }),
        };
    },
    'node-postgres': () => {
        const c = new pg.Client({ host: o.host, port: o.port, user: o.user,
                                  password: o.password, database: o.database });
        const ready = c.connect();
        return {
            run: async () => {
                await ready;
                return (await c.query({ name: 'stale_q', text: QUERY })).rows[0];
            },
            hold: async () => {
                await ready;
                await c.query('BEGIN');
                return (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
            },
            release: () => c.query('COMMIT'),
            end: () => c.end(),
        };
    },
};

const show = (x) => (Buffer.isBuffer(x) ? `\\x${x.toString('hex')}` : JSON.stringify(x));

async function one(make) {
    await direct(makeBytea);
    // H logs in only now: a login takes a connection too, and the last one
    // given back must be A's when H begins.
    const a = make();
    let h = null;
    const out = { error: null, second: null, second_pid: null };
    try {
        const r1 = await a.run();
        out.first = show(r1.x);
        out.first_pid = Number(r1.pid);
        await direct(makeArray);
        h = make();
        out.held_pid = Number(await h.hold());
        try {
            const r2 = await a.run();
            out.second = show(r2.x);
            out.second_pid = Number(r2.pid);
        } catch (e) {
            out.error = e.code || String(e.message);
        }
        await h.release();
    } finally {
        await Promise.allSettled([a.end(), h && h.end()]);
    }
    return out;
}

(async () => {
    const res = { drivers: {} };
    for (const [name, make] of Object.entries(drivers)) res.drivers[name] = await one(make);
    await direct('DROP TABLE stale_t');
    process.stdout.write(`${JSON.stringify(res)}\n`);
})().catch((e) => {
    process.stdout.write(`${JSON.stringify({ fatal: String(e && e.stack || e) })}\n`);
    process.exit(1);
});
