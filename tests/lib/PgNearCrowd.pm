package PgNearCrowd;

# Many PostgreSQL sessions at once from one test process: every session is
# a raw-protocol client (as PgNearTest::Wire) on a non-blocking socket, and
# select(2) drives them all together, so that a session that waits (for a
# server connection, say) holds up none of the others.  Logins answer
# SCRAM-SHA-256, cleartext or trust; the SCRAM salted password is computed
# once per salt, since every session logs in with the same password.
#
#   my $crowd = PgNearCrowd->new(host => '127.0.0.1', port => $port, user => 'app',
#                                database => 'movr', password => 'app-secret', count => 2000);
#   my $r = $crowd->login(deadline => 60);    # {ok, pending, eof, errors => {SQLSTATE => n}, seconds}
#   my $q = $crowd->query('SELECT pg_backend_pid()', deadline => 30);
#                                             # {answered, values => [...], errors => {...}, pending}
#   $crowd->finish;                           # Terminate, then every socket closed
#
# Limits: messages of one session are small (logins, one-row answers);
# all sockets are opened before the first login message is sent.

use strict;
use warnings;

use Carp qw(croak);
use Errno qw(EINPROGRESS EAGAIN EWOULDBLOCK EINTR);
use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK);
use Socket qw(PF_INET SOCK_STREAM IPPROTO_TCP SOL_SOCKET SO_ERROR inet_aton pack_sockaddr_in);
use Digest::SHA qw(sha256 hmac_sha256);
use MIME::Base64 qw(encode_base64 decode_base64);
use Time::HiRes ();
use PgNearTest ();

sub new {
    my ($class, %o) = @_;
    my $self = bless {
        host     => $o{host} // '127.0.0.1',
        port     => $o{port} // croak('PgNearCrowd: port required'),
        user     => $o{user} // croak('PgNearCrowd: user required'),
        database => $o{database} // $o{user},
        password => $o{password} // '',
        count    => $o{count} // croak('PgNearCrowd: count required'),
        params   => $o{params} // [],
        sessions => [],
        salted   => {},
    }, $class;
    return $self;
}

sub sessions { @{ $_[0]{sessions} } }

# Opens the sockets (non-blocking connects) and queues each startup packet.
sub _open_all {
    my ($self) = @_;
    my $addr = pack_sockaddr_in($self->{port}, inet_aton($self->{host}) // croak "PgNearCrowd: bad host");
    my @p = (user => $self->{user}, database => $self->{database}, @{ $self->{params} });
    my $body = pack('N', 0x30000);
    while (my ($k, $v) = splice(@p, 0, 2)) { $body .= "$k\0$v\0" }
    $body .= "\0";
    my $startup = pack('N', 4 + length $body) . $body;
    for my $i (1 .. $self->{count}) {
        my %s = (n => $i, state => 'connecting', in => '', out => $startup, values => []);
        if (!socket($s{sock}, PF_INET, SOCK_STREAM, IPPROTO_TCP)) {
            $s{state} = 'failed';
            $s{why} = "socket: $!";
            push @{ $self->{sessions} }, \%s;
            next;
        }
        my $flags = fcntl($s{sock}, F_GETFL, 0);
        fcntl($s{sock}, F_SETFL, $flags | O_NONBLOCK);
        binmode $s{sock};
        if (!connect($s{sock}, $addr) && $! != EINPROGRESS) {
            $s{state} = 'failed';
            $s{why} = "connect: $!";
            close $s{sock};
        }
        push @{ $self->{sessions} }, \%s;
    }
}

sub _send_msg {
    my ($s, $type, $payload) = @_;
    $s->{out} .= $type . pack('N', 4 + length $payload) . $payload;
}

sub _salted {
    my ($self, $salt, $iter) = @_;
    my $k = "$iter:$salt";
    return $self->{salted}{$k} //= do {
        my $u = hmac_sha256($salt . pack('N', 1), $self->{password});
        my $r = $u;
        for (2 .. $iter) { $u = hmac_sha256($u, $self->{password}); $r ^= $u }
        $r;
    };
}

# One authentication request during login.
sub _auth {
    my ($self, $s, $m) = @_;
    my $code = unpack('N', $m);
    if ($code == 0) {
        return;
    } elsif ($code == 3) {
        _send_msg($s, 'p', "$self->{password}\0");
    } elsif ($code == 10) {
        my $nonce = encode_base64(join('', map { chr(int(rand(256))) } 1 .. 18), '');
        $s->{bare} = "n=,r=$nonce";
        $s->{nonce} = $nonce;
        my $first = "n,,$s->{bare}";
        _send_msg($s, 'p', "SCRAM-SHA-256\0" . pack('N', length $first) . $first);
    } elsif ($code == 11) {
        my $sf = substr($m, 4);
        my %a = map { /^(\w)=(.*)$/s ? ($1, $2) : () } split /,/, $sf;
        croak "PgNearCrowd: bad SCRAM server-first '$sf'"
          unless defined $a{r} && index($a{r}, $s->{nonce}) == 0 && $a{s} && $a{i};
        my $salted = $self->_salted(decode_base64($a{s}), $a{i});
        my $ck = hmac_sha256('Client Key', $salted);
        my $wo = "c=biws,r=$a{r}";
        my $am = "$s->{bare},$sf,$wo";
        my $proof = $ck ^ hmac_sha256($am, sha256($ck));
        _send_msg($s, 'p', "$wo,p=" . encode_base64($proof, ''));
    } elsif ($code != 12) {
        croak "PgNearCrowd: unsupported authentication request $code";
    }
}

# One message from the server; the session's state moves on.
sub _message {
    my ($self, $s, $t, $m) = @_;
    if ($t eq 'E') {
        my $f = PgNearTest::Wire::parse_fields($m);
        $s->{error} = $f->{C} // '?????';
        $s->{error_text} = $f->{M} // '';
        if ($s->{state} eq 'login') { $s->{state} = 'refused' }
        else { $s->{query_error} = $s->{error} }    # the query's ReadyForQuery follows
    } elsif ($s->{state} eq 'login') {
        if ($t eq 'R') { $self->_auth($s, $m) }
        elsif ($t eq 'K') { ($s->{pid}) = unpack('N', $m) }
        elsif ($t eq 'Z') { $s->{state} = 'ready'; $s->{logged_in_at} = Time::HiRes::time() }
    } elsif ($s->{state} eq 'query') {
        if ($t eq 'D') {
            my $len = unpack('l>', substr($m, 2, 4));
            push @{ $s->{values} }, $len < 0 ? undef : substr($m, 6, $len);
        } elsif ($t eq 'Z') {
            $s->{state} = 'ready';
            $s->{answered} = 1;
        }
    }
}

sub _read {
    my ($self, $s) = @_;
    my $n = sysread($s->{sock}, my $chunk, 65536);
    if (!defined $n) {
        return if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
        $s->{why} = "read: $!";
        $n = 0;
    }
    if ($n == 0) {
        $s->{state} = 'eof' unless $s->{state} eq 'refused';
        close $s->{sock};
        return;
    }
    $s->{in} .= $chunk;
    while (length $s->{in} >= 5) {
        my ($t, $len) = unpack('a N', $s->{in});
        last if length $s->{in} < 1 + $len;
        my $m = substr($s->{in}, 5, $len - 4);
        substr($s->{in}, 0, 1 + $len, '');
        $self->_message($s, $t, $m);
    }
}

sub _write {
    my ($self, $s) = @_;
    if ($s->{state} eq 'connecting') {
        my $err = unpack('i', getsockopt($s->{sock}, SOL_SOCKET, SO_ERROR) // pack('i', 0));
        if ($err) {
            $s->{state} = 'failed';
            $s->{why} = 'connect: ' . ($! = $err);
            close $s->{sock};
            return;
        }
        $s->{state} = 'login';
    }
    return unless length $s->{out};
    my $n = syswrite($s->{sock}, $s->{out});
    if (!defined $n) {
        return if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
        $s->{state} = 'eof';
        $s->{why} = "write: $!";
        close $s->{sock};
        return;
    }
    substr($s->{out}, 0, $n, '');
}

# Drives every session in a state of @busy until none is, or the deadline.
# select(2) with bit vectors kept up to date (Linux takes descriptors past
# 1024 there), so that a round costs the sessions that had something to do.
sub _drive {
    my ($self, $deadline, @busy) = @_;
    my %busy = map { $_ => 1 } @busy;
    my $end = Time::HiRes::time() + $deadline;
    my %by_fd;
    my ($rin, $win) = ('', '');
    for my $s (@{ $self->{sessions} }) {
        next unless $busy{ $s->{state} };
        my $fd = fileno($s->{sock});
        $by_fd{$fd} = $s;
        vec($rin, $fd, 1) = 1;
        vec($win, $fd, 1) = 1 if $s->{state} eq 'connecting' || length $s->{out};
    }
    while (%by_fd) {
        my $left = $end - Time::HiRes::time();
        last if $left <= 0;
        my $n = select(my $rout = $rin, my $wout = $win, undef, $left < 1 ? $left : 1);
        next if $n <= 0;
        my %ready;
        for my $v ($rout, $wout) {
            my $bits = unpack('b*', $v);
            while ($bits =~ /1/g) { $ready{ pos($bits) - 1 } = 1 }
        }
        for my $fd (keys %ready) {
            my $s = $by_fd{$fd} or next;
            if (vec($wout, $fd, 1)) { $self->_write($s) }
            elsif (vec($rout, $fd, 1)) { $self->_read($s) }
            $self->_write($s) if $busy{ $s->{state} } && length $s->{out} && !vec($wout, $fd, 1);
            if (!$busy{ $s->{state} }) {
                delete $by_fd{$fd};
                vec($rin, $fd, 1) = 0;
                vec($win, $fd, 1) = 0;
                next;
            }
            vec($win, $fd, 1) = ($s->{state} eq 'connecting' || length $s->{out}) ? 1 : 0;
        }
    }
}

# Every session logs in at once; returns what became of them by the deadline:
# {ok, pending, eof, failed, errors => {SQLSTATE => count}, error_text => {SQLSTATE => a message}, seconds}
sub login {
    my ($self, %o) = @_;
    my $t0 = Time::HiRes::time();
    $self->_open_all;
    $self->_drive($o{deadline} // 60, 'connecting', 'login');
    my %r = (ok => 0, pending => 0, eof => 0, failed => 0, errors => {}, error_text => {},
             seconds => Time::HiRes::time() - $t0);
    for my $s (@{ $self->{sessions} }) {
        if ($s->{state} eq 'ready') { $r{ok}++ }
        elsif ($s->{state} eq 'refused') { $r{errors}{ $s->{error} }++; $r{error_text}{ $s->{error} } //= $s->{error_text} }
        elsif ($s->{state} eq 'eof') { $r{eof}++ }
        elsif ($s->{state} eq 'failed') { $r{failed}++; $r{failed_why} //= $s->{why} }
        else { $r{pending}++ }
    }
    return \%r;
}

# Sends $sql (a simple Query) on every logged-in session at once; returns
# {answered, pending, values => [first column of each answer's rows], errors => {SQLSTATE => n}}.
sub query {
    my ($self, $sql, %o) = @_;
    my @ready = grep { $_->{state} eq 'ready' } @{ $self->{sessions} };
    for my $s (@ready) {
        delete @{$s}{qw(answered query_error)};
        $s->{values} = [];
        $s->{state} = 'query';
        _send_msg($s, 'Q', "$sql\0");
    }
    $self->_drive($o{deadline} // 30, 'query');
    my %r = (answered => 0, pending => 0, values => [], errors => {});
    for my $s (@ready) {
        if ($s->{query_error}) { $r{errors}{ $s->{query_error} }++ }
        elsif ($s->{answered}) { $r{answered}++; push @{ $r{values} }, @{ $s->{values} } }
        else { $r{pending}++ }
    }
    return \%r;
}

# Terminate on every open session, and every socket closed.
sub finish {
    my ($self) = @_;
    for my $s (@{ $self->{sessions} }) {
        next unless $s->{sock} && defined fileno($s->{sock});
        syswrite($s->{sock}, 'X' . pack('N', 4)) if $s->{state} eq 'ready';
        close $s->{sock};
    }
    $self->{sessions} = [];
}

sub DESTROY { local ($@, $!, $?); eval { $_[0]->finish } }

1;
