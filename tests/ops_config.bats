#!/usr/bin/env bats
# ops_config: "postern config" as postconf: -n (what postern.conf sets),
# -d (the defaults), KEY..., and -e/-X editing postern.conf in place
# (comments and order kept, refused whole when the result would not load),
# on a running instance that takes the edit at its next reload.

bats_require_minimum_version 1.5.0
load helpers/suite

setup_file() {
	OPS_START=$SECONDS
	export OPS_START
	suite_init
	# A file with comments, a continued value and CRLF-free LF lines.
	cat >> "$T/conf/postern.conf" <<-'CONF'
	# the banner clients see
	smtpd_banner = $myhostname ESMTP
	# relaying for these
	mynetworks = 127.0.0.0/8,
	   [::1]/128
	# end of the file
	CONF
	chmod 640 "$T/conf/postern.conf"
	suite_start
}

teardown_file() {
	echo "# ops_config.bats: $((SECONDS - OPS_START)) s" >&3
	suite_stop
}

pc() {
	"$BUILD/postern" -c "$T/conf" config "$@"
}

banner() {
	python3 -c 'import socket,sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
print(s.makefile("rb").readline().decode().rstrip())
s.sendall(b"QUIT\r\n")' "$SMTP_PORT"
}

@test "config -n, -d and KEY: what the file sets, the defaults, effective values" {
	run -0 pc -n
	# Exactly the keys the file sets, in the table's order, as written.
	[ "${#lines[@]}" -eq "$(grep -cE '^[a-z_]+ *=' "$T/conf/postern.conf")" ]
	[[ "$output" == *"smtpd_banner = \$myhostname ESMTP"* ]]
	[[ "$output" == *"mynetworks = 127.0.0.0/8, [::1]/128"* ]]
	[[ "$output" != *"message_size_limit"* ]]
	run -0 pc -d smtpd_banner message_size_limit mydomains
	[ "${lines[0]}" = 'smtpd_banner = $myhostname ESMTP postern' ]
	[ "${lines[1]}" = 'message_size_limit = 50m' ]
	[ "${lines[2]}" = 'mydomains = $myhostname, localhost' ]
	run -0 pc smtpd_banner
	[ "$output" = 'smtpd_banner = mx.postern.test ESMTP' ]
	run -1 pc no_such_key smtpd_banner
	[[ "$output" == *'unknown parameter "no_such_key"'* ]]
	[[ "$output" == *'smtpd_banner = mx.postern.test ESMTP'* ]]
	# Every key has a default line; -d works without a config file.
	run -0 "$BUILD/postern" -c "$T/nowhere" config -d
	[ "${#lines[@]}" -eq "$(pc | wc -l)" ]
}

@test "config -e edits in place, keeps comments and order, refuses what would not load" {
	local f="$T/conf/postern.conf"
	cp "$f" "$T/before"
	run -0 pc -e 'smtpd_banner = $myhostname ESMTP edited' \
		mynetworks=127.0.0.0/8 message_size_limit=20m
	# Only the edited lines changed: the continued value became one
	# line, the new key went to the end; comments are where they were.
	diff "$T/before" "$f" > "$T/diff" || true
	sed 's/^/# /' "$T/diff" >&3
	[ "$(grep -c '^[<>]' "$T/diff")" -eq 6 ]
	grep -qx '# the banner clients see' "$f"
	[ "$(tail -n1 "$f")" = 'message_size_limit = 20m' ]
	[ "$(grep -n '^smtpd_banner' "$f" | cut -d: -f1)" -eq \
		"$(grep -n '^smtpd_banner' "$T/before" | cut -d: -f1)" ]
	[ "$(stat -c %a "$f")" = 640 ]
	run -0 pc -n message_size_limit
	[ "$output" = 'message_size_limit = 20m' ]

	# The running instance takes it at reload.
	[ "$(banner)" = '220 mx.postern.test ESMTP' ]
	run -0 "$BUILD/postern" -c "$T/conf" reload
	wait_until '[ "$(banner)" = "220 mx.postern.test ESMTP edited" ]' 10

	# Refused whole: a bad value, an unknown key, a line break.
	cp "$f" "$T/edited"
	run -1 pc -e message_size_limit=lots smtpd_banner=x
	[[ "$output" == *'not changed'*'message_size_limit'* ]]
	run -1 pc -e no_such_key=1
	run -1 pc -e "smtpd_banner=a
b"
	cmp "$f" "$T/edited"
	# No temporary file is left beside it.
	[ -z "$(find "$T/conf" -name '.postern.conf.*')" ]

	# -X removes a key: back to its default.
	run -0 pc -X message_size_limit
	! grep -q '^message_size_limit' "$f"
	run -0 pc message_size_limit
	[ "$output" = 'message_size_limit = 50m' ]
}
