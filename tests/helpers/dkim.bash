# dkim.bash - helpers for the DKIM tests (load after suite).
#
# txt_arg NAME TXT         dnsmasq's --txt-record for NAME, in strings of
#                          at most 255 octets (RFC 1035 3.3.14)
# records_args FILE        txt_arg for each "NAME TXT" line of FILE, one
#                          argument a line
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
