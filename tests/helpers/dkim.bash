# dkim.bash - helpers for the DKIM tests (load after suite).
#
# txt_arg NAME TXT         dnsmasq's --txt-record for NAME, in strings of
#                          at most 255 octets (RFC 1035 3.3.14)
# records_args FILE        txt_arg for each "NAME TXT" line of FILE, one
#                          argument a line

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
