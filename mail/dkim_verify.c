/*
 * dkim_verify.c - DKIM verification (RFC 6376 6, RFC 8463, RFC 8301) of
 * a message in memory, with OpenSSL 3's EVP interface. Trusts nothing in
 * the message or the key records; see dkim_verify.h for the limits.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "dkim_canon.h"
#include "dkim_tags.h"
#include "dkim_verify.h"
#include "mem.h"
#include "str.h"

struct hfield {
	const char *p;
	size_t len, namelen;
};

struct message {
	struct hfield *fields;
	size_t nfields;
	const char *body;
	size_t bodylen;
};

/* Body hashes already made: (canonicalization, length) to SHA-256. */
struct body_hash {
	enum dkim_canon canon;
	long long limit;		/* -1: the whole body */
	unsigned char md[32];
	long long canon_len;		/* the canonical body's length */
};

const char *dkim_verdict_name(enum dkim_verdict v)
{
	static const char *const names[] = {
		[DKIM_PASS] = "pass", [DKIM_FAIL] = "fail",
		[DKIM_NEUTRAL] = "neutral", [DKIM_TEMPERROR] = "temperror",
		[DKIM_PERMERROR] = "permerror",
	};
	return names[v];
}

/* The header fields (split at CRLF not followed by WSP) and the body. */
static void split_message(const char *msg, size_t len, struct message *m)
{
	size_t start = 0;
	memset(m, 0, sizeof(*m));
	m->body = msg + len;
	while (start < len) {
		if (len - start >= 2 && msg[start] == '\r' &&
		    msg[start + 1] == '\n') {
			m->body = msg + start + 2;	/* the empty line */
			break;
		}
		size_t end = start;
		for (;;) {
			const char *crlf = memmem(msg + end, len - end, "\r\n", 2);
			if (crlf == NULL) {
				end = len;
				break;
			}
			end = (size_t)(crlf - msg);
			if (end + 2 < len && (msg[end + 2] == ' ' ||
			    msg[end + 2] == '\t')) {
				end += 2;
				continue;
			}
			break;
		}
		const char *colon = memchr(msg + start, ':', end - start);
		if (colon != NULL) {
			size_t nl = (size_t)(colon - (msg + start));
			while (nl > 0 && (msg[start + nl - 1] == ' ' ||
			    msg[start + nl - 1] == '\t'))
				nl--;
			m->fields = xreallocarray(m->fields, m->nfields + 1,
			    sizeof(*m->fields));
			m->fields[m->nfields++] = (struct hfield){ msg + start,
			    end - start, nl };
		}
		start = end + 2;
	}
	m->bodylen = (size_t)(msg + len - m->body);
}

static bool field_is(const struct hfield *f, const char *name, size_t nl)
{
	return f->namelen == nl && strncasecmp(f->p, name, nl) == 0;
}

struct counter {
	EVP_MD_CTX *md;
	long long left;			/* bytes still to hash; -1: all */
	long long total;
};

static void hash_out(void *ctx, const char *data, size_t len)
{
	struct counter *c = ctx;
	c->total += (long long)len;
	if (c->left >= 0) {
		if ((long long)len > c->left)
			len = (size_t)c->left;
		c->left -= (long long)len;
	}
	EVP_DigestUpdate(c->md, data, len);
}

static const struct body_hash *body_hash_get(const struct message *m,
    enum dkim_canon canon, long long limit, struct body_hash *cache,
    size_t *ncache)
{
	for (size_t i = 0; i < *ncache; i++)
		if (cache[i].canon == canon && cache[i].limit == limit)
			return &cache[i];
	struct body_hash *h = &cache[(*ncache)++];
	struct counter c = { EVP_MD_CTX_new(), limit, 0 };
	struct dkim_body_canon b;
	EVP_DigestInit_ex(c.md, EVP_sha256(), NULL);
	dkim_body_canon_init(&b, canon, hash_out, &c);
	dkim_body_canon_update(&b, m->body, m->bodylen);
	dkim_body_canon_final(&b);
	unsigned mdlen = 0;
	EVP_DigestFinal_ex(c.md, h->md, &mdlen);
	EVP_MD_CTX_free(c.md);
	h->canon = canon;
	h->limit = limit;
	h->canon_len = c.total;
	return h;
}

static bool b64_decode(const char *in, unsigned char **out, size_t *outlen)
{
	size_t len = strlen(in);
	if (len == 0 || len % 4 != 0)
		return false;
	*out = xmalloc(len / 4 * 3 + 1);
	int n = EVP_DecodeBlock(*out, (const unsigned char *)in, (int)len);
	if (n < 0) {
		free(*out);
		return false;
	}
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	if (len >= 1 && in[len - 1] == '=')
		n--;
	if (len >= 2 && in[len - 2] == '=')
		n--;
	*outlen = (size_t)n;
	return true;
}

/* The public key from a key record (RFC 6376 3.6.1), or a verdict. */
static EVP_PKEY *key_from_record(const char *txt, bool ed25519,
    const char *sig_i, const char *domain, struct dkim_result *r)
{
	struct dkim_tags kt;
	char err[128];
	EVP_PKEY *pkey = NULL;

	r->verdict = DKIM_PERMERROR;
	if (!dkim_tags_parse(txt, strlen(txt), &kt, err, sizeof(err))) {
		snprintf(r->why, sizeof(r->why), "key record: %s", err);
		return NULL;
	}
	const char *v = dkim_tags_get(&kt, "v");
	const char *k = dkim_tags_get(&kt, "k");
	const char *h = dkim_tags_get(&kt, "h");
	const char *s = dkim_tags_get(&kt, "s");
	const char *t = dkim_tags_get(&kt, "t");
	const char *p = dkim_tags_get(&kt, "p");
	char *praw = p ? dkim_tags_strip_wsp(p) : NULL;
	unsigned char *der = NULL;
	size_t derlen;
	if (v != NULL && strcmp(v, "DKIM1") != 0) {
		snprintf(r->why, sizeof(r->why), "key record is not DKIM1");
	} else if (praw == NULL) {
		snprintf(r->why, sizeof(r->why), "key record without p=");
	} else if (praw[0] == '\0') {
		snprintf(r->why, sizeof(r->why), "key revoked");
	} else if (strcmp(k ? k : "rsa", ed25519 ? "ed25519" : "rsa") != 0) {
		snprintf(r->why, sizeof(r->why), "key type does not match a=");
	} else if (h != NULL && strstr(h, "sha256") == NULL) {
		snprintf(r->why, sizeof(r->why), "key not for sha256");
	} else if (s != NULL && strstr(s, "*") == NULL &&
	    strstr(s, "email") == NULL) {
		snprintf(r->why, sizeof(r->why), "key not for email");
	} else if (t != NULL && strstr(t, "s") != NULL && sig_i != NULL &&
	    strcasecmp(strrchr(sig_i, '@') ? strrchr(sig_i, '@') + 1 : sig_i,
	    domain) != 0) {
		/* 3.6.1 t=s: i= must be in d= exactly, no subdomain. */
		snprintf(r->why, sizeof(r->why), "t=s key, i= in a subdomain");
	} else if (!b64_decode(praw, &der, &derlen)) {
		snprintf(r->why, sizeof(r->why), "key p= is not base64");
	} else if (ed25519) {
		pkey = derlen == 32 ? EVP_PKEY_new_raw_public_key(
		    EVP_PKEY_ED25519, NULL, der, derlen) : NULL;
		if (pkey == NULL)
			snprintf(r->why, sizeof(r->why), "bad Ed25519 key");
	} else {
		const unsigned char *q = der;
		pkey = d2i_PUBKEY(NULL, &q, (long)derlen);
		if (pkey == NULL || !EVP_PKEY_is_a(pkey, "RSA")) {
			snprintf(r->why, sizeof(r->why), "bad RSA key");
			EVP_PKEY_free(pkey);
			pkey = NULL;
		} else if (EVP_PKEY_get_bits(pkey) < 1024) {
			/* RFC 8301 3.2 */
			snprintf(r->why, sizeof(r->why), "RSA key of %d bits",
			    EVP_PKEY_get_bits(pkey));
			EVP_PKEY_free(pkey);
			pkey = NULL;
		}
	}
	free(der);
	free(praw);
	dkim_tags_free(&kt);
	return pkey;
}

/* The field with its b= value removed (RFC 6376 3.7). */
static void strip_b(const struct hfield *f, struct str *out)
{
	const char *v = (const char *)memchr(f->p, ':', f->len) + 1;
	const char *end = f->p + f->len;
	str_append(out, f->p, (size_t)(v - f->p));
	const char *q = v;
	while (q < end) {
		const char *semi = memchr(q, ';', (size_t)(end - q));
		/* q < end: the bound is positive. */
		const char *te = semi ? semi : end;
		const char *n = q;
		while (n < te && (*n == ' ' || *n == '\t' || *n == '\r' ||
		    *n == '\n'))
			n++;
		const char *eq = n < te ? memchr(n, '=', (size_t)(te - n)) :
		    NULL;
		const char *ne = eq ? eq : te;
		while (ne > n && (ne[-1] == ' ' || ne[-1] == '\t' ||
		    ne[-1] == '\r' || ne[-1] == '\n'))
			ne--;
		if (eq != NULL && ne - n == 1 && *n == 'b')
			str_append(out, q, (size_t)(eq + 1 - q));
		else
			str_append(out, q, (size_t)(te - q));
		if (semi)
			str_append_char(out, ';');
		q = semi ? semi + 1 : end;
	}
}

static void verify_one(const struct message *m, const struct hfield *sigf,
    time_t now, dkim_key_lookup_fn *lookup, void *ctx,
    struct body_hash *cache, size_t *ncache, struct dkim_result *r)
{
	struct dkim_tags t;
	char err[200];
	const char *val = (const char *)memchr(sigf->p, ':', sigf->len) + 1;
	size_t vlen = sigf->len - (size_t)(val - sigf->p);

	memset(r, 0, sizeof(*r));
	r->verdict = DKIM_PERMERROR;
	if (!dkim_tags_parse(val, vlen, &t, err, sizeof(err))) {
		snprintf(r->why, sizeof(r->why), "signature: %.150s", err);
		return;
	}
	const char *v = dkim_tags_get(&t, "v"), *a = dkim_tags_get(&t, "a");
	const char *b = dkim_tags_get(&t, "b"), *bh = dkim_tags_get(&t, "bh");
	const char *d = dkim_tags_get(&t, "d"), *h = dkim_tags_get(&t, "h");
	const char *s = dkim_tags_get(&t, "s"), *c = dkim_tags_get(&t, "c");
	const char *l = dkim_tags_get(&t, "l"), *x = dkim_tags_get(&t, "x");
	const char *i = dkim_tags_get(&t, "i"), *ts = dkim_tags_get(&t, "t");
	EVP_PKEY *pkey = NULL;
	char *braw = NULL, *bhraw = NULL;
	unsigned char *sig = NULL;
	size_t siglen;
	struct str data;
	str_init(&data, STR_NO_MAX);

	if (d)
		snprintf(r->domain, sizeof(r->domain), "%s", d);
	if (s)
		snprintf(r->selector, sizeof(r->selector), "%s", s);
	if (a)
		snprintf(r->alg, sizeof(r->alg), "%s", a);
	if (i)
		snprintf(r->identity, sizeof(r->identity), "%s", i);
	for (size_t k = 0, n = 0; b && b[k] && n < 8; k++)
		if (b[k] != ' ' && b[k] != '\t' && b[k] != '\r' &&
		    b[k] != '\n')
			r->b_prefix[n++] = b[k];
	if (!v || !a || !b || !bh || !d || !h || !s) {
		snprintf(r->why, sizeof(r->why), "a required tag is missing");
		goto out;
	}
	if (strcmp(v, "1") != 0) {
		snprintf(r->why, sizeof(r->why), "v= is not 1");
		goto out;
	}
	bool ed25519 = strcmp(a, "ed25519-sha256") == 0;
	if (!ed25519 && strcmp(a, "rsa-sha256") != 0) {
		/* RFC 8301 3.1: rsa-sha1 is not accepted either. */
		snprintf(r->why, sizeof(r->why), "algorithm not accepted");
		goto out;
	}
	enum dkim_canon hc = DKIM_CANON_SIMPLE, bc = DKIM_CANON_SIMPLE;
	if (c != NULL) {
		char hname[16] = "", bname[16] = "";
		const char *slash = strchr(c, '/');
		snprintf(hname, sizeof(hname), "%.*s", slash ?
		    (int)(slash - c) : (int)strlen(c), c);
		snprintf(bname, sizeof(bname), "%s", slash ? slash + 1 :
		    "simple");
		bool ok = true;
		if (strcmp(hname, "relaxed") == 0)
			hc = DKIM_CANON_RELAXED;
		else if (strcmp(hname, "simple") != 0)
			ok = false;
		if (strcmp(bname, "relaxed") == 0)
			bc = DKIM_CANON_RELAXED;
		else if (strcmp(bname, "simple") != 0)
			ok = false;
		if (!ok) {
			snprintf(r->why, sizeof(r->why), "unknown c=");
			goto out;
		}
	}
	/* 3.5: h= includes From; i= lies in d=. */
	bool from = false;
	for (const char *p = h; *p;) {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' ||
		    *p == ':')
			p++;
		const char *e = p;
		while (*e && *e != ':' && *e != ' ' && *e != '\t' &&
		    *e != '\r' && *e != '\n')
			e++;
		if (e - p == 4 && strncasecmp(p, "from", 4) == 0)
			from = true;
		p = e;
	}
	if (!from) {
		snprintf(r->why, sizeof(r->why), "From is not signed");
		goto out;
	}
	if (i != NULL) {
		const char *at = strrchr(i, '@');
		const char *id = at ? at + 1 : i;
		size_t il = strlen(id), dl = strlen(d);
		if (!(il == dl && strcasecmp(id, d) == 0) && !(il > dl &&
		    id[il - dl - 1] == '.' && strcasecmp(id + il - dl, d) == 0)) {
			snprintf(r->why, sizeof(r->why), "i= is not in d=");
			goto out;
		}
	}
	if (x != NULL) {
		long long xv = strtoll(x, NULL, 10);
		if (ts != NULL && xv < strtoll(ts, NULL, 10)) {
			snprintf(r->why, sizeof(r->why), "x= before t=");
			goto out;
		}
		if (xv < (long long)now) {
			snprintf(r->why, sizeof(r->why), "signature expired");
			goto out;
		}
	}
	long long limit = -1;
	if (l != NULL) {
		char *e;
		limit = strtoll(l, &e, 10);
		if (*e != '\0' || limit < 0 || strlen(l) > 76) {
			snprintf(r->why, sizeof(r->why), "bad l=");
			goto out;
		}
	}

	/* The key (3.6.2.2): one lookup. */
	char name[600], txt[4096];
	snprintf(name, sizeof(name), "%s._domainkey.%s", s, d);
	enum dns_result dr = lookup(ctx, name, txt, sizeof(txt), err,
	    sizeof(err));
	if (dr != DNS_OK) {
		r->verdict = dr == DNS_TEMPFAIL ? DKIM_TEMPERROR :
		    DKIM_PERMERROR;
		snprintf(r->why, sizeof(r->why), "no key for %.100s", name);
		goto out;
	}
	pkey = key_from_record(txt, ed25519, i, d, r);
	if (pkey == NULL)
		goto out;
	r->verdict = DKIM_PERMERROR;

	/* The body hash (3.7), made once per c= and l=. */
	const struct body_hash *hb = body_hash_get(m, bc, limit, cache, ncache);
	if (limit >= 0 && limit > hb->canon_len) {
		snprintf(r->why, sizeof(r->why), "l= is beyond the body");
		goto out;
	}
	bhraw = dkim_tags_strip_wsp(bh);
	char bh64[64];
	EVP_EncodeBlock((unsigned char *)bh64, hb->md, 32);
	if (strcmp(bh64, bhraw) != 0) {
		r->verdict = DKIM_FAIL;
		snprintf(r->why, sizeof(r->why), "body hash did not verify");
		goto out;
	}

	/* The header hash: the h= fields from the bottom up (5.4.2). */
	bool *used = xcalloc(m->nfields ? m->nfields : 1, sizeof(*used));
	for (const char *p = h; *p;) {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' ||
		    *p == ':')
			p++;
		const char *e = p;
		while (*e && *e != ':' && *e != ' ' && *e != '\t' &&
		    *e != '\r' && *e != '\n')
			e++;
		if (e == p)
			break;
		for (size_t j = m->nfields; j-- > 0;) {
			if (used[j] || !field_is(&m->fields[j], p,
			    (size_t)(e - p)))
				continue;
			used[j] = true;
			dkim_canon_header(hc, m->fields[j].p, m->fields[j].len,
			    &data);
			break;
		}
		p = e;
	}
	free(used);
	struct str self;
	str_init(&self, STR_NO_MAX);
	strip_b(sigf, &self);
	dkim_canon_header(hc, self.data, self.len, &data);
	str_free(&self);
	str_truncate(&data, data.len - 2);

	braw = dkim_tags_strip_wsp(b);
	if (!b64_decode(braw, &sig, &siglen)) {
		snprintf(r->why, sizeof(r->why), "b= is not base64");
		goto out;
	}
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok;
	if (ed25519) {
		unsigned char hash[32];
		EVP_Digest(data.data, data.len, hash, NULL, EVP_sha256(), NULL);
		ok = EVP_DigestVerifyInit(md, NULL, NULL, NULL, pkey) == 1 &&
		    EVP_DigestVerify(md, sig, siglen, hash, sizeof(hash)) == 1;
	} else {
		ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL,
		    pkey) == 1 && EVP_DigestVerify(md, sig, siglen,
		    (const unsigned char *)data.data, data.len) == 1;
	}
	EVP_MD_CTX_free(md);
	r->verdict = ok ? DKIM_PASS : DKIM_FAIL;
	snprintf(r->why, sizeof(r->why), ok ? "signature verified" :
	    "signature did not verify");
out:
	free(sig);
	free(braw);
	free(bhraw);
	EVP_PKEY_free(pkey);
	str_free(&data);
	dkim_tags_free(&t);
}

size_t dkim_verify_message(const char *msg, size_t len, time_t now,
    dkim_key_lookup_fn *lookup, void *ctx, struct dkim_result *results,
    size_t max)
{
	struct message m;
	struct body_hash cache[DKIM_MAX_SIGNATURES];
	size_t ncache = 0, n = 0;

	if (max > DKIM_MAX_SIGNATURES)
		max = DKIM_MAX_SIGNATURES;
	split_message(msg, len, &m);
	for (size_t i = 0; i < m.nfields && n < max; i++)
		if (field_is(&m.fields[i], "dkim-signature", 14))
			verify_one(&m, &m.fields[i], now, lookup, ctx, cache,
			    &ncache, &results[n++]);
	free(m.fields);
	return n;
}
