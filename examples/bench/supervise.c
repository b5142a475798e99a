/* The supervise benchmark's program (scripts/bench-supervise.sh), linked statically
 * so that the launcher supervises it. Prints one number: nanoseconds.
 *
 *   supervise loop N PATH        N 16-byte pwrite64s at offset 0: ns per call (the
 *                                fastest of 20 chunks, in the thread's CPU time, so
 *                                that waiting for a core on a busy machine is not
 *                                counted)
 *   supervise allowall N PATH    the same under a one-instruction allow-all filter
 *   supervise create SIZE PATH   one pwrite64 of the last byte of a new file: ns
 *   supervise fallocate SIZE PATH  fallocate(2) of SIZE bytes of a new file: ns
 *   supervise true               nothing (start-up) */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long clock_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long raw_pwrite(int fd, const void *buf, long n, long long off)
{
#ifdef __i386__
    return syscall(SYS_pwrite64, fd, buf, n, (unsigned long)off, (unsigned long)((unsigned long long)off >> 32));
#else
    return syscall(SYS_pwrite64, fd, buf, n, off);
#endif
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    if (!strcmp(argv[1], "true"))
        return 0;
    if (argc != 4)
        return 2;
    long long n = atoll(argv[2]);
    int fd = open(argv[3], O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror(argv[3]);
        return 2;
    }
    char buf[16] = {0};
    long long t0, t1;
#define now() clock_ns(CLOCK_MONOTONIC)
    if (!strcmp(argv[1], "allowall")) {
        struct sock_filter code[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
        struct sock_fprog prog = {1, code};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)) {
            perror("seccomp");
            return 2;
        }
    }
    if (!strcmp(argv[1], "loop") || !strcmp(argv[1], "allowall")) {
        enum { CHUNKS = 20 };
        long long best = -1, per = n / CHUNKS > 0 ? n / CHUNKS : 1;
        for (int c = 0; c < CHUNKS; c++) {
            t0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
            for (long long i = 0; i < per; i++)
                if (raw_pwrite(fd, buf, sizeof buf, 0) != sizeof buf)
                    return 3;
            t1 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
            if (best < 0 || t1 - t0 < best)
                best = t1 - t0;
        }
        printf("%.1f\n", (double)best / (double)per);
    } else if (!strcmp(argv[1], "create")) {
        t0 = now();
        if (raw_pwrite(fd, "x", 1, n - 1) != 1)
            return 3;
        t1 = now();
        printf("%lld\n", t1 - t0);
    } else if (!strcmp(argv[1], "fallocate")) {
        t0 = now();
        if (fallocate(fd, 0, 0, n))
            return 3;
        t1 = now();
        printf("%lld\n", t1 - t0);
    } else {
        return 2;
    }
    return 0;
}
