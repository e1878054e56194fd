#!/usr/bin/env bats
# smtpd and DNS blocklists (smtpd_dnsbl_sites, RFC 5782): swaks connects
# from other loopback addresses (127.0.0.0/8 is all ours), dnsmasq serves
# the lists. mynetworks is 127.0.0.1 alone, so the others are strangers.
#
#   bl.test    127.0.0.2 listed (A 127.0.0.2, TXT with a URL), 127.0.0.1
#              listed too (but it is in mynetworks)
#              127.0.0.7 listed with a TXT record holding a newline and ESC
#   bl2.test   127.0.0.3 listed with code 127.0.0.4, 127.0.0.5 with code
#              127.0.0.9; the filter 127.0.0.[3..4] counts only the first
#   dead.invalid  not served: every query fails (REFUSED)

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/peers
load helpers/smtp_common

setup_file() {
	suite_init
	smtp_maps
	start_dnsmasq --host-record=2.0.0.127.bl.test,127.0.0.2 \
		--txt-record=2.0.0.127.bl.test,"listed: see https://bl.test/?127.0.0.2" \
		--host-record=1.0.0.127.bl.test,127.0.0.2 \
		--host-record=3.0.0.127.bl2.test,127.0.0.4 \
		--host-record=5.0.0.127.bl2.test,127.0.0.9 \
		--host-record=7.0.0.127.bl.test,127.0.0.2 \
		--txt-record=7.0.0.127.bl.test,$'listed\npostern/smtpd[1]: forged\e[2J'
	suite_conf mynetworks 127.0.0.1/32
	suite_conf smtpd_dnsbl_sites "dead.invalid, bl.test, bl2.test=127.0.0.[3..4]"
	suite_start
	echo "${PEER_PIDS[*]}" > "$T/peer_pids"
}

teardown_file() {
	suite_stop
	read -r -a PEER_PIDS < "$T/peer_pids"
	peers_stop
}

send_from() {	# CLIENT_ADDR RCPT [swaks options]
	swaks --server 127.0.0.1 --port "$SMTP_PORT" --local-interface "$1" \
		--from sender@example.org --to "$2" --helo client.example \
		--header "Subject: from $1" "${@:3}"
}

@test "a listed client gets 554 5.7.1 with the list's name and reason" {
	run send_from 127.0.0.2 alice@postern.test
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"<** 554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using bl.test; listed: see https://bl.test/?127.0.0.2"* ]]
	wait_for_log "NOQUEUE: reject: RCPT from [^ ]*\[127.0.0.2\]: 554 5.7.1 Service unavailable; Client host \[127.0.0.2\] blocked using bl.test"
	# The list that could not be asked was passed over, with a warning.
	wait_for_log "DNSBL dead.invalid: "
}

@test "postmaster is still reachable from a listed client" {
	run send_from 127.0.0.2 postmaster@postern.test
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"250 2.0.0 Ok: queued as"* ]]
}

@test "a filter counts only the codes it names" {
	run send_from 127.0.0.3 alice@postern.test
	echo "$output"
	[[ "$output" == *"<** 554 5.7.1 Service unavailable; Client host [127.0.0.3] blocked using bl2.test"* ]]
	run send_from 127.0.0.5 alice@postern.test
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"250 2.0.0 Ok: queued as"* ]]
}

@test "an unlisted client, and a listed one inside mynetworks, are served" {
	run send_from 127.0.0.6 alice@postern.test
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"250 2.0.0 Ok: queued as"* ]]
	run send_from 127.0.0.1 alice@postern.test
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"250 2.0.0 Ok: queued as"* ]]
}

@test "postern check refuses a malformed smtpd_dnsbl_sites entry" {
	cp -r "$T/conf" "$T/conf2"
	sed -i 's/^smtpd_dnsbl_sites = .*/smtpd_dnsbl_sites = bl.test=127.0.0/' \
		"$T/conf2/postern.conf"
	run "$BUILD/postern" -c "$T/conf2" check
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"smtpd_dnsbl_sites:"*"127.0.0.2, 127.0.0.[2..11] or 127.0.0.[2;4;8]"* ]]
}

@test "a newline or ESC in a DNSBL TXT record is escaped in the log, not a forged line" {
	run send_from 127.0.0.7 alice@postern.test
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"554 5.7.1 Service unavailable; Client host [127.0.0.7] blocked using bl.test"* ]]
	wait_for_log 'NOQUEUE: reject: RCPT from [^ ]*\[127\.0\.0\.7\]: 554 5\.7\.1 .*listed\\npostern/smtpd\[1\]: forged\\x1b\[2J'
	# No line of the log starts with the forged text, none holds an ESC.
	run grep -c '^postern/smtpd\[1\]: forged' "$T/log"
	[ "$output" = 0 ]
	run grep -c $'\e' "$T/log"
	[ "$output" = 0 ]
}
