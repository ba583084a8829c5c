#!/usr/bin/env node
// fatal_client.js: one node-postgres (pg) session whose query is answered
// with a FATAL, for tests/integration/089_fatal_reaches.t: what the
// driver tells its application (the error's code, severity and message)
// when the server side ends the session while the query waits.
//
//   node tests/node/fatal_client.js --port PORT [--host H] [--ssl --ca FILE]
//        [--user U] [--password P] [--database D] [--timeout SECONDS]
//
// It logs in, prints {"ready":true} (or {"ready":false,"error":{...}}),
// then reads one line on stdin: the SQL to run (a Query).  It prints one
// JSON line: {"code","severity","message","ms"} of the query's error, or
// {"ok":true} if it succeeded, or {"timeout":true} after --timeout
// seconds; then it exits 0.
'use strict';

const fs = require('fs');
const readline = require('readline');
const { Client } = require('pg');
const { parseFlags } = require('./flags');

function usage(msg) {
    process.stderr.write(`fatal_client: ${msg}\n`);
    process.exit(1);
}

const o = parseFlags(process.argv.slice(2), {
    host: '127.0.0.1', user: 'app', password: 'app-secret', database: 'movr', ssl: false,
    ca: null, timeout: 20,
}, {
    '--host': ['host', 'string'], '--port': ['port', 'number'], '--user': ['user', 'string'],
    '--password': ['password', 'string'], '--database': ['database', 'string'],
    '--ssl': ['ssl', 'true'], '--ca': ['ca', 'string'], '--timeout': ['timeout', 'number'],
}, usage);
if (!Number.isInteger(o.port) || o.port <= 0) usage('--port is required');
if (o.ssl && !o.ca) usage('--ssl needs --ca');

function say(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

function errorOf(e) {
    return { code: e.code ?? null, severity: e.severity ?? null, message: String(e.message) };
}

async function main() {
    const c = new Client({
        host: o.host, port: o.port, user: o.user, password: o.password, database: o.database,
        ssl: o.ssl ? { ca: fs.readFileSync(o.ca), servername: 'localhost' } : false,
        connectionTimeoutMillis: o.timeout * 1000,
    });
    c.on('error', () => {}); // the session's end after the FATAL: the query's error says it
    try {
        await c.connect();
    } catch (e) {
        say({ ready: false, error: errorOf(e) });
        return;
    }
    say({ ready: true });
    const rl = readline.createInterface({ input: process.stdin });
    const sql = await new Promise((resolve) => rl.once('line', resolve));
    rl.close();
    const t0 = process.hrtime.bigint();
    const timer = new Promise((resolve) => setTimeout(() => resolve({ timeout: true }), o.timeout * 1000));
    const run = c.query(sql).then(() => ({ ok: true }), (e) => ({
        ...errorOf(e), ms: Number(process.hrtime.bigint() - t0) / 1e6,
    }));
    say(await Promise.race([run, timer]));
    c.end().catch(() => {});
}

main().then(() => process.exit(0), (e) => {
    say({ bug: String(e && e.stack || e) });
    process.exit(1);
});
