#!/usr/bin/env bats
# postern check (admin/postern_check.c): what breaks at run time is found
# before the start: a table whose .db is missing or older than its
# source, TLS files missing or not matching, a bad relayhost or
# transport_maps next hop, a missing smtpd_user; as root it makes the
# queue; another user on root's queue is told it must be run as root.
# No daemon runs: the real postern command on a test config.

load helpers/suite

# One test config for the file (suite_init costs seconds on a busy
# machine); each test starts from a copy of it and an empty directory.
setup_file() {
	export CHECK_FILE_T0=$SECONDS
	suite_init
	cp "$T/conf/postern.conf" "$T/pristine.conf"
	export CONF=$T/conf
}

teardown_file() {
	rm -rf "$T"
	echo "# debpkg_check.bats: $((SECONDS - CHECK_FILE_T0)) s" >&3
}

setup() {
	cp "$T/pristine.conf" "$CONF/postern.conf"
	rm -rf "$T/queue" "$T/run" "$T"/aliases* "$T"/transport* "$T"/nothing* "$T"/*.pem
}

check() {
	run "$POSTERN" -c "$CONF" check
	echo "$output"
}

@test "a table whose .db is missing is an error, an older one a warning" {
	printf 'postmaster: root\n' >"$T/aliases"
	printf 'example.org smtp:[mx.example.org]:25\n' >"$T/transport"
	suite_conf alias_maps "hash:$T/aliases"
	suite_conf transport_maps "hash:$T/transport"
	check
	[ "$status" -eq 1 ]
	[[ "$output" == *"alias_maps: $T/aliases.db is missing: run \"newaliases\""* ]]
	[[ "$output" == *"transport_maps: $T/transport.db is missing: run \"postern map build $T/transport\""* ]]
	"$POSTERN" -c "$CONF" map build "hash:$T/transport"
	"$BUILD/newaliases" -C "$CONF"
	check
	[ "$status" -eq 0 ]
	[[ "$output" == *"is valid"* ]]
	[[ "$output" != *"warning"* ]]
	# The source edited after the build: the table is stale.
	touch -d '+2 seconds' "$T/aliases"
	check
	[ "$status" -eq 0 ]
	[[ "$output" == *"warning: alias_maps: $T/aliases.db is older than $T/aliases"* ]]
	# A table named but with neither file.
	suite_conf virtual_alias_maps "hash:$T/nothing"
	check
	[ "$status" -eq 1 ]
	[[ "$output" == *"virtual_alias_maps: neither $T/nothing nor $T/nothing.db exists"* ]]
}

@test "bad next hops in relayhost and transport_maps are named with their entry" {
	cat >"$T/transport" <<-'EOF'
	good.example smtp:[mx.example.org]:587
	lmtp.example lmtp:unix:/run/somewhere/lmtp
	refused.example error:5.1.1 no such domain
	port.example smtp:[mx.example.org]:70000
	host.example smtp:[mx..example.org]
	space.example relay:-mx.example.org:25
	kind.example uucp:mx.example.org
	EOF
	"$POSTERN" -c "$CONF" map build "hash:$T/transport"
	suite_conf transport_maps "hash:$T/transport"
	suite_conf relayhost "[smtp.example.net]:0"
	check
	[ "$status" -eq 1 ]
	[[ "$output" == *"relayhost: \"[smtp.example.net]:0\": bad port"* ]]
	[[ "$output" == *"port.example: \"[mx.example.org]:70000\": bad port"* ]]
	[[ "$output" == *"host.example: \"[mx..example.org]\": \"mx..example.org\" is not a host name or address"* ]]
	[[ "$output" == *"space.example: \"-mx.example.org:25\": \"-mx.example.org\" is not a host name or address"* ]]
	[[ "$output" == *"kind.example: unknown transport \"uucp\""* ]]
	[[ "$output" != *"good.example"* ]]
	[[ "$output" != *"lmtp.example"* ]]
	[[ "$output" != *"refused.example"* ]]
	suite_conf relayhost "[192.0.2.1]:587"
	suite_conf transport_maps ""
	check
	[ "$status" -eq 0 ]
}

@test "TLS files: missing, or a key that does not match the certificate" {
	command -v openssl >/dev/null || skip "openssl is not installed"
	suite_conf tls_cert_file "$T/cert.pem"
	suite_conf tls_key_file "$T/key.pem"
	check
	[ "$status" -eq 1 ]
	[[ "$output" == *"tls_cert_file: $T/cert.pem: No such file or directory"* ]]
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-subj /CN=mx.postern.test -keyout "$T/key.pem" -out "$T/cert.pem" \
		-days 2 2>/dev/null
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/other.pem" 2>/dev/null
	check
	[ "$status" -eq 0 ]
	suite_conf tls_key_file "$T/other.pem"
	check
	[ "$status" -eq 1 ]
	[[ "$output" == *"$T/other.pem"* ]]
	suite_conf tls_key_file ""
	check
	[ "$status" -eq 1 ]
	[[ "$output" == *"only tls_cert_file is set"* ]]
}

@test "as root: a missing smtpd_user is named, the queue is made; another user must be root" {
	[ "$(id -u)" -eq 0 ] || skip "needs root: users and ownership"
	suite_conf smtpd_user no-such-postern-user
	check
	[ "$status" -eq 1 ]
	[[ "$output" == *"smtpd_user: \"no-such-postern-user\" does not exist"* ]]
	suite_conf smtpd_user "$TEST_SMTPD_USER"
	[ ! -e "$T/queue" ]
	check
	[ "$status" -eq 0 ]
	[[ "$output" == *"$T/queue: missing; created"* ]]
	[ "$(stat -c %U:%a "$T/queue/maildrop")" = "$TEST_USER:730" ]
	[ "$(stat -c %U:%a "$T/queue/deferred/f")" = "$TEST_USER:700" ]
	# A second run has nothing to do.
	check
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 1 ]
	# The queue is root's: an ordinary user is sent to root, with no
	# advice to chown anything.
	chmod 0755 "$CONF"
	chmod 0644 "$CONF/postern.conf"
	run runuser -u nobody -- "$POSTERN" -c "$CONF" check
	echo "$output"
	[ "$status" -eq 1 ]
	[ "$output" = "postern: check must be run as root (queue_directory $T/queue belongs to uid 0)" ]
}
