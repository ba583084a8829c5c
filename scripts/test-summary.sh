#!/bin/sh
# Adds up automake's .trs files (one per test program) into one line of counts.
pass=0 fail=0 skip=0 xfail=0 xpass=0 error=0
for trs in "$@"; do
    [ -f "$trs" ] || continue
    for what in pass fail skip xfail xpass error; do
        n=$(grep -c "^:test-result: $(echo $what | tr a-z A-Z)" "$trs")
        eval "$what=\$((\$$what + n))"
    done
done
echo "TAP summary: $pass passed, $((fail + error + xpass)) failed, $skip skipped"
echo "$pass passed, $((fail + error + xpass)) failed"
