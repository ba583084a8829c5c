package PgNearFleet;

# Helpers for tests of several pgnear instances ("peers") behind a load
# balancer, as tests/integration/220_peer_cancel.t runs them:
#
# (HAProxy in front of them: PgNearHAProxy.pm.)
#   metrics($port) -> {series => value} from GET /metrics on 127.0.0.1:$port
#       (series as exposed: 'name' or 'name{labels}'); {} when it cannot be read
#   metric($m, $name, label => value, ...) -> the sum of the matching samples
#   admin_query($wire, $sql) -> [{column => value}, ...]; dies on an error
#   synthetic_pid($peer_id, $random16) -> a BackendKeyData process ID naming the peer
#   peer_of_pid($pid) -> the peer_id a synthetic process ID names, or undef
#   key32($peer_id, flags => 0, random => 16 bytes, mac => 12 bytes) -> a 3.2 key
#   peer_of_key32($key) -> the peer_id bytes 1-2 of a 32-byte key name, or undef
#   cancel_packet($pid, $key) -> the CancelRequest's bytes
#   flood(port => N, packets => [bytes, ...], window => 100, timeout => 30)
#       -> {sent, closed, reset, refused, timed_out, seconds}: one TCP
#          connection per packet, at most `window` open at once, each kept
#          until the other side closes it
#   nudge($port) -> 1: one connection that a backend answers (a
#       GSSENCRequest, declined with 'N') and that is then closed: moves
#       HAProxy's round robin on by one
#   PgNearFleet::SslWire->connect(host =>, port =>, ca => CA_FILE,
#       verify_hostname => 'localhost', timeout => 10): PgNearTest::Wire over
#       TLS (SSLRequest, then IO::Socket::SSL in this process, certificate
#       and host name verified), so that startup(), query() & co. work as
#       over plain TCP, with no child process and no polling in between
#   tls_cancel(host =>, port =>, ca =>, pid =>, key =>): a CancelRequest
#       inside TLS (SSLRequest first), waiting (bounded) for the close
#   blackhole() -> {port => N, ...}: an address that never answers: a
#       listening socket with an accept queue of 0, filled by one connection
#       that is never accepted, so that later SYNs are dropped and a connect
#       to it hangs (keep the returned hash alive)
#   PgNearFleet::Watch->new($cluster)
#       ->active($app) -> the server process running a pg_sleep for
#         application_name $app, or undef; ->wait_active($app, timeout => 5);
#         ->is_active($pid); ->cancel_backend($pid); ->terminate_app($app)

use strict;
use warnings;

use Carp qw(croak);
use Errno qw(EINPROGRESS EAGAIN EWOULDBLOCK EINTR ECONNREFUSED ECONNRESET);
use IO::Select;
use IO::Socket::IP;
use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_LINGER SO_REUSEADDR inet_aton pack_sockaddr_in
              unpack_sockaddr_in);
use Time::HiRes ();
use PgNearTest ();

# ---------------------------------------------------------------- keys

sub synthetic_pid {
    my ($peer, $r16) = @_;
    croak "synthetic_pid: peer_id $peer out of 1..16383" unless $peer >= 1 && $peer <= 16383;
    return 0x40000000 | ($peer << 16) | (($r16 // int(rand(65536))) & 0xffff);
}

sub peer_of_pid {
    my ($pid) = @_;
    return undef unless defined $pid && ($pid & 0xC0000000) == 0x40000000;
    return ($pid >> 16) & 0x3fff;
}

sub random_bytes { join '', map { chr(int(rand(256))) } 1 .. $_[0] }

sub key32 {
    my ($peer, %o) = @_;
    return pack('C n C', 0x01, $peer, $o{flags} // 0) . ($o{random} // random_bytes(16))
         . ($o{mac} // random_bytes(12));
}

sub peer_of_key32 {
    my ($key) = @_;
    return undef unless defined $key && length $key == 32 && ord($key) == 0x01;
    return unpack('n', substr($key, 1, 2));
}

sub cancel_packet {
    my ($pid, $key) = @_;
    my $body = pack('NN', 80877102, $pid) . $key;
    return pack('N', 4 + length $body) . $body;
}

# ---------------------------------------------------------------- metrics

sub metrics {
    my ($port) = @_;
    my ($status, $text) = PgNearTest::http_get($port, '/metrics');
    return {} unless defined $status && $status == 200;
    my %m;
    for my $line (split /\r?\n/, $text) {
        next unless $line =~ /^(pgnear_[a-z0-9_]+(?:\{[^}]*\})?) (\S+)$/;
        $m{$1} = $2 + 0;
    }
    return \%m;
}

# Sum of the samples of $name whose labels include all of %want.
sub metric {
    my ($m, $name, %want) = @_;
    my $sum = 0;
    for my $series (keys %$m) {
        next unless $series =~ /^\Q$name\E(?:\{(.*)\})?$/;
        my %l = map { /^(\w+)="(.*)"$/ ? ($1, $2) : () } split /,(?=\w+=")/, $1 // '';
        next if grep { !defined $l{$_} || $l{$_} ne $want{$_} } keys %want;
        $sum += $m->{$series};
    }
    return $sum;
}

# ---------------------------------------------------------------- admin console

sub admin_query {
    my ($w, $sql) = @_;
    my $r = $w->query($sql);
    die "admin console: $sql: " . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'connection closed') . "\n"
      if $r->{error} || $r->{eof};
    my @cols = @{ $r->{columns} };
    return [map { my $row = $_; +{ map { ($cols[$_] => $row->[$_]) } 0 .. $#cols } } @{ $r->{rows} }];
}

# ---------------------------------------------------------------- connections

sub nudge {
    my ($port) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $port, timeout => 5);
    $w->send_raw(pack('NN', 8, 80877104));
    my $a = $w->read_bytes(1);
    close $w->socket;
    die "nudge: a GSSENCRequest through port $port got " . (defined $a ? "'$a'" : 'no answer') . ", not 'N'\n"
      unless defined $a && $a eq 'N';
    return 1;
}

sub tls_cancel {
    my (%o) = @_;
    my $w = PgNearFleet::SslWire->connect(host => $o{host} // '127.0.0.1', port => $o{port}, ca => $o{ca},
                                          verify_hostname => $o{verify_hostname} // 'localhost',
                                          timeout => $o{timeout} // 10);
    $w->send_raw(cancel_packet($o{pid}, $o{key}));
    my $eof = eval { !defined $w->read_bytes(1) };
    close $w->socket;
    return $eof ? 1 : 0;
}

sub flood {
    my (%o) = @_;
    my $port    = $o{port} // croak 'flood: port';
    my @packets = @{ $o{packets} // croak 'flood: packets' };
    my $window  = $o{window} // 100;
    my $timeout = $o{timeout} // 30;
    my %r = (sent => 0, closed => 0, reset => 0, refused => 0, timed_out => 0);
    my $t0 = Time::HiRes::time();
    my $deadline = $t0 + $timeout;
    my $sel = IO::Select->new;
    my %since;
    while ((@packets || $sel->count) && Time::HiRes::time() < $deadline) {
        while (@packets && $sel->count < $window) {
            my $pkt = shift @packets;
            my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 5);
            unless ($s) { $r{refused}++; next }
            binmode $s;
            my $n = syswrite($s, $pkt);
            unless (defined $n && $n == length $pkt) { $r{reset}++; close $s; next }
            $r{sent}++;
            $sel->add($s);
            $since{$s} = Time::HiRes::time();
        }
        for my $s ($sel->can_read(0.05)) {
            my $n = sysread($s, my $buf, 256);
            if (!defined $n)  { $r{reset}++ }
            elsif ($n == 0)   { $r{closed}++ }
            else              { $r{answered}++ }    # a CancelRequest gets no answer
            $sel->remove($s);
            delete $since{$s};
            close $s;
        }
    }
    for my $s ($sel->handles) { $r{timed_out}++; close $s }
    $r{refused} += scalar @packets;    # never sent: out of time
    $r{seconds} = Time::HiRes::time() - $t0;
    return \%r;
}

sub blackhole {
    for (1 .. 5) {
        my $port = PgNearTest::free_port();
        socket(my $l, PF_INET, SOCK_STREAM, 0) or die "blackhole: socket: $!\n";
        setsockopt($l, SOL_SOCKET, SO_REUSEADDR, 1);
        bind($l, pack_sockaddr_in($port, inet_aton('127.0.0.1'))) or next;
        listen($l, 0) or die "blackhole: listen: $!\n";
        my $filler = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 2)
          or die "blackhole: the filler connection failed: $@\n";
        my $t0 = Time::HiRes::time();
        my $probe = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 0.5);
        die "blackhole: 127.0.0.1:$port still accepts connections\n" if $probe;
        return { port => $port, listener => $l, filler => $filler };
    }
    die "blackhole: no port could be bound\n";
}

# ---------------------------------------------------------------- Wire over TLS, in process

package PgNearFleet::SslWire;

use strict;
use warnings;
our @ISA = ('PgNearTest::Wire');

sub connect {
    my ($class, %o) = @_;
    require IO::Socket::SSL;    # Debian: libio-socket-ssl-perl (install-deps.sh)
    my $self = PgNearTest::Wire::connect($class, %o);
    my $answer = $self->ssl_request;
    die "SslWire: the SSLRequest got " . (defined $answer ? "'$answer'" : 'no answer') . ", not 'S'\n"
      unless defined $answer && $answer eq 'S';
    my $vh = $o{verify_hostname} // 'localhost';
    IO::Socket::SSL->start_SSL($self->{sock}, SSL_ca_file => $o{ca} // die("SslWire: ca required\n"),
                               SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_PEER(),
                               SSL_hostname => $vh, SSL_verifycn_name => $vh, SSL_verifycn_scheme => 'http',
                               Timeout => $self->{timeout})
      or die "SslWire: TLS handshake with $o{host}:$o{port} failed: " . IO::Socket::SSL::errstr() . "\n";
    return $self;
}

# Exactly N bytes, undef on EOF; what TLS has decrypted already is read
# before waiting on the socket.
sub read_bytes {
    my ($self, $n) = @_;
    my $sock = $self->{sock};
    my $sel = IO::Select->new($sock);
    while (length $self->{buf} < $n) {
        my $pending = $sock->can('pending') ? $sock->pending : 0;
        $pending or $sel->can_read($self->{timeout}) or die "SslWire: read timed out after $self->{timeout}s\n";
        my $r = sysread($sock, my $chunk, 65536);
        if (!defined $r) {
            next if $!{EAGAIN} || $!{EWOULDBLOCK};
            die "SslWire: read: " . ($sock->can('errstr') ? $sock->errstr : $!) . "\n";
        }
        return undef if $r == 0;
        $self->{buf} .= $chunk;
    }
    return substr($self->{buf}, 0, $n, '');
}

sub terminate {
    my ($self) = @_;
    eval { $self->send_msg('X', '') };
    close $self->{sock};
}

# ---------------------------------------------------------------- the server's view

package PgNearFleet::Watch;

use strict;
use warnings;

sub new {
    my ($class, $cluster) = @_;
    my $dbh = PgNearTest::dbi_connect(PgNearTest::conninfo_string(
        host => $cluster->socket_dir, port => $cluster->port, user => 'postgres', dbname => 'postgres',
        application_name => 'pgnear-test-watch'), RaiseError => 1, PrintWarn => 0)
      or die "PgNearFleet::Watch: cannot connect to $cluster->{name}: $DBI::errstr\n";
    my $self = bless { dbh => $dbh }, $class;
    $self->{by_app} = $dbh->prepare(
        q{SELECT pid FROM pg_stat_activity WHERE application_name = ? AND state = 'active'
          AND query LIKE '%pg_sleep%'});
    $self->{by_pid} = $dbh->prepare(
        q{SELECT count(*) FROM pg_stat_activity WHERE pid = ? AND state = 'active' AND query LIKE '%pg_sleep%'});
    return $self;
}

sub active {
    my ($self, $app) = @_;
    my $rows = $self->{dbh}->selectcol_arrayref($self->{by_app}, undef, $app);
    return @$rows == 1 ? $rows->[0] : undef;
}

sub wait_active {
    my ($self, $app, %o) = @_;
    my $pid;
    PgNearTest::wait_until(sub { $pid = $self->active($app) }, timeout => $o{timeout} // 5, interval => 0.002);
    return $pid;
}

sub is_active {
    my ($self, $pid) = @_;
    return $self->{dbh}->selectrow_array($self->{by_pid}, undef, $pid) ? 1 : 0;
}

sub cancel_backend {
    my ($self, $pid) = @_;
    return $self->{dbh}->selectrow_array('SELECT pg_cancel_backend(?)', undef, $pid);
}

# Ends whatever sessions application_name $app still has on the server.
sub terminate_app {
    my ($self, $app) = @_;
    return $self->{dbh}->selectrow_array(
        'SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = ?', undef, $app);
}

1;
