/*
 * mmdb_writer.c — runs tests/lib/make_mmdb.pl with posix_spawn.
 */
#include "tests/unit/mmdb_writer.h"

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int mmdb_write(const char *srcdir, const char *path, const char *layout, const char *ipv,
               const char *type, const char *const *nets, size_t nnets)
{
    char script[4096];
    int len = snprintf(script, sizeof script, "%s/tests/lib/make_mmdb.pl",
                       srcdir != NULL && srcdir[0] != '\0' ? srcdir : ".");
    if (len < 0 || (size_t)len >= sizeof script) {
        fprintf(stderr, "# PGNEAR_SRCDIR is too long\n");
        return -1;
    }
    if (access(script, R_OK) != 0) {
        fprintf(stderr, "# %s: %s (set PGNEAR_SRCDIR to the source tree)\n", script,
                strerror(errno));
        return -1;
    }
    const char **argv = calloc(nnets + 12, sizeof(*argv));
    if (argv == NULL) {
        fprintf(stderr, "# out of memory\n");
        return -1;
    }
    size_t n = 0;
    argv[n++] = "perl";
    argv[n++] = script;
    argv[n++] = "--out";
    argv[n++] = path;
    argv[n++] = "--layout";
    argv[n++] = layout;
    argv[n++] = "--ip-version";
    argv[n++] = ipv;
    if (type != NULL) {
        argv[n++] = "--database-type";
        argv[n++] = type;
    }
    for (size_t i = 0; i < nnets; i++)
        argv[n++] = nets[i];
    argv[n] = NULL;
    pid_t pid;
    int status, rc = posix_spawnp(&pid, "perl", NULL, NULL, (char *const *)argv, environ);
    free(argv);
    if (rc != 0) {
        fprintf(stderr, "# cannot run perl: %s\n", strerror(rc));
        return -1;
    }
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "# make_mmdb.pl failed for %s\n", path);
        return -1;
    }
    return 0;
}
