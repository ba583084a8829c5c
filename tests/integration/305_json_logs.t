# log_format = json: one JSON object a line, with the fields a log
# pipeline keys on.  A pgnear started with text logs is switched to json
# by a reload; then a login that passes, one refused (28P01), an admin
# command refused (42601), a region whose only host is down and a client
# whose application_name carries a quote, a control character and a byte
# that is not UTF-8 are each found as one object with time (RFC 3339,
# microseconds), level, pid, worker, session_id, client_addr, region,
# host, sqlstate and the message as the text line says it.  A file whose
# problems stop pgnear starting says them in JSON too, and the text lines
# before the reload stay text.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use JSON::PP ();
use POSIX ();
use Socket ();
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
my $made_devlog;    # the process that bound /dev/log, which removes it however the file ends
END { unlink '/dev/log' if $made_devlog && $made_devlog == $$ }
require_tool('psql');

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $dir = tmpdir(name => 'json-logs');
write_file("$dir/users.txt", join('',
    qq{"app" "} . $us->scram_verifier('app') . qq{"\n},
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}));
my $dead = free_port();    # nothing listens there: region eu-west, added by the reload, is down
my $p = PgNearTest::Proxy->new(
    regions => [$us],
    settings => { auth => 'scram', auth_file => "$dir/users.txt", admin_users => 'admin',
                  server_tls => 'disable', health_check_interval => '200ms',
                  health_check_fall => 1, log_format => 'text' });

# Text first: the lines as they always were.
is psql($p->conninfo, 'SELECT 1'), '1', 'a session under log_format = text';
like $p->log_contents, qr/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC LOG c\d+: session established/m,
     'text: the session established line as it always was';

# The switch: a reload, from the next line on.
my $switch = $p->log_size;
$p->update_config(settings => { log_format => 'json' },
                  regions => [$us, { name => 'eu-west', location => '53.35,-6.26', hosts => ["127.0.0.1:$dead"] }]);
$p->signal('HUP');
ok $p->wait_for_log(qr/configuration reloaded from/, offset => $switch), 'reloaded with log_format = json';

is psql($p->conninfo, 'SELECT 2'), '2', 'a session under log_format = json';
my ($rc, $out, $err) = psql($p->conninfo(password => 'wrong'), 'SELECT 1', verbose => 1);
isnt $rc, 0, 'a wrong password is refused';
my $bad = $p->admin_rows('SHOW NO SUCH THING', errors => 'row');
ok $bad->{error}, 'an admin command pgnear does not know fails';
my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                    params => [application_name => "say \"hi\"\x01\xffend"]);
# PostgreSQL takes it at a login (it cleans an application_name of what is not ASCII), as directly.
my $direct = PgNearTest::Wire->connect(host => $us->host, port => $us->port);
my $dr = $direct->startup(user => 'app', database => 'movr', password => 'app-secret',
                          params => [application_name => "say \"hi\"\x01\xffend"]);
is !!$r->{ok}, !!$dr->{ok}, 'a login whose application_name is not UTF-8: as directly (logged in: '
   . ($dr->{ok} ? 'yes' : 'no') . ')';
# A setting the server refuses at login (22023), after pgnear logged the login.
my $w2 = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
my $r2 = $w2->startup(user => 'app', database => 'movr', password => 'app-secret',
                      params => [options => '-c statement_timeout=nonsense']);
is $r2->{error} && $r2->{error}{C}, '22023', 'a login with a setting the server refuses: 22023';
ok $p->wait_for_log(qr/host 127\.0\.0\.1:\Q$dead\E of region eu-west is down/, offset => 0, timeout => 20),
   'region eu-west is down';

# Every line after the switch is one object with the required keys; those before are text.
my $raw = slurp_file($p->log_path);
my ($before, $after) = (substr($raw, 0, $switch), substr($raw, $switch));
ok !grep({ /^\{/ } split /\n/, $before), 'no JSON line before the reload';
my @lines = split /\n/, $after;
my $json = JSON::PP->new->utf8;
# The reload's own "received SIGHUP" line may still be text: the switch is at the swap.
my @objs;
my @not = grep {
    my $o = eval { $json->decode($_) };
    push @objs, $o if ref $o eq 'HASH';
    ref $o ne 'HASH' && !/UTC LOG (received SIGHUP|reloading)/
} @lines;
is_deeply \@not, [], 'every line after the switch is a JSON object' or diag join("\n", @not[0 .. 4]);
my @bad_keys = grep {
    my $o = $_;
    grep { !defined $o->{$_} } qw(time level pid message)
} @objs;
is scalar(@bad_keys), 0, 'each has time, level, pid and message';
ok !grep({ $_->{time} !~ /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/ } @objs), 'time: RFC 3339, microseconds, UTC';
ok !grep({ $_->{pid} != $p->pid } @objs), 'pid: the process';
ok !grep({ $_->{level} !~ /^(DEBUG|LOG|WARNING|ERROR|FATAL)$/ } @objs), 'level: one of five';
ok !grep(/[\x00-\x1f]/, @lines), 'no raw control character in any line';

# find(qr/message/, key => value, ...): the first object whose message matches.
sub find {
    my ($re) = @_;
    my ($o) = grep { $_->{message} =~ $re } @objs;
    return $o;
}

my $est = find(qr/^session established: user=app database=movr region=us-east/);
ok $est, 'the session established line' or diag explain [map { $_->{message} } @objs];
SKIP: {
    skip 'no session established line', 6 unless $est;
    like $est->{session_id}, qr/^\d+$/, '  session_id';
    like $est->{client_addr}, qr/^127\.0\.0\.1:\d+$/, '  client_addr';
    is $est->{region}, 'us-east', '  region';
    is $est->{host}, $us->hostport, '  host';
    like $est->{worker}, qr/^\d+$/, '  worker';
    ok !exists $est->{sqlstate}, '  no sqlstate on a line without one';
}

my $refused = find(qr/^FATAL 28P01: password authentication failed/);
ok $refused, 'the refused login\'s FATAL line';
SKIP: {
    skip 'no refused login line', 3 unless $refused;
    is $refused->{sqlstate}, '28P01', '  sqlstate';
    is $refused->{level}, 'LOG', '  logged at LOG, as its text line';
    like $refused->{client_addr}, qr/^127\.0\.0\.1:\d+$/, '  client_addr';
}

my $admin = find(qr/^admin console: ERROR 42601: unrecognized admin command/);
ok $admin, 'the admin command\'s ERROR line';
is $admin && $admin->{sqlstate}, '42601', '  sqlstate';

my $down = find(qr/^host 127\.0\.0\.1:\Q$dead\E of region eu-west is down/);
ok $down, 'the host down line';
SKIP: {
    skip 'no down line after the switch', 3 unless $down;
    is $down->{region}, 'eu-west', '  region';
    is $down->{host}, "127.0.0.1:$dead", '  host';
    is $down->{level}, 'WARNING', '  level';
}

my $odd = find(qr/^login from .* application_name=say "hi"/);
ok $odd, 'the login line with the odd application_name decodes';
is $odd && ($odd->{message} =~ /application_name=(.*)$/)[0], "say \"hi\"\x01\x{fffd}end",
   '  its quote, control byte and non-UTF-8 byte come back as a quote, U+0001 and U+FFFD';

my $server_refused = find(qr/: the server refused the login: .*statement_timeout/);
ok $server_refused, 'the server\'s refusal of that login, as pgnear passed it on';
SKIP: {
    skip 'no 22023 line', 3 unless $server_refused;
    is $server_refused->{sqlstate}, '22023', '  sqlstate';
    is $server_refused->{host}, $us->hostport, '  host: the server that refused it';
    like $server_refused->{session_id} // '', qr/^\d+$/, '  its session_id';
}

# The readers of the test library give JSON lines as text lines.
like $p->log_contents, qr/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC LOG c\d+: FATAL 28P01/m,
     'log_contents reads a JSON line as the text line it stands for';

# syslog = on: each line to syslog(3) too, read here from a socket bound at /dev/log (where the
# machine has no syslog daemon and the test may make it: root, as CI runs it).
SKIP: {
    skip 'a syslog daemon owns /dev/log, or it cannot be made here', 6
      if -e '/dev/log' || !-w '/dev';
    require IO::Socket::UNIX;
    my $sock = IO::Socket::UNIX->new(Type => Socket::SOCK_DGRAM(), Local => '/dev/log');
    skip "cannot bind /dev/log: $!", 6 unless $sock;
    $made_devlog = $$;
    chmod 0666, '/dev/log';
    # Read at once by a child of its own, into a file: syslog(3) blocks its caller while the
    # socket's queue is full (as a stalled syslog daemon would block pgnear: the manual says so).
    my $got_file = "$dir/syslog.txt";
    my $reader = fork // die "fork: $!";
    if ($reader == 0) {
        open my $out, '>>', $got_file or POSIX::_exit(1);
        $out->autoflush(1);
        while (1) {
            my $dgram;
            last unless defined $sock->recv($dgram, 65536);
            print $out "$dgram\n";
        }
        POSIX::_exit(0);
    }
    my $ident = "pgnear-305-$$";
    my $off = $p->log_size;
    $p->update_config(settings => { syslog => 'on', syslog_ident => $ident, syslog_facility => 'local3' });
    $p->signal('HUP');
    ok $p->wait_for_log(qr/configuration reloaded from/, offset => $off), 'reloaded with syslog = on';
    is psql($p->conninfo, 'SELECT 3'), '3', 'a session with syslog on';
    my @got;
    wait_until(sub { @got = split /\n/, (-e $got_file ? slurp_file($got_file) : ''); grep { /session established/ } @got },
               timeout => 10);
    my ($est_line) = grep { /session established/ } @got;
    ok $est_line, 'the session established line reached syslog' or diag explain \@got;
    # <PRI>: local3 (19) * 8 + info (6); then the ident and pid, then the JSON object whole.
    like $est_line // '', qr/^<158>.*\Q$ident\E\[\d+\]: \{"time":/, '  at local3.info, tagged with syslog_ident and the pid';
    my ($obj) = ($est_line // '') =~ /(\{.*\})\s*$/;
    my $o = eval { $json->decode($obj // '') };
    is ref $o && $o->{region}, 'us-east', '  the JSON object whole, fields and all';
    $off = $p->log_size;
    $p->update_config(settings => { syslog => undef, syslog_ident => undef, syslog_facility => undef });
    $p->signal('HUP');
    ok $p->wait_for_log(qr/configuration reloaded from/, offset => $off), 'syslog off again';
    kill 'TERM', $reader;
    waitpid $reader, 0;
    unlink '/dev/log';
}

# A file that stops pgnear starting: its problems in the file's log_format.
my $ini = "$dir/broken.ini";
write_file($ini, "[pgnear]\nlog_format = json\nlisten_port = 0\nno_such_setting = 1\n");
my ($brc, $bout, $berr) = run_cmd([$ENV{PGNEAR}, $ini], timeout => 20);
isnt $brc, 0, 'a broken file: pgnear does not start';
my @blines = grep { length } split /\n/, $berr;
my @bobjs = map { my $o = eval { $json->decode($_) }; ref $o eq 'HASH' ? $o : () } @blines;
ok @blines >= 2 && @bobjs == @blines, 'every problem on stderr is a JSON line' or diag $berr;
ok !grep({ $_->{level} ne 'FATAL' } @bobjs), '  at FATAL';
ok grep({ $_->{message} =~ /no_such_setting/ } @bobjs), '  the unknown setting named';

# syslog_facility: only the names PgBouncer takes.
write_file($ini, "[pgnear]\nsyslog = on\nsyslog_facility = kern\n[region a]\nlocation = 0,0\nhosts = 127.0.0.1:1\n");
($brc, $bout, $berr) = run_cmd([$ENV{PGNEAR}, '--check', $ini], timeout => 20);
isnt $brc, 0, 'syslog_facility = kern is refused';
like $berr, qr/syslog_facility must be one of daemon, user, local0 \.\. local7/, '  with the names it takes';

$p->stop;
done_testing;
