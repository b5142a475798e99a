/* A program holding a write lease on its own file makes the creation call: the library
 * must not open the file again (that would break the lease: SIGIO, and the lease lost
 * or, with a handler that keeps it, the open waiting for lease-break-time).
 *
 * usage: lease --path FILE --size BYTES
 * Output: key=value lines. */
#define _GNU_SOURCE
#include "common.h"
#include <signal.h>

static volatile sig_atomic_t breaks;

static void on_break(int sig)
{
    (void)sig;
    breaks++;
}

int main(int argc, char **argv)
{
    prog_name = "lease";
    const char *path = opt(argc, argv, "--path", NULL);
    int64_t size = opt_num(argc, argv, "--size", 0);
    if (!path || size <= 0)
        die("--path and --size are required");
    signal(SIGIO, on_break);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        die("open %s", path);
    if (fcntl(fd, F_SETLEASE, F_WRLCK) != 0)
        die("F_SETLEASE");
    kv("ret", pwrite64(fd, "", 1, size - 1));
    kv("lease", fcntl(fd, F_GETLEASE) == F_WRLCK);
    kv("breaks", breaks);
    kv("allocated", (long long)fstat_or_die(fd).st_blocks * 512);
    return 0;
}
