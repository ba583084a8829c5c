// flags.js: the command-line flags of the node clients under tests/node,
// parsed one way.  parseFlags(argv, defaults, spec, usage) returns a copy of
// defaults with the flags of argv applied; spec maps each flag ('--port') to
// [key, how]: how is 'string', 'number', 'true' (a flag that takes no value)
// or a function of the value.  An unknown flag or a missing value calls
// usage(message), which does not return.
'use strict';

function parseFlags(argv, defaults, spec, usage) {
    const o = { ...defaults };
    for (let i = 0; i < argv.length; i++) {
        const entry = spec[argv[i]];
        if (entry === undefined) usage(`unknown argument '${argv[i]}'`);
        const [key, how] = entry;
        if (how === 'true') {
            o[key] = true;
            continue;
        }
        if (i + 1 >= argv.length) usage(`${argv[i]} needs a value`);
        const value = argv[++i];
        o[key] = how === 'number' ? Number(value) : how === 'string' ? value : how(value);
    }
    return o;
}

module.exports = { parseFlags };
