#!/usr/bin/env node
// cancel_client.js: node-postgres (pg) sessions whose running query is
// cancelled the way node-postgres cancels: a second Client with the same
// configuration, whose cancel(client, query) opens a new connection and
// sends a CancelRequest with the first client's processID and secretKey.
// For tests/integration/220_peer_cancel.t, which drives it over stdin.
//
//   node tests/node/cancel_client.js --port PORT [options]
//
//   --host H             where to connect (default 127.0.0.1)
//   --port N             pgnear's port, or a load balancer's (required)
//   --ssl                TLS for the sessions (SSLRequest, then TLS); needs --ca.
//                        The cancel goes out as node-postgres sends it: in
//                        plain TCP right after connecting, TLS or not
//   --ca FILE            CA certificate (PEM) that pgnear's certificate is
//                        verified against (host name: --host)
//   --user U --password P --database D   (defaults app, app-secret, movr)
//   --timeout SECONDS    a connection that takes longer fails (default 10)
//
// Commands, one JSON object a line on stdin; one JSON answer a line on stdout:
//   {"op":"start","app":NAME,"sql":SQL}
//       connects a new session (application_name NAME) and sends SQL on it;
//       answers {"op":"start","ok":true,"processID":N,"secretKey":N} once
//       the query is on its way, or {"op":"start","ok":false,"error":{...}}
//   {"op":"cancel","wait":SECONDS}
//       cancels that query with a second Client's cancel(); answers when the
//       query ends: {"op":"cancel","code":"57014","message":...,"ms":F}
//       (ms: from the cancel() call to the query's error), or
//       {"op":"cancel","completed":true,"ms":F} if it ended without error,
//       or {"op":"cancel","timeout":true,"ms":F} after SECONDS (default 5);
//       the session is then closed
//   {"op":"quit"}
// Exit status: 0 after quit or the end of stdin; 1 bad usage or a bug here.
'use strict';

const fs = require('fs');
const readline = require('readline');
const { Client, Query } = require('pg');
const { parseFlags } = require('./flags');

function usage(msg) {
    process.stderr.write(`cancel_client: ${msg}\n`);
    process.exit(1);
}

function parseArgs(argv) {
    const o = parseFlags(argv, { host: '127.0.0.1', ssl: false, ca: null, user: 'app',
                                 password: 'app-secret', database: 'movr', timeout: 10 }, {
        '--host': ['host', 'string'], '--port': ['port', 'number'], '--ssl': ['ssl', 'true'],
        '--ca': ['ca', (f) => fs.readFileSync(f, 'utf8')], '--user': ['user', 'string'],
        '--password': ['password', 'string'], '--database': ['database', 'string'],
        '--timeout': ['timeout', 'number'],
    }, usage);
    if (!Number.isInteger(o.port) || o.port <= 0) usage('--port is required');
    if (o.ssl && !o.ca) usage('--ssl needs --ca');
    return o;
}

function say(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

function describeError(e) {
    const out = { message: String(e && e.message !== undefined ? e.message : e) };
    for (const k of ['code', 'severity', 'detail', 'hint']) {
        if (e && typeof e[k] === 'string' && e[k] !== '') out[k] = e[k];
    }
    return out;
}

const o = parseArgs(process.argv.slice(2));

function config(app) {
    return {
        host: o.host, port: o.port, user: o.user, password: o.password, database: o.database,
        application_name: app, connectionTimeoutMillis: o.timeout * 1000,
        ssl: o.ssl ? { ca: o.ca, rejectUnauthorized: true } : false,
    };
}

// The session in progress: {client, query, app, outcome: Promise}.
let cur = null;

async function start(cmd) {
    if (cur) return say({ op: 'start', ok: false, error: { message: 'a session is in progress' } });
    const client = new Client(config(cmd.app));
    client.on('error', () => {}); // a late error of the session: the query's own outcome says it
    try {
        await client.connect();
    } catch (e) {
        try { await client.end(); } catch (e2) { /* gone already */ }
        return say({ op: 'start', ok: false, error: describeError(e) });
    }
    const query = new Query(cmd.sql);
    const outcome = new Promise((resolve) => {
        query.on('error', (e) => resolve({ error: e, at: process.hrtime.bigint() }));
        query.on('end', () => resolve({ at: process.hrtime.bigint() }));
    });
    client.query(query);
    cur = { client, query, app: cmd.app, outcome };
    say({ op: 'start', ok: true, processID: client.processID, secretKey: client.secretKey });
}

async function cancel(cmd) {
    if (!cur) return say({ op: 'cancel', error: { message: 'no session' } });
    const { client, query, app, outcome } = cur;
    cur = null;
    const wait = (cmd.wait || 5) * 1000;
    const canceller = new Client(config(app));
    canceller.on('error', () => {});
    canceller.connection.on('error', () => {}); // pgnear closes the cancel connection without a word
    const t0 = process.hrtime.bigint();
    canceller.cancel(client, query);
    let timer;
    const r = await Promise.race([
        outcome,
        new Promise((resolve) => { timer = setTimeout(() => resolve({ timeout: true }), wait); }),
    ]);
    clearTimeout(timer);
    const end = r.at !== undefined ? r.at : process.hrtime.bigint();
    const ms = Number(end - t0) / 1e6;
    if (r.timeout) say({ op: 'cancel', timeout: true, ms });
    else if (r.error) say({ op: 'cancel', ms, ...describeError(r.error) });
    else say({ op: 'cancel', completed: true, ms });
    try { canceller.connection.stream.destroy(); } catch (e) { /* closed already */ }
    client.end().catch(() => {});
}

async function main() {
    const rl = readline.createInterface({ input: process.stdin, terminal: false });
    for await (const line of rl) {
        if (line.trim() === '') continue;
        let cmd;
        try {
            cmd = JSON.parse(line);
        } catch (e) {
            usage(`not JSON: ${line}`);
        }
        if (cmd.op === 'start') await start(cmd);
        else if (cmd.op === 'cancel') await cancel(cmd);
        else if (cmd.op === 'quit') break;
        else usage(`unknown op '${cmd.op}'`);
    }
    if (cur) cur.client.end().catch(() => {});
    process.exit(0);
}

main().catch((e) => {
    process.stderr.write(`cancel_client: ${e && e.stack ? e.stack : e}\n`);
    process.exit(1);
});
