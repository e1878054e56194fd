#!/usr/bin/env bats
# Greylisting (smtpd_greylist): the first attempt of a triplet (client
# /24, sender, recipient) is deferred at RCPT with 450 4.7.1, a retry
# before smtpd_greylist_delay (2 s here) too, a retry after it is
# accepted; the network of a client that retried is let through at once
# after smtpd_greylist_auto_allow successes; mynetworks and
# smtpd_greylist_exceptions and authenticated clients are never
# greylisted; the triplets survive an anvil restart and a reload (they
# are in the Berkeley DB file anvil owns); anvil answers only root and
# its own users. Real client: swaks from 127.0.0.2 ... 127.0.3.2, one
# suite for the file.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common

setup_file() {
	file_timer_start
	suite_init
	suite_conf mynetworks 127.0.0.1/32
	suite_conf smtpd_greylist yes
	suite_conf smtpd_greylist_delay 2s
	suite_conf smtpd_greylist_auto_allow 2
	suite_conf smtpd_greylist_exceptions 127.0.0.9/32
	suite_conf smtpd_greylist_database "$T/var/greylist/greylist.db"
	suite_conf smtpd_peername_lookup no
	# AUTH (over TLS) for the exemption of authenticated clients.
	suite_tls_selfsigned
	suite_sasl_users alice alice-pw
	suite_start
}

teardown_file() {
	suite_stop
	file_timer_report
}

# from SOURCE SENDER RCPT [RCPT...] [swaks options]: one swaks session
# from that address.
from() {
	local src=$1 sender=$2 to=$3
	shift 3
	while [ $# -gt 0 ] && [[ "$1" != -* ]]; do
		to="$to,$1"
		shift
	done
	swaks --server 127.0.0.1 --port "$SMTP_PORT" --local-interface "$src" \
	    --from "$sender" --to "$to" --timeout 10 "$@" 2>&1
}

@test "first attempt and an early retry deferred, the retry after the delay accepted" {
	start=$(date +%s%N)
	# The first attempt, and a retry at once (a second RCPT of the same
	# triplet, milliseconds later): both deferred.
	run from 127.0.0.2 grey@example.org alice@postern.test alice@postern.test
	[ "$status" -ne 0 ]
	[[ "$output" == *"<** 450 4.7.1 <alice@postern.test>: Recipient address rejected: Greylisted, try again in 2 seconds"* ]]
	[ "$(echo "$output" | grep -c '<\*\* 450 4.7.1 <alice@postern.test>: Recipient address rejected: Greylisted, try again in [12] seconds')" -eq 2 ]
	[[ "$output" != *"queued as"* ]]
	# Another recipient is another triplet.
	run from 127.0.0.2 grey@example.org bob@postern.test
	[[ "$output" == *"<** 450 4.7.1 <bob@postern.test>: Recipient address rejected: Greylisted, try again in 2 seconds"* ]]
	# Retry as an MTA does, until accepted (bounded).
	deadline=$(( $(date +%s) + 15 ))
	while :; do
		run from 127.0.0.2 grey@example.org alice@postern.test
		[[ "$output" == *"queued as"* ]] && break
		[[ "$output" == *"Greylisted, try again in"* ]]
		[ "$(date +%s)" -lt "$deadline" ]
		sleep 0.3	# the retry interval of the client under test
	done
	waited=$(( ($(date +%s%N) - start) / 1000000 ))
	echo "# accepted ${waited} ms after the first attempt (delay 2 s)" >&3
	[ "$waited" -ge 2000 ]
	# Postfix's reject line, and the pass.
	grep -q 'NOQUEUE: reject: RCPT from unknown\[127.0.0.2\]: 450 4.7.1 <alice@postern.test>: Recipient address rejected: Greylisted, try again in 2 seconds; from=<grey@example.org> to=<alice@postern.test> proto=ESMTP helo=<' "$T/log"
	wait_for_log 'NOQUEUE: greylist: RCPT from unknown\[127.0.0.2\]: passed after [2-9]s; from=<grey@example.org> to=<alice@postern.test>'
	# The triplet is known to the whole /24: a sibling address passes.
	run from 127.0.0.3 grey@example.org alice@postern.test
	[[ "$output" == *"queued as"* ]]
}

@test "mynetworks, smtpd_greylist_exceptions and authenticated clients are not greylisted" {
	run from 127.0.0.1 new1@example.org alice@postern.test
	[[ "$output" == *"queued as"* ]]
	run from 127.0.0.9 new2@example.org alice@postern.test
	[[ "$output" == *"queued as"* ]]
	# ... while a stranger with the same new sender is.
	run from 127.0.1.2 new2@example.org alice@postern.test
	[[ "$output" == *"450 4.7.1 <alice@postern.test>: Recipient address rejected: Greylisted"* ]]
	# An authenticated client is not greylisted; the same triplet from
	# the same address without AUTH is.
	run from 127.0.3.2 new3@example.org bob@postern.test --tls \
	    --auth PLAIN --auth-user alice --auth-password alice-pw
	[[ "$output" == *"235 2.7.0"* ]]
	[[ "$output" == *"queued as"* ]]
	run from 127.0.3.2 new3@example.org bob@postern.test
	[[ "$output" == *"450 4.7.1 <bob@postern.test>: Recipient address rejected: Greylisted"* ]]
}

@test "after smtpd_greylist_auto_allow successful retries a network passes at once; the memory survives anvil's restart" {
	# The second retried triplet of 127.0.0.0/24 (bob, deferred in the
	# first test) makes two: the network is allowed from then on.
	deadline=$(( $(date +%s) + 15 ))
	while :; do
		run from 127.0.0.2 grey@example.org bob@postern.test
		[[ "$output" == *"queued as"* ]] && break
		[ "$(date +%s)" -lt "$deadline" ]
		sleep 0.3	# the retry interval of the client under test
	done
	wait_for_log 'greylist: client network 127.0.0.0/24: 2 successful retries: no more greylisting for it'
	run from 127.0.0.4 fresh@example.net carol@postern.test
	[[ "$output" == *"queued as"* ]]
	# anvil is restarted by master; the Berkeley DB file is the memory.
	anvil=$(pgrep -P "$(master_pid)" -x anvil)
	[ -n "$anvil" ]
	kill -9 "$anvil"
	deadline=$(( $(date +%s) + 20 ))
	until new=$(pgrep -P "$(master_pid)" -x anvil) && [ -n "$new" ] &&
	    [ "$new" != "$anvil" ]; do
		[ "$(date +%s)" -lt "$deadline" ]
		sleep 0.1
	done
	run from 127.0.0.5 fresh2@example.net dave@postern.test
	[[ "$output" == *"queued as"* ]]
	# A stranger's network is still greylisted after the restart.
	run from 127.0.2.2 fresh2@example.net dave@postern.test
	[[ "$output" == *"Greylisted, try again in 2 seconds"* ]]
	[ -f "$T/var/greylist/greylist.db" ]
	# master made the directory for anvil, and its parent for root.
	[ "$(stat -c "%U %a" "$T/var/greylist")" = "$TEST_USER 700" ]
	[ "$(stat -c %a "$T/var")" = 755 ]
	# A reload starts a new anvil while the old one may still hold the
	# file: the new one waits for its lock, then knows the same.
	"$POSTERN" -c "$T/conf" reload
	wait_for_log 'reload -- configuration'
	run from 127.0.0.6 fresh3@example.net erin@postern.test
	[[ "$output" == *"queued as"* ]]
	run from 127.0.2.2 fresh4@example.net dave@postern.test
	[[ "$output" == *"Greylisted, try again in 2 seconds"* ]]
	run grep -c 'greylisting is off' "$T/log"
	[ "$output" = 0 ]
}

@test "postern check refuses an smtpd_greylist_exceptions entry that is no network" {
	mkdir -p "$T/badconf"
	sed 's/^smtpd_greylist_exceptions = .*/smtpd_greylist_exceptions = 127.0.0.9\/33/' \
	    "$T/conf/postern.conf" > "$T/badconf/postern.conf"
	run "$POSTERN" -c "$T/badconf" check
	[ "$status" -ne 0 ]
	[[ "$output" == *'smtpd_greylist_exceptions: "127.0.0.9/33" is not a network'* ]]
}

# ask_anvil: one greylist request on anvil's socket, the answer printed
# ("closed" when anvil hung up without one).
ask_anvil() {
	"$@" /usr/bin/python3 - "$T/run/anvil" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
data = b""
try:
    s.sendall(b"type=greylist\nclient=10.9.9.0/24\nsender=a@example.org\n"
              b"rcpt=b@postern.test\n\n")
    while not data.endswith(b"\n\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
except OSError:
    pass                # anvil hung up first: EPIPE or ECONNRESET
print(data.decode().split("\n")[0] if data else "closed")
PY
}

@test "anvil answers root and its own users, and hangs up on any other local user (SO_PEERCRED)" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to connect as another user"
	run ask_anvil
	[ "$output" = "type=ok" ]
	run ask_anvil setpriv --reuid=65534 --regid=65534 --clear-groups
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "closed" ]
}
