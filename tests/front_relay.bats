#!/usr/bin/env bats
# relay_domains and the backup-MX role, through the real suite: postern
# is MX 20 of relay.test (dnsmasq serves the MX records; Postfix's
# smtp-sink is the primary, MX 10, on 127.0.0.20). A stranger's mail for
# relay.test is accepted and delivered to the primary; with the primary
# down it stays queued and goes out when the primary is back;
# relay_recipient_maps refuses unknown recipients at RCPT; a domain not
# listed is still refused (no open relay); where postern is the best MX
# (loop.test, listed through a table) or shares the best preference
# (eq.test), the mail bounces with 5.4.6 "loops back to myself", never
# goes to itself or its peer of equal rank. One suite start.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/peers

setup_file() {
	file_timer_start
	suite_init
	PORT=$(free_port)
	export PORT
	start_dnsmasq \
		--mx-host=relay.test,primary.relay.test,10 \
		--mx-host=relay.test,mx.postern.test,20 \
		--mx-host=loop.test,mx.postern.test,10 \
		--mx-host=loop.test,other.loop.test,20 \
		--mx-host=eq.test,peer.eq.test,10 \
		--mx-host=eq.test,mx.postern.test,10 \
		--host-record=primary.relay.test,127.0.0.20 \
		--host-record=other.loop.test,127.0.0.21 \
		--host-record=peer.eq.test,127.0.0.22 \
		--host-record=mx.postern.test,127.0.0.1
	start_sink primary 127.0.0.20:$PORT
	# The domains' MX hosts listen on $PORT (a test cannot bind 25).
	cat > "$T/conf/transport" <<-EOF
	relay.test	smtp:relay.test:$PORT
	loop.test	smtp:loop.test:$PORT
	eq.test	smtp:eq.test:$PORT
	EOF
	printf 'loop.test OK\n.eq.test OK\neq.test OK\n' > "$T/conf/relay_domains"
	printf 'a@relay.test x\nb@relay.test x\n@loop.test x\n@eq.test x\n' \
	    > "$T/conf/relay_recipients"
	for t in transport relay_domains relay_recipients; do
		"$BUILD/postern" -c "$T/conf" map build "$T/conf/$t"
	done
	suite_conf transport_maps "hash:$T/conf/transport"
	suite_conf relay_domains "relay.test, hash:$T/conf/relay_domains"
	suite_conf relay_recipient_maps "hash:$T/conf/relay_recipients"
	suite_conf mynetworks 127.0.0.1/32
	suite_conf smtpd_peername_lookup no
	suite_conf smtp_connect_timeout 2s
	suite_start
	# Tests run in other processes: the peers' PIDs go through a file.
	echo "${PEER_PIDS[*]}" > "$T/peer_pids"
}

teardown_file() {
	read -r -a PEER_PIDS < "$T/peer_pids"
	suite_stop
	peers_stop
	file_timer_report
}

# stranger RCPT: one swaks session from 127.0.0.2 (outside mynetworks).
stranger() {
	swaks --server 127.0.0.1 --port "$SMTP_PORT" --local-interface 127.0.0.2 \
	    --from s@example.net --to "$1" --timeout 10 2>&1
}

@test "a stranger's mail for a relay domain is accepted and goes to the primary MX" {
	run stranger a@relay.test
	[[ "$output" == *"queued as"* ]]
	wait_for_log "to=<a@relay.test>, relay=primary.relay.test\[127.0.0.20\]:$PORT, .*status=sent"
	grep -q 'RCPT TO:<a@relay.test>' "$T/primary.out"
}

@test "relay_recipient_maps: an unknown recipient of a relay domain gets 550 5.1.1" {
	run stranger nobody@relay.test
	[[ "$output" == *"<** 550 5.1.1 <nobody@relay.test>: Recipient address rejected: User unknown in relay recipient table"* ]]
	grep -q 'NOQUEUE: reject: RCPT from unknown\[127.0.0.2\]: 550 5.1.1 <nobody@relay.test>: Recipient address rejected: User unknown in relay recipient table' "$T/log"
}

@test "a domain not in relay_domains is still refused: no open relay" {
	run stranger a@elsewhere.test
	[[ "$output" == *"<** 554 5.7.1 <a@elsewhere.test>: Relay access denied"* ]]
	# a subdomain of a listed domain is not listed by itself
	run stranger a@sub.relay.test
	[[ "$output" == *"<** 554 5.7.1 <a@sub.relay.test>: Relay access denied"* ]]
}

@test "primary MX down: the mail waits in the queue and goes out when the primary is back" {
	read -r -a PEER_PIDS < "$T/peer_pids"
	kill -TERM "${PEER_PIDS[-1]}"
	wait_until "! listening $PORT" 10
	run stranger b@relay.test
	[[ "$output" == *"queued as"* ]]
	id=$(echo "$output" | sed -n 's/.*queued as \([0-9A-Za-z]*\).*/\1/p')
	[ -n "$id" ]
	wait_for_log "$id: to=<b@relay.test>, relay=.*status=deferred" 20
	# Never to ourselves: only the primary was tried.
	run grep -E "$id: to=<b@relay.test>, relay=mx.postern.test" "$T/log"
	[ "$status" -ne 0 ]
	start_sink primary2 127.0.0.20:$PORT
	echo "${PEER_PIDS[*]}" > "$T/peer_pids"
	wait_for_log "$id: to=<b@relay.test>, relay=primary.relay.test\[127.0.0.20\]:$PORT, .*status=sent" 30
	grep -q 'RCPT TO:<b@relay.test>' "$T/primary2.out"
}

@test "as the best MX (or one of the best), a relay domain's mail bounces: loops back to myself" {
	run stranger x@loop.test
	[[ "$output" == *"queued as"* ]]
	wait_for_log "to=<x@loop.test>, relay=none, .*dsn=5.4.6, status=bounced \(mail for loop.test:$PORT loops back to myself\)"
	run stranger y@eq.test
	[[ "$output" == *"queued as"* ]]
	wait_for_log "to=<y@eq.test>, relay=none, .*dsn=5.4.6, status=bounced \(mail for eq.test:$PORT loops back to myself\)"
	# Neither the lesser MX nor the peer of equal rank got anything.
	run grep -E "relay=(other.loop.test|peer.eq.test)" "$T/log"
	[ "$status" -ne 0 ]
}
