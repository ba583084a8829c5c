#!/usr/bin/perl
# A TCP relay that stands for a distant network link: every chunk of bytes
# it reads is held for a set time before it is sent on, each direction on
# its own, order kept.  No netem on these machines, so this is how the
# benchmarks put a region 80 ms (40 ms each way) from the client.
#
#   bench/delay_relay.pl --listen 127.0.0.1:PORT --target HOST:PORT
#                        [--delay-ms 40] [--client-delay-ms MS] [--delay-file FILE]
#                        [--no-handshake] [--log FILE] [--max-conns 256]
#                        [--max-queued-kb 4096] [--trace]
#
# --delay-ms is the one-way delay (may be fractional: 0.5 is a 1 ms round
# trip); --client-delay-ms, if given, is the delay of the bytes going back to
# the client instead (an asymmetric link).  --delay-file makes the delay
# change while the relay runs, its connections kept: the file holds
# "DELAY_MS [CLIENT_DELAY_MS]" and is read at the start (when it exists; it
# then overrides the options), on SIGHUP, and within a second of a change
# of its modification time; each change logs
#   delay 40.000 ms to server, 40.000 ms to client (from FILE)
# A new delay applies to bytes read from then on: bytes already held keep
# their time, and bytes never overtake those before them, so the order is
# kept when the delay drops.  The relay's TCP connect to the
# target is local and immediate, so the round trip a real TCP handshake
# costs is modelled: a new connection's first bytes towards the target are
# held until one round trip after the accept (as if connect() had only just
# returned), and that handshake counts as a round trip.  --no-handshake
# turns this off.
#
# Round trips: each time the traffic of a connection turns from
# client-to-server to server-to-client (in the order the relay reads it),
# that is one round trip.  When a connection ends, a line goes to the log
# (stderr by default):
#   close conn=3 round_trips=7 handshake=1 c2s_bytes=312 s2c_bytes=1450 seconds=0.641
# SIGUSR1 writes the totals over all connections, open and closed:
#   totals seq=N connections=5 open=1 round_trips=40
# (seq counts the SIGUSR1s, so a reader can wait for its own line).
# --trace also logs every chunk read: "conn=3 c2s 41 bytes at 0.123 s" (the
# time from the accept), to see which messages make up the round trips.
# SIGTERM or SIGINT closes everything, writes the totals and exits 0.
# Resources are bounded: at most --max-conns connections (others are
# closed at once) and at most --max-queued-kb held per direction (the relay
# stops reading that side until the queue drains).
use strict;
use warnings;
use Getopt::Long;
use IO::Select;
use IO::Socket::IP;
use Socket qw(IPPROTO_TCP TCP_NODELAY SHUT_WR SOL_SOCKET SO_ERROR);
use Errno qw(EAGAIN EWOULDBLOCK EINTR EINPROGRESS);
use Time::HiRes qw(time stat);
use List::Util qw(min);

my %opt = ('delay-ms' => 40, handshake => 1, 'max-conns' => 256, 'max-queued-kb' => 4096);
GetOptions(\%opt, 'listen=s', 'target=s', 'delay-ms=f', 'client-delay-ms=f', 'delay-file=s', 'handshake!',
           'log=s', 'max-conns=i', 'max-queued-kb=i', 'trace')
    or die "usage: delay_relay.pl --listen HOST:PORT --target HOST:PORT [--delay-ms MS]\n";
die "delay_relay: --listen and --target are required\n" unless $opt{listen} && $opt{target};
my $to_server_delay = $opt{'delay-ms'} / 1000;
my $to_client_delay = ($opt{'client-delay-ms'} // $opt{'delay-ms'}) / 1000;
my $max_queued = $opt{'max-queued-kb'} * 1024;
my $CHUNK = 65536;

my $log = \*STDERR;
if ($opt{log}) { open $log, '>>', $opt{log} or die "delay_relay: open $opt{log}: $!\n" }
$log->autoflush(1);

my ($lhost, $lport) = $opt{listen} =~ /^\[?([^\]]+?)\]?:(\d+)$/ or die "delay_relay: bad --listen\n";
my ($thost, $tport) = $opt{target} =~ /^\[?([^\]]+?)\]?:(\d+)$/ or die "delay_relay: bad --target\n";
my $listener = IO::Socket::IP->new(LocalHost => $lhost, LocalPort => $lport, Listen => 128, ReuseAddr => 1,
                                   Blocking => 0)
    or die "delay_relay: cannot listen on $opt{listen}: $@\n";

my %conn_of;    # fileno of either socket -> connection
my @conns;      # open connections
my %total = (connections => 0, round_trips => 0, usr1 => 0);
my ($stop, $report, $reread) = (0, 0, 0);
$SIG{TERM} = $SIG{INT} = sub { $stop = 1 };
$SIG{USR1} = sub { $report++ };
$SIG{HUP} = sub { $reread++ };
$SIG{PIPE} = 'IGNORE';

# --delay-file: the delays it holds now; a file that is missing or malformed changes nothing.
my ($delay_mtime, $delay_checked) = (-1, 0);
sub read_delay_file {
    my ($force) = @_;
    my $f = $opt{'delay-file'} or return;
    $delay_checked = time;
    my $mtime = (stat $f)[9];
    return unless defined $mtime && ($force || $mtime != $delay_mtime);
    $delay_mtime = $mtime;
    open my $fh, '<', $f or return print $log "delay_relay: open $f: $!\n";
    my $line = <$fh> // '';
    my ($server_ms, $client_ms) = $line =~ /^\s*(\d+(?:\.\d+)?)(?:\s+(\d+(?:\.\d+)?))?\s*$/
        or return print $log "delay_relay: $f: expected \"DELAY_MS [CLIENT_DELAY_MS]\"\n";
    $to_server_delay = $server_ms / 1000;
    $to_client_delay = ($client_ms // $server_ms) / 1000;
    printf $log "delay %.3f ms to server, %.3f ms to client (from %s)\n", $to_server_delay * 1000,
        $to_client_delay * 1000, $f;
}
read_delay_file(1);

printf $log "listening on %s, target %s, delay %.3f ms to server, %.3f ms to client, handshake %s\n",
    $opt{listen}, $opt{target}, $to_server_delay * 1000, $to_client_delay * 1000,
    $opt{handshake} ? 'modelled' : 'not modelled';

# A direction: bytes read from 'from', held in 'queue' as [release_time,
# bytes] (bytes undef for end of stream), then written to 'to' from 'out'.
sub new_direction {
    my ($from, $to) = @_;
    return { from => $from, to => $to, queue => [], queued => 0, out => '',
             eof_read => 0, eof_sent => 0 };
}

sub accept_one {
    my $client = $listener->accept or return;
    if (@conns >= $opt{'max-conns'}) {
        print $log "refused: --max-conns $opt{'max-conns'} reached\n";
        close $client;
        return;
    }
    my $server = IO::Socket::IP->new(PeerHost => $thost, PeerPort => $tport, Blocking => 1);
    if (!$server) {
        print $log "cannot connect to $opt{target}: $@\n";
        close $client;
        return;
    }
    for ($client, $server) {
        $_->blocking(0);
        setsockopt($_, IPPROTO_TCP, TCP_NODELAY, 1);
    }
    my $now = time;
    my $c = { id => ++$total{connections}, client => $client, server => $server, opened => $now,
              last => '', round_trips => 0, handshake => 0 };
    $c->{c2s} = new_direction($client, $server);
    $c->{s2c} = new_direction($server, $client);
    if ($opt{handshake}) {
        # connect() to a distant server returns after one round trip
        $c->{c2s}{not_before} = $now + $to_server_delay + $to_client_delay;
        $c->{handshake} = 1;
        $c->{round_trips} = 1;
        $total{round_trips}++;
    }
    $conn_of{ fileno $client } = $c;
    $conn_of{ fileno $server } = $c;
    push @conns, $c;
}

sub note_direction {
    my ($c, $dir) = @_;
    if ($dir eq 's2c' && $c->{last} eq 'c2s') {
        $c->{round_trips}++;
        $total{round_trips}++;
    }
    $c->{last} = $dir;
}

sub read_side {
    my ($c, $dir) = @_;
    my $d = $c->{$dir};
    my $n = sysread($d->{from}, my $buf, $CHUNK);
    if (!defined $n) {
        return if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
        return close_conn($c, "read error: $!");
    }
    my $delay = $dir eq 'c2s' ? $to_server_delay : $to_client_delay;    # now's: --delay-file
    my $release = time + $delay;
    $release = $d->{not_before} + $delay if $d->{not_before} && $release < $d->{not_before} + $delay;
    if ($n == 0) {
        $d->{eof_read} = 1;
        push @{ $d->{queue} }, [$release, undef];
        return;
    }
    note_direction($c, $dir);
    printf $log "conn=%d %s %d bytes at %.3f s\n", $c->{id}, $dir, $n, time - $c->{opened} if $opt{trace};
    $c->{"${dir}_bytes"} += $n;
    $d->{queued} += $n;
    push @{ $d->{queue} }, [$release, $buf];
}

# Moves what is due from the queue to the output and writes what it can.
sub flush_direction {
    my ($c, $d, $now) = @_;
    while (@{ $d->{queue} } && $d->{queue}[0][0] <= $now) {
        my ($t, $bytes) = @{ shift @{ $d->{queue} } };
        if (!defined $bytes) { $d->{eof_due} = 1; last }
        $d->{out} .= $bytes;
        $d->{queued} -= length $bytes;
    }
    while (length $d->{out}) {
        my $n = syswrite($d->{to}, $d->{out});
        if (!defined $n) {
            return 1 if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
            close_conn($c, "write error: $!");
            return 0;
        }
        substr($d->{out}, 0, $n, '');
    }
    if ($d->{eof_due} && !$d->{eof_sent}) {
        shutdown($d->{to}, SHUT_WR);
        $d->{eof_sent} = 1;
    }
    return 1;
}

sub close_conn {
    my ($c, $why) = @_;
    return if $c->{closed};
    $c->{closed} = 1;
    printf $log "close conn=%d round_trips=%d handshake=%d c2s_bytes=%d s2c_bytes=%d seconds=%.3f%s\n",
        $c->{id}, $c->{round_trips}, $c->{handshake}, $c->{c2s_bytes} // 0, $c->{s2c_bytes} // 0,
        time - $c->{opened}, $why ? " ($why)" : '';
    for my $s ($c->{client}, $c->{server}) {
        delete $conn_of{ fileno $s };
        close $s;
    }
    @conns = grep { !$_->{closed} } @conns;
}

sub report_totals {
    printf $log "totals seq=%d connections=%d open=%d round_trips=%d\n", $total{usr1},
        $total{connections}, scalar @conns, $total{round_trips};
}

sub next_timeout {
    my $now = time;
    my $next;
    for my $c (@conns) {
        for my $d ($c->{c2s}, $c->{s2c}) {
            next unless @{ $d->{queue} };
            my $t = $d->{queue}[0][0];
            $next = $t if !defined $next || $t < $next;
        }
    }
    return defined $next ? ($next > $now ? $next - $now : 0) : 1;
}

sub wait_sets {
    my ($r, $w) = (IO::Select->new($listener), IO::Select->new);
    for my $c (@conns) {
        for my $d ($c->{c2s}, $c->{s2c}) {
            $r->add($d->{from}) unless $d->{eof_read} || $d->{queued} >= $max_queued;
            $w->add($d->{to}) if length $d->{out};
        }
    }
    return ($r, $w);
}

sub handle_readable {
    my ($fh) = @_;
    if ($fh == $listener) { accept_one(); return }
    my $c = $conn_of{ fileno $fh } or return;
    return if $c->{closed};
    read_side($c, $fh == $c->{client} ? 'c2s' : 's2c');
}

while (!$stop) {
    my ($r, $w) = wait_sets();
    my ($readable, $writable) = IO::Select->select($r, $w, undef, next_timeout());
    if ($reread) {
        $reread = 0;
        read_delay_file(1);
    } elsif ($opt{'delay-file'} && time - $delay_checked >= 1) {
        read_delay_file(0);
    }
    if ($report) {
        $total{usr1} += $report;
        $report = 0;
        report_totals();
    }
    handle_readable($_) for @{ $readable // [] };
    my $now = time;
    for my $c (@{ [@conns] }) {    # a copy: close_conn() changes @conns
        next if $c->{closed};
        flush_direction($c, $c->{c2s}, $now) or next;
        flush_direction($c, $c->{s2c}, $now) or next;
        close_conn($c, '') if $c->{c2s}{eof_sent} && $c->{s2c}{eof_sent};
    }
}
close_conn($_, 'relay stopped') for @{ [@conns] };
report_totals();
exit 0;
