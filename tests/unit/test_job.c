/*
 * test_job.c - mail/job.c, the one codec of qmgr's delivery job: a job
 * survives encode and decode field by field, and each malformed field
 * of a table of bad jobs is refused with its reason.
 */
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "job.h"
#include "str.h"
#include "unit.h"

static void test_round_trip(void)
{
	struct job_rcpt rcpts[] = {
		{ 0, "bob@example.org", QUEUE_NOTIFY_SUCCESS |
		    QUEUE_NOTIFY_FAILURE, "rfc822;bob@example.org", NULL,
		    false },
		{ 3, "\"a b\"@example.org", 0, NULL, "list@example.org",
		    true },
		{ 7, "postmaster", QUEUE_NOTIFY_NEVER, NULL, NULL, false },
	};
	struct job in = {
		.transport = "local", .nexthop = "host.example.org",
		.queue_id = "1xaC6c1aVG037d",
		.queue_file = "active/1xaC6c1aVG037d",
		.content_offset = 321, .content_length = 4567,
		.sender = "alice@example.org", .body = QUEUE_BODY_8BITMIME,
		.smtputf8 = true, .requiretls = true, .envid = "QQ314159",
		.auth = "<>", .ret = QUEUE_RET_HDRS, .arrival = 1796558400.123456,
		.job_time = 1796558401.5, .rcpts = rcpts, .nrcpts = 3,
	};
	struct str wire;
	struct ipc_msg m;
	struct job out;
	size_t used;
	char err[128];

	str_init(&wire, STR_NO_MAX);
	job_encode(&in, &wire);
	CHECK(ipc_decode(wire.data, wire.len, &m, &used) == IPC_DONE);
	CHECK_INT(used, wire.len);
	CHECK(job_decode(&m, &out, err, sizeof(err)));
	CHECK_STR(out.transport, "local");
	CHECK_STR(out.nexthop, "host.example.org");
	CHECK_STR(out.queue_id, "1xaC6c1aVG037d");
	CHECK_STR(out.queue_file, "active/1xaC6c1aVG037d");
	CHECK_INT(out.content_offset, 321);
	CHECK_INT(out.content_length, 4567);
	CHECK_STR(out.sender, "alice@example.org");
	CHECK_INT(out.body, QUEUE_BODY_8BITMIME);
	CHECK(out.smtputf8);
	CHECK(out.requiretls);
	CHECK_STR(out.envid, "QQ314159");
	CHECK_STR(out.auth, "<>");
	CHECK_INT(out.ret, QUEUE_RET_HDRS);
	CHECK(out.arrival > 1796558400.1 && out.arrival < 1796558400.2);
	CHECK(out.job_time > 1796558401.4 && out.job_time < 1796558401.6);
	CHECK_INT(out.nrcpts, 3);
	if (out.nrcpts == 3) {
		for (size_t k = 0; k < 3; k++) {
			CHECK_INT(out.rcpts[k].number, rcpts[k].number);
			CHECK_STR(out.rcpts[k].address, rcpts[k].address);
			CHECK_INT(out.rcpts[k].notify, rcpts[k].notify);
			CHECK_STR(out.rcpts[k].orcpt, rcpts[k].orcpt);
			CHECK_STR(out.rcpts[k].orig_to, rcpts[k].orig_to);
			CHECK_INT(out.rcpts[k].noexpand, rcpts[k].noexpand);
		}
	}
	job_clear(&out);
	ipc_msg_free(&m);

	/* Without the Q record no attribute goes, and none reads as no. */
	in.requiretls = false;
	str_clear(&wire);
	job_encode(&in, &wire);
	CHECK(memmem(wire.data, wire.len, "requiretls", 10) == NULL);
	CHECK(ipc_decode(wire.data, wire.len, &m, &used) == IPC_DONE);
	CHECK(job_decode(&m, &out, err, sizeof(err)));
	CHECK(!out.requiretls);
	job_clear(&out);
	ipc_msg_free(&m);
	str_free(&wire);
}

/* A good job's attributes, then one bad change per row. */
static const char *const good[][2] = {
	{ "transport", "smtp" }, { "nexthop", "example.org" },
	{ "queue_id", "1xaC6c1aVG037d" },
	{ "queue_file", "active/1xaC6c1aVG037d" },
	{ "content_offset", "100" }, { "content_length", "20" },
	{ "sender", "a@example.org" }, { "body", "7BIT" },
	{ "rcpt", "0 - - b@example.org" },
};

static const struct {
	const char *name, *value;	/* replaces or adds this attribute */
	const char *why;		/* NULL: accepted */
} bad[] = {
	{ NULL, NULL, NULL },
	{ "transport", "SMTP", "bad transport" },
	{ "transport", "", "bad transport" },
	{ "nexthop", "", "no nexthop" },
	{ "queue_id", "abc/def", "bad queue_id" },
	{ "queue_id", "", "bad queue_id" },
	{ "queue_file", "/etc/shadow", "bad queue_file" },
	{ "queue_file", "active/../../etc/shadow", "bad queue_file" },
	{ "content_offset", "-1", "bad content_offset" },
	{ "content_offset", "12x", "bad content_offset" },
	{ "content_length", "", "bad content_length" },
	{ "sender", "not an address", "bad sender" },
	{ "sender", "", NULL },
	{ "body", "9BIT", "bad body" },
	{ "rcpt", "0 - - ", "bad rcpt" },
	{ "rcpt", "x - - b@example.org", "bad rcpt" },
	{ "rcpt", "-1 - - b@example.org", "bad rcpt" },
	{ "rcpt", "0 Q - b@example.org", "bad rcpt" },
	{ "rcpt", "0 SS - b@example.org", "bad rcpt" },
	{ "rcpt", "0 SF - b@example.org", NULL },
	{ "rcpt", "0 - - b@example.org\tx", "bad rcpt" },
	{ "rcpt", "0 - - <b@example.org>", "bad rcpt" },
	{ "+rcpt", "0 - - c@example.org", "recipient named twice" },
	{ "+rcpt", "1 - - c@example.org", NULL },
	{ "+noexpand", "5", "bad noexpand" },
	{ "+noexpand", "0 x", "bad noexpand" },
	{ "+noexpand", "0", NULL },
	{ "+orig_to", "9 x@example.org", NULL },	/* log only: ignored */
};

static void test_bad_fields(void)
{
	for (size_t row = 0; row < sizeof(bad) / sizeof(bad[0]); row++) {
		struct ipc_msg m;
		struct job j;
		char err[128] = "";
		const char *name = bad[row].name;
		bool add = name != NULL && name[0] == '+';

		ipc_msg_init(&m, "job");
		for (size_t k = 0; k < sizeof(good) / sizeof(good[0]); k++)
			ipc_add(&m, good[k][0], "%s", !add && name &&
			    strcmp(name, good[k][0]) == 0 ? bad[row].value :
			    good[k][1]);
		if (add)
			ipc_add(&m, name + 1, "%s", bad[row].value);
		bool ok = job_decode(&m, &j, err, sizeof(err));
		if (bad[row].why == NULL) {
			if (!ok)
				printf("# row %zu: refused: %s\n", row, err);
			CHECK(ok);
		} else {
			CHECK(!ok);
			CHECK_STR(err, bad[row].why);
		}
		job_clear(&j);
		ipc_msg_free(&m);
	}
}

static void test_not_a_job(void)
{
	struct ipc_msg m;
	struct job j;
	char err[128];

	ipc_msg_init(&m, "result");
	CHECK(!job_decode(&m, &j, err, sizeof(err)));
	CHECK_STR(err, "unexpected message type");
	job_clear(&j);
	ipc_msg_free(&m);
	ipc_msg_init(&m, "job");
	for (size_t k = 0; k + 1 < sizeof(good) / sizeof(good[0]); k++)
		ipc_add(&m, good[k][0], "%s", good[k][1]);
	CHECK(!job_decode(&m, &j, err, sizeof(err)));
	CHECK_STR(err, "no recipients");
	job_clear(&j);
	ipc_msg_free(&m);
}

int main(void)
{
	RUN(test_round_trip);
	RUN(test_bad_fields);
	RUN(test_not_a_job);
	return unit_done();
}
