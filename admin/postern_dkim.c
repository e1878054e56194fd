/*
 * postern_dkim.c - "postern dkim": DKIM keys for deliver's signatures
 * (deliver/deliver_dkim.c).
 *
 *   postern dkim keygen DOMAIN SELECTOR [--type rsa|ed25519] [--bits N]
 *       a new private key in dkim_key_directory/DOMAIN.SELECTOR.key,
 *       mode 0640, group of `user` (deliver reads it, nobody else), and
 *       the DNS TXT record to publish (RFC 6376 3.6.1, RFC 8463 4.2)
 *   postern dkim check DOMAIN
 *       for each key dkim_signing_maps names for DOMAIN, fetch
 *       SELECTOR._domainkey.DOMAIN (dns_servers) and say whether its p=
 *       is the key's public half
 *
 *   postern dkim verify < MESSAGE
 *       verify every DKIM signature of the message (mail/dkim_verify.c),
 *       keys from DNS (dns_servers); a message with LF line ends only
 *       is read as if they were CRLF
 *
 * Exit 0: done, every record matches, or a signature verifies; 1: a record is missing or does
 * not match, or the key exists already; 2: usage or a local error.
 * Trusts its invoking user and the config; the DNS answer is only
 * compared, never used.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "cfg.h"
#include "dkim_sign.h"
#include "dkim_tags.h"
#include "dkim_verify.h"
#include "dns.h"
#include "map.h"
#include "mem.h"
#include "str.h"

enum {
	DKIM_EXIT_OK = 0,
	DKIM_EXIT_MISMATCH = 1,
	DKIM_EXIT_USAGE = 2,
};

static int dkim_usage(void)
{
	fprintf(stderr,
	    "usage: postern dkim keygen DOMAIN SELECTOR [--type rsa|ed25519] "
	    "[--bits N]\n"
	    "       postern dkim check DOMAIN\n"
	    "       postern dkim verify < MESSAGE\n");
	return DKIM_EXIT_USAGE;
}

/* A domain or selector: letters, digits, '-', '.', '_' (RFC 6376 3.1). */
static bool name_ok(const char *s)
{
	if (*s == '\0' || *s == '.' || *s == '-' || strlen(s) > 200)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.' &&
		    *s != '_')
			return false;
	return true;
}

/* The group deliver runs in, when we may give files to it. */
static gid_t key_group(void)
{
	if (geteuid() != 0)
		return (gid_t)-1;
	struct passwd *pw = getpwnam(cfg.user);
	return pw ? pw->pw_gid : (gid_t)-1;
}

static int keygen(int argc, char **argv)
{
	const char *type = "rsa";
	long bits = 2048;

	if (argc < 3)
		return dkim_usage();
	const char *domain = argv[1], *selector = argv[2];
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--type") == 0 && i + 1 < argc)
			type = argv[++i];
		else if (strcmp(argv[i], "--bits") == 0 && i + 1 < argc)
			bits = strtol(argv[++i], NULL, 10);
		else
			return dkim_usage();
	}
	if (!name_ok(domain) || !name_ok(selector)) {
		fprintf(stderr, "postern dkim: bad domain or selector\n");
		return DKIM_EXIT_USAGE;
	}
	bool rsa = strcmp(type, "rsa") == 0;
	if (!rsa && strcmp(type, "ed25519") != 0) {
		fprintf(stderr, "postern dkim: --type is rsa or ed25519\n");
		return DKIM_EXIT_USAGE;
	}
	/* RFC 8301 3.2: at least 1024 bits; 2048 is what receivers like. */
	if (rsa && (bits < 1024 || bits > 8192)) {
		fprintf(stderr, "postern dkim: --bits from 1024 to 8192\n");
		return DKIM_EXIT_USAGE;
	}

	gid_t gid = key_group();
	const char *dir = cfg.dkim_key_directory;
	if (mkdir(dir, 0750) == 0) {
		if (gid != (gid_t)-1 && chown(dir, 0, gid) != 0) {
			fprintf(stderr, "postern dkim: chown %s: %s\n", dir,
			    strerror(errno));
			return DKIM_EXIT_USAGE;
		}
	} else if (errno != EEXIST) {
		fprintf(stderr, "postern dkim: mkdir %s: %s\n", dir,
		    strerror(errno));
		return DKIM_EXIT_USAGE;
	}

	char err[512];
	struct dkim_key *key = dkim_key_generate(rsa ? DKIM_ALG_RSA_SHA256 :
	    DKIM_ALG_ED25519_SHA256, (int)bits, err, sizeof(err));
	if (key == NULL) {
		fprintf(stderr, "postern dkim: %s\n", err);
		return DKIM_EXIT_USAGE;
	}
	char *path = xasprintf("%s/%s.%s.key", dir, domain, selector);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	int status = DKIM_EXIT_OK;
	if (fd < 0) {
		fprintf(stderr, "postern dkim: %s: %s\n", path, strerror(errno));
		status = errno == EEXIST ? DKIM_EXIT_MISMATCH : DKIM_EXIT_USAGE;
		goto out;
	}
	/* Group-readable only once the group is deliver's. */
	if ((gid != (gid_t)-1 && fchown(fd, 0, gid) != 0) ||
	    fchmod(fd, 0640) != 0 || !dkim_key_write_pem(key, fd, err,
	    sizeof(err)) || fsync(fd) != 0) {
		fprintf(stderr, "postern dkim: %s: %s\n", path,
		    err[0] ? err : strerror(errno));
		close(fd);
		unlink(path);
		status = DKIM_EXIT_USAGE;
		goto out;
	}
	close(fd);

	char *p = dkim_key_public_b64(key);
	char *record = xasprintf("v=DKIM1; k=%s; p=%s",
	    dkim_key_type_name(key), p ? p : "");
	free(p);
	printf("# private key: %s\n", path);
	printf("# dkim_signing_maps entry:\n%s %s:%s\n", domain, selector, path);
	printf("# DNS record to publish:\n%s._domainkey.%s. IN TXT (",
	    selector, domain);
	/* A TXT string holds at most 255 octets (RFC 1035 3.3.14). */
	for (size_t off = 0, len = strlen(record); off < len; off += 250)
		printf("%s\"%.250s\"", off ? "\n\t" : " ", record + off);
	printf(" )\n");
	free(record);
out:
	free(path);
	dkim_key_free(key);
	return status;
}

/* The value of tag name in a key record (RFC 6376 3.6.1), white space
 * gone; NULL if the record does not parse or has no such tag. */
static char *tag_value(const char *record, const char *name)
{
	struct dkim_tags tags;
	char err[128];
	if (!dkim_tags_parse(record, strlen(record), &tags, err, sizeof(err)))
		return NULL;
	const char *v = dkim_tags_get(&tags, name);
	char *out = v ? dkim_tags_strip_wsp(v) : NULL;
	dkim_tags_free(&tags);
	return out;
}

static enum dns_result txt_lookup(void *ctx, const char *name, char *txt,
    size_t txtsize, char *err, size_t errsize)
{
	return dns_lookup_txt(name, txt, txtsize, err, errsize);
}

/* Verify the message on standard input, as the MX would. */
static int verify(int argc, char **argv)
{
	char err[512];
	struct str msg;

	if (argc != 1)
		return dkim_usage();
	str_init(&msg, 64 * 1024 * 1024);
	char buf[65536];
	size_t n;
	bool has_cr = false;
	while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0) {
		has_cr = has_cr || memchr(buf, '\r', n) != NULL;
		if (!str_append(&msg, buf, n)) {
			fprintf(stderr, "postern dkim: message too large\n");
			return DKIM_EXIT_USAGE;
		}
	}
	/* A file with LF line ends is taken as the message it stands for. */
	if (!has_cr) {
		struct str crlf;
		str_init(&crlf, STR_NO_MAX);
		for (size_t i = 0; i < msg.len; i++) {
			if (msg.data[i] == '\n')
				str_append_char(&crlf, '\r');
			str_append_char(&crlf, msg.data[i]);
		}
		str_free(&msg);
		msg = crlf;
	}
	if (!dns_init(&cfg.dns_servers, err, sizeof(err))) {
		fprintf(stderr, "postern dkim: %s\n", err);
		return DKIM_EXIT_USAGE;
	}
	struct dkim_result res[DKIM_MAX_SIGNATURES];
	size_t count = dkim_verify_message(msg.data ? msg.data : "", msg.len,
	    time(NULL), txt_lookup, NULL, res, DKIM_MAX_SIGNATURES);
	int status = DKIM_EXIT_MISMATCH;
	if (count == 0)
		printf("dkim=none (no signature)\n");
	for (size_t i = 0; i < count; i++) {
		printf("dkim=%s d=%s s=%s a=%s (%s)\n",
		    dkim_verdict_name(res[i].verdict), res[i].domain,
		    res[i].selector, res[i].alg, res[i].why);
		if (res[i].verdict == DKIM_PASS)
			status = DKIM_EXIT_OK;
	}
	str_free(&msg);
	dns_close();
	return status;
}

static int check(int argc, char **argv)
{
	char err[512];

	if (argc != 2 || !name_ok(argv[1]))
		return dkim_usage();
	const char *domain = argv[1];
	if (cfg.dkim_signing_maps.count == 0) {
		fprintf(stderr, "postern dkim: dkim_signing_maps is not set\n");
		return DKIM_EXIT_USAGE;
	}
	struct map_list *ml = map_list_open(&cfg.dkim_signing_maps, err,
	    sizeof(err));
	char *value = NULL;
	enum map_result r = ml ? map_list_lookup(ml, domain, &value) :
	    MAP_ERROR;
	map_list_close(ml);
	if (r != MAP_FOUND) {
		fprintf(stderr, "postern dkim: %s: %s\n", domain,
		    r == MAP_NOTFOUND ? "not in dkim_signing_maps" :
		    "dkim_signing_maps cannot be read");
		return DKIM_EXIT_USAGE;
	}
	if (!dns_init(&cfg.dns_servers, err, sizeof(err))) {
		fprintf(stderr, "postern dkim: %s\n", err);
		free(value);
		return DKIM_EXIT_USAGE;
	}

	int status = DKIM_EXIT_OK;
	char *save = NULL;
	for (char *item = strtok_r(value, ", \t", &save); item != NULL;
	    item = strtok_r(NULL, ", \t", &save)) {
		char *colon = strchr(item, ':');
		if (colon == NULL) {
			printf("%s: bad entry \"%s\"\n", domain, item);
			status = DKIM_EXIT_MISMATCH;
			continue;
		}
		*colon = '\0';
		const char *selector = item, *path = colon + 1;
		char name[512], txt[4096];
		snprintf(name, sizeof(name), "%s._domainkey.%s", selector,
		    domain);
		struct dkim_key *key = dkim_key_load(path, err, sizeof(err));
		if (key == NULL) {
			printf("%s: cannot read the key: %s\n", name, err);
			status = DKIM_EXIT_MISMATCH;
			continue;
		}
		char *mine = dkim_key_public_b64(key);
		enum dns_result dr = dns_lookup_txt(name, txt, sizeof(txt), err,
		    sizeof(err));
		char *p = dr == DNS_OK ? tag_value(txt, "p") : NULL;
		char *k = dr == DNS_OK ? tag_value(txt, "k") : NULL;
		const char *want_k = dkim_key_type_name(key);
		if (dr != DNS_OK) {
			printf("%s: not published (%s)\n", name, err);
			status = DKIM_EXIT_MISMATCH;
		} else if (p == NULL || mine == NULL || strcmp(p, mine) != 0 ||
		    strcmp(k ? k : "rsa", want_k) != 0) {
			printf("%s: does NOT match %s (publish: v=DKIM1; k=%s; "
			    "p=%s)\n", name, path, want_k, mine ? mine : "");
			status = DKIM_EXIT_MISMATCH;
		} else {
			printf("%s: ok, matches %s (%s)\n", name, path,
			    dkim_alg_name(dkim_key_alg(key)));
		}
		free(p);
		free(k);
		free(mine);
		dkim_key_free(key);
	}
	free(value);
	dns_close();
	return status;
}

int admin_dkim_main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "keygen") == 0)
		return keygen(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "check") == 0)
		return check(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "verify") == 0)
		return verify(argc - 1, argv + 1);
	return dkim_usage();
}
