#!/usr/bin/env bats
# DKIM verification (issue 15, RFC 6376 6, RFC 8463, RFC 8301) of
# messages signed by independent implementations: dkimpy (python3-dkim:
# rsa-sha256 relaxed and simple, ed25519-sha256, l=) and OpenDKIM
# (opendkim-testmsg), through `postern dkim verify` (mail/dkim_verify.c)
# with the keys served by dnsmasq. Broken cases must not pass: a changed
# body, a changed signed header, a 512-bit key (RFC 8301 3.2). Text
# appended after an l= length passes, as RFC 6376 3.5 says (that is what
# l= is for). opendkim-testmsg signs only with rsa-sha1, which RFC 8301
# 3.1 forbids verifiers to accept: its signature is a permerror (an
# intended difference), and its relaxed canonicalization of our message
# is checked through the body hash before that. No suite start: only
# the verifier and the resolver are under test.

load helpers/suite
load helpers/peers
load helpers/dkim

setup_file() {
	suite_init
	mkdir -p "$T/peer"
	/usr/bin/python3 "$BATS_TEST_DIRNAME/helpers/dkim_sign_peer.py" "$T/peer"
	mapfile -t args < <(records_args "$T/peer/records")
	start_dnsmasq "${args[@]}"
}

teardown_file() {
	peers_stop
	rm -rf "$T"
}

verify() {
	"$POSTERN" -c "$T/conf" dkim verify < "$1"
}

@test "messages signed by dkimpy and OpenDKIM verify; broken ones do not pass" {
	local m
	for m in rsa-relaxed rsa-simple ed-relaxed rsa-length; do
		run verify "$T/peer/$m.eml"
		echo "$m: $output"
		[ "$status" -eq 0 ]
		[[ "$output" == "dkim=pass d=peer.test"* ]]
	done
	run verify "$T/peer/ed-relaxed.eml"
	[[ "$output" == *"a=ed25519-sha256"* ]]
	for m in rsa-tampered rsa-headers; do
		run verify "$T/peer/$m.eml"
		echo "$m: $output"
		[ "$status" -eq 1 ]
		[[ "$output" == "dkim=fail "* ]]
	done
	run verify "$T/peer/rsa-weak.eml"
	echo "weak: $output"
	[ "$status" -eq 1 ]
	[[ "$output" == "dkim=permerror "*"512 bits"* ]]
	# OpenDKIM signs with the same RSA key, in rsa-sha1 (RFC 8301 3.1).
	sed -n '/^From:/,$p' "$T/peer/rsa-relaxed.eml" | tr -d '\r' > "$T/plain.eml"
	opendkim-testmsg -d peer.test -k "$T/peer/rsa.pem" -s rsa < "$T/plain.eml" \
		> "$T/opendkim.eml"
	grep -q '^DKIM-Signature:.*a=rsa-sha1' "$T/opendkim.eml"
	run verify "$T/opendkim.eml"
	echo "opendkim: $output"
	[ "$status" -eq 1 ]
	[[ "$output" == "dkim=permerror d=peer.test s=rsa a=rsa-sha1 (algorithm not accepted)" ]]
	# No signature at all.
	run verify "$T/plain.eml"
	[ "$status" -eq 1 ]
	[[ "$output" == "dkim=none"* ]]
}
