/*
 * local_target.h - the targets of an alias value, a ~/.forward file or
 * an :include: file, as aliases(5) and Postfix's local(8) write them:
 * addresses ("bob", "bob@example.org", "\bob"), commands ("|command",
 * quoted whole when it holds commas or quotes: "|cmd, with args"),
 * files ("/path") and ":include:/path", separated by commas or line
 * ends; in files, a line that begins with "#" is a comment. Pure text
 * in, text out: qmgr asks which kind an alias target is, the local
 * agent parses whole lists (local/local_forward.c), and
 * tests/unit/test_local_target.c checks both.
 */
#ifndef POSTERN_LOCAL_TARGET_H
#define POSTERN_LOCAL_TARGET_H

#include <stdbool.h>
#include <stddef.h>

enum local_target_kind {
	LOCAL_TARGET_ADDRESS,
	LOCAL_TARGET_COMMAND,	/* value: the command, without "|" */
	LOCAL_TARGET_FILE,	/* value: the path, "/" included */
	LOCAL_TARGET_INCLUDE,	/* value: the path after ":include:" */
};

struct local_target {
	enum local_target_kind kind;
	char *value;
	bool backslash;		/* "\user": that user's own mailbox */
};

/* The kind of one raw target as an alias table holds it (maybe quoted). */
enum local_target_kind local_target_kind(const char *raw);
/*
 * Split text into targets (*out malloc'd, free with local_target_free);
 * in_file: "#" lines are comments (.forward and :include: files).
 * Returns the count.
 */
size_t local_target_parse(const char *text, bool in_file,
    struct local_target **out);
void local_target_free(struct local_target *targets, size_t count);

#endif
