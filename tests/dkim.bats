#!/usr/bin/env bats
# DKIM signing (issue 15): deliver signs mail from trusted sources
# (submission with AUTH, mynetworks, local sendmail) with the keys
# dkim_signing_maps names for the From: domain, rsa-sha256 and
# ed25519-sha256 side by side; relayed mail from strangers goes unsigned.
# Keys come from `postern dkim keygen`; their records are served by
# dnsmasq (postern dkim check) and handed to the verifiers. The messages
# arrive at real SMTP servers (qmgr_sink.py, which offers 8BITMIME, and
# Postfix's smtp-sink -8, which does not) and are verified by two
# implementations independent of postern: python3-dkim (dkimpy) and
# OpenDKIM's opendkim-testmsg (its DNS is a dnsmasq on port 53 inside a
# private network and mount namespace, so it sees only our records).
# One suite start for the file.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common
load helpers/qmgr
load helpers/peers
load helpers/dkim

setup_file() {
	suite_init
	suite_tls_selfsigned
	suite_sasl_users alice 'alice secret'

	# Keys: an RSA one and an Ed25519 one for sign.test.
	dkim_sign_test_keys "$T/records"
	{
		printf 'sign.test rsa1:%s, ed1:%s\n' "$T/conf/dkim/sign.test.rsa1.key" \
			"$T/conf/dkim/sign.test.ed1.key"
		# wrong.test names the Ed25519 key, but DNS has the RSA one.
		printf 'wrong.test ed1:%s\n' "$T/conf/dkim/sign.test.ed1.key"
	} > "$T/conf/dkim_signing"
	"$POSTERN" -c "$T/conf" map build "$T/conf/dkim_signing"

	# dnsmasq serves the records (TXT strings of at most 255 octets).
	local args=() name txt
	while read -r name txt; do
		args+=("$(txt_arg "$name" "$txt")")
	done < "$T/records"
	args+=("$(txt_arg ed1._domainkey.wrong.test "$(sed -n 1p "$T/records" | cut -d' ' -f2-)")")
	start_dnsmasq "${args[@]}"

	sink_start sink
	SEVEN_PORT=$(free_port)
	mkdir -m 777 "$T/seven"
	start_sink seven -8 -d "$T/seven/%M." "127.0.0.1:$SEVEN_PORT"
	export SEVEN_PORT
	{
		printf 'sink.test smtp:[127.0.0.1]:%s\n' "$sink_PORT"
		printf 'seven.test smtp:[127.0.0.1]:%s\n' "$SEVEN_PORT"
	} > "$T/conf/transport"
	"$POSTERN" -c "$T/conf" map build "$T/conf/transport"
	table aliases -a <<-EOF
	fwd: stranger@sink.test
	EOF
	suite_conf alias_maps "hash:$T/conf/aliases"
	suite_conf transport_maps "hash:$T/conf/transport"
	suite_conf dkim_signing_maps "hash:$T/conf/dkim_signing"
	# 127.0.0.1 is a stranger; [::1] is mynetworks.
	suite_conf mynetworks "[::1]/128"
	suite_conf smtp_listen "127.0.0.1:$SMTP_PORT, [::1]:$SMTP_PORT"
	suite_conf smtpd_peername_lookup no
	suite_start
}

teardown_file() {
	sinks_stop
	peers_stop
	suite_stop
}

# The message qmgr_sink.py stored for recipient $1 (waits for it).
sink_message() {
	wait_until "grep -l 'RCPT TO:<$1>' $T/sink/*.env >/dev/null 2>&1" 20 || return 1
	local env
	env=$(grep -l "RCPT TO:<$1>" "$T"/sink/*.env | head -1)
	echo "${env%.env}.eml"
}

dkim_check() {
	/usr/bin/python3 "$BATS_TEST_DIRNAME/helpers/dkim_check.py" "$@"
}

submit() {
	swaks --server 127.0.0.1 --port "$SUBMISSION_PORT" --tls \
		--auth PLAIN --auth-user alice --auth-password 'alice secret' \
		--silent 2 "$@"
}

@test "postern dkim keygen: keys 0640 for deliver's group; check matches the published records" {
	local mode
	mode=$(stat -c %a "$T/conf/dkim/sign.test.rsa1.key")
	[ "$mode" = 640 ]
	if [ "$(id -u)" -eq 0 ]; then
		[ "$(stat -c %U:%G "$T/conf/dkim/sign.test.ed1.key")" = \
			"root:$(id -gn "$TEST_USER")" ]
	fi
	grep -q 'BEGIN PRIVATE KEY' "$T/conf/dkim/sign.test.ed1.key"
	grep -q 'v=DKIM1; k=ed25519; p=' "$T/ed1.out"
	run "$POSTERN" -c "$T/conf" dkim check sign.test
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"rsa1._domainkey.sign.test: ok"* ]]
	[[ "$output" == *"ed1._domainkey.sign.test: ok"* ]]
	run "$POSTERN" -c "$T/conf" dkim check wrong.test
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"does NOT match"* ]]
	# A second key under the same name is refused, the first kept.
	run "$POSTERN" -c "$T/conf" dkim keygen sign.test rsa1
	[ "$status" -eq 1 ]
	run "$POSTERN" -c "$T/conf" dkim check sign.test
	[ "$status" -eq 0 ]
}

@test "submission with AUTH: signed rsa-sha256 and ed25519-sha256, dkimpy and opendkim-testmsg verify both" {
	submit --from alice@sign.test --to bob@sink.test \
		--header 'From: Alice <alice@sign.test>' --header 'Subject: signed  mail' \
		--body $'Hello Bob,\r\n\r\n  spaced   out  \r\n.leading dot\r\n\r\n\r\n'
	local msg
	msg=$(sink_message bob@sink.test)
	run dkim_check "$msg" "$T/records"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"d=sign.test s=rsa1 a=rsa-sha256 pass"* ]]
	[[ "$output" == *"d=sign.test s=ed1 a=ed25519-sha256 pass"* ]]
	grep -q "dkim=signed d=sign.test s=rsa1 a=rsa-sha256" "$T/log"
	# h= signs From once more than there is (no From can be added).
	tr -d '\r\n\t ' < "$msg" | grep -q 'h=from:from:'
	# OpenDKIM, one signature at a time (the other one removed).
	dkim_check "$msg" "$T/records" --without 1 > "$T/only-rsa.eml"
	dkim_check "$msg" "$T/records" --without 0 > "$T/only-ed.eml"
	run opendkim_verify "$T/only-rsa.eml"
	echo "rsa: $output"
	[ "$status" -eq 0 ]
	run opendkim_verify "$T/only-ed.eml"
	echo "ed25519: $output"
	[ "$status" -eq 0 ]
	# The verifiers can fail: a changed body fails both.
	sed 's/Hello Bob/Hello Eve/' "$T/only-rsa.eml" > "$T/forged.eml"
	run dkim_check "$T/forged.eml" "$T/records"
	[ "$status" -eq 1 ]
	run opendkim_verify "$T/forged.eml"
	[ "$status" -ne 0 ]
	# ... and so does an unpublished key.
	: > "$T/no-records"
	run opendkim_verify "$T/only-rsa.eml" "$T/no-records"
	echo "no key: $output"
	[ "$status" -ne 0 ]
}

@test "local sendmail and mynetworks mail is signed; relayed mail from a stranger is not" {
	printf 'From: alice@sign.test\nTo: carol@sink.test\nSubject: local\n\nfrom cron\n' |
		"$BUILD/sendmail" -C "$T/conf" -f alice@sign.test carol@sink.test
	swaks --server ::1 --port "$SMTP_PORT" --silent 2 --from alice@sign.test \
		--to dave@sink.test --header 'From: alice@sign.test'
	# A stranger (127.0.0.1) writes to a local alias that forwards out.
	send_mail --from alice@sign.test --to fwd@postern.test \
		--header 'From: alice@sign.test' --header 'Subject: forged'
	local msg
	msg=$(sink_message carol@sink.test)
	run dkim_check "$msg" "$T/records"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 2 ]
	msg=$(sink_message dave@sink.test)
	run dkim_check "$msg" "$T/records"
	echo "$output"
	[ "$status" -eq 0 ]
	msg=$(sink_message stranger@sink.test)
	! grep -qi '^DKIM-Signature:' "$msg"
	grep -q 'Subject: forged' "$msg"
}

@test "8-bit body to a peer without 8BITMIME: converted by deliver, then signed; both verifiers accept" {
	submit --from alice@sign.test --to erin@seven.test \
		--header 'From: Alice <alice@sign.test>' \
		--header 'Content-Type: text/plain; charset=utf-8' \
		--body $'Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln\r\n'
	wait_until "grep -l 'X-Rcpt-Args: <erin@seven.test>' $T/seven/* >/dev/null 2>&1" 20
	local f
	f=$(grep -l 'X-Rcpt-Args: <erin@seven.test>' "$T"/seven/* | head -1)
	# What arrived is 7-bit quoted-printable.
	grep -q 'Content-Transfer-Encoding: quoted-printable' "$f"
	! LC_ALL=C grep -q $'[\x80-\xff]' "$f"
	run dkim_check "$f" "$T/records" --smtp-sink
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 2 ]
	/usr/bin/python3 -c 'import re,sys; m=open(sys.argv[1],"rb").read()
m=m.replace(b"\r\n",b"\n").replace(b"\n",b"\r\n"); sys.stdout.buffer.write(re.sub(rb"(?m)^\.\.",b".",m))' "$f" > "$T/seven.eml"
	dkim_check "$T/seven.eml" "$T/records" --without 1 > "$T/seven-rsa.eml"
	run opendkim_verify "$T/seven-rsa.eml"
	echo "$output"
	[ "$status" -eq 0 ]
}
