#!/usr/bin/env node
// settings_client.js: node-postgres (pg) with Prisma-style connect-time
// settings, for 300_driver_settings.t.  Three pg.Clients log in with the
// same startup parameters (application_name "prisma-app"; pg adds
// client_encoding UTF8), as one application's connections do; right after
// connecting, each tenant runs one simple query of SETs, as Prisma's
// engine does for a schema: SET search_path = "tenant_x"; SET
// statement_timeout = N; SET application_name = 'tenant-x'.  "plain" sets
// nothing.  Each reports the settings its session holds then (pg_settings
// whose source is 'session'); then for --rounds rounds they take turns,
// each running a named prepared statement (SELECT who FROM items: parsed
// once per connection pg knows of, then only bound) and an unnamed one of
// its search_path, statement_timeout, application_name and
// pg_backend_pid(): two transactions of their own in even rounds, one
// BEGIN ... COMMIT block in odd ones.  Last, each runs SELECT pg_sleep(0.4):
// tenant_a's 200ms statement_timeout cancels its own (57014), no one
// else's.
//
//   node tests/node/settings_client.js --port PORT [--host H] [--user U]
//        [--password P] [--database D] [--rounds N]
//
// It prints one JSON line: {"driver": "node-postgres", "clients": [{"id",
// "session", "answers", "backends", "failure_count", "failures"}]}, or
// {"fatal": message}; then keeps the sessions open until it reads "stop"
// (or EOF) on stdin, and ends them.
'use strict';

const { Client } = require('pg');
const readline = require('readline');
const { parseFlags } = require('./flags');

const o = parseFlags(process.argv.slice(2), {
    host: '127.0.0.1', user: 'app', password: 'app-secret', database: 'movr', rounds: 10,
}, {
    '--host': ['host', 'string'], '--port': ['port', 'number'], '--user': ['user', 'string'],
    '--password': ['password', 'string'], '--database': ['database', 'string'],
    '--rounds': ['rounds', 'number'],
}, (msg) => {
    process.stderr.write(`settings_client: ${msg}\n`);
    process.exit(1);
});

// id, its connect-time SETs (one simple query), what it then sees, what pg_sleep(0.4) gets
const CLIENTS = [
    { id: 'plain', sets: null, who: 'public', sp: '"$user", public', st: '0', app: 'prisma-app', sleep: 'ok' },
    {
        id: 'tenant_a', sets: 'SET search_path = "tenant_a"; SET statement_timeout = 200; SET application_name = \'tenant-a\'',
        who: 'a', sp: 'tenant_a', st: '200ms', app: 'tenant-a', sleep: '57014',
    },
    {
        id: 'tenant_b', sets: 'SET search_path = "tenant_b"; SET statement_timeout = \'30s\'; SET application_name = \'tenant-b\'',
        who: 'b', sp: 'tenant_b', st: '30s', app: 'tenant-b', sleep: 'ok',
    },
];

async function oneRound(r, c, spec, res) {
    const look = async () => {
        const w = await c.query({ name: 'who', text: 'SELECT who FROM items' });
        const s = await c.query({
            text: 'SELECT current_setting(\'search_path\') AS sp, current_setting(\'statement_timeout\') AS st, '
                + 'current_setting(\'application_name\') AS app, pg_backend_pid() AS pid, $1::int AS echo',
            values: [r],
        });
        return [w.rows.map((x) => x.who), s.rows[0]];
    };
    let who, s;
    if (r % 2) {
        await c.query('BEGIN');
        [who, s] = await look();
        await c.query('COMMIT');
    } else {
        [who, s] = await look();
    }
    res.answers.push([r, who, s.sp, s.st, s.app]);
    if (!res.backends.includes(s.pid)) res.backends.push(s.pid);
    const got = JSON.stringify([who, s.sp, s.st, s.app, s.echo]);
    const want = JSON.stringify([[spec.who], spec.sp, spec.st, spec.app, r]);
    if (got !== want) {
        res.failure_count++;
        if (res.failures.length < 10) res.failures.push(`round ${r}: ${got}, want ${want}`);
    }
}

async function main() {
    const clients = [];
    const results = [];
    for (const spec of CLIENTS) {
        const c = new Client({
            host: o.host, port: o.port, user: o.user, password: o.password, database: o.database,
            application_name: 'prisma-app',
        });
        c.on('error', (e) => { process.stderr.write(`settings_client ${spec.id}: ${e.message}\n`); });
        await c.connect();
        if (spec.sets) await c.query(spec.sets);
        const s = await c.query('SELECT name, setting FROM pg_settings WHERE source = \'session\' ORDER BY name');
        clients.push(c);
        results.push({
            id: spec.id, session: Object.fromEntries(s.rows.map((x) => [x.name, x.setting])),
            answers: [], backends: [], failure_count: 0, failures: [],
        });
    }
    for (let r = 0; r < o.rounds; r++) {
        for (let k = 0; k < clients.length; k++) {
            try {
                await oneRound(r, clients[k], CLIENTS[k], results[k]);
            } catch (e) {
                results[k].failure_count++;
                results[k].failures.push(`round ${r}: ${e.code ? e.code + ' ' : ''}${e.message}`);
                try { await clients[k].query('ROLLBACK'); } catch (e2) { /* reported above */ }
            }
        }
    }
    for (let k = 0; k < clients.length; k++) {
        let got;
        try {
            await clients[k].query('SELECT pg_sleep(0.4)');
            got = 'ok';
        } catch (e) {
            got = e.code || e.message;
        }
        results[k].answers.push(['pg_sleep(0.4)', got]);
        if (got !== CLIENTS[k].sleep) {
            results[k].failure_count++;
            results[k].failures.push(`pg_sleep(0.4): ${got}, want ${CLIENTS[k].sleep}`);
        }
    }
    process.stdout.write(JSON.stringify({ driver: 'node-postgres', clients: results }) + '\n');
    await new Promise((resolve) => {
        const rl = readline.createInterface({ input: process.stdin });
        rl.on('line', (l) => { if (l.trim() === 'stop') rl.close(); });
        rl.on('close', resolve);
    });
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
}

main().catch((e) => {
    process.stdout.write(JSON.stringify({ fatal: e.message }) + '\n');
    process.exit(1);
});
