// patch-postgresjs.mjs DIR: adapt a postgres.js checkout's test harness so
// that it can be pointed at any HOST:PORT and so that it reports every test.
//
//  1. tests/test.js stops running tests after the first failure (the rest
//     are "ignored") and reports only the first failure; for counting passes
//     through a proxy we want every test to run and every failure reported.
//     And after its report the process exits within 5 s, even when a failed
//     test left a connection open.
//  2. tests/index.js hard-codes ports 5432 and 5433; they become
//     $PGPORT (and $PGPORT2, default $PGPORT, for the "Multiple hosts" test).
//  3. tests/bootstrap.js creates users and a database at import time through
//     psql on the endpoint under test; the runner does that itself through a
//     direct superuser connection, so bootstrap only keeps its exec() helper,
//     and exec() (used by the SSL tests for ALTER SYSTEM) talks to the server
//     directly, with the environment given as JSON in $PJS_DIRECT_ENV.
//
// Each replacement must match exactly once; if upstream changed, this fails
// loudly rather than running a half-patched suite.
import fs from 'fs'
import path from 'path'

const dir = process.argv[2]
if (!dir) { console.error('usage: patch-postgresjs.mjs DIR'); process.exit(2) }

function patch(file, edits) {
  const p = path.join(dir, file)
  let s = fs.readFileSync(p, 'utf8')
  for (const [re, to] of edits) {
    const n = (s.match(new RegExp(re.source, 'g')) || []).length
    if (n !== 1) { console.error(`patch ${file}: ${re} matched ${n} times, expected 1`); process.exit(3) }
    s = s.replace(re, to)
  }
  fs.writeFileSync(p, s)
}

patch('tests/test.js', [
  [/failed\s*\?\s*\(ignored\+\+, ignore\)\s*:\s*fn\(\)/, 'fn()'],
  // the final report walks the tests with every(), which stops at the first
  // failure; forEach reports them all
  [/Object\.values\(tests\)\.every\(/, 'Object.values(tests).forEach('],
  // a failed listen test can leave a client reconnecting forever, which keeps
  // the process alive after the report; give it 5 s to end by itself
  [/(\(process\.exitCode = 1\))\n\}/, '$1\n  setTimeout(() => process.exit(), 5000).unref()\n}'],
])

const port = "(process.env.PGPORT || 5432)"
const port2 = "(process.env.PGPORT2 || process.env.PGPORT || 5433)"
patch('tests/index.js', [
  [/'@localhost:5432\/'/, `'@localhost:' + ${port} + '/'`],
  [/port: 5433 \}/, `port: ${port2} }`],
  [/'postgres:\/\/localhost:5432,localhost:5433'/, `'postgres://localhost:' + ${port} + ',localhost:' + ${port2}`],
  [/socket\.connect\(5432\)/, `socket.connect(${port}, process.env.PGHOST || 'localhost')`],
])

fs.writeFileSync(path.join(dir, 'tests/bootstrap.js'), `// replaced by pgnear's patch-postgresjs.mjs: setup is done by the runner
import { spawnSync } from 'child_process'

export function exec(cmd, args) {
  const env = { ...process.env, ...JSON.parse(process.env.PJS_DIRECT_ENV || '{}') }
  const { stderr } = spawnSync(cmd, args, { stdio: 'pipe', encoding: 'utf8', env })
  if (stderr && !stderr.includes('already exists') && !stderr.includes('does not exist') && !stderr.includes('WARNING:'))
    throw stderr
}
`)
console.log('patched', dir)
