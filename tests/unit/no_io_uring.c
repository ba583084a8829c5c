/*
 * no_io_uring.c
 *    Runs a program as on a kernel without io_uring: a seccomp filter makes
 *    io_uring_setup (or, with --deny register, io_uring_register, which
 *    the probe of operations uses) fail with ENOSYS, or with EPERM as a
 *    kernel whose io_uring_disabled sysctl forbids it answers.  Every other
 *    system call goes through.  170_io_backend.t starts pgnear through it
 *    to see io_backend = auto fall back to epoll and io_backend = io_uring
 *    refuse to start, without taking io_uring from anything else running.
 *
 *    no_io_uring [--deny setup|register] [--errno ENOSYS|EPERM] PROGRAM [ARG...]
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define THIS_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define THIS_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "no_io_uring: no seccomp architecture constant for this machine"
#endif

static int deny(long nr, int err)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, THIS_AUDIT_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned int)nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned int)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(filter) / sizeof(filter[0]), .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

int main(int argc, char **argv)
{
    long nr = SYS_io_uring_setup;
    int err = ENOSYS, i = 1;
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--deny") == 0 && strcmp(argv[i + 1], "setup") == 0)
            nr = SYS_io_uring_setup;
        else if (strcmp(argv[i], "--deny") == 0 && strcmp(argv[i + 1], "register") == 0)
            nr = SYS_io_uring_register;
        else if (strcmp(argv[i], "--errno") == 0 && strcmp(argv[i + 1], "ENOSYS") == 0)
            err = ENOSYS;
        else if (strcmp(argv[i], "--errno") == 0 && strcmp(argv[i + 1], "EPERM") == 0)
            err = EPERM;
        else
            break;
    }
    if (i >= argc || argv[i][0] == '-') {
        fprintf(stderr, "usage: no_io_uring [--deny setup|register] [--errno ENOSYS|EPERM] "
                        "PROGRAM [ARG...]\n");
        return 2;
    }
    if (deny(nr, err) != 0) {
        fprintf(stderr, "no_io_uring: cannot install the seccomp filter: %s\n", strerror(errno));
        return 1;
    }
    execvp(argv[i], argv + i);
    fprintf(stderr, "no_io_uring: cannot run %s: %s\n", argv[i], strerror(errno));
    return 127;
}
