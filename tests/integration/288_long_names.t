# User and database names longer than 63 bytes are cut to 63 (NAMEDATALEN
# - 1) before anything is keyed on them, as PostgreSQL cuts them in
# ProcessStartupPacket (a byte cut, before any lookup).  So a long spelling
# of a name is that name everywhere pgnear looks: the same long name logs
# in as the same role directly and through pgnear; auth_hba_file's reject
# lines for a 63-byte role and a 63-byte database refuse their long
# spellings (28000 naming the cut name, as PostgreSQL words it); a cut
# that splits a character names no role, as directly; auth_file
# finds the role's secret (auth = scram); and a [user] section's
# max_user_client_connections counts two different long spellings as one
# user, under pool_mode = session, transaction and nearest.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
require_tool('psql');

my $R63 = 'role_' . ('x' x 58);    # 63 bytes: kept whole
my $U63 = 'user_' . ('y' x 58);
my $D63 = 'data_' . ('z' x 58);
is length($_), 63, "$_ is 63 bytes" for $R63, $U63, $D63;

# The server trusts local TCP logins: what a relayed login needs is the server's word alone.
my $us = PgNearTest::Cluster->new(name => 'us-east',
    hba => ['local all all trust', 'host all all 127.0.0.1/32 trust']);
$us->psql_admin(["SET password_encryption = 'scram-sha-256'", qq{CREATE ROLE "$R63" LOGIN},
                 qq{CREATE ROLE "$U63" LOGIN PASSWORD 'long-secret'}, qq{CREATE DATABASE "$D63"},
                 'CREATE ROLE ' . ('a' x 62) . ' LOGIN']);

# A login through the raw protocol: {ok, w} or {ok => 0, C, M}.
sub try_login {
    my ($port, %o) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $port, timeout => 15);
    my $r = $w->startup(user => $o{user}, database => $o{database} // 'movr',
                        password => $o{password} // 'long-secret');
    return { ok => 1, w => $w } if $r->{ok};
    return { ok => 0, %{ $r->{error} // {} } };
}

sub current_user {
    my ($w) = @_;
    my $q = $w->query('SELECT current_user, current_database()');
    return $q->{error} ? "error $q->{error}{M}" : "$q->{rows}[0][0] $q->{rows}[0][1]";
}

# ---------------------------------------------------------------- directly

{
    my ($rc, $out, $err) = psql($us->conninfo(user => "${R63}abc"), 'SELECT current_user');
    is "$rc $out", "0 $R63", 'directly, a 66-byte spelling logs in as the 63-byte role' or diag $err;
    ($rc, $out, $err) = psql($us->conninfo(user => "${U63}abc", dbname => "${D63}qqqqqqq"),
                             'SELECT current_database()');
    is "$rc $out", "0 $D63", '... and a 70-byte database spelling reaches the 63-byte database';
}

# ---------------------------------------------------------------- auth_hba_file

{
    my $dir = tmpdir(name => 'long-names');
    my $hba = "$dir/pg_hba.conf";
    write_file($hba, "host movr $R63 127.0.0.1/32 reject\n"
                   . "host $D63 all 127.0.0.1/32 reject\n"
                   . "host all all 127.0.0.1/32 trust\n");
    my $p = PgNearTest::Proxy->new(regions => [$us],
        settings => { auth => 'hba', auth_hba_file => $hba, server_tls => 'disable' });
    my $r = try_login($p->port, user => "${R63}abc");
    ok !$r->{ok}, 'hba: the reject line for the 63-byte role refuses its 66-byte spelling';
    is "$r->{C} $r->{M}",
        qq{28000 pg_hba.conf rejects connection for host "127.0.0.1", user "$R63", database "movr", no encryption},
        '... in PostgreSQL\'s words, naming the name as cut';
    $r = try_login($p->port, user => "${R63}" . ('w' x 200));
    is $r->{C}, '28000', '... and a 263-byte spelling';
    $r = try_login($p->port, user => $U63, database => "${D63}qqqqqqq");
    is "$r->{C} $r->{M}",
        qq{28000 pg_hba.conf rejects connection for host "127.0.0.1", user "$U63", database "$D63", no encryption},
        'hba: the reject line for the 63-byte database refuses its 70-byte spelling';
    $r = try_login($p->port, user => "${U63}abc");
    ok $r->{ok}, 'hba: another long role spelling passes the trust line';
    is current_user($r->{w}), "$U63 movr", '... as the same role as directly';
    $r->{w}->terminate if $r->{ok};

    # A byte cut, not a character's: 62 a's and an "é" across byte 63 name no role, directly or
    # through pgnear, though a role of the 62 a's exists (a cut on a character boundary would
    # log in as it).
    my $split = ('a' x 62) . "\xc3\xa9";
    my $direct = try_login($us->port, user => $split);
    $r = try_login($p->port, user => $split);
    is "$direct->{C} $direct->{M}", '28000 role "' . ('a' x 62) . "\xc3\" does not exist",
        'directly, a name whose 63rd byte starts a character names no role (the byte cut)';
    is "$r->{C} $r->{M}", "$direct->{C} $direct->{M}", '... and through pgnear the same error, word for word';
    $p->stop;
}

# ---------------------------------------------------------------- auth_file, per-user limits, pools

my $userlist = tmpdir(name => 'long-names-auth') . '/userlist.txt';
write_file($userlist, qq{"$U63" "} . $us->scram_verifier($U63) . qq{"\n});
my %MODE = (
    session     => { pool_mode => 'session' },
    transaction => { pool_mode => 'transaction' },
    nearest     => { pool_mode => 'transaction', target_session_attrs => 'nearest' },
);
for my $mode (sort keys %MODE) {
    my $p = PgNearTest::Proxy->new(regions => [$us], extra_ini => "[user $U63]\nmax_user_client_connections = 1\n",
        settings => { auth => 'scram', auth_file => $userlist, server_tls => 'disable', %{ $MODE{$mode} } });
    my $r = try_login($p->port, user => "${U63}abc");
    ok $r->{ok}, "$mode: a 66-byte spelling logs in with the 63-byte role's secret (auth_file)"
      or diag explain $r;
    my $first = $r->{w};
    is current_user($first), "$U63 movr", "$mode: ... as the same role as directly" if $first;
    $r = try_login($p->port, user => "${U63}" . ('q' x 10));
    ok !$r->{ok}, "$mode: a second, other spelling counts as the same user (max_user_client_connections = 1)";
    is "$r->{C} $r->{M}", qq{53300 too many client connections for user "$U63"},
        "$mode: ... refused in PostgreSQL's words, naming the name as cut";
    is current_user($first), "$U63 movr", "$mode: the first session still works" if $first;
    $first->terminate if $first;
    $p->stop;
}

done_testing;
