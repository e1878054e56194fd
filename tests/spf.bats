#!/usr/bin/env bats
# SPF (RFC 7208, issue 15): postern's check_host() (mail/spf_check.c,
# through `postern spf check`) against python3-spf (pyspf), an
# independent implementation, over a table of record shapes served by
# dnsmasq on loopback: ip4/ip6, a and mx with CIDR lengths, include,
# redirect, exists with macros, ptr, the 10-lookup limit, the 2 void
# lookups limit, two records, a syntax error, no record, HELO identity.
# No suite start: only the resolver and the evaluator are under test.

load helpers/suite
load helpers/peers

setup_file() {
	suite_init
	local chain=() i
	for i in $(seq 1 11); do
		chain+=("--txt-record=l$i.chain.test,v=spf1 include:l$((i + 1)).chain.test -all")
	done
	start_dnsmasq \
		"--txt-record=pass.test,v=spf1 ip4:192.0.2.0/24 -all" \
		"--txt-record=soft.test,v=spf1 ip6:2001:db8::/32 ~all" \
		"--txt-record=inc.test,v=spf1 include:pass.test ?all" \
		"--txt-record=redir.test,v=spf1 redirect=pass.test" \
		"--txt-record=a.test,v=spf1 a a:host.a.test/24 -all" \
		"--host-record=a.test,203.0.113.5" \
		"--host-record=host.a.test,203.0.113.200" \
		"--txt-record=mx.test,v=spf1 mx/30 -all" \
		"--mx-host=mx.test,mail.mx.test,10" \
		"--host-record=mail.mx.test,203.0.113.9" \
		"--txt-record=exists.test,v=spf1 exists:%{ir}.%{l}._spf.%{d} -all" \
		"--host-record=9.113.0.203.alice._spf.exists.test,127.0.0.2" \
		"--txt-record=ptr.test,v=spf1 ptr -all" \
		"--ptr-record=9.113.0.203.in-addr.arpa,mail.ptr.test" \
		"--host-record=mail.ptr.test,203.0.113.9" \
		"${chain[@]}" \
		"--txt-record=void.test,v=spf1 a:nx1.void.test a:nx2.void.test a:nx3.void.test +all" \
		"--txt-record=twovoid.test,v=spf1 a:nx1.void.test a:nx2.void.test +all" \
		"--txt-record=two.test,v=spf1 -all" "--txt-record=two.test,v=spf1 +all" \
		"--txt-record=bad.test,v=spf1 ip4:192.0.2.1/33 -all" \
		"--txt-record=none.test,hello world" \
		"--txt-record=incnone.test,v=spf1 include:none.test -all" \
		"--txt-record=helo.test,v=spf1 ip4:198.51.100.7 -all" \
		--ptr-record=7.100.51.198.in-addr.arpa,helo.test \
		--local=/in-addr.arpa/ --local=/ip6.arpa/
}

teardown_file() {
	peers_stop
	rm -rf "$T"
}

@test "postern's SPF results agree with pyspf over the table of record shapes" {
	cat > "$T/cases" <<-EOF
	192.0.2.10 a@pass.test h.example
	198.51.100.1 a@pass.test h.example
	2001:db8::5 a@soft.test h.example
	192.0.2.1 a@soft.test h.example
	192.0.2.10 a@inc.test h.example
	198.51.100.1 a@inc.test h.example
	198.51.100.1 a@redir.test h.example
	192.0.2.99 a@redir.test h.example
	203.0.113.5 a@a.test h.example
	203.0.113.77 a@a.test h.example
	198.51.100.1 a@a.test h.example
	203.0.113.10 a@mx.test h.example
	203.0.113.20 a@mx.test h.example
	203.0.113.9 alice@exists.test h.example
	203.0.113.9 bob@exists.test h.example
	203.0.113.9 a@ptr.test h.example
	203.0.113.10 a@ptr.test h.example
	192.0.2.1 a@l1.chain.test h.example
	192.0.2.1 a@l2.chain.test h.example
	192.0.2.1 a@void.test h.example
	192.0.2.1 a@twovoid.test h.example
	192.0.2.1 a@two.test h.example
	192.0.2.1 a@bad.test h.example
	192.0.2.1 a@none.test h.example
	192.0.2.1 a@incnone.test h.example
	192.0.2.1 a@nosuch.test h.example
	198.51.100.7 <> helo.test
	198.51.100.8 <> helo.test
	EOF
	/usr/bin/python3 "$BATS_TEST_DIRNAME/helpers/spf_compare.py" "$DNS_PORT" \
		< "$T/cases" > "$T/pyspf"
	local ip sender helo n=0 want got diff=0
	while read -r ip sender helo; do
		n=$((n + 1))
		want=$(sed -n "${n}p" "$T/pyspf")
		got=$("$POSTERN" -c "$T/conf" spf check "$ip" "$sender" "$helo" || true)
		echo "$ip $sender $helo: pyspf=$want postern=$got"
		[ "${got%% *}" = "$want" ] || diff=$((diff + 1))
	done < "$T/cases"
	[ "$n" -eq 28 ]
	[ "$diff" -eq 0 ]
	# The table covers every result but temperror.
	for r in pass fail softfail neutral none permerror; do
		grep -qx "$r" "$T/pyspf"
	done
}
