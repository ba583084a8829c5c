#!/usr/bin/env node
// move_client.js: a node-postgres (pg) session that an admin moves between
// servers while it works, for 232_move_drivers.t.  It sets up what a
// session carries (settings, SET ROLE, a statement of SQL PREPARE, named
// statements of the extended protocol, LISTEN), prints "ready", then
// checks all of it in a loop, as fast as it can, until it reads "stop" on
// stdin or --seconds pass.  Every notification of the channel "moves" it
// receives is kept by its payload, a number.
//
//   node tests/node/move_client.js --port PORT [--host H] [--user U]
//        [--password P] [--database D] [--options OPTS] [--app NAME]
//        [--role R] [--seconds S] [--ssl]
//
// --ssl: TLS to pgnear (its certificate is not checked: the test's CA is
// not node's).
//
// Each time its backend changes it prints "switch N".  At the end it
// prints one JSON line: {"iterations", "failures": [first
// few], "failure_count", "backends": distinct pg_backend_pid() seen,
// "switches": times the backend changed, "notified": sorted payloads}.
'use strict';

const { Client } = require('pg');
const readline = require('readline');
const { parseFlags } = require('./flags');

function usage(msg) {
    process.stderr.write(`move_client: ${msg}\n`);
    process.exit(1);
}

const o = parseFlags(process.argv.slice(2), {
    host: '127.0.0.1', user: 'app', password: 'app-secret', database: 'movr',
    options: '', app: 'move-client', role: 'reader', seconds: 120, ssl: false,
}, {
    '--host': ['host', 'string'], '--port': ['port', 'number'], '--user': ['user', 'string'],
    '--password': ['password', 'string'], '--database': ['database', 'string'],
    '--options': ['options', 'string'], '--app': ['app', 'string'], '--role': ['role', 'string'],
    '--seconds': ['seconds', 'number'], '--ssl': ['ssl', 'true'],
}, usage);
if (!Number.isInteger(o.port) || o.port <= 0) usage('--port is required');

// What the loop expects to read back, each time.
const EXPECTED = [
    ['SHOW statement_timeout', '41s'],
    ['SHOW DateStyle', 'ISO, DMY'],
    ['SHOW search_path', 'public, pg_catalog'],
    ['SELECT current_user', o.role],
    ['EXECUTE sql_add(40)', '42'],
    ["SELECT string_agg(c, ',' ORDER BY c) FROM pg_listening_channels() c", 'moves,other'],
];

async function main() {
    const c = new Client({
        host: o.host, port: o.port, user: o.user, password: o.password, database: o.database,
        application_name: o.app, options: o.options || undefined,
        ssl: o.ssl ? { rejectUnauthorized: false } : false,
    });
    const notified = new Set();
    c.on('notification', (n) => { if (n.channel === 'moves') notified.add(Number(n.payload)); });
    c.on('error', (e) => { process.stderr.write(`move_client: ${e.message}\n`); });
    await c.connect();
    await c.query("SET statement_timeout = '41s'");
    await c.query("SET DateStyle = 'ISO, DMY'");
    await c.query('SET search_path = public, pg_catalog');
    await c.query(`SET ROLE ${o.role}`);
    await c.query('PREPARE sql_add(int) AS SELECT $1 + 2');
    await c.query('LISTEN moves');
    await c.query('LISTEN other');
    let stop = false;
    readline.createInterface({ input: process.stdin }).on('line', (l) => { if (l.trim() === 'stop') stop = true; });
    const deadline = Date.now() + o.seconds * 1000;
    const failures = [];
    let failureCount = 0, iterations = 0, switches = 0, last = null;
    const backends = new Set();
    const fail = (what) => { failureCount++; if (failures.length < 10) failures.push(what); };
    process.stdout.write('ready\n');
    while (!stop && Date.now() < deadline) {
        iterations++;
        try {
            for (const [sql, want] of EXPECTED) {
                const r = await c.query({ text: sql, rowMode: 'array' });
                const got = String(r.rows[0][0]);
                if (got !== want) fail(`${sql}: got ${got}, want ${want}`);
            }
            // Named statements of the extended protocol: prepared once on the first server.
            const r1 = await c.query({ name: 'named_concat', text: 'SELECT $1::text || $2::text', values: ['a', String(iterations)] });
            if (r1.rows[0]['?column?'] !== `a${iterations}`) fail(`named_concat: ${JSON.stringify(r1.rows)}`);
            const r2 = await c.query({ name: 'named_pid', text: 'SELECT pg_backend_pid() AS pid' });
            const pid = r2.rows[0].pid;
            if (last !== null && pid !== last) {
                switches++;
                // Told at once, so that the test moves it again only after it saw this move.
                process.stdout.write(`switch ${switches}\n`);
            }
            last = pid;
            backends.add(pid);
        } catch (e) {
            fail(`iteration ${iterations}: ${e.message}`);
        }
    }
    // Notifications still on their way come before the count.
    await c.query('SELECT 1');
    await new Promise((r) => setTimeout(r, 300));
    await c.query('SELECT 1');
    process.stdout.write(JSON.stringify({
        iterations, failures, failure_count: failureCount, backends: backends.size, switches,
        notified: [...notified].sort((a, b) => a - b),
    }) + '\n');
    await c.end();
}

main().catch((e) => {
    process.stdout.write(JSON.stringify({ fatal: e.message }) + '\n');
    process.exit(1);
});
