#!/usr/bin/env node
// fence_client.js: read your own write from a standby, through pgnear, with
// node-postgres (pg): a writer started with pgnear.report_fence=on inserts a
// row and keeps the pgnear.fence ParameterStatus that pgnear sends after
// the commit; a reader started with that fence as pgnear.min_lsn is placed
// only on a node that has replayed it, and reads the row there.  For
// scripts/demo.sh, which runs it once and prints the line to try.
//
//   node tests/node/fence_client.js --port PORT [--host H] [--user U]
//        [--password P] [--database D] [--reader-options OPTS] [--timeout S]
//
//   --reader-options   startup options of the reader, besides the fence
//                      (default: -c pgnear.city=Dublin
//                      -c pgnear.target_session_attrs=read-only)
//
// Prints what happened, a line each step; exit status 0 when the reader saw
// the row, 1 otherwise.
'use strict';

const { Client } = require('pg');
const { parseFlags } = require('./flags');

function usage(msg) {
    process.stderr.write(`fence_client: ${msg}\n`);
    process.exit(1);
}

function parseArgs(argv) {
    const o = parseFlags(argv, {
        host: '127.0.0.1', user: 'app', password: 'app-secret', database: 'movr', timeout: 20,
        readerOptions: '-c pgnear.city=Dublin -c pgnear.target_session_attrs=read-only',
    }, {
        '--host': ['host', 'string'], '--port': ['port', 'number'], '--user': ['user', 'string'],
        '--password': ['password', 'string'], '--database': ['database', 'string'],
        '--reader-options': ['readerOptions', 'string'], '--timeout': ['timeout', 'number'],
    }, usage);
    if (!Number.isInteger(o.port) || o.port <= 0) usage('--port is required');
    return o;
}

function connect(o, options) {
    const c = new Client({ host: o.host, port: o.port, user: o.user, password: o.password,
                           database: o.database, options, connectionTimeoutMillis: o.timeout * 1000 });
    c.fence = null;
    // pg hands every ParameterStatus to its connection's listeners.
    c.connection.on('parameterStatus', (m) => {
        if (m.parameterName === 'pgnear.fence') c.fence = m.parameterValue;
    });
    return c;
}

async function main() {
    const o = parseArgs(process.argv.slice(2));
    const timer = setTimeout(() => usage(`gave up after ${o.timeout} s`), o.timeout * 1000);
    const w = connect(o, '-c pgnear.target_session_attrs=read-write -c pgnear.report_fence=on');
    await w.connect();
    await w.query('CREATE TABLE IF NOT EXISTS pgnear_fence_demo (id serial PRIMARY KEY, at timestamptz DEFAULT now())');
    const ins = await w.query('INSERT INTO pgnear_fence_demo DEFAULT VALUES ' +
                              "RETURNING id, current_setting('cluster_name') AS node");
    const { id, node } = ins.rows[0];
    const fence = w.fence;
    await w.end();
    console.log(`wrote row ${id} on ${node}; pgnear.fence = ${fence}`);
    if (!fence) {
        console.log('no pgnear.fence came back');
        process.exit(1);
    }
    const r = connect(o, `${o.readerOptions} -c pgnear.min_lsn=${fence}`);
    await r.connect();
    const read = await r.query("SELECT current_setting('cluster_name') AS node, pg_is_in_recovery() AS standby, " +
                               'EXISTS (SELECT 1 FROM pgnear_fence_demo WHERE id = $1) AS seen', [id]);
    await r.end();
    clearTimeout(timer);
    const got = read.rows[0];
    console.log(`read with pgnear.min_lsn = ${fence} (${o.readerOptions}): on ${got.node}, ` +
                `${got.standby ? 'a standby' : 'the primary'}, row ${id} ${got.seen ? 'seen' : 'NOT seen'}`);
    process.exit(got.seen ? 0 : 1);
}

main().catch((e) => {
    process.stderr.write(`fence_client: ${e.message}${e.code ? ` (${e.code})` : ''}\n`);
    process.exit(1);
});
