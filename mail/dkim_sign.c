/*
 * dkim_sign.c - DKIM signing (RFC 6376 5, RFC 8463) with OpenSSL 3's EVP
 * interface. The message is trusted to be what goes out (deliver hands
 * over the bytes it sends); its header section is parsed only to find
 * fields by name and the From: domain, within DKIM_MAX_HEADER.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "dkim_canon.h"
#include "dkim_sign.h"
#include "log.h"
#include "mem.h"

struct dkim_key {
	EVP_PKEY *pkey;
	enum dkim_alg alg;
};

/*
 * The fields signed when present (RFC 6376 5.4.1 recommends these), each
 * instance present; From once more than present (5.4.2), so that no From
 * can be added without breaking the signature.
 */
static const char *const signed_fields[] = {
	"from", "reply-to", "subject", "date", "to", "cc", "message-id",
	"in-reply-to", "references", "sender", "mime-version",
	"content-type", "content-transfer-encoding", "content-id",
	"content-description", "list-id", "list-help", "list-unsubscribe",
	"list-unsubscribe-post", "list-subscribe", "list-post",
	"list-owner", "list-archive",
};

struct field {
	size_t off, len;	/* in header, without the final CRLF */
	size_t namelen;
};

struct dkim_signer {
	struct str header;	/* the header section, until done */
	bool header_done;
	bool header_too_big;
	int hdr_state;		/* how much of CRLF CRLF seen */
	struct field *fields;
	size_t nfields;
	EVP_MD_CTX *body_md;
	struct dkim_body_canon body;
	bool final;
	unsigned char bh[EVP_MAX_MD_SIZE];
	unsigned bhlen;
	char *from_domain;
};

static void ssl_error(char *err, size_t errsize, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];
	if (e != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		snprintf(err, errsize, "%s: %s", what, buf);
	} else {
		snprintf(err, errsize, "%s", what);
	}
	ERR_clear_error();
}

/* ---- keys ---- */

static bool key_adopt(struct dkim_key *k, EVP_PKEY *pkey, char *err,
    size_t errsize)
{
	k->pkey = pkey;
	if (EVP_PKEY_is_a(pkey, "RSA")) {
		/* RFC 8301 3.2: signers use at least 1024 bits. */
		if (EVP_PKEY_get_bits(pkey) < 1024) {
			snprintf(err, errsize, "RSA key of %d bits: DKIM "
			    "needs at least 1024 (RFC 8301)",
			    EVP_PKEY_get_bits(pkey));
			return false;
		}
		k->alg = DKIM_ALG_RSA_SHA256;
		return true;
	}
	if (EVP_PKEY_is_a(pkey, "ED25519")) {
		k->alg = DKIM_ALG_ED25519_SHA256;
		return true;
	}
	snprintf(err, errsize, "not an RSA or Ed25519 key");
	return false;
}

struct dkim_key *dkim_key_load(const char *path, char *err, size_t errsize)
{
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		snprintf(err, errsize, "%s: %s", path, strerror(errno));
		return NULL;
	}
	EVP_PKEY *pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (pkey == NULL) {
		char why[300];
		ssl_error(why, sizeof(why), "not a PEM private key");
		snprintf(err, errsize, "%s: %s", path, why);
		return NULL;
	}
	struct dkim_key *k = xcalloc(1, sizeof(*k));
	char why[300];
	if (!key_adopt(k, pkey, why, sizeof(why))) {
		snprintf(err, errsize, "%s: %s", path, why);
		dkim_key_free(k);
		return NULL;
	}
	return k;
}

struct dkim_key *dkim_key_generate(enum dkim_alg alg, int bits, char *err,
    size_t errsize)
{
	EVP_PKEY *pkey = alg == DKIM_ALG_RSA_SHA256 ?
	    EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits) :
	    EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (pkey == NULL) {
		ssl_error(err, errsize, "key generation failed");
		return NULL;
	}
	struct dkim_key *k = xcalloc(1, sizeof(*k));
	if (!key_adopt(k, pkey, err, errsize)) {
		dkim_key_free(k);
		return NULL;
	}
	return k;
}

bool dkim_key_write_pem(const struct dkim_key *k, int fd, char *err,
    size_t errsize)
{
	BIO *b = BIO_new(BIO_s_mem());
	if (b == NULL || !PEM_write_bio_PrivateKey(b, k->pkey, NULL, NULL, 0,
	    NULL, NULL)) {
		ssl_error(err, errsize, "cannot write the key");
		BIO_free(b);
		return false;
	}
	char *data;
	long len = BIO_get_mem_data(b, &data);
	bool ok = true;
	for (long done = 0; done < len;) {
		ssize_t n = write(fd, data + done, (size_t)(len - done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errsize, "write: %s", strerror(errno));
			ok = false;
			break;
		}
		done += n;
	}
	BIO_free(b);
	return ok;
}

void dkim_key_free(struct dkim_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

enum dkim_alg dkim_key_alg(const struct dkim_key *k)
{
	return k->alg;
}

const char *dkim_alg_name(enum dkim_alg alg)
{
	return alg == DKIM_ALG_RSA_SHA256 ? "rsa-sha256" : "ed25519-sha256";
}

const char *dkim_key_type_name(const struct dkim_key *k)
{
	return k->alg == DKIM_ALG_RSA_SHA256 ? "rsa" : "ed25519";
}

static char *b64(const unsigned char *p, size_t len)
{
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, p, (int)len);
	return out;
}

char *dkim_key_public_b64(const struct dkim_key *k)
{
	if (k->alg == DKIM_ALG_ED25519_SHA256) {
		/* RFC 8463 4.2: the raw 32-byte public key. */
		unsigned char raw[64];
		size_t len = sizeof(raw);
		if (!EVP_PKEY_get_raw_public_key(k->pkey, raw, &len))
			return NULL;
		return b64(raw, len);
	}
	/* RFC 6376 3.6.1: an RSA key is a SubjectPublicKeyInfo, DER. */
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(k->pkey, &der);
	if (len <= 0)
		return NULL;
	char *out = b64(der, (size_t)len);
	OPENSSL_free(der);
	return out;
}

/* ---- the message ---- */

static void body_hash(void *ctx, const char *data, size_t len)
{
	struct dkim_signer *s = ctx;
	EVP_DigestUpdate(s->body_md, data, len);
}

struct dkim_signer *dkim_signer_new(void)
{
	struct dkim_signer *s = xcalloc(1, sizeof(*s));
	str_init(&s->header, DKIM_MAX_HEADER);
	s->body_md = EVP_MD_CTX_new();
	if (s->body_md == NULL || !EVP_DigestInit_ex(s->body_md, EVP_sha256(),
	    NULL))
		log_fatal("out of memory (EVP_MD_CTX)");
	/* As if after a line end: a message may start with the empty line. */
	s->hdr_state = 2;
	dkim_body_canon_init(&s->body, DKIM_CANON_RELAXED, body_hash, s);
	return s;
}

void dkim_signer_free(struct dkim_signer *s)
{
	if (s == NULL)
		return;
	str_free(&s->header);
	free(s->fields);
	EVP_MD_CTX_free(s->body_md);
	free(s->from_domain);
	free(s);
}

void dkim_signer_update(void *signer, const char *data, size_t len)
{
	struct dkim_signer *s = signer;
	size_t i = 0;

	/* The header section ends at the first empty line (RFC 5322 2.1). */
	while (!s->header_done && i < len) {
		static const char end[] = "\r\n\r\n";
		char c = data[i++];
		if (!s->header_too_big && !str_append_char(&s->header, c))
			s->header_too_big = true;
		s->hdr_state = c == end[s->hdr_state] ? s->hdr_state + 1 :
		    c == '\r' ? 1 : 0;
		if (s->hdr_state == 4)
			s->header_done = true;
	}
	if (i < len)
		dkim_body_canon_update(&s->body, data + i, len - i);
}

/* Split the header section into fields at CRLF not followed by WSP. */
static void split_fields(struct dkim_signer *s)
{
	const char *h = s->header.data ? s->header.data : "";
	size_t len = s->header.len, start = 0;

	if (s->header_done)
		len -= 2;	/* the empty line */
	while (start < len) {
		size_t end = start, next;
		for (;;) {
			const char *crlf = memmem(h + end, len - end, "\r\n", 2);
			if (crlf == NULL) {
				end = next = len;
				break;
			}
			end = (size_t)(crlf - h);
			if (end + 2 < len && (h[end + 2] == ' ' ||
			    h[end + 2] == '\t')) {
				end += 2;	/* folded: the field goes on */
				continue;
			}
			next = end + 2;
			break;
		}
		const char *colon = memchr(h + start, ':', end - start);
		if (colon != NULL) {
			size_t nl = (size_t)(colon - (h + start));
			while (nl > 0 && (h[start + nl - 1] == ' ' ||
			    h[start + nl - 1] == '\t'))
				nl--;
			s->fields = xreallocarray(s->fields, s->nfields + 1,
			    sizeof(*s->fields));
			s->fields[s->nfields++] = (struct field){ start,
			    end - start, nl };
		}
		start = next;
	}
}

static bool field_is(const struct dkim_signer *s, const struct field *f,
    const char *name)
{
	return f->namelen == strlen(name) &&
	    strncasecmp(s->header.data + f->off, name, f->namelen) == 0;
}

/* The domain of the one address in a From: value (RFC 5322 3.6.2). */
static char *address_domain(const char *v, size_t len)
{
	const char *lt = memchr(v, '<', len);
	const char *p = v, *end = v + len;
	if (lt != NULL) {
		const char *gt = memchr(lt, '>', (size_t)(end - lt));
		if (gt == NULL)
			return NULL;
		p = lt + 1;
		end = gt;
	}
	const char *at = NULL;
	for (const char *q = p; q < end; q++)
		if (*q == '@')
			at = q;
	if (at == NULL)
		return NULL;
	const char *d = at + 1, *e = d;
	while (e < end && (isalnum((unsigned char)*e) || *e == '.' ||
	    *e == '-' || (unsigned char)*e >= 0x80))
		e++;
	/* After the domain only white space, a comment or a line end. */
	for (const char *q = e; q < end; q++)
		if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n' &&
		    *q != '(' )
			return NULL;
		else if (*q == '(')
			break;
	if (e == d)
		return NULL;
	char *out = xstrndup(d, (size_t)(e - d));
	for (char *q = out; *q; q++)
		*q = (char)tolower((unsigned char)*q);
	size_t n = strlen(out);
	if (n > 0 && out[n - 1] == '.')
		out[n - 1] = '\0';
	return out;
}

static void signer_finish(struct dkim_signer *s)
{
	if (s->final)
		return;
	s->final = true;
	dkim_body_canon_final(&s->body);
	EVP_DigestFinal_ex(s->body_md, s->bh, &s->bhlen);
	if (s->header_too_big)
		return;
	split_fields(s);
	const struct field *from = NULL;
	for (size_t i = 0; i < s->nfields; i++) {
		if (!field_is(s, &s->fields[i], "from"))
			continue;
		if (from != NULL)
			return;		/* two From fields: not ours to sign */
		from = &s->fields[i];
	}
	if (from == NULL)
		return;
	const char *v = s->header.data + from->off + from->namelen;
	size_t vlen = from->len - from->namelen;
	const char *colon = memchr(v, ':', vlen);
	if (colon == NULL)
		return;
	vlen -= (size_t)(colon + 1 - v);
	/* Several mailboxes in From: no single domain to sign for. */
	if (memchr(colon + 1, ',', vlen) != NULL &&
	    memchr(colon + 1, '"', vlen) == NULL)
		return;
	s->from_domain = address_domain(colon + 1, vlen);
}

const char *dkim_signer_from_domain(struct dkim_signer *s)
{
	signer_finish(s);
	return s->from_domain;
}

/* Fold the names of h= so that no line passes ~78 octets. */
static void append_names(struct str *hdr, const char *const *names,
    size_t n, size_t *col)
{
	for (size_t i = 0; i < n; i++) {
		size_t w = strlen(names[i]) + 1;
		if (i > 0) {
			str_append_char(hdr, ':');
			if (*col + w > 76) {
				str_append(hdr, "\r\n\t", 3);
				*col = 1;
			}
		}
		str_append_cstr(hdr, names[i]);
		*col += w;
	}
}

bool dkim_signer_sign(struct dkim_signer *s, const char *domain,
    const char *selector, const struct dkim_key *key, time_t now,
    struct str *out, char *err, size_t errsize)
{
	signer_finish(s);
	if (s->header_too_big) {
		snprintf(err, errsize, "header section over %d bytes",
		    DKIM_MAX_HEADER);
		return false;
	}

	/* h=: every listed field present, From once more (5.4.2). */
	const char *names[256];
	size_t nnames = 0;
	for (size_t i = 0; i < sizeof(signed_fields) / sizeof(signed_fields[0]);
	    i++) {
		size_t count = 0;
		for (size_t j = 0; j < s->nfields; j++)
			if (field_is(s, &s->fields[j], signed_fields[i]))
				count++;
		if (strcmp(signed_fields[i], "from") == 0)
			count++;
		for (; count > 0 && nnames < sizeof(names) / sizeof(names[0]);
		    count--)
			names[nnames++] = signed_fields[i];
	}

	/* The field itself, b= empty, folded where relaxed form allows. */
	struct str hdr;
	char bh64[EVP_MAX_MD_SIZE * 2];
	EVP_EncodeBlock((unsigned char *)bh64, s->bh, (int)s->bhlen);
	str_init(&hdr, STR_NO_MAX);
	str_appendf(&hdr, "DKIM-Signature: v=1; a=%s; c=relaxed/relaxed;\r\n"
	    "\td=%s; s=%s; t=%lld;\r\n\th=", dkim_alg_name(key->alg), domain,
	    selector, (long long)now);
	size_t col = 3;
	append_names(&hdr, names, nnames, &col);
	str_appendf(&hdr, ";\r\n\tbh=%s;\r\n\tb=", bh64);

	/*
	 * The data signed (RFC 6376 3.7): the selected fields, each chosen
	 * from the bottom up (5.4.2), then this field without its CRLF.
	 */
	struct str data;
	size_t used[sizeof(names) / sizeof(names[0])] = { 0 };
	str_init(&data, STR_NO_MAX);
	for (size_t i = 0; i < nnames; i++) {
		size_t first = i;
		while (first > 0 && strcmp(names[first - 1], names[i]) == 0)
			first--;
		size_t skip = used[first]++;
		for (size_t j = s->nfields; j-- > 0;) {
			if (!field_is(s, &s->fields[j], names[i]))
				continue;
			if (skip-- == 0) {
				dkim_canon_header(DKIM_CANON_RELAXED,
				    s->header.data + s->fields[j].off,
				    s->fields[j].len, &data);
				break;
			}
		}
	}
	dkim_canon_header(DKIM_CANON_RELAXED, hdr.data, hdr.len, &data);
	str_truncate(&data, data.len - 2);

	/* rsa-sha256 signs the data's SHA-256 with PKCS#1 v1.5; ed25519
	 * signs the SHA-256 hash itself with PureEdDSA (RFC 8463 3). */
	unsigned char sig[1024];
	size_t siglen = sizeof(sig);
	bool ok = false;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (md == NULL)
		log_fatal("out of memory (EVP_MD_CTX)");
	if (key->alg == DKIM_ALG_RSA_SHA256) {
		ok = EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL,
		    key->pkey) == 1 && EVP_DigestSign(md, sig, &siglen,
		    (const unsigned char *)data.data, data.len) == 1;
	} else {
		unsigned char h[32];
		ok = EVP_Digest(data.data, data.len, h, NULL, EVP_sha256(),
		    NULL) == 1 && EVP_DigestSignInit(md, NULL, NULL, NULL,
		    key->pkey) == 1 && EVP_DigestSign(md, sig, &siglen, h,
		    sizeof(h)) == 1;
	}
	EVP_MD_CTX_free(md);
	str_free(&data);
	if (!ok) {
		ssl_error(err, errsize, "signing failed");
		str_free(&hdr);
		return false;
	}
	char *b = b64(sig, siglen);
	size_t blen = strlen(b);
	for (size_t i = 0; i < blen; i += 72) {
		if (i > 0)
			str_append(&hdr, "\r\n\t", 3);
		str_append(&hdr, b + i, blen - i < 72 ? blen - i : 72);
	}
	free(b);
	str_append(&hdr, "\r\n", 2);
	bool fit = str_append(out, hdr.data, hdr.len);
	str_free(&hdr);
	if (!fit)
		snprintf(err, errsize, "no room for the signature");
	return fit;
}
