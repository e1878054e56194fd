#!/usr/bin/python3
"""tlsrpt_check.py - check a TLS-RPT report (RFC 8460) for tests/tlsrpt.bats.

  tlsrpt_check.py json DOMAIN OK FAILED RESULT < dry-run output
  tlsrpt_check.py mail DOMAIN OK FAILED RESULT MAILFILE

json: the JSON of `postern tls report --dry-run` (lines not starting
with "#"); mail: a delivered report, its multipart/report parsed with
python's email package and its application/tlsrpt+gzip part gunzipped.
Either way the report must carry every field RFC 8460 section 4.4
requires, for the one sts policy of DOMAIN with OK successful and FAILED
failed sessions, one of them of result type RESULT. Prints what is wrong
and exits 1, else prints "ok".
"""
import email
import email.policy
import gzip
import json
import re
import sys


def fail(why):
    print('tlsrpt_check: ' + why)
    sys.exit(1)


def check_report(r, domain, ok, failed, result):
    for k in ('organization-name', 'date-range', 'contact-info',
              'report-id', 'policies'):
        if k not in r:
            fail('no %s' % k)
    dr = r['date-range']
    pat = r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$'
    if not (re.match(pat, dr.get('start-datetime', '')) and
            re.match(pat, dr.get('end-datetime', ''))):
        fail('bad date-range %r' % dr)
    sts = [p for p in r['policies'] if p['policy']['policy-type'] == 'sts']
    if len(sts) != 1:
        fail('want one sts policy, got %r' % r['policies'])
    p = sts[0]
    pol = p['policy']
    if pol.get('policy-domain') != domain:
        fail('policy-domain %r' % pol.get('policy-domain'))
    if 'mode: enforce' not in pol.get('policy-string', []):
        fail('policy-string %r' % pol.get('policy-string'))
    if pol.get('mx-host') != ['mx.tls.test']:
        fail('mx-host %r' % pol.get('mx-host'))
    s = p['summary']
    if (s['total-successful-session-count'] != ok or
            s['total-failure-session-count'] != failed):
        fail('summary %r' % s)
    fd = p['failure-details']
    if sum(f['failed-session-count'] for f in fd) != failed:
        fail('failure-details %r' % fd)
    mine = [f for f in fd if f['result-type'] == result]
    if not mine:
        fail('no %s in %r' % (result, fd))
    f = mine[0]
    for k in ('sending-mta-ip', 'receiving-mx-hostname', 'receiving-ip'):
        if k not in f:
            fail('no %s in %r' % (k, f))
    if f['receiving-mx-hostname'] != 'mx.tls.test':
        fail('receiving-mx-hostname %r' % f)


def main():
    mode, domain = sys.argv[1], sys.argv[2]
    ok, failed, result = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    if mode == 'json':
        text = ''.join(l for l in sys.stdin if not l.startswith('#'))
        check_report(json.loads(text), domain, ok, failed, result)
        print('ok')
        return
    with open(sys.argv[6], 'rb') as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    if msg.get_content_type() != 'multipart/report':
        fail('content type %s' % msg.get_content_type())
    if msg.get_param('report-type') != 'tlsrpt':
        fail('report-type %r' % msg.get_param('report-type'))
    subj = str(msg['Subject'])
    if not re.match(r'^Report Domain: %s Submitter: \S+ Report-ID: <\S+>$'
                    % re.escape(domain), subj):
        fail('subject %r' % subj)
    if msg['TLS-Report-Domain'] != domain or not msg['TLS-Report-Submitter']:
        fail('TLS-Report-* header fields')
    parts = [p for p in msg.iter_parts()
             if p.get_content_type() == 'application/tlsrpt+gzip']
    if len(parts) != 1:
        fail('want one application/tlsrpt+gzip part')
    name = parts[0].get_filename() or ''
    if not re.match(r'^[^!]+!%s!\d+!\d+!\w+\.json\.gz$' % re.escape(domain),
                    name):
        fail('filename %r' % name)
    report = json.loads(gzip.decompress(parts[0].get_content()))
    check_report(report, domain, ok, failed, result)
    print('ok')


if __name__ == '__main__':
    main()
