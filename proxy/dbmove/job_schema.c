/*
 * job_schema.c — the schema of a moving database: pg_dump --schema-only
 * of the source, run on the target as one script.
 *
 * Why pg_dump: it is the one tool that knows every kind of object a
 * PostgreSQL database holds (types, functions, sequences, defaults,
 * constraints, indexes, triggers, policies, grants and comments) in an
 * order that loads, and it ships with every server; pgnear writing DDL of
 * its own would miss some.  It runs as a child process with the source's
 * connection settings in its environment (never on its command line,
 * where a password would show), its output to an unlinked temporary
 * file; the loop looks every DUMP_POLL_MS whether it has ended.
 * Publications and subscriptions are left out: the move makes its own.
 */
#include "proxy/dbmove/job_engine.h"
#include "proxy/dbmove/job_steps.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "protocol/pgasync.h"
#include "proxy/base/config.h"

#define DUMP_POLL_MS   50
#define DUMP_MAX_BYTES (64 << 20) /* a schema this large is refused */
#define DUMP_ERROR_MAX 480
#define DUMP_MAX_POLLS (DBMOVE_QUERY_TIMEOUT_MS * 4 / DUMP_POLL_MS)

extern char **environ;

/* The schema copy's child and what it wrote (j->copy): job_copy_schema makes it. */
struct job_schema_copy {
    pid_t dump_pid;
    int dump_out, dump_err; /* unlinked temporary files: its output, its errors; 0 none */
    struct event *dump_poll;
    int dump_polls;
    char *schema; /* the script read back, run on the target */
};

/* An unlinked temporary file, open for reading and writing; -1 on failure. */
static int temp_file(void)
{
    char path[] = "/tmp/pgnear-dump-XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0)
        unlink(path);
    return fd;
}

/* The environment of pg_dump: pgnear's, with each setting of conninfo as libpq's variable. */
static char **dump_environment(const char *conninfo)
{
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    size_t n = 0, k = 0;
    for (char **e = environ; *e != NULL; e++)
        n++;
    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
        n++;
    char **env = calloc(n + 1, sizeof(char *));
    if (env == NULL || opts == NULL) {
        free(env);
        PQconninfoFree(opts);
        return NULL;
    }
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (o->val == NULL || o->envvar == NULL)
            continue;
        size_t len = strlen(o->envvar) + strlen(o->val) + 2;
        if ((env[k] = malloc(len)) != NULL)
            snprintf(env[k++], len, "%s=%s", o->envvar, o->val);
    }
    for (char **e = environ; *e != NULL; e++) {
        char *copy = strncmp(*e, "PG", 2) != 0 ? strdup(*e) : NULL;
        if (copy != NULL)
            env[k++] = copy;
    }
    PQconninfoFree(opts);
    return env;
}

/* pg_dump's environment (the source's connection settings), freed once the child has it. */
static void free_environment(char **env)
{
    for (char **e = env; e != NULL && *e != NULL; e++)
        free(*e);
    free(env);
}

/* Starts pg_dump; 0, or -1 with the problem set. */
static int dump_spawn(struct dbmove_job *j)
{
    char *const argv[] = {j->cfg->pg_dump, "--schema-only", "--no-publications",
                          "--no-subscriptions", NULL};
    posix_spawn_file_actions_t fa;
    char **env = dump_environment(j->src_db);
    j->copy->dump_out = temp_file();
    j->copy->dump_err = temp_file();
    int rc = env == NULL || j->copy->dump_out < 0 || j->copy->dump_err < 0 ? ENOMEM : 0;
    if (rc == 0 && (rc = posix_spawn_file_actions_init(&fa)) == 0) {
        posix_spawn_file_actions_adddup2(&fa, j->copy->dump_out, STDOUT_FILENO);
        posix_spawn_file_actions_adddup2(&fa, j->copy->dump_err, STDERR_FILENO);
        posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        rc = posix_spawnp(&j->copy->dump_pid, argv[0], &fa, NULL, argv, env);
        posix_spawn_file_actions_destroy(&fa);
    }
    free_environment(env);
    if (rc == 0)
        return 0;
    j->copy->dump_pid = 0;
    job_problem(j, "58000", "could not run \"%s\"", j->cfg->pg_dump);
    pg_error_detail(&j->problem, "%s", strerror(rc));
    pg_error_hint(&j->problem, "Install it, or name it with the setting pg_dump.");
    return -1;
}

/* The whole of fd from its start into a string; NULL when too large or unreadable. */
static char *read_all(int fd, size_t max)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size > max)
        return NULL;
    char *text = malloc((size_t)st.st_size + 1);
    if (text == NULL)
        return NULL;
    ssize_t got = pread(fd, text, (size_t)st.st_size, 0);
    if (got != st.st_size) {
        free(text);
        return NULL;
    }
    text[got] = '\0';
    return text;
}

/*
 * pg_dump (from 15.14, 16.10, 17.6 on) wraps its script in \restrict KEY
 * and \unrestrict KEY, psql's guard against a server that slips
 * meta-commands into the dump.  The server reads no meta-command, so
 * those two lines go; any other line that starts with a backslash outside
 * a statement would be one the server cannot run either, and fails the
 * load with the server's own error.
 */
static void strip_restrict_lines(char *script)
{
    char *out = script;
    for (char *line = script; *line != '\0';) {
        char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) + 1 : strlen(line);
        bool guard =
            strncmp(line, "\\restrict ", 10) == 0 || strncmp(line, "\\unrestrict ", 12) == 0;
        if (!guard) {
            memmove(out, line, len);
            out += len;
        }
        line += len;
    }
    *out = '\0';
}

/* pg_dump ended with status: its output is the script, or its error the problem. */
static void dump_ended(struct dbmove_job *j, int status)
{
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char *err = read_all(j->copy->dump_err, 1 << 20);
        char detail[DUMP_ERROR_MAX];
        snprintf(detail, sizeof(detail), "%s", err ? err : "");
        free(err);
        job_problem(j, "58000", "pg_dump of the source's schema failed (%s %d)",
                    WIFEXITED(status) ? "exit status" : "signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        pg_error_detail(&j->problem, "%s", detail);
        job_next(j);
        return;
    }
    if ((j->copy->schema = read_all(j->copy->dump_out, DUMP_MAX_BYTES)) == NULL) {
        job_problem(j, "54000", "the source's schema is over %d MB, or unreadable",
                    DUMP_MAX_BYTES >> 20);
        job_next(j);
        return;
    }
    strip_restrict_lines(j->copy->schema);
    if (job_query(j, j->dst_db, "loading the schema on the target", j->copy->schema, PGASYNC_SCRIPT,
                  NULL, job_take_nothing, NULL) != JOB_WAIT)
        job_next(j);
}

/* pg_dump is watched from the loop, never waited for: the worker serves its sessions meanwhile. */
static void dump_poll_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dbmove_job *j = arg;
    (void)fd;
    (void)what;
    int status;
    pid_t got = waitpid(j->copy->dump_pid, &status, WNOHANG);
    if (got == 0 && ++j->copy->dump_polls < DUMP_MAX_POLLS) {
        struct timeval tv = {0, DUMP_POLL_MS * 1000};
        evtimer_add(j->copy->dump_poll, &tv);
        return;
    }
    if (got == 0) {
        kill(j->copy->dump_pid, SIGKILL);
        waitpid(j->copy->dump_pid, &status, 0);
        j->copy->dump_pid = 0;
        job_problem(j, "57014", "pg_dump of the source's schema took over %d s",
                    DUMP_MAX_POLLS * DUMP_POLL_MS / 1000);
        job_next(j);
        return;
    }
    j->copy->dump_pid = 0;
    if (got < 0) {
        job_problem(j, "58000", "pg_dump could not be waited for");
        pg_error_detail(&j->problem, "%s", strerror(errno));
        job_next(j);
        return;
    }
    dump_ended(j, status);
}

int job_copy_schema(struct dbmove_job *j)
{
    if ((j->copy = calloc(1, sizeof(*j->copy))) == NULL ||
        (j->copy->dump_poll = evtimer_new(j->base, dump_poll_cb, j)) == NULL) {
        job_problem(j, "53200", "out of memory");
        return JOB_FAIL;
    }
    if (dump_spawn(j) != 0)
        return JOB_FAIL;
    struct timeval tv = {0, DUMP_POLL_MS * 1000};
    evtimer_add(j->copy->dump_poll, &tv);
    return JOB_WAIT;
}

void job_schema_free(struct dbmove_job *j)
{
    struct job_schema_copy *c = j->copy;
    if (c == NULL)
        return;
    if (c->dump_pid > 0) {
        int status;
        kill(c->dump_pid, SIGKILL);
        waitpid(c->dump_pid, &status, 0);
    }
    if (c->dump_poll != NULL)
        event_free(c->dump_poll);
    if (c->dump_out > 0)
        close(c->dump_out);
    if (c->dump_err > 0)
        close(c->dump_err);
    free(c->schema);
    free(c);
}
