/*
 * dnsbl_parse.c - the DNS blocklist sites of smtpd_dnsbl_sites and
 * screen_dnsbl_sites read into a struct dns_dnsbl (dns.h): string work
 * only, apart from dns.c so that what loads the config (mail/cfg.c)
 * links no libresolv: smtpd's door, smtpd-door, and the daemons that
 * never ask DNS do not load it (issue 20). Trusts nothing: the values
 * come from the config and every one is checked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "dns.h"

/* One octet pattern: "N", "[lo..hi]" or "[a;b;c]"; *p moves past it. */
static bool dnsbl_parse_octet(const char **p, unsigned char ok[32])
{
	const char *s = *p;
	char *end;

	memset(ok, 0, 32);
	if (*s != '[') {
		if (*s < '0' || *s > '9')
			return false;
		long v = strtol(s, &end, 10);
		if (v > 255)
			return false;
		ok[v / 8] |= (unsigned char)(1u << (v % 8));
		*p = end;
		return true;
	}
	for (s++;;) {
		if (*s < '0' || *s > '9')
			return false;
		long lo = strtol(s, &end, 10), hi = lo;
		s = end;
		if (s[0] == '.' && s[1] == '.') {
			if (s[2] < '0' || s[2] > '9')
				return false;
			hi = strtol(s + 2, &end, 10);
			s = end;
		}
		if (lo > 255 || hi > 255 || lo > hi)
			return false;
		for (long v = lo; v <= hi; v++)
			ok[v / 8] |= (unsigned char)(1u << (v % 8));
		if (*s == ']') {
			*p = s + 1;
			return true;
		}
		if (*s != ';')
			return false;
		s++;
	}
}

bool dns_dnsbl_parse(const char *spec, struct dns_dnsbl *list, char *err,
    size_t errsize)
{
	memset(list, 0, sizeof(*list));
	const char *eq = strchr(spec, '=');
	size_t zlen = eq ? (size_t)(eq - spec) : strlen(spec);
	if (zlen == 0 || zlen >= sizeof(list->zone)) {
		snprintf(err, errsize, "\"%s\" names no DNS zone", spec);
		return false;
	}
	memcpy(list->zone, spec, zlen);
	list->zone[zlen] = '\0';
	if (list->zone[zlen - 1] == '.')
		list->zone[zlen - 1] = '\0';
	if (list->zone[0] == '\0' || strspn(list->zone,
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789-._") != strlen(list->zone)) {
		snprintf(err, errsize, "\"%s\" is not a DNS zone", list->zone);
		return false;
	}
	if (eq == NULL)
		return true;
	const char *p = eq + 1;
	for (int i = 0; i < 4; i++) {
		if ((i > 0 && *p++ != '.') ||
		    !dnsbl_parse_octet(&p, list->octet_ok[i])) {
			snprintf(err, errsize, "\"%s\": the filter after \"=\" "
			    "must look like 127.0.0.2, 127.0.0.[2..11] or "
			    "127.0.0.[2;4;8]", spec);
			return false;
		}
	}
	if (*p != '\0') {
		snprintf(err, errsize, "\"%s\": junk after the filter", spec);
		return false;
	}
	list->filtered = true;
	return true;
}

bool dns_dnsbl_parse_weighted(const char *spec, struct dns_dnsbl *list,
    int *weight, char *err, size_t errsize)
{
	char copy[512];
	if (strlcpy(copy, spec, sizeof(copy)) >= sizeof(copy)) {
		snprintf(err, errsize, "\"%.60s...\" is too long", spec);
		return false;
	}
	*weight = 1;
	char *star = strrchr(copy, '*');
	if (star != NULL) {
		char *end;
		long w = strtol(star + 1, &end, 10);
		if (star[1] == '\0' || *end != '\0' || w < -1000 || w > 1000) {
			snprintf(err, errsize, "\"%s\": the weight after \"*\" "
			    "must be a number from -1000 to 1000", spec);
			return false;
		}
		*weight = (int)w;
		*star = '\0';
	}
	return dns_dnsbl_parse(copy, list, err, errsize);
}
