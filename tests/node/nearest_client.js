#!/usr/bin/env node
// nearest_client.js: node-postgres (pg) sessions that need nearest, for
// 260_nearest.t.  --clients sessions at once, each --rounds rounds of: an
// INSERT by a named prepared statement (a write, which a standby refuses
// and pgnear runs again on the primary), a SELECT of that row by an
// unnamed parameterized query right after (read-your-writes: it must find
// it), a read of where it ran (cluster_name: the primary, until the
// standby has replayed the write; the session's first read, before any
// write, is near), and every fourth round a
// block that reads then updates the row.  Rows go to rides (id, rider),
// ids from --first on, --clients * --rounds of them.  Prints one JSON
// line: {"writes", "stale", "failures": [first few], "near_reads"}.
//
//   node tests/node/nearest_client.js --port PORT [--clients N] [--rounds N] [--first ID]
'use strict';

const { Client } = require('pg');
const { parseFlags } = require('./flags');

const o = parseFlags(process.argv.slice(2), { clients: 2, rounds: 10, first: 100000 }, {
    '--port': ['port', 'number'], '--clients': ['clients', 'number'],
    '--rounds': ['rounds', 'number'], '--first': ['first', 'number'],
});

async function session(k, out) {
    const c = new Client({ host: '127.0.0.1', port: o.port, user: 'app', password: 'app-secret',
                           database: 'movr', options: '-c pgnear.location=53.35,-6.26' });
    await c.connect();
    // A read before any write: near, the session having nothing to read back yet.
    const first = await c.query("SELECT current_setting('cluster_name') AS at");
    if (first.rows[0].at === 'eu-west') out.near_reads++;
    for (let i = 0; i < o.rounds; i++) {
        const id = o.first + k * o.rounds + i;
        try {
            await c.query({ name: 'ins', text: 'INSERT INTO rides (id, rider) VALUES ($1, $2)',
                            values: [id, 'node'] });
            out.writes++;
            const back = await c.query('SELECT count(*)::int AS n FROM rides WHERE id = $1', [id]);
            if (back.rows[0].n !== 1) out.stale++;
            const at = await c.query("SELECT current_setting('cluster_name') AS at");
            if (at.rows[0].at === 'eu-west') out.near_reads++;
            if (i % 4 === 3) {
                await c.query('BEGIN');
                await c.query('SELECT rider FROM rides WHERE id = $1', [id]);
                await c.query("UPDATE rides SET rider = 'node-block' WHERE id = $1", [id]);
                await c.query('COMMIT');
            }
        } catch (e) {
            if (out.failures.length < 5) out.failures.push(`${e.code} ${e.message}`);
            out.failure_count++;
        }
    }
    await c.end();
}

(async () => {
    const out = { writes: 0, stale: 0, near_reads: 0, failure_count: 0, failures: [] };
    try {
        await Promise.all([...Array(o.clients).keys()].map((k) => session(k, out)));
    } catch (e) {
        out.fatal = String(e);
    }
    process.stdout.write(JSON.stringify(out) + '\n');
})();
