// listen_client.js: node-postgres's own LISTEN usage through pgnear, for
// 283_listen.t, as its suite's notification tests do it: one pg.Client
// LISTENs and takes client.on('notification'); another sends 50
// notifications; then the listener sends one itself.  Each must come
// once, in order, with the channel, the payload and the sender's
// processId: the client's own (BackendKeyData), as a client that skips
// its own notifications compares it.  Prints
// "ok 50 notifications, own pid, other client ran", or "fail: why".
//
//   node tests/node/listen_client.js --port PORT [--host H] [--user U]
//       [--password P] [--database D]
'use strict';

const { Client } = require('pg');
const { parseFlags } = require('./flags');

function usage(msg) {
    process.stderr.write(`listen_client: ${msg}\n`);
    process.exit(1);
}

const o = parseFlags(process.argv.slice(2), {
    host: '127.0.0.1', user: 'app', password: 'app-secret', database: 'movr',
}, {
    '--host': ['host', 'string'], '--port': ['port', 'number'], '--user': ['user', 'string'],
    '--password': ['password', 'string'], '--database': ['database', 'string'],
}, usage);
if (!Number.isInteger(o.port) || o.port <= 0) usage('--port is required');

const N = 50;

function client() {
    return new Client({ host: o.host, port: o.port, user: o.user, password: o.password, database: o.database });
}

async function waitFor(cond, ms) {
    const until = Date.now() + ms;
    while (!cond() && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    return cond();
}

async function main() {
    const listener = client();
    const sender = client();
    await listener.connect();
    await sender.connect();
    const heard = [];
    listener.on('notification', (msg) => heard.push(msg));
    await listener.query('LISTEN "Boom"');
    const sent = [];
    for (let i = 1; i <= N; i++) {
        await sender.query(`SELECT pg_notify('Boom', '${i}')`);
        sent.push({ processId: sender.processID, channel: 'Boom', payload: String(i) });
    }
    if (!(await waitFor(() => heard.length >= N, 10000)))
        throw new Error(`${heard.length} of ${N} notifications came`);
    for (let i = 0; i < N; i++) {
        const h = heard[i], s = sent[i];
        if (h.processId !== s.processId || h.channel !== s.channel || h.payload !== s.payload)
            throw new Error(`notification ${i + 1}: ${JSON.stringify(h)}, sent ${JSON.stringify(s)}`);
    }
    await listener.query(`SELECT pg_notify('Boom', 'self')`);
    if (!(await waitFor(() => heard.length >= N + 1, 5000))) throw new Error('its own notification did not come');
    if (heard[N].processId !== listener.processID || heard[N].payload !== 'self')
        throw new Error(`own notification: ${JSON.stringify(heard[N])}`);
    await new Promise((r) => setTimeout(r, 300));
    if (heard.length !== N + 1) throw new Error(`${heard.length - N - 1} notifications too many`);
    await listener.query('UNLISTEN *');
    await listener.end();
    await sender.end();
    console.log(`ok ${N} notifications, own pid, other client ran`);
}

main().then(() => process.exit(0), (e) => {
    console.log(`fail: ${e.message}`);
    process.exit(1);
});
