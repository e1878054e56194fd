#!/usr/bin/env bats
# smtpd behind a load balancer: the HAProxy PROXY protocol, v1 and v2, on
# a listener marked "proxy" (smtp_listen = ADDR:PORT proxy). The real
# peer is Debian's haproxy, on private loopback ports with its own config
# (send-proxy and send-proxy-v2); swaks connects to it from 127.0.0.2 and
# 127.0.0.3, and the session must see those addresses, not haproxy's
# 127.0.0.1: in the Received header, the queue file, the log, and the
# relay check (mynetworks is 127.0.0.1 alone, so only haproxy's own
# address would be allowed to relay). Raw clients check that a missing,
# malformed or late header cuts the connection before the greeting.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common

setup_file() {
	file_timer_start
	command -v haproxy >/dev/null || skip "haproxy is not installed"
	suite_init
	smtp_maps
	suite_conf mynetworks 127.0.0.1/32
	suite_conf smtp_listen "127.0.0.1:$SMTP_PORT proxy"
	suite_conf smtpd_upstream_proxy_timeout 1s
	suite_conf smtpd_peername_lookup no
	# The limits count the header's client (IPv6 by its /64).
	suite_conf smtpd_client_connection_count_limit 1
	V1_PORT=$(free_port)
	V2_PORT=$(free_port)
	export V1_PORT V2_PORT
	cat > "$T/haproxy.cfg" <<CFG
global
	maxconn 100
defaults
	mode tcp
	timeout connect 2s
	timeout client 10s
	timeout server 10s
frontend v1
	bind 127.0.0.1:$V1_PORT
	default_backend postern_v1
frontend v2
	bind 127.0.0.1:$V2_PORT
	default_backend postern_v2
backend postern_v1
	server postern 127.0.0.1:$SMTP_PORT send-proxy
backend postern_v2
	server postern 127.0.0.1:$SMTP_PORT send-proxy-v2
CFG
	haproxy -f "$T/haproxy.cfg" -db > "$T/haproxy.log" 2>&1 &
	echo $! > "$T/haproxy.pid"
	suite_start
	wait_for_port "$V1_PORT" 10
	wait_for_port "$V2_PORT" 10
}

teardown_file() {
	local pid
	pid=$(cat "$T/haproxy.pid" 2>/dev/null) && kill "$pid" 2>/dev/null
	[ -n "$pid" ] && wait_for_exit "$pid" 10
	suite_stop
	file_timer_report
}

# swaks through haproxy: PORT SOURCE RCPT [swaks options]
via() {
	swaks --server 127.0.0.1 --port "$1" --local-interface "$2" \
		--from sender@example.org --to "$3" --helo client.example \
		--header "Subject: through haproxy from $2" "${@:4}"
}

@test "PROXY v1 through haproxy: Received, queue file and log name the real client" {
	run via "$V1_PORT" 127.0.0.2 alice@postern.test
	echo "$output"
	[ "$status" -eq 0 ]
	id=$(queued_id "$output")
	[ -n "$id" ]
	run qtool content "$id"
	echo "$output"
	[[ "$output" == "Received: from client.example (unknown [127.0.0.2])"* ]]
	run qtool show "$id"
	echo "$output"
	[[ "$output" == *'"client_addr": "127.0.0.2"'* ]]
	wait_for_log "connect from unknown\[127.0.0.2\]"
	wait_for_log "$id: client=unknown\[127.0.0.2\]"
}

@test "PROXY v2 through haproxy: the real client, and the relay check uses it" {
	run via "$V2_PORT" 127.0.0.3 alice@postern.test
	echo "$output"
	[ "$status" -eq 0 ]
	id=$(queued_id "$output")
	run qtool content "$id"
	[[ "$output" == "Received: from client.example (unknown [127.0.0.3])"* ]]
	# 127.0.0.3 is outside mynetworks, whatever haproxy's address is.
	run via "$V2_PORT" 127.0.0.3 someone@example.net
	echo "$output"
	[[ "$output" == *"<** 554 5.7.1 "*"Relay access denied"* ]]
	wait_for_log "NOQUEUE: reject: RCPT from unknown\[127.0.0.3\]: 554 5.7.1"
	# The same through v1 from 127.0.0.1, inside mynetworks: relayed.
	run via "$V1_PORT" 127.0.0.1 someone@example.net
	echo "$output"
	[[ "$output" == *"250 2.0.0 Ok: queued as"* ]]
}

@test "no header, a malformed one, or one that never ends: cut before the greeting, logged" {
	# A client that reaches the marked port directly.
	run raw --timeout 5 'EHLO client.example\r\n'
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" != *220* ]]
	wait_for_log "warning: PROXY protocol from \[127.0.0.1\]: no PROXY protocol header; connection closed"
	run raw --timeout 5 'PROXY TCP4 127.0.0.400 127.0.0.1 4000 25\r\nQUIT\r\n'
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" != *220* ]]
	wait_for_log "PROXY protocol from \[127.0.0.1\]: v1 header with a bad address; connection closed"
	run raw --timeout 5 '\r\n\r\n\x00\r\nQUIT\n\x21\x12\x00\x0c\x7f\x00\x00\x02\x7f\x00\x00\x01\x9c\x40\x00\x19QUIT\r\n'
	[[ "$output" != *220* ]]
	wait_for_log "v2 header for a connection other than TCP; connection closed"
	# Half a header, then silence: smtpd_upstream_proxy_timeout (1 s).
	start=$(date +%s%N)
	run raw --timeout 20 'PROXY TCP4 127.0.0.2'
	echo "$output"
	# Closed by smtpd (status 0, not the client's TIMEOUT), long before
	# smtpd_timeout (300 s); the log line names the reason.
	[ "$status" -eq 0 ]
	[[ "$output" != *220* ]]
	echo "# closed after $(( ($(date +%s%N) - start) / 1000000 )) ms" >&3
	wait_for_log "PROXY protocol from \[127.0.0.1\]: timeout before the header ended; connection closed"
}

@test "a header in pieces, with SMTP right behind it; a v2 LOCAL health check" {
	# Three segments: the reader consumes the start, waits, and must not
	# swallow the EHLO that follows the header in the last one.
	run python3 - "$SMTP_PORT" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for part in (b"PROXY TCP4 127.0.0.9", b" 127.0.0.1 40000 ",
             b"25\r\nEHLO split.example\r\nQUIT\r\n"):
    s.sendall(part)
    time.sleep(0.2)   # separate segments, not synchronisation
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(data.decode())
PY
	echo "$output"
	[[ "$output" == *"220 "* ]]
	[[ "$output" == *"250-mx.postern.test"* ]]
	[[ "$output" == *"221 "* ]]
	wait_for_log "connect from unknown\[127.0.0.9\]"
	# LOCAL: the proxy's own connection; its address stands.
	run raw --timeout 5 '\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00QUIT\r\n'
	echo "$output"
	[[ "$output" == *"220 "* ]]
	[[ "$output" == *"221 "* ]]
}

@test "an IPv6 client named by the header: Received says IPv6:, limits count its /64" {
	run python3 - "$SMTP_PORT" <<'PY'
import socket, sys
port = int(sys.argv[1])
def session(src):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"PROXY TCP6 %s ::1 40000 25\r\n" % src.encode())
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return s, data.decode().strip()
a, ga = session("2001:db8:1:2::7")
b, gb = session("2001:db8:1:2::8")   # the same /64: over the limit of 1
c, gc = session("2001:db8:1:3::7")   # another /64
print("a", ga); print("b", gb); print("c", gc)
PY
	echo "$output"
	[[ "${lines[0]}" == "a 220 "* ]]
	[ "${lines[1]}" = "b 421 4.7.0 mx.postern.test Error: too many connections from 2001:db8:1:2::8" ]
	[[ "${lines[2]}" == "c 220 "* ]]
	wait_for_log "Connection concurrency limit exceeded: 2 from unknown\[2001:db8:1:2::8\] for service smtp"
	run python3 - "$SMTP_PORT" <<'PY'
import smtplib, sys
class ProxiedSMTP(smtplib.SMTP):
    def _get_socket(self, host, port, timeout):
        s = super()._get_socket(host, port, timeout)
        s.sendall(b"PROXY TCP6 2001:db8:9::5 ::1 40000 25\r\n")
        return s
with ProxiedSMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as c:
    c.helo("v6.example")
    print(c.sendmail("a@example.org", ["alice@postern.test"],
                     "Subject: v6\r\n\r\nhi\r\n"))
    print(c.noop())
PY
	echo "$output"
	wait_for_log "client=unknown\[2001:db8:9::5\]"
	id=$(grep -o '[0-9A-Za-z]\{14\}: client=unknown\[2001:db8:9::5\]' "$T/log" | cut -d: -f1 | head -n1)
	[ -n "$id" ]
	run qtool content "$id"
	[[ "$output" == "Received: from v6.example (unknown [IPv6:2001:db8:9::5])"* ]]
}
