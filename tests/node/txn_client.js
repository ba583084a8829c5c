#!/usr/bin/env node
// txn_client.js: node-postgres (pg) sessions under pool_mode = transaction,
// for 251_txn_drivers.t.  It opens --clients sessions, each its own
// pg.Client, and runs them at once; each does --txns transactions, a mix
// of: named prepared statements ({name, text, values}: pg parses a name
// once per connection it thinks it has, then only binds it), unnamed
// parameterized queries, simple queries, BEGIN ... COMMIT blocks whose
// statements must see their own uncommitted row and all run on one
// backend, and BEGIN ... ROLLBACK blocks whose row must be gone after.
// Rows go to the table txn_rows (client text, n int, v int), keyed by the
// client's id (--tag and its number), which the test makes beforehand.
// Every result is checked; pg_backend_pid() comes with each, and the
// distinct ones are reported.
//
//   node tests/node/txn_client.js --port PORT [--host H] [--user U]
//        [--password P] [--database D] [--clients N] [--txns N]
//        [--names N] [--seconds S] [--tag T] [--app NAME]
//
// Every session logs in with application_name --app (pg adds
// client_encoding UTF8): under transaction pooling a server connection
// serves only clients of exactly its startup parameters, so clients that
// are to share connections (these and txn_client.py's) send the same.
//
// --names N: the named statement q_K (K cycling through 0 .. N-1) reads
// 'SELECT $1::int + K, pg_backend_pid()', so that N distinct names are in
// use (more than max_prepared_statements: pgnear evicts and re-prepares).
// --seconds: each client stops early after S seconds (then it has not
// finished: "finished" is false).
//
// When all clients are done it prints one JSON line: {"clients": [{"id",
// "finished", "ok", "transactions", "failure_count", "failures": [first
// few], "backends": [distinct pids]}]}, or {"fatal": message}; then it
// keeps every session open until it reads "stop" (or EOF) on stdin, so
// that the test can look at them, and ends them.
'use strict';

const { Client } = require('pg');
const readline = require('readline');
const { parseFlags } = require('./flags');

function usage(msg) {
    process.stderr.write(`txn_client: ${msg}\n`);
    process.exit(1);
}

const o = parseFlags(process.argv.slice(2), {
    host: '127.0.0.1', user: 'app', password: 'app-secret', database: 'movr',
    clients: 8, txns: 200, names: 3, seconds: 40, tag: 'node', app: 'txn-client',
}, {
    '--host': ['host', 'string'], '--port': ['port', 'number'], '--user': ['user', 'string'],
    '--password': ['password', 'string'], '--database': ['database', 'string'],
    '--clients': ['clients', 'number'], '--txns': ['txns', 'number'], '--names': ['names', 'number'],
    '--seconds': ['seconds', 'number'], '--tag': ['tag', 'string'], '--app': ['app', 'string'],
}, usage);
if (!Number.isInteger(o.port) || o.port <= 0) usage('--port is required');

const KINDS = 5;

async function runClient(c, id, deadline) {
    const res = { id, finished: false, ok: 0, transactions: 0, failure_count: 0, failures: [], backends: [] };
    const backends = new Set();
    const fail = (what) => {
        res.failure_count++;
        if (res.failures.length < 10) res.failures.push(what);
    };
    const check = (what, got, want) => {
        if (String(got) === String(want)) {
            res.ok++;
            return true;
        }
        fail(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
        return false;
    };
    const pid = (r) => {
        const p = r.rows[0].pid;
        backends.add(p);
        return p;
    };
    let committed = 0;  // rows of this client committed so far
    let n = 0;          // the next row number
    for (let i = 0; i < o.txns; i++) {
        if (Date.now() > deadline) {
            fail(`out of time after ${i} of ${o.txns} transactions`);
            break;
        }
        const kind = i % KINDS;
        try {
            if (kind === 0) {
                // A named statement, alone: a transaction of its own.
                const k = i % o.names;
                const r = await c.query({ name: `q_${k}`, text: `SELECT $1::int + ${k} AS v, pg_backend_pid() AS pid`, values: [i] });
                res.transactions++;
                check(`q_${k}(${i})`, r.rows[0].v, i + k);
                pid(r);
            } else if (kind === 1) {
                // An unnamed statement with parameters.
                const r = await c.query({ text: 'SELECT $1::text || \':\' || $2::int AS v, pg_backend_pid() AS pid', values: [id, i] });
                res.transactions++;
                check(`unnamed (${i})`, r.rows[0].v, `${id}:${i}`);
                pid(r);
            } else if (kind === 2) {
                // BEGIN ... COMMIT: the block sees its own uncommitted row, on one backend.
                const v = i * 7;
                await c.query('BEGIN');
                const r0 = await c.query({ name: 'ins', text: 'INSERT INTO txn_rows (client, n, v) VALUES ($1, $2, $3) RETURNING pg_backend_pid() AS pid', values: [id, n, v] });
                const p0 = pid(r0);
                const r1 = await c.query({ name: 'get_v', text: 'SELECT v, pg_backend_pid() AS pid FROM txn_rows WHERE client = $1 AND n = $2', values: [id, n] });
                check(`commit block ${i}: its own uncommitted row`, r1.rows.length === 1 ? r1.rows[0].v : 'no row', v);
                check(`commit block ${i}: the same backend (get_v)`, pid(r1), p0);
                const r2 = await c.query({ name: 'count', text: 'SELECT count(*)::int AS c, pg_backend_pid() AS pid FROM txn_rows WHERE client = $1', values: [id] });
                check(`commit block ${i}: its rows, the new one counted`, r2.rows[0].c, committed + 1);
                check(`commit block ${i}: the same backend (count)`, pid(r2), p0);
                const k = i % o.names;
                const r3 = await c.query({ name: `q_${k}`, text: `SELECT $1::int + ${k} AS v, pg_backend_pid() AS pid`, values: [v] });
                check(`commit block ${i}: q_${k} inside`, r3.rows[0].v, v + k);
                check(`commit block ${i}: the same backend (q_${k})`, pid(r3), p0);
                const r4 = await c.query('SELECT pg_backend_pid() AS pid');
                check(`commit block ${i}: the same backend (simple query)`, pid(r4), p0);
                await c.query('COMMIT');
                res.transactions++;
                committed++;
                n++;
            } else if (kind === 3) {
                // BEGIN ... ROLLBACK: seen inside, gone after.
                const v = -i;
                await c.query('BEGIN');
                const r0 = await c.query({ name: 'ins', text: 'INSERT INTO txn_rows (client, n, v) VALUES ($1, $2, $3) RETURNING pg_backend_pid() AS pid', values: [id, n, v] });
                const p0 = pid(r0);
                const r1 = await c.query({ text: 'SELECT count(*)::int AS c, pg_backend_pid() AS pid FROM txn_rows WHERE client = $1', values: [id] });
                check(`rollback block ${i}: its rows, the new one counted`, r1.rows[0].c, committed + 1);
                check(`rollback block ${i}: the same backend`, pid(r1), p0);
                await c.query('ROLLBACK');
                res.transactions++;
                const r2 = await c.query({ name: 'count', text: 'SELECT count(*)::int AS c, pg_backend_pid() AS pid FROM txn_rows WHERE client = $1', values: [id] });
                res.transactions++;
                check(`rollback block ${i}: the row is gone after ROLLBACK`, r2.rows[0].c, committed);
                pid(r2);
                const r3 = await c.query({ name: 'count_n', text: 'SELECT count(*)::int AS c, pg_backend_pid() AS pid FROM txn_rows WHERE client = $1 AND n = $2', values: [id, n] });
                res.transactions++;
                check(`rollback block ${i}: row ${n} is not there`, r3.rows[0].c, 0);
                pid(r3);
            } else {
                // A simple query (no parameters: the simple protocol), reading what was committed.
                const r = await c.query(`SELECT count(*)::int AS c, sum(v)::int AS s, pg_backend_pid() AS pid FROM txn_rows WHERE client = '${id}'`);
                res.transactions++;
                check(`simple query ${i}: its committed rows`, r.rows[0].c, committed);
                pid(r);
            }
        } catch (e) {
            fail(`transaction ${i} (kind ${kind}): ${e.code ? e.code + ' ' : ''}${e.message}`);
            // Whatever state that left: out of any transaction block before the next.
            try { await c.query('ROLLBACK'); } catch (e2) { fail(`ROLLBACK after the failure: ${e2.message}`); }
        }
        if (i === o.txns - 1) res.finished = true;
    }
    res.backends = [...backends].sort((a, b) => a - b);
    return res;
}

async function main() {
    const clients = [];
    for (let k = 0; k < o.clients; k++) {
        const c = new Client({
            host: o.host, port: o.port, user: o.user, password: o.password, database: o.database,
            application_name: o.app,
        });
        c.on('error', (e) => { process.stderr.write(`txn_client ${o.tag}-${k}: ${e.message}\n`); });
        await c.connect();
        clients.push(c);
    }
    const deadline = Date.now() + o.seconds * 1000;
    const results = await Promise.all(clients.map((c, k) => runClient(c, `${o.tag}-${k}`, deadline)));
    process.stdout.write(JSON.stringify({ clients: results }) + '\n');
    await new Promise((resolve) => {
        const rl = readline.createInterface({ input: process.stdin });
        rl.on('line', (l) => { if (l.trim() === 'stop') { rl.close(); } });
        rl.on('close', resolve);
    });
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
}

main().catch((e) => {
    process.stdout.write(JSON.stringify({ fatal: e.message }) + '\n');
    process.exit(1);
});
