#!/usr/bin/env bats
# Many next hops for SMTP (issue 19), through the real suite: MX records
# from dnsmasq, Postfix's smtp-sink as each host, all on 127.0.0.x
# loopback addresses with one port. One suite start proves
#   - MX 10 down (both its hosts): MX 20 gets the mail;
#   - smtp_mx_session_limit: after two sessions that defer, the third MX
#     is not tried and smtp_fallback_relay takes the mail;
#   - relayhost as a list "[a]:p, [b]:p": a down, b gets the mail;
#   - a transport_maps value with a list, tried in order.

load helpers/suite
load helpers/peers

setup() {
	peers_setup
}

teardown() {
	peers_teardown
}

# sink_mail NAME: how many messages the sink NAME took.
sink_mail() {
	grep -c 'smtp-sink: DATA' "$T/$1.out" 2>/dev/null || true
}

@test "MX failover, session limit, fallback relay, relayhost and transport lists" {
	PORT=$(free_port)
	start_dnsmasq \
		--mx-host=fail.test,mx1a.fail.test,10 \
		--mx-host=fail.test,mx1b.fail.test,10 \
		--mx-host=fail.test,mx2.fail.test,20 \
		--host-record=mx1a.fail.test,127.0.0.2 \
		--host-record=mx1b.fail.test,127.0.0.3 \
		--host-record=mx2.fail.test,127.0.0.4 \
		--mx-host=lim.test,a.lim.test,10 \
		--mx-host=lim.test,b.lim.test,20 \
		--mx-host=lim.test,c.lim.test,30 \
		--host-record=a.lim.test,127.0.0.5 \
		--host-record=b.lim.test,127.0.0.6 \
		--host-record=c.lim.test,127.0.0.7
	# 127.0.0.2, .3, .9, .11: nothing listens (refused at once).
	start_sink backup 127.0.0.4:$PORT
	start_sink lima -r RCPT 127.0.0.5:$PORT
	start_sink limb -r RCPT 127.0.0.6:$PORT
	start_sink limc 127.0.0.7:$PORT
	start_sink fallback 127.0.0.8:$PORT
	start_sink relay2 127.0.0.10:$PORT
	start_sink list2 127.0.0.12:$PORT
	# start_sink waits for the port, which the first sink holds already.
	wait_until '[ "$(ss -Hltn "sport = :$PORT" | wc -l)" -ge 7 ]' 5
	cat > "$T/conf/transport" <<-EOF
	fail.test	smtp:fail.test:$PORT
	lim.test	smtp:lim.test:$PORT
	list.test	smtp:[127.0.0.11]:$PORT, [127.0.0.12]:$PORT
	EOF
	"$BUILD/postern" -c "$T/conf" map build "$T/conf/transport"
	suite_conf transport_maps "hash:$T/conf/transport"
	suite_conf relayhost "[127.0.0.9]:$PORT, [127.0.0.10]:$PORT"
	suite_conf smtp_fallback_relay "[127.0.0.8]:$PORT"
	suite_conf smtp_mx_session_limit 2
	suite_start

	send_mail --from s@postern.test --to u@fail.test
	send_mail --from s@postern.test --to u@lim.test
	send_mail --from s@postern.test --to u@elsewhere.example
	send_mail --from s@postern.test --to u@list.test

	# MX 10 (two hosts) refuses; MX 20 takes it.
	wait_for_log "to=<u@fail.test>, relay=mx2.fail.test\[127.0.0.4\]:$PORT, .*status=sent" 20
	grep -q "connect to mx1a.fail.test\[127.0.0.2\]:$PORT: Connection refused" "$T/log"
	grep -q "connect to mx1b.fail.test\[127.0.0.3\]:$PORT: Connection refused" "$T/log"

	# Two sessions defer at RCPT; the session limit skips MX 30 and the
	# fallback relay gets the mail.
	wait_for_log "to=<u@lim.test>, relay=127.0.0.8\[127.0.0.8\]:$PORT, .*status=sent" 20
	[ "$(grep -c 'smtp-sink: RCPT' "$T/lima.out")" -ge 1 ]
	[ "$(grep -c 'smtp-sink: RCPT' "$T/limb.out")" -ge 1 ]
	[ "$(grep -c 'smtp-sink: MAIL' "$T/limc.out")" -eq 0 ]

	# relayhost list: the first is down, the second takes it.
	wait_for_log "to=<u@elsewhere.example>, relay=127.0.0.10\[127.0.0.10\]:$PORT, .*status=sent" 20
	grep -q "connect to 127.0.0.9\[127.0.0.9\]:$PORT: Connection refused" "$T/log"

	# transport_maps list, in order.
	wait_for_log "to=<u@list.test>, relay=127.0.0.12\[127.0.0.12\]:$PORT, .*status=sent" 20

	# Each message once, where it belongs.
	[ "$(sink_mail backup)" -eq 1 ]
	[ "$(sink_mail fallback)" -eq 1 ]
	[ "$(sink_mail relay2)" -eq 1 ]
	[ "$(sink_mail list2)" -eq 1 ]
	[ "$(sink_mail limc)" -eq 0 ]
	wait_for_queue_count 0 10
}
