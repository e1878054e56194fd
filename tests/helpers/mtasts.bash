# mtasts.bash - MTA-STS policy servers for tests/mtasts.bats and
# tests/tlsrpt.bats. Needs peers.bash and tls_peers.bash (loaded before
# this file) and tls_test_pki's CA in $T/pki.
#
#   mtasts_cert NAME...      a certificate of the test CA for the names,
#                            $T/pki/https.pem and https.key
#   mtasts_policy DOMAIN TEXT  serve TEXT as DOMAIN's policy
#   mtasts_https_start       the HTTPS server (tests/helpers/mtasts_https.py)
#                            on 127.0.1.N:443; sets MTASTS_ADDR, MTASTS_PID
#   mtasts_https_stop        stops it (by its PID)
#   mtasts_dns ARGS...       dnsmasq (peers.bash's start_dnsmasq) the first
#                            time; later calls restart it with new records
#                            on the same port, which the suite already uses

mtasts_cert() {
	local d="$T/pki" san="" n
	for n in "$@"; do san+="${san:+,}DNS:$n"; done
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-subj "/CN=$1" -keyout "$d/https.key" -out "$d/https.csr" \
		2>/dev/null || return 1
	printf "subjectAltName=%s\n" "$san" > "$d/https.ext"
	openssl x509 -req -in "$d/https.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
		-CAcreateserial -days 2 -extfile "$d/https.ext" \
		-out "$d/https.pem" 2>/dev/null
}

mtasts_policy() {
	mkdir -p "$T/www/mta-sts.$1"
	printf '%s' "$2" > "$T/www/mta-sts.$1/mta-sts.txt"
}

mtasts_https_start() {
	rm -f "$T/https.addr"
	/usr/bin/python3 "$BATS_TEST_DIRNAME/helpers/mtasts_https.py" \
		--root "$T/www" --cert "$T/pki/https.pem" \
		--key "$T/pki/https.key" --addr-file "$T/https.addr" \
		>>"$T/https.out" 2>&1 &
	MTASTS_PID=$!
	PEER_PIDS+=($MTASTS_PID)
	wait_for_file "$T/https.addr" 10 || return 1
	MTASTS_ADDR=$(cat "$T/https.addr")
}

mtasts_https_stop() {
	kill -TERM "$MTASTS_PID" 2>/dev/null || true
	wait "$MTASTS_PID" 2>/dev/null || true
}

mtasts_dns() {
	if [ -z "${MTASTS_DNS_PID:-}" ]; then
		start_dnsmasq "$@" || return 1
		MTASTS_DNS_PID=${PEER_PIDS[-1]}
		return 0
	fi
	kill -TERM "$MTASTS_DNS_PID" 2>/dev/null || true
	wait "$MTASTS_DNS_PID" 2>/dev/null || true
	: > "$T/dnsmasq.out"
	dnsmasq --no-daemon --port="$DNS_PORT" --listen-address=127.0.0.1 \
		--bind-interfaces --no-resolv --no-hosts --conf-file=/dev/null \
		--pid-file= --local=/test/ "$@" >"$T/dnsmasq.out" 2>&1 &
	MTASTS_DNS_PID=$!
	PEER_PIDS+=($MTASTS_DNS_PID)
	wait_for_log started 20 "$T/dnsmasq.out"
}
