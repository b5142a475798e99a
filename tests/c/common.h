/* Shared by the C programs the tests run with and without the library: option
 * parsing, the data pattern the tests read back from outside, and key=value output.
 * Only libc; built by tests/common/cprog.rs with -m32 for the i686 suite. */
#ifndef NOSPARSE_TEST_COMMON_H
#define NOSPARSE_TEST_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096
/* Each program uses some of these helpers; -Werror must not fail on the others. */
#define HELPER __attribute__((unused)) static

static const char *prog_name = "test";

HELPER void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog_name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (errno %d)\n", errno);
    va_end(ap);
    exit(2);
}

/* The value of `--name VALUE`, or `def`. */
HELPER const char *opt(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return def;
}

HELPER int64_t opt_num(int argc, char **argv, const char *name, int64_t def)
{
    const char *v = opt(argc, argv, name, NULL);
    if (!v)
        return def;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (*end)
        die("%s: not a number: %s", name, v);
    return n;
}

/* Whether the flag `--name` (without a value) is given. */
HELPER int flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

/* The pattern of the block tagged `tag`: never zero, so it cannot be mistaken for a
 * hole or a zero fill. tests/common/mod.rs has the same function. */
HELPER void pattern(unsigned char *buf, size_t len, uint64_t tag)
{
    for (size_t j = 0; j < len; j++)
        buf[j] = (unsigned char)(1 + (tag * 31 + j) % 251);
}

HELPER void kv(const char *key, long long value)
{
    printf("%s=%lld\n", key, value);
    fflush(stdout);
}

HELPER struct stat64 fstat_or_die(int fd)
{
    struct stat64 st;
    if (fstat64(fd, &st) != 0)
        die("fstat");
    return st;
}

HELPER double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

HELPER void sleep_us(long us)
{
    struct timespec t = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

#endif
