# dkim.bash - helpers for the DKIM tests (load after suite).
#
# txt_arg NAME TXT         dnsmasq's --txt-record for NAME, in strings of
#                          at most 255 octets (RFC 1035 3.3.14)
# records_args FILE        txt_arg for each "NAME TXT" line of FILE, one
#                          argument a line
# dkim_sign_test_keys FILE the keys rsa1 (RSA) and ed1 (Ed25519) of
#                          sign.test in $T/conf/dkim (keygen's output in
#                          $T/rsa1.out, $T/ed1.out), their records in FILE
# opendkim_start SELECTOR  OpenDKIM signing example.org with a new key
#                          SELECTOR, a milter on a free port
#                          ($OPENDKIM_PORT), its PID in $T/opendkim.pid
# opendkim_verify MSG [RECORDS]  opendkim-testmsg on MSG with RECORDS
#                          (default $T/records) as its only DNS (root:
#                          a private network and mount namespace)

txt_arg() {
	if [ "${#2}" -gt 250 ]; then
		echo "--txt-record=$1,${2:0:250},${2:250}"
	else
		echo "--txt-record=$1,$2"
	fi
}

records_args() {
	local name txt
	while read -r name txt; do
		txt_arg "$name" "$txt"
	done < "$1"
}

dkim_sign_test_keys() {
	"$POSTERN" -c "$T/conf" dkim keygen sign.test rsa1 > "$T/rsa1.out"
	"$POSTERN" -c "$T/conf" dkim keygen sign.test ed1 --type ed25519 > "$T/ed1.out"
	# One line a record: "NAME TXT", the keygen's strings joined.
	local k
	for k in rsa1 ed1; do
		printf '%s._domainkey.sign.test %s\n' "$k" "$(sed -n '/IN TXT/,$p' "$T/$k.out" |
			grep -o '"[^"]*"' | tr -d '"\n')"
	done > "$1"
}

opendkim_start() {
	local selector=$1 user=
	OPENDKIM_PORT=$(free_port)
	mkdir -p "$T/dkim"
	opendkim-genkey -D "$T/dkim" -d example.org -s "$selector"
	if [ "$(id -u)" -eq 0 ]; then
		chown -R "$TEST_USER" "$T/dkim"
		user="UserID $TEST_USER"
	fi
	cat > "$T/dkim/opendkim.conf" <<CONF
Mode s
Domain example.org
Selector $selector
KeyFile $T/dkim/$selector.private
Socket inet:$OPENDKIM_PORT@127.0.0.1
Background no
PidFile $T/dkim/opendkim.pid
Syslog no
Canonicalization relaxed/simple
InternalHosts 127.0.0.1
# The key lives under /tmp (world-writable): OpenDKIM refuses that
# unless told the test key need not be safe.
RequireSafeKeys false
$user
CONF
	opendkim -f -x "$T/dkim/opendkim.conf" >"$T/dkim/out" 2>&1 3>&- &
	echo $! > "$T/opendkim.pid"
	wait_for_port "$OPENDKIM_PORT" 30
}

# opendkim-testmsg on message $1, with the records of file $2 (default:
# ours) as its only DNS.
opendkim_verify() {
	local msg=$1 records=${2:-$T/records} args=() name txt
	while read -r name txt; do
		args+=("$(txt_arg "$name" "$txt")")
	done < "$records"
	echo 'nameserver 127.0.0.1' > "$T/resolv.conf"
	unshare -mn /bin/bash -c '
		ip link set lo up || exit 2
		mount --bind "$1" /etc/resolv.conf || exit 2
		shift 2
		dnsmasq --no-daemon --port=53 --listen-address=127.0.0.1 \
			--bind-interfaces --no-resolv --no-hosts \
			--conf-file=/dev/null --pid-file= "$@" \
			> "'"$T"'/ns-dnsmasq.out" 2>&1 &
		dns=$!
		for i in $(seq 50); do
			grep -q started "'"$T"'/ns-dnsmasq.out" && break
			sleep 0.1
		done
		opendkim-testmsg < "'"$msg"'"
		rc=$?
		kill $dns
		wait $dns
		exit $rc' opendkim "$T/resolv.conf" "$msg" "${args[@]}"
}
