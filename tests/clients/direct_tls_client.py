#!/usr/bin/env python3
"""direct_tls_client.py: a PostgreSQL client on Python's own ssl module, for
297_direct_tls.t: PostgreSQL 17's direct TLS (sslnegotiation=direct: the
ClientHello is the connection's first bytes), or the SSLRequest first with
--sslrequest.  It logs in with a real StartupMessage and SCRAM-SHA-256, runs
one query and prints one JSON line:

    {"stage": "done" | "handshake" | "login" | "query",  # where it ended
     "alpn": ..., "tls": "TLSv1.3", "rows": [[...]],
     "login_ms": from connect to the first ReadyForQuery,
     "error": {"C": SQLSTATE, "M": message} or a string,
     "closed": true when the server closed without a word}

    /usr/bin/python3 tests/clients/direct_tls_client.py --port PORT --ca FILE
        [--host H] [--alpn NAME]... [--sni NAME] [--sslrequest]
        [--proxy-v2 SRC_IP | --proxy-v1 SRC_IP] [--websocket | --wss] [--no-tls] [--unix PATH] [--user U] [--password P]
        [--database D] [--query SQL]

--alpn may be given several times (the list offered, in order); none: the
ClientHello carries no ALPN extension, as asyncpg's direct_tls=True.
--proxy-v2 (--proxy-v1) sends a PROXY v2 (v1) header naming SRC_IP as the
caller first, as a load balancer does.  --websocket: the port is websocket_port, and the
PostgreSQL stream (TLS inside it included) goes in binary WebSocket
frames after the HTTP upgrade, as the Neon driver sends it; TLS then runs
over memory BIOs (ssl.SSLObject).  --wss: the same under websocket_tls,
whose own TLS offers ALPN http/1.1 as a browser's does; --no-tls: no
PostgreSQL TLS (none inside the WebSocket either).
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import socket
import ssl
import struct
import sys
import time

PROXY_V2_SIG = b'\r\n\r\n\x00\r\nQUIT\n'


class Closed(Exception):
    pass


def proxy_v2_header(src, dst, sport, dport):
    addrs = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack('!HH', sport, dport)
    return PROXY_V2_SIG + bytes([0x21, 0x11]) + struct.pack('!H', len(addrs)) + addrs


def read_exact(s, n):
    buf = b''
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise Closed()
        buf += chunk
    return buf


def read_msg(s):
    head = read_exact(s, 5)
    n = struct.unpack('!I', head[1:])[0]
    return head[:1], read_exact(s, n - 4)


def send_msg(s, typ, body):
    s.sendall(typ + struct.pack('!I', 4 + len(body)) + body)


def fields(body):
    out = {}
    for part in body.split(b'\x00'):
        if part:
            out[part[:1].decode()] = part[1:].decode(errors='replace')
    return out


def scram(s, user, password, first):
    """SCRAM-SHA-256 without channel binding; first: the AuthenticationSASL body."""
    if b'SCRAM-SHA-256\x00' not in first:
        raise RuntimeError('no SCRAM-SHA-256 offered')
    nonce = base64.b64encode(os.urandom(18)).decode()
    bare = 'n=,r=' + nonce
    msg = ('n,,' + bare).encode()
    send_msg(s, b'p', b'SCRAM-SHA-256\x00' + struct.pack('!i', len(msg)) + msg)
    typ, body = read_msg(s)
    if typ == b'E':
        return fields(body)
    server_first = body[4:].decode()
    attrs = dict(kv.split('=', 1) for kv in server_first.split(','))
    salted = hashlib.pbkdf2_hmac('sha256', password.encode(), base64.b64decode(attrs['s']),
                                 int(attrs['i']))
    client_key = hmac.new(salted, b'Client Key', hashlib.sha256).digest()
    stored = hashlib.sha256(client_key).digest()
    without_proof = 'c=biws,r=' + attrs['r']
    auth_msg = ','.join([bare, server_first, without_proof]).encode()
    sig = hmac.new(stored, auth_msg, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    send_msg(s, b'p', (without_proof + ',p=' + base64.b64encode(proof).decode()).encode())
    typ, body = read_msg(s)
    if typ == b'E':
        return fields(body)
    server_key = hmac.new(salted, b'Server Key', hashlib.sha256).digest()
    want = base64.b64encode(hmac.new(server_key, auth_msg, hashlib.sha256).digest()).decode()
    if body[4:].decode() != 'v=' + want:
        raise RuntimeError('the server signature does not verify')
    return None


def login(s, o):
    params = b''.join(k.encode() + b'\x00' + v.encode() + b'\x00' for k, v in
                      (('user', o.user), ('database', o.database),
                       ('application_name', 'direct_tls_client')))
    body = struct.pack('!I', 0x30000) + params + b'\x00'
    s.sendall(struct.pack('!I', 4 + len(body)) + body)
    while True:
        typ, body = read_msg(s)
        if typ == b'E':
            return fields(body)
        if typ == b'R':
            code = struct.unpack('!I', body[:4])[0]
            if code == 10:
                err = scram(s, o.user, o.password, body[4:])
                if err:
                    return err
            elif code == 3:  # cleartext, as websocket_auth = cleartext asks (over TLS here)
                send_msg(s, b'p', o.password.encode() + b'\x00')
            elif code not in (0, 12):
                raise RuntimeError('unexpected authentication request %d' % code)
        if typ == b'Z':
            return None


def query(s, sql):
    send_msg(s, b'Q', sql.encode() + b'\x00')
    rows, err = [], None
    while True:
        typ, body = read_msg(s)
        if typ == b'D':
            n = struct.unpack('!H', body[:2])[0]
            row, off = [], 2
            for _ in range(n):
                ln = struct.unpack('!i', body[off:off + 4])[0]
                off += 4
                row.append(None if ln < 0 else body[off:off + ln].decode())
                off += max(ln, 0)
            rows.append(row)
        elif typ == b'E':
            err = fields(body)
        elif typ == b'Z':
            return rows, err


class WebSocket:
    """A client WebSocket over s: sendall() sends a masked binary frame, recv() reads frames' payloads."""

    def __init__(self, s, host, port):
        self.s, self.buf = s, b''
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(('GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
                   'Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n' % (host, port, key)).encode())
        head = b''
        while b'\r\n\r\n' not in head:
            chunk = s.recv(1)
            if not chunk:
                raise Closed()
            head += chunk
        if not head.startswith(b'HTTP/1.1 101'):
            raise RuntimeError('upgrade refused: %r' % head.split(b'\r\n')[0])

    def sendall(self, data):
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x82]) + (bytes([0x80 | n]) if n < 126 else
                                bytes([0x80 | 126]) + struct.pack('!H', n) if n < 65536 else
                                bytes([0x80 | 127]) + struct.pack('!Q', n))
        self.s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def close(self):
        self.s.close()

    def recv(self, n):
        while not self.buf:
            b0, b1 = read_exact(self.s, 2)
            ln = b1 & 0x7f
            if ln == 126:
                ln = struct.unpack('!H', read_exact(self.s, 2))[0]
            elif ln == 127:
                ln = struct.unpack('!Q', read_exact(self.s, 8))[0]
            payload = read_exact(self.s, ln) if ln else b''
            if b0 & 0x0f == 8:
                return b''
            if b0 & 0x0f in (0, 1, 2):
                self.buf += payload
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


class MemoryTls:
    """TLS over a WebSocket: an ssl.SSLObject whose records go through it."""

    def __init__(self, ctx, ws, sni):
        self.ws, self.inc, self.out = ws, ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname=sni)
        self.pump(self.obj.do_handshake)

    def pump(self, op, *args):
        while True:
            try:
                r = op(*args)
                self.flush()
                return r
            except ssl.SSLWantReadError:
                self.flush()
                data = self.ws.recv(65536)
                if not data:
                    self.inc.write_eof()
                else:
                    self.inc.write(data)

    def flush(self):
        data = self.out.read()
        if data:
            self.ws.sendall(data)

    def sendall(self, data):
        self.pump(self.obj.write, data)

    def recv(self, n):
        try:
            return self.pump(self.obj.read, n)
        except ssl.SSLZeroReturnError:
            return b''

    def selected_alpn_protocol(self):
        return self.obj.selected_alpn_protocol()

    def version(self):
        return self.obj.version()

    def close(self):
        self.ws.close()


def connect(o):
    if o.unix:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(o.timeout)
        s.connect(o.unix)
        return s
    s = socket.create_connection((o.host, o.port), timeout=o.timeout)
    if o.proxy_v2:
        s.sendall(proxy_v2_header(o.proxy_v2, '127.0.0.1', 40000, o.port))
    if o.proxy_v1:
        s.sendall(('PROXY TCP4 %s 127.0.0.1 40001 %d\r\n' % (o.proxy_v1, o.port)).encode())
    if o.wss:  # websocket_tls: the WebSocket's own TLS first, with a browser's ALPN
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(o.ca)
        ctx.set_alpn_protocols(['http/1.1'])
        s = ctx.wrap_socket(s)
    if o.websocket or o.wss:
        return WebSocket(s, o.host, o.port)
    return s


def tls(s, o, res):
    if o.no_tls:
        return s
    if o.sslrequest:
        s.sendall(struct.pack('!II', 8, 80877103))
        answer = read_exact(s, 1)
        if answer != b'S':
            raise RuntimeError('SSLRequest answered %r' % answer)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(o.ca)
    if o.alpn:
        ctx.set_alpn_protocols(o.alpn)
    ws = o.websocket or o.wss
    t = MemoryTls(ctx, s, o.sni) if ws else ctx.wrap_socket(s, server_hostname=o.sni)
    res['alpn'] = t.selected_alpn_protocol()
    res['tls'] = t.version()
    return t


def run(o):
    res = {'stage': 'handshake'}
    try:
        t0 = time.monotonic()
        s = tls(connect(o), o, res)
        res['stage'] = 'login'
        err = login(s, o)
        if err:
            res['error'] = err
            return res
        res['login_ms'] = round((time.monotonic() - t0) * 1000, 1)
        res['stage'] = 'query'
        res['rows'], err = query(s, o.query)
        if err:
            res['error'] = err
            return res
        send_msg(s, b'X', b'')
        s.close()
        res['stage'] = 'done'
    except Closed:
        res['closed'] = True
    except (OSError, RuntimeError, ssl.SSLError) as e:
        res['error'] = '%s: %s' % (type(e).__name__, e)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--unix')
    ap.add_argument('--ca', required=True)
    ap.add_argument('--alpn', action='append')
    ap.add_argument('--sni')
    ap.add_argument('--sslrequest', action='store_true')
    ap.add_argument('--proxy-v2')
    ap.add_argument('--proxy-v1')
    ap.add_argument('--websocket', action='store_true')
    ap.add_argument('--wss', action='store_true')
    ap.add_argument('--no-tls', action='store_true')
    ap.add_argument('--user', default='app')
    ap.add_argument('--password', default='app-secret')
    ap.add_argument('--database', default='movr')
    ap.add_argument('--query', default='SELECT 1')
    ap.add_argument('--timeout', type=float, default=15)
    print(json.dumps(run(ap.parse_args())))
    sys.stdout.flush()


if __name__ == '__main__':
    main()
