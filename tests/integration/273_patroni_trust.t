# What pgnear takes from an answer to GET /cluster that it cannot verify
# (issue 63, items 3 and 4): a fake Patroni REST endpoint (Perl, on
# 127.0.0.2) serves bodies the test writes, in front of one real
# PostgreSQL (us-east, listed in the file and named leader by the body)
# and a fake PostgreSQL server on 127.0.0.3 that declines TLS, asks for a
# password in clear and keeps what it is sent.  Per pool mode:
#   (a) a member tagged with a configured region (eu-west, which lists no
#       hosts) at an address that neither the `patroni` endpoints nor
#       `patroni_hosts` name is left out, with one log line saying why:
#       the fake server gets no connection, so neither pgnear's password
#       (the health checks') nor a client's (auth = passthrough, a Dublin
#       session) — before, it got both, and the Dublin client was refused
#       by it;
#   (b) a member tagged with a region that is not configured: one log
#       line, however many answers say it (before: silence);
#   (c) a member whose host is `127.1]:P,[127.0.0.1` (which a host list
#       would split in two): left out, one log line, pgnear runs on and
#       serves sessions — before, it died of a SIGSEGV (a host without
#       its region in the health checks' judgement);
#   (d) a DNS name (localhost) resolving to an address not allowed: left
#       out after resolution, with the address in the line;
#   (e) with `patroni_hosts = 127.0.0.3` (a reload) the same member joins
#       eu-west: the allowlist, not the answer, decides;
#   and --check warns that patroni with server_tls below verify-full lets
#   an unverified server ask for a password in clear.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IO::Socket::IP;
use IO::Select;
use POSIX ();
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
require_tool('psql');

my $DUBLIN = '-c pgnear.location=53.35,-6.26';
my %ADMIN;    # the admin console's user, beside auth = passthrough

# ---------------------------------------------------------------- fakes, each a child process

# Listens on $host (a free port), runs $serve->($listener) in a child; returns (pid, port).
sub fork_server {
    my ($host, $serve) = @_;
    my ($l, $port);
    for (1 .. 5) {
        $port = free_port();
        $l = IO::Socket::IP->new(LocalHost => $host, LocalPort => $port, Listen => 64, ReuseAddr => 1)
          and last;
    }
    die "cannot listen on $host: $!" unless $l;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        alarm 600;
        eval { $serve->($l) };
        POSIX::_exit(0);
    }
    close $l;
    PgNearTest::_reg_add("pid $pid");
    return ($pid, $port);
}

sub read_n {
    my ($s, $n) = @_;
    my $buf = '';
    my $sel = IO::Select->new($s);
    while (length $buf < $n) {
        return undef unless $sel->can_read(5);
        my $got = sysread($s, $buf, $n - length $buf, length $buf);
        return undef unless $got;
    }
    return $buf;
}

my $dir = PgNearTest::tmpdir(name => 'patroni-trust');
my $BODY = "$dir/cluster.json";
my $ASKED = "$dir/asked";         # a line per GET /cluster
my $CAUGHT = "$dir/caught";       # a line per connection to the fake server, with what it was sent

# GET /cluster answers the file's body; every request is counted.
my ($rest_pid, $rest_port) = fork_server('127.0.0.2', sub {
    my ($l) = @_;
    while (my $c = $l->accept) {
        my $req = '';
        my $sel = IO::Select->new($c);
        while ($req !~ /\r\n\r\n/ && $sel->can_read(5)) {
            sysread($c, $req, 4096, length $req) or last;
        }
        my $body = -e $BODY ? PgNearTest::slurp_file($BODY) : '{"members": []}';
        open my $fh, '>>', $ASKED;
        print $fh (($req =~ /^(GET \S+)/)[0] // '?'), "\n";
        close $fh;
        print $c "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
          . length($body) . "\r\nConnection: close\r\n\r\n$body";
        close $c;
    }
});

# A PostgreSQL server that declines TLS and asks for a password in clear.
my ($fake_pid, $fake_port) = fork_server('127.0.0.3', sub {
    my ($l) = @_;
    while (my $c = $l->accept) {
        my $note = 'connected';
        eval {
            my ($len, $code);
            for (1 .. 3) {
                my $head = read_n($c, 8) // die "eof\n";
                ($len, $code) = unpack 'NN', $head;
                last unless $code == 80877103 || $code == 80877104;    # SSLRequest, GSSENCRequest
                syswrite $c, 'N';
            }
            my $rest = read_n($c, $len - 8) // die "eof\n";
            my %p = split /\0/, $rest;
            $note = "startup user=" . ($p{user} // '?');
            syswrite $c, pack('aNN', 'R', 8, 3);                       # AuthenticationCleartextPassword
            my $h = read_n($c, 5) // die "eof\n";
            my ($t, $n) = unpack 'aN', $h;
            my $pw = read_n($c, $n - 4) // die "eof\n";
            $pw =~ s/\0\z//;
            $note .= " $t password=$pw";
            my $err = "SFATAL\0C28P01\0Mpassword authentication failed\0\0";
            syswrite $c, pack('aN', 'E', 4 + length $err) . $err;
        };
        open my $fh, '>>', $CAUGHT;
        print $fh "$note\n";
        close $fh;
        close $c;
    }
});

sub asked  { -e $ASKED ? scalar(() = PgNearTest::slurp_file($ASKED) =~ /\n/g) : 0 }
sub caught { -e $CAUGHT ? PgNearTest::slurp_file($CAUGHT) : '' }

END { local $?; for ($rest_pid, $fake_pid) { if ($_) { kill 'KILL', $_; waitpid $_, 0 } } }

$ADMIN{auth_file} = "$dir/userlist.txt";
PgNearTest::write_file($ADMIN{auth_file}, qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n});
$ADMIN{admin_users} = 'admin';

# ---------------------------------------------------------------- the bodies

my $us = PgNearTest::Cluster->new(name => 'us-east');
my @members = ({ name => 'm1', role => 'leader', state => 'running', host => '127.0.0.1', port => $us->port,
                 timeline => 1, tags => { pgnear_region => 'us-east' } });
my %untrusted = (name => 'm3', role => 'replica', state => 'streaming', host => '127.0.0.3', port => $fake_port,
                 timeline => 1, lag => 0, tags => { pgnear_region => 'eu-west' });
my %unknown = (name => 'm4', role => 'replica', state => 'streaming', host => '127.0.0.3', port => $fake_port + 1,
               timeline => 1, lag => 0, tags => { pgnear_region => 'mars' });
my %split = (name => 'm2', role => 'replica', state => 'streaming', host => "127.1]:$fake_port,[127.0.0.1",
             port => $us->port, timeline => 1, lag => 0, tags => { pgnear_region => 'eu-west' });
my %named = (name => 'm5', role => 'replica', state => 'streaming', host => 'localhost', port => $fake_port,
             timeline => 1, lag => 0, tags => { pgnear_region => 'eu-west' });

sub serve {
    require JSON::PP;
    my $json = JSON::PP->new->canonical->encode({ members => [@_] });
    PgNearTest::write_file("$BODY.new", $json);
    rename "$BODY.new", $BODY or die "rename: $!";
}

# Waits until pgnear asked /cluster $n more times.
sub polls {
    my ($n) = @_;
    my $from = asked();
    return wait_until(sub { asked() >= $from + $n }, timeout => 30);
}

sub count_in { my ($text, $re) = @_; scalar(() = $text =~ /$re/g) }

# ---------------------------------------------------------------- --check

{
    my $px = PgNearTest::Proxy->new(start => 0,
        regions  => [$us, { name => 'eu-west', location => '53.35, -6.26', hosts => [] }],
        settings => { patroni => "http://127.0.0.2:$rest_port" });
    my ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $px->config_path]);
    is $rc, 0, '--check accepts patroni with regions that list no hosts' or diag $err;
    like $err, qr/WARNING: patroni with server_tls below verify-full: .*password in clear/,
      '--check warns that server_tls below verify-full lets an unverified server ask for a password in clear';
    $px->update_config(settings => { patroni_hosts => '127.0.0.0/33' });
    ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $px->config_path]);
    isnt $rc, 0, '--check refuses a patroni_hosts that is not a list of addresses and CIDRs';
    like "$out$err", qr/patroni_hosts/, '... and names it';
}

# ---------------------------------------------------------------- per pool mode

for my $mode (qw(session transaction)) {
    unlink $CAUGHT;
    serve(@members, \%untrusted, \%unknown);
    my $p = PgNearTest::Proxy->new(
        regions  => [$us, { name => 'eu-west', location => '53.35, -6.26', hosts => [] }],
        settings => { patroni => "http://127.0.0.2:$rest_port", auth => 'passthrough', pool_mode => $mode,
                      health_check_interval => '300ms', %ADMIN });

    # (a) and (b)
    ok $p->wait_for_log(qr/patroni: member 127\.0\.0\.3 port $fake_port of region eu-west is left out: its address 127\.0\.0\.3 is not one of the patroni endpoints' nor in patroni_hosts/,
                        timeout => 30),
      "($mode) a member at an address the configuration does not name is left out, and the log says why";
    ok polls(5), "($mode) pgnear asks /cluster on";
    my ($rc, $out, $err) = psql($p->conninfo(options => $DUBLIN), 'SELECT inet_server_port()');
    is "$rc|$out", "0|" . $us->port, "($mode) a Dublin session (passthrough) is served by us-east, eu-west having no host"
      or diag $err;
    ok polls(3), "($mode) ... and more answers";
    is caught(), '', "($mode) the fake server at that address got no connection: neither pgnear's password nor a client's"
      or diag caught();
    my @eu = grep { $_->{region} eq 'eu-west' } $p->admin_rows('SHOW REGIONS');
    ok !grep({ ($_->{host} // '') =~ /127\.0\.0\.3/ } @eu), "($mode) SHOW REGIONS lists no eu-west host at 127.0.0.3"
      or diag explain \@eu;
    my $log = $p->log_contents;
    is count_in($log, qr/member m4 \(port \d+\) is tagged pgnear_region "mars", which is not a configured region; it is left out/), 1,
      "($mode) a member tagged with a region that is not configured: one log line over many answers";
    is count_in($log, qr/127\.0\.0\.3 port $fake_port of region eu-west is left out/), 1,
      "($mode) ... and the one left out for its address: one line too";

    # (c)
    serve(@members, \%split, \%unknown);
    ok $p->wait_for_log(qr/patroni: member m2 of region eu-west is left out: its host "127\.1\]:$fake_port,\[127\.0\.0\.1" is neither an IP address nor a DNS name/,
                        timeout => 30),
      "($mode) a member whose host is \"127.1]:P,[127.0.0.1\" is left out, and the log says why";
    ok polls(5), "($mode) pgnear asks /cluster on (answers with that member)";
    ok $p->is_running, "($mode) pgnear runs on (it died of a SIGSEGV before)";
    ($rc, $out, $err) = psql($p->conninfo(options => '-c pgnear.target_session_attrs=read-write'),
                             'SELECT inet_server_port()');
    is "$rc|$out", "0|" . $us->port, "($mode) and serves a read-write session on the leader" or diag $err;
    is count_in($p->log_contents, qr/member m2 of region eu-west is left out/), 1,
      "($mode) ... one log line for it over many answers";
    unlike $p->log_contents, qr/AddressSanitizer|runtime error/, "($mode) no sanitizer report";
    $p->stop;
}

# ---------------------------------------------------------------- (d) and (e): the allowlist decides

unlink $CAUGHT;
serve(@members, \%named);
my $p = PgNearTest::Proxy->new(
    regions  => [$us, { name => 'eu-west', location => '53.35, -6.26', hosts => [] }],
    settings => { patroni => "http://127.0.0.2:$rest_port", health_check_interval => '300ms', %ADMIN });
ok $p->wait_for_log(qr/patroni: member localhost port $fake_port of region eu-west is left out: its address (127\.0\.0\.1|::1) is not one/,
                    timeout => 30),
  '(d) a DNS name is resolved first: its address, not allowed, leaves the member out';
is caught(), '', '(d) ... and the fake server got no connection';

# The allowlist first, then the answer that needs it: a poll in flight as the
# reload lands is judged by the configuration it began under (the stricter
# one), which would leave the member out once.
my $off = $p->log_size;
$p->update_config(settings => { patroni_hosts => '127.0.0.3' });
$p->signal('HUP');
ok $p->wait_for_log(qr/configuration reloaded/, offset => $off, timeout => 30), '(e) patroni_hosts = 127.0.0.3 loaded';
sleep 1; # a poll begun before it has ended
$off = $p->log_size;
serve(@members, \%untrusted);
ok wait_until(sub { grep { ($_->{host} // '') =~ /^127\.0\.0\.3:$fake_port$/ || (($_->{host} // '') eq '127.0.0.3' && ($_->{port} // '') eq $fake_port) }
                    grep { $_->{region} eq 'eu-west' } $p->admin_rows('SHOW REGIONS') }, timeout => 30),
  '(e) with patroni_hosts = 127.0.0.3 the same member joins eu-west'
  or diag explain [$p->admin_rows('SHOW REGIONS')];
unlike $p->_log_from($off), qr/127\.0\.0\.3 port $fake_port of region eu-west is left out/, '(e) ... and is not left out';
$p->stop;

done_testing;
