#!/usr/bin/env node
// neon_client.js: connects through pgnear's WebSocket port with the Neon
// serverless driver (@neondatabase/serverless, its Client), runs SQL and
// prints one JSON object a line, for tests/integration/200_websocket_neon.t.
//
//   node tests/node/neon_client.js --port PORT [options] --sql SQL [--params JSON] ...
//
//   --port N             pgnear's websocket_port (required)
//   --ws-host H          address of the WebSocket (default 127.0.0.1)
//   --path P             upgrade path and query, e.g. /v2 or /v2?address=x:5432 (default /v2)
//   --ws-proxy-string    give neonConfig.wsProxy as the string "H:N/P" (the driver
//                        then appends ?address=host:port) instead of a function
//   --wss                useSecureWebSocket = true (default false: ws://)
//   --ca FILE            CA certificate (PEM) that wss:// and the TLS inside
//                        the WebSocket verify pgnear against
//   --insecure           wss:// without verifying pgnear's certificate
//   --pipeline password|false   neonConfig.pipelineConnect (default password)
//   --pg-ssl             forceDisablePgSSL = false and ssl on: SSLRequest and
//                        TLS inside the WebSocket (the driver's subtls; needs --ca)
//   --no-coalesce        coalesceWrites = false: each write of the driver its own
//                        WebSocket message (default: one message per run-loop turn)
//   --header 'Name: value'      a request header of the upgrade (repeatable);
//                        the value's UTF-8 bytes are sent as they are
//   --host H --user U --password P --database D   the connection's parameters
//                        (defaults localhost, app, app-secret, movr); host is
//                        also the TLS server name inside the WebSocket
//   --sql SQL            a statement (or several, simple protocol) to run (repeatable)
//   --params JSON        parameters (a JSON array) of the --sql before it
//                        (extended protocol)
//   --hold               after the statements, print {"held":true} and keep
//                        the session until stdin closes
//   --timeout SECONDS    give up after this long (default 20)
//
// Output: {"connected":true} once connected, then per --sql
// {"sql":..., "results":[{"command":..., "rowCount":..., "fields":[...], "rows":[[...]]}]}
// or {"sql":..., "error":{...}}; a failed connection prints {"error":{...}}.
// An error has message, and where the server sent them code (SQLSTATE),
// severity, detail and hint; a refused upgrade has http_status.
// Exit status: 0 all went well; 2 an error with a SQLSTATE (server or
// pgnear); 3 any other error (refused upgrade, closed socket, timeout);
// 1 bad usage or a bug here.
'use strict';

const fs = require('fs');

// Node 18 has no global Web Crypto; the driver's SCRAM and subtls use it.
if (!globalThis.crypto) globalThis.crypto = require('crypto').webcrypto;

const { Client, neonConfig } = require('@neondatabase/serverless');
const WebSocket = require('ws');

function usage(msg) {
    process.stderr.write(`neon_client: ${msg}\n`);
    process.exit(1);
}

function parseArgs(argv) {
    const o = {
        wsHost: '127.0.0.1', path: '/v2', proxyString: false, wss: false, ca: null,
        insecure: false, coalesce: true, pipeline: 'password', pgSsl: false, headers: {}, host: 'localhost',
        user: 'app', password: 'app-secret', database: 'movr', statements: [], hold: false,
        timeout: 20,
    };
    const need = (i) => {
        if (i + 1 >= argv.length) usage(`${argv[i]} needs a value`);
        return argv[i + 1];
    };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        switch (a) {
        case '--port': o.port = Number(need(i++)); break;
        case '--ws-host': o.wsHost = need(i++); break;
        case '--path': o.path = need(i++); break;
        case '--ws-proxy-string': o.proxyString = true; break;
        case '--wss': o.wss = true; break;
        case '--ca': o.ca = fs.readFileSync(need(i++), 'utf8'); break;
        case '--insecure': o.insecure = true; break;
        case '--pipeline': {
            const v = need(i++);
            if (v !== 'password' && v !== 'false') usage('--pipeline is password or false');
            o.pipeline = v === 'password' ? 'password' : false;
            break;
        }
        case '--pg-ssl': o.pgSsl = true; break;
        case '--no-coalesce': o.coalesce = false; break;
        case '--header': {
            const h = need(i++);
            const colon = h.indexOf(':');
            if (colon <= 0) usage(`--header '${h}' is not 'Name: value'`);
            // Node writes header strings as latin1: pass the UTF-8 bytes one
            // char each, so that they go out unchanged.
            const value = h.slice(colon + 1).trim();
            o.headers[h.slice(0, colon).trim()] = Buffer.from(value, 'utf8').toString('latin1');
            break;
        }
        case '--host': o.host = need(i++); break;
        case '--user': o.user = need(i++); break;
        case '--password': o.password = need(i++); break;
        case '--database': o.database = need(i++); break;
        case '--sql': o.statements.push({ sql: need(i++) }); break;
        case '--params': {
            if (o.statements.length === 0) usage('--params must follow a --sql');
            const p = JSON.parse(need(i++));
            if (!Array.isArray(p)) usage('--params is a JSON array');
            o.statements[o.statements.length - 1].params = p;
            break;
        }
        case '--hold': o.hold = true; break;
        case '--timeout': o.timeout = Number(need(i++)); break;
        default: usage(`unknown argument '${a}'`);
        }
    }
    if (!Number.isInteger(o.port) || o.port <= 0) usage('--port is required');
    if (o.pgSsl && !o.ca) usage('--pg-ssl needs --ca (the driver\'s TLS always verifies)');
    return o;
}

function say(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

// What the tests look at in an error, whatever threw it.
function describeError(e) {
    const out = { message: String(e && e.message !== undefined ? e.message : e) };
    for (const k of ['code', 'severity', 'detail', 'hint']) {
        if (e && typeof e[k] === 'string' && e[k] !== '') out[k] = e[k];
    }
    if (out.code !== undefined && !/^[0-9A-Z]{5}$/.test(out.code)) {
        out.node_code = out.code; // ECONNREFUSED and the like, not a SQLSTATE
        delete out.code;
    }
    const m = /Unexpected server response: (\d+)/.exec(out.message);
    if (m) out.http_status = Number(m[1]);
    return out;
}

function exitFor(err) {
    return err.code !== undefined ? 2 : 3;
}

function configure(o) {
    const headers = o.headers;
    const tls = o.ca ? { ca: o.ca } : { rejectUnauthorized: !o.insecure };
    // The driver calls new webSocketConstructor(url): add the request
    // headers (locality headers of a CDN) and the trust for wss://.
    class HeaderWebSocket extends WebSocket {
        constructor(url, protocols) {
            super(url, protocols, { headers, ...tls });
        }
    }
    neonConfig.webSocketConstructor = HeaderWebSocket;
    neonConfig.useSecureWebSocket = o.wss;
    neonConfig.pipelineConnect = o.pipeline;
    neonConfig.forceDisablePgSSL = !o.pgSsl;
    neonConfig.coalesceWrites = o.coalesce;
    neonConfig.wsProxy = o.proxyString ? `${o.wsHost}:${o.port}${o.path}`
                                       : () => `${o.wsHost}:${o.port}${o.path}`;
    if (o.pgSsl) neonConfig.rootCerts = o.ca;
}

function resultJson(r) {
    return {
        command: r.command,
        rowCount: r.rowCount,
        fields: (r.fields || []).map((f) => f.name),
        rows: r.rows,
    };
}

async function runStatements(client, o) {
    let status = 0;
    for (const st of o.statements) {
        try {
            const q = { text: st.sql, rowMode: 'array' };
            if (st.params) q.values = st.params;
            const r = await client.query(q);
            say({ sql: st.sql, results: (Array.isArray(r) ? r : [r]).map(resultJson) });
        } catch (e) {
            const err = describeError(e);
            say({ sql: st.sql, error: err });
            status = exitFor(err);
            break;
        }
    }
    return status;
}

function stdinClosed() {
    return new Promise((resolve) => {
        process.stdin.on('end', resolve);
        process.stdin.on('close', resolve);
        process.stdin.resume();
    });
}

async function main() {
    const o = parseArgs(process.argv.slice(2));
    if (o.pgSsl) neonConfig.subtls = await import('subtls/index.js');
    configure(o);
    const timer = setTimeout(() => {
        say({ error: { message: `timed out after ${o.timeout} s` } });
        process.exit(3);
    }, o.timeout * 1000);

    const client = new Client({
        host: o.host, port: 5432, user: o.user, password: o.password, database: o.database,
        ssl: o.pgSsl ? { rejectUnauthorized: true } : false,
    });
    // Errors after connecting (the server or pgnear ending the session) come here.
    let late = null;
    client.on('error', (e) => { late = describeError(e); });
    try {
        await client.connect();
    } catch (e) {
        const err = describeError(e);
        say({ error: err });
        process.exit(exitFor(err));
    }
    say({ connected: true });
    let status = await runStatements(client, o);
    if (status === 0 && o.hold) {
        say({ held: true });
        await stdinClosed();
    }
    if (late && status === 0) {
        say({ error: late });
        status = exitFor(late);
    }
    try {
        await client.end();
    } catch (e) {
        // the session may be gone already: the statements' outcome stands
    }
    clearTimeout(timer);
    process.exit(status);
}

main().catch((e) => {
    process.stderr.write(`neon_client: ${e && e.stack ? e.stack : e}\n`);
    process.exit(1);
});
