package PgNearWs;

# A small WebSocket client (RFC 6455) for pgnear's integration tests, with
# every byte under the test's control: the upgrade request (any path,
# headers, or raw bytes), and frames with any opcode, FIN, RSV bits, mask
# or none, sent whole, several in one TCP write, or one over many writes.
# PgNearWs::Pg on top of it speaks PostgreSQL through the WebSocket, reusing
# PgNearTest::Wire's protocol code (startup with cleartext/MD5/SCRAM,
# query, read_msg) over binary frames.  See the POD at the end.

use strict;
use warnings;

use Carp qw(croak);
use Exporter qw(import);
use IO::Select;
use IO::Socket::IP;
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Digest::SHA qw(sha1);
use MIME::Base64 qw(encode_base64);
use Time::HiRes ();

our @EXPORT_OK = qw(ws_accept ws_frame ws_random_key);

use constant {
    OP_CONT   => 0x0,
    OP_TEXT   => 0x1,
    OP_BINARY => 0x2,
    OP_CLOSE  => 0x8,
    OP_PING   => 0x9,
    OP_PONG   => 0xA,
};

my $WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

# Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 section 4.2.2).
sub ws_accept { encode_base64(sha1($_[0] . $WS_GUID), '') }

sub ws_random_key { encode_base64(join('', map { chr(int(rand(256))) } 1 .. 16), '') }

# ws_frame(opcode => OP_BINARY, payload => '', fin => 1, rsv => 0 (0..7),
#          mask => 1, mask_key => 4 bytes, length => N (announced length,
#          default the payload's), close_code => N, close_reason => STR)
# -> the frame's bytes.  close_code builds a close frame's payload.
sub ws_frame {
    my (%o) = @_;
    my $op = $o{opcode} // OP_BINARY;
    my $payload = $o{payload} // '';
    $payload = pack('n', $o{close_code}) . ($o{close_reason} // '') if defined $o{close_code};
    my $fin = $o{fin} // 1;
    my $mask = $o{mask} // 1;
    my $len = $o{length} // length $payload;
    my $b0 = ($fin ? 0x80 : 0) | ((($o{rsv} // 0) & 7) << 4) | ($op & 0xF);
    my $mbit = $mask ? 0x80 : 0;
    my $head = $len < 126 ? pack('CC', $b0, $mbit | $len)
             : $len < 65536 ? pack('CCn', $b0, $mbit | 126, $len)
             : pack('CCNN', $b0, $mbit | 127, int($len / 2**32), $len % 2**32);
    return $head . $payload unless $mask;
    my $key = $o{mask_key} // pack('N', int(rand(2**32)));
    return $head . $key . _xor_mask($payload, $key);
}

sub _xor_mask {
    my ($data, $key) = @_;
    my $n = length $data;
    return '' unless $n;
    my $k = substr($key x (int($n / 4) + 1), 0, $n);
    return $data ^ $k;
}

# connect(host => '127.0.0.1', port => N, timeout => 10, tls => 0|1,
#         ca => CA_FILE, verify_hostname => 'localhost', local_addr => ADDR,
#         cert => CLIENT_CERT_FILE, key => ITS_KEY_FILE)
sub connect {
    my ($class, %o) = @_;
    my $port = $o{port} // croak 'PgNearWs: port required';
    my $host = $o{host} // '127.0.0.1';
    my $timeout = $o{timeout} // 10;
    my $sock = IO::Socket::IP->new(PeerHost => $host, PeerPort => $port, Proto => 'tcp',
                                   Timeout => $timeout,
                                   ($o{local_addr} ? (LocalHost => $o{local_addr}) : ()))
      or die "PgNearWs: connect $host:$port: $@\n";
    setsockopt($sock, IPPROTO_TCP, TCP_NODELAY, 1);    # one syswrite, one segment
    if ($o{tls}) {
        require_ssl();
        my $vh = $o{verify_hostname} // 'localhost';
        IO::Socket::SSL->start_SSL($sock, SSL_ca_file => $o{ca} // croak('PgNearWs: tls needs ca'),
                                   SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_PEER(),
                                   SSL_hostname => $vh, SSL_verifycn_name => $vh,
                                   SSL_verifycn_scheme => 'http', Timeout => $timeout,
                                   ($o{cert} ? (SSL_cert_file => $o{cert}, SSL_key_file => $o{key}) : ()))
          or die "PgNearWs: TLS handshake with $host:$port failed: " . IO::Socket::SSL::errstr() . "\n";
    }
    binmode $sock;
    return bless { sock => $sock, timeout => $timeout, buf => '', tls => $o{tls} ? 1 : 0,
                   host => $host, port => $port, pings => [], pongs => [], auto_pong => 1 }, $class;
}

# wss needs IO::Socket::SSL (Debian: libio-socket-ssl-perl, in install-deps.sh).
sub require_ssl {
    eval { require IO::Socket::SSL; 1 }
      or die "PgNearWs: wss needs the Perl module IO::Socket::SSL (Debian package "
      . "libio-socket-ssl-perl; scripts/install-deps.sh installs it)\n";
}

sub socket  { $_[0]{sock} }
sub timeout { my $s = shift; $s->{timeout} = shift if @_; $s->{timeout} }

# The close frame pgnear sent ({code, reason}), once one was read.
sub close_received { $_[0]{close_in} }

# send_raw($bytes, chunk => N, pause => SECONDS): N bytes per syswrite
# (default all), sleeping between writes so that each is its own segment.
sub send_raw {
    my ($self, $bytes, %o) = @_;
    my $chunk = $o{chunk} // length($bytes) || 1;
    my $pause = $o{pause} // ($o{chunk} ? 0.001 : 0);
    my $sel = IO::Select->new($self->{sock});
    my $off = 0;
    while ($off < length $bytes) {
        $sel->can_write($self->{timeout}) or die "PgNearWs: write timed out\n";
        my $want = length($bytes) - $off;
        $want = $chunk if $want > $chunk;
        my $n = syswrite($self->{sock}, $bytes, $want, $off);
        die "PgNearWs: write: $!\n" unless defined $n;
        $off += $n;
        Time::HiRes::sleep($pause) if $pause && $off < length $bytes;
    }
}

# Reads what is there into buf: bytes read, 0 on EOF; dies after timeout.
sub _fill {
    my ($self, $timeout) = @_;
    my $s = $self->{sock};
    unless ($self->{tls} && $s->pending) {
        IO::Select->new($s)->can_read($timeout // $self->{timeout})
          or die "PgNearWs: read timed out after " . ($timeout // $self->{timeout}) . "s\n";
    }
    my $r = sysread($s, my $chunk, 262144);
    if (!defined $r) {
        return 0 if $!{ECONNRESET};
        die "PgNearWs: read: $!\n";
    }
    $self->{buf} .= $chunk;
    return $r;
}

# Exactly N bytes, undef on EOF.
sub _read_bytes {
    my ($self, $n) = @_;
    while (length $self->{buf} < $n) {
        return undef unless $self->_fill;
    }
    return substr($self->{buf}, 0, $n, '');
}

# eof_within(SECONDS): 1 if the server closes the connection within that
# time (bytes it sends meanwhile are kept in ->{discarded}), else 0.
sub eof_within {
    my ($self, $secs) = @_;
    my $end = Time::HiRes::time() + $secs;
    while ((my $left = $end - Time::HiRes::time()) > 0) {
        my $n = eval { $self->_fill($left) };
        return 0 unless defined $n;    # timed out
        if ($n == 0) { $self->{discarded} .= $self->{buf}; $self->{buf} = ''; return 1 }
    }
    return 0;
}

# ---------------------------------------------------------------- HTTP

# request_head(path => '/', method => 'GET', host => 'H:P', key => KEY,
#              version => 13, headers => [name => value, ...],
#              omit => [names of the standard headers to leave out],
#              http => 'HTTP/1.1') -> the request head's bytes
sub request_head {
    my ($self, %o) = @_;
    my %omit = map { lc($_) => 1 } @{ $o{omit} // [] };
    my @h = (Host => $o{host} // "$self->{host}:$self->{port}",
             Upgrade => 'websocket', Connection => 'Upgrade',
             'Sec-WebSocket-Key' => $o{key} // ws_random_key(),
             'Sec-WebSocket-Version' => $o{version} // 13);
    my $head = ($o{method} // 'GET') . ' ' . ($o{path} // '/') . ' ' . ($o{http} // 'HTTP/1.1') . "\r\n";
    while (my ($k, $v) = splice(@h, 0, 2)) { $head .= "$k: $v\r\n" unless $omit{ lc $k } }
    my @extra = @{ $o{headers} // [] };
    while (my ($k, $v) = splice(@extra, 0, 2)) { $head .= "$k: $v\r\n" }
    return "$head\r\n";
}

# upgrade(%request_head_options, chunk =>, pause =>) -> the response (see
# read_http_response), with {key} the Sec-WebSocket-Key sent and {accept_ok}
# whether Sec-WebSocket-Accept matches it.
sub upgrade {
    my ($self, %o) = @_;
    $o{key} //= ws_random_key();
    $self->send_raw($self->request_head(%o), chunk => $o{chunk}, pause => $o{pause});
    my $r = $self->read_http_response;
    $r->{key} = $o{key};
    $r->{accept_ok} = (($r->{headers}{'sec-websocket-accept'} // '') eq ws_accept($o{key})) ? 1 : 0;
    $self->{upgraded} = 1 if ($r->{status} // 0) == 101;
    return $r;
}

# read_http_response -> {status, reason, headers => {lower-case name =>
# value}, header_lines => [...], body, raw, eof}; eof => 1 and no status
# when the server closed before a whole head.  The body of a non-101
# answer is Content-Length bytes, or everything up to EOF without one.
sub read_http_response {
    my ($self) = @_;
    my %r = (headers => {}, header_lines => [], body => '');
    my $end;
    while (($end = index($self->{buf}, "\r\n\r\n")) < 0) {
        die "PgNearWs: HTTP response head over 64 kB\n" if length $self->{buf} > 65536;
        next if $self->_fill;
        $r{eof} = 1;
        $r{raw} = $self->{buf};
        $self->{buf} = '';
        return \%r;
    }
    my $head = substr($self->{buf}, 0, $end + 4, '');
    $r{raw} = $head;
    my ($status_line, @lines) = split /\r\n/, substr($head, 0, $end);
    @r{qw(http status reason)} = $status_line =~ m{^(HTTP/\d\.\d) (\d{3})(?: (.*))?$}
      or die "PgNearWs: not an HTTP status line: '$status_line'\n";
    for my $l (@lines) {
        my ($k, $v) = $l =~ /^([^:]+):[ \t]*(.*?)[ \t]*$/ or die "PgNearWs: bad header line '$l'\n";
        push @{ $r{header_lines} }, $l;
        my $lk = lc $k;
        $r{headers}{$lk} = exists $r{headers}{$lk} ? "$r{headers}{$lk}, $v" : $v;
    }
    return \%r if $r{status} == 101;
    if (defined(my $cl = $r{headers}{'content-length'})) {
        my $body = $self->_read_bytes($cl);
        $r{body} = $body // do { my $b = $self->{buf}; $self->{buf} = ''; $r{eof} = 1; $b };
    } else {
        1 while $self->_fill;
        $r{body} = $self->{buf};
        $self->{buf} = '';
        $r{eof} = 1;
    }
    return \%r;
}

# ---------------------------------------------------------------- frames

# send_frame(ws_frame options, chunk =>, pause =>)
sub send_frame {
    my ($self, %o) = @_;
    $self->send_raw(ws_frame(%o), chunk => $o{chunk}, pause => $o{pause});
}

# send_frames([\%frame, ...], chunk =>, pause =>): all in one write.
sub send_frames {
    my ($self, $frames, %o) = @_;
    $self->send_raw(join('', map { ws_frame(%$_) } @$frames), %o);
}

# read_frame(timeout => S) -> {opcode, fin, rsv, masked, length, payload,
# code, reason (close frames)}, or undef on EOF.
sub read_frame {
    my ($self) = @_;
    my $h = $self->_read_bytes(2) // return undef;
    my ($b0, $b1) = unpack('CC', $h);
    my %f = (fin => $b0 >> 7, rsv => ($b0 >> 4) & 7, opcode => $b0 & 0xF, masked => $b1 >> 7);
    my $len = $b1 & 0x7F;
    if ($len == 126) {
        $len = unpack('n', $self->_read_bytes(2) // return undef);
    } elsif ($len == 127) {
        my ($hi, $lo) = unpack('NN', $self->_read_bytes(8) // return undef);
        $len = $hi * 2**32 + $lo;
    }
    $f{length} = $len;
    my $key = $f{masked} ? ($self->_read_bytes(4) // return undef) : undef;
    my $p = $self->_read_bytes($len) // return undef;
    $f{payload} = $key ? _xor_mask($p, $key) : $p;
    if ($f{opcode} == OP_CLOSE && $len >= 2) {
        $f{code} = unpack('n', $f{payload});
        $f{reason} = substr($f{payload}, 2);
    }
    return \%f;
}

# read_message -> {opcode, payload, frames} for the next data message
# (fragments reassembled), or undef when a close frame or EOF came first
# (->close_received then says which close).  Pings met on the way are
# answered with a pong carrying the same payload unless ->{auto_pong} is 0;
# pings and pongs are recorded in ->{pings} / ->{pongs} (payloads).
sub read_message {
    my ($self) = @_;
    my $msg;
    while (1) {
        my $f = $self->read_frame // return undef;
        my $kind = $self->_take_frame($f, \$msg);
        return undef if $kind eq 'close';
        return $msg if $kind eq 'message';
    }
}

# One frame read: 'control' (a ping or pong, dealt with), 'close',
# 'fragment' (more of $$msg to come) or 'message' ($$msg whole).
sub _take_frame {
    my ($self, $f, $msg) = @_;
    if ($f->{opcode} == OP_PING) {
        push @{ $self->{pings} }, $f->{payload};
        $self->send_frame(opcode => OP_PONG, payload => $f->{payload}) if $self->{auto_pong};
        return 'control';
    }
    if ($f->{opcode} == OP_PONG) { push @{ $self->{pongs} }, $f->{payload}; return 'control' }
    if ($f->{opcode} == OP_CLOSE) {
        $self->{close_in} = { code => $f->{code}, reason => $f->{reason}, frame => $f };
        return 'close';
    }
    die "PgNearWs: pgnear sent a masked frame\n" if $f->{masked};
    die "PgNearWs: pgnear set RSV bits $f->{rsv}\n" if $f->{rsv};
    if ($f->{opcode} == OP_CONT) {
        die "PgNearWs: continuation frame without a message\n" unless $$msg;
        $$msg->{payload} .= $f->{payload};
    } else {
        die "PgNearWs: new data frame inside a fragmented message\n" if $$msg;
        $$msg = { opcode => $f->{opcode}, payload => $f->{payload} };
    }
    $$msg->{frames}++;
    return $f->{fin} ? 'message' : 'fragment';
}

# expect_close(timeout => S) -> {code, reason, data (binary payload read
# before it), eof (whether the connection then closed within 5 s)}, or
# {eof => 1, no_close => 1, data} when the server hung up without a close frame.
sub expect_close {
    my ($self, %o) = @_;
    local $self->{timeout} = $o{timeout} // $self->{timeout};
    my $data = '';
    while (1) {
        my $m = $self->read_message;
        if (!$m) {
            my $c = $self->{close_in};
            return { eof => 1, no_close => 1, data => $data } unless $c;
            return { %$c, data => $data, eof => $self->eof_within(5) };
        }
        $data .= $m->{payload};
    }
}

# close(code => 1000, reason => '') sends a close frame and reads until
# pgnear's close comes back: -> what expect_close returns.
sub close {
    my ($self, %o) = @_;
    $self->send_frame(opcode => OP_CLOSE, close_code => $o{code} // 1000, close_reason => $o{reason});
    return $self->expect_close(%o);
}

# pump(SECONDS): reads frames (answering pings) for that long; returns
# the data messages' payloads joined; stops early at a close or EOF
# (->{ended} = 1).
sub pump {
    my ($self, $secs) = @_;
    my $end = Time::HiRes::time() + $secs;
    my ($data, $msg) = ('', undef);
    while ((my $left = $end - Time::HiRes::time()) > 0) {
        if (length $self->{buf} < 2) {
            my $n = eval { $self->_fill($left) };
            last unless defined $n;    # quiet until the end
            if ($n == 0) { $self->{ended} = 1; last }
            next;
        }
        local $self->{timeout} = $left > 1 ? $left : 1;    # the rest of a frame begun
        my $f = $self->read_frame;
        if (!$f) { $self->{ended} = 1; last }
        my $kind = $self->_take_frame($f, \$msg);
        if ($kind eq 'close') { $self->{ended} = 1; last }
        if ($kind eq 'message') { $data .= $msg->{payload}; $msg = undef }
    }
    return $data;
}

sub shutdown_now { CORE::close($_[0]{sock}) }

# ================================================================ PgNearWs::Pg

# PostgreSQL over a WebSocket: PgNearTest::Wire (startup, query, read_msg,
# send_msg, ssl_request...) whose bytes travel in binary frames.
#   PgNearWs::Pg->connect(port =>, path => '/', headers => [...], tls =>, ca =>,
#                         frame_size => N (bytes per frame sent; 0: one frame per write),
#                         upgrade => {more request_head options})
package PgNearWs::Pg;
our @ISA = ('PgNearTest::Wire');
use Carp qw(croak);
use IO::Select;
use POSIX ();
use Socket ();
use Time::HiRes ();

sub connect {
    my ($class, %o) = @_;
    my $ws = PgNearWs->connect(%o);
    my $r = $ws->upgrade(path => $o{path} // '/', headers => $o{headers}, %{ $o{upgrade} // {} });
    die "PgNearWs::Pg: upgrade to $o{port}" . ($o{path} // '/') . ' answered '
      . ($r->{status} // 'nothing') . ": $r->{raw}$r->{body}\n" unless ($r->{status} // 0) == 101;
    die "PgNearWs::Pg: wrong Sec-WebSocket-Accept in $r->{raw}\n" unless $r->{accept_ok};
    my $self = $class->over($ws, %o);
    $self->{response} = $r;
    return $self;
}

# over($ws, frame_size => N): PostgreSQL over a PgNearWs already upgraded.
sub over {
    my ($class, $ws, %o) = @_;
    return bless { ws => $ws, buf => '', timeout => $ws->timeout, frame_size => $o{frame_size} // 0 }, $class;
}

sub ws       { $_[0]{ws} }
sub socket   { $_[0]{ws}->socket }
sub response { $_[0]{response} }
sub frame_size { my $s = shift; $s->{frame_size} = shift if @_; $s->{frame_size} }

# start_tls(ca => CA_FILE, verify_hostname => 'localhost'): SSLRequest
# through the WebSocket; on 'S', TLS inside it (the Neon driver with
# forceDisablePgSSL = false).  A child process carries the TLS bytes
# between a socket pair and the frames; the session then speaks through
# the TLS end.  Returns the server's answer to the SSLRequest ('S' / 'N').
sub start_tls {
    my ($self, %o) = @_;
    PgNearWs::require_ssl();
    my $answer = $self->ssl_request;
    return $answer unless defined $answer && $answer eq 'S';
    socketpair(my $mine, my $theirs, Socket::AF_UNIX(), Socket::SOCK_STREAM(), 0) or die "socketpair: $!\n";
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        CORE::close($mine);
        eval { _carry($self->{ws}, $theirs) };
        POSIX::_exit(0);
    }
    CORE::close($theirs);
    $self->{carrier} = $pid;
    PgNearTest::_reg_add("pid $pid");
    my $vh = $o{verify_hostname} // 'localhost';
    IO::Socket::SSL->start_SSL($mine, SSL_ca_file => $o{ca} // croak('start_tls needs ca'),
                               SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_PEER(),
                               SSL_hostname => $vh, SSL_verifycn_name => $vh,
                               SSL_verifycn_scheme => 'http', Timeout => $self->{timeout})
      or die "PgNearWs::Pg: TLS inside the WebSocket failed: " . IO::Socket::SSL::errstr() . "\n";
    $self->{tls_sock} = $mine;
    return $answer;
}

# In the child: socket pair <-> binary frames, until either side ends.
sub _carry {
    my ($ws, $pair) = @_;
    my $sel = IO::Select->new($ws->socket, $pair);
    while (1) {
        my @ready = length $ws->{buf} ? ($ws->socket) : $sel->can_read(60);
        return unless @ready;
        for my $s (@ready) {
            if ($s == $pair) {
                my $n = sysread($pair, my $d, 16384);
                return unless $n;
                $ws->send_frame(opcode => PgNearWs::OP_BINARY, payload => $d);
            } else {
                my $m = $ws->read_message or return;
                my $off = 0;
                while ($off < length $m->{payload}) {
                    my $n = syswrite($pair, $m->{payload}, length($m->{payload}) - $off, $off);
                    return unless defined $n;
                    $off += $n;
                }
            }
        }
    }
}

# The PostgreSQL bytes go out as masked binary frames of frame_size bytes
# (all of them in one TCP write), or through TLS after start_tls.
sub send_raw {
    my ($self, $bytes) = @_;
    if (my $t = $self->{tls_sock}) {
        my $off = 0;
        while ($off < length $bytes) {
            my $n = syswrite($t, $bytes, length($bytes) - $off, $off);
            die "PgNearWs::Pg: TLS write: $!\n" unless $n;
            $off += $n;
        }
        return;
    }
    my $fs = $self->{frame_size} || length($bytes) || 1;
    my @frames;
    for (my $off = 0; $off < length $bytes; $off += $fs) {
        push @frames, { opcode => PgNearWs::OP_BINARY, payload => substr($bytes, $off, $fs) };
    }
    $self->{ws}->send_frames(\@frames);
}

# Exactly N bytes of the PostgreSQL stream, undef once pgnear closed the
# WebSocket (->ws->close_received) or the connection.
sub read_bytes {
    my ($self, $n) = @_;
    return $self->_read_tls($n) if $self->{tls_sock};
    local $self->{ws}{timeout} = $self->{timeout};
    while (length $self->{buf} < $n) {
        my $m = $self->{ws}->read_message // return undef;
        die "PgNearWs::Pg: pgnear sent a text message\n" unless $m->{opcode} == PgNearWs::OP_BINARY;
        $self->{buf} .= $m->{payload};
    }
    return substr($self->{buf}, 0, $n, '');
}

sub _read_tls {
    my ($self, $n) = @_;
    my $t = $self->{tls_sock};
    while (length $self->{buf} < $n) {
        unless ($t->pending) {
            IO::Select->new($t)->can_read($self->{timeout})
              or die "PgNearWs::Pg: TLS read timed out after $self->{timeout}s\n";
        }
        my $r = sysread($t, my $chunk, 65536);
        return undef unless $r;
        $self->{buf} .= $chunk;
    }
    return substr($self->{buf}, 0, $n, '');
}

sub terminate {
    my ($self) = @_;
    eval { $self->send_msg('X', '') };
    if ($self->{tls_sock}) {
        CORE::close($self->{tls_sock});
        $self->_reap_carrier;
        return;
    }
    eval { $self->{ws}->close(timeout => 2) };
    $self->{ws}->shutdown_now;
}

sub _reap_carrier {
    my ($self) = @_;
    my $pid = delete $self->{carrier} or return;
    my $end = Time::HiRes::time() + 5;
    Time::HiRes::sleep(0.05) while waitpid($pid, POSIX::WNOHANG()) == 0 && Time::HiRes::time() < $end;
    if (kill 0, $pid) { kill 'KILL', $pid; waitpid($pid, 0) }
    PgNearTest::_reg_del("pid $pid");
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $!, $@);
    return unless $self->{carrier};
    eval { CORE::close($self->{tls_sock}) if $self->{tls_sock}; $self->_reap_carrier };
}

package PgNearWs;

1;

__END__

=head1 NAME

PgNearWs - a WebSocket client for pgnear's integration tests

=head1 SYNOPSIS

  use PgNearTest;
  use PgNearWs qw(ws_accept ws_frame);

  my $ws = PgNearWs->connect(port => $wsport);          # tls => 1, ca => $ca->cert for wss
  my $r = $ws->upgrade(path => '/v2', headers => ['X-Region' => 'eu-west']);
  # $r: {status, reason, headers => {lc name => value}, body, raw, key, accept_ok, eof}
  $ws->send_frame(opcode => PgNearWs::OP_PING, payload => 'hi');
  my $f = $ws->read_frame;       # {opcode, fin, rsv, masked, length, payload, code, reason}
  $ws->send_frame(opcode => PgNearWs::OP_TEXT, payload => 'x');
  my $c = $ws->expect_close;     # {code, reason, data, eof}

  my $pg = PgNearWs::Pg->connect(port => $wsport, frame_size => 1);
  my $s = $pg->startup(user => 'app', database => 'movr', password => 'app-secret');
  my $q = $pg->query('SELECT 1');    # as PgNearTest::Wire

=head1 PgNearWs

  connect(host =>, port =>, timeout => 10, tls => 0|1, ca =>, verify_hostname =>, local_addr =>)
  send_raw($bytes, chunk => N, pause => S)     raw TCP bytes, N per write
  request_head(path =>, method =>, host =>, key =>, version =>, headers => [..], omit => [..], http =>)
  upgrade(request_head options, chunk =>, pause =>) -> response
  read_http_response -> {status, reason, headers, header_lines, body, raw, eof}
  ws_frame(opcode =>, payload =>, fin =>, rsv =>, mask =>, mask_key =>, length =>,
           close_code =>, close_reason =>) -> bytes            (exportable)
  send_frame(ws_frame options, chunk =>, pause =>); send_frames([{...}, ...], chunk =>, pause =>)
  read_frame -> frame | undef on EOF
  read_message -> {opcode, payload, frames} | undef (close: ->close_received, or EOF);
                  pings answered unless ->{auto_pong} = 0, recorded in ->{pings}, ->{pongs}
  expect_close(timeout =>) -> {code, reason, data, eof} | {eof => 1, no_close => 1, data}
  close(code => 1000, reason =>) -> what expect_close returns
  pump(S) -> data read in S seconds, answering pings; ->{ended} once closed
  eof_within(S) -> 1 if the server closes within S seconds
  ws_accept($key), ws_random_key()                        (exportable)

=head1 PgNearWs::Pg

  PgNearWs::Pg->connect(PgNearWs->connect options, path =>, headers =>, frame_size =>, upgrade => {...})
  PgNearWs::Pg->over($upgraded_ws, frame_size => N)

  $pg->start_tls(ca => CA_FILE) -> 'S' | 'N'   SSLRequest, then TLS inside the WebSocket

A PgNearTest::Wire whose bytes travel as masked binary frames of
frame_size bytes (0: one frame per write); read_bytes reassembles binary
messages, answering pings; it returns undef at pgnear's close frame
(->ws->close_received has its code) or EOF.

=cut
