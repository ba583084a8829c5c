#!/usr/bin/env node
// execute_client.js: node-postgres's named query of SQL's EXECUTE, for
// 255_execute_by_parse.t: a statement prepared by the protocol as
// 'foobar' (a named query), then 'EXECUTE foobar' run three times as a
// named query of its own (Parse, Bind, Describe, Execute, Sync: the
// extended protocol, as most drivers send every query), another client
// holding a transaction open between runs so that they may land on
// connections that never parsed either.  It prints the three answers
// ("1,1,1"), or "error SQLSTATE message".
//
//   node tests/node/execute_client.js --port PORT [--host H] [--user U]
//        [--password P] [--database D] [--options O]
'use strict';

const { Client } = require('pg');
const { parseFlags } = require('./flags');

function usage(msg) {
    process.stderr.write(`execute_client: ${msg}\n`);
    process.exit(1);
}

const o = parseFlags(process.argv.slice(2), {
    host: '127.0.0.1', user: 'app', password: 'app-secret', database: 'movr', options: '',
}, {
    '--host': ['host', 'string'], '--port': ['port', 'number'], '--user': ['user', 'string'],
    '--password': ['password', 'string'], '--database': ['database', 'string'],
    '--options': ['options', 'string'],
}, usage);
if (!Number.isInteger(o.port) || o.port <= 0) usage('--port is required');

(async () => {
    const connect = async () => {
        const c = new Client({ host: o.host, port: o.port, user: o.user, password: o.password,
                               database: o.database, options: o.options || undefined });
        await c.connect();
        return c;
    };
    const c = await connect(), other = await connect();
    await c.query({ name: 'foobar', text: 'select 1 AS one' });
    const out = [];
    for (let i = 0; i < 3; i++) {
        await other.query(i % 2 ? 'COMMIT' : 'BEGIN');
        if (i % 2 === 0) await other.query('SELECT 1');
        out.push((await c.query({ name: 'ex', text: 'EXECUTE foobar' })).rows[0].one);
    }
    console.log(out.join(','));
    await c.end();
    await other.end();
})().catch((e) => {
    console.log(`error ${e.code} ${e.message}`);
    process.exit(0);
});
