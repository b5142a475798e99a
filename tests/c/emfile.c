/* Two creation calls, the first while every file descriptor is in use: the library
 * cannot read its settings file then, and must read it at the next call rather than
 * take the settings for untrusted for the rest of the process.
 *
 * usage: emfile --dir DIR --size BYTES
 *
 * Makes DIR/first and DIR/second, each with pwrite64 of one byte at SIZE - 1; before
 * the first, opens /dev/null until EMFILE (with RLIMIT_NOFILE lowered to 64); before
 * the second, closes those again. Output: key=value lines. */
#include "common.h"
#include <sys/resource.h>
#include <unistd.h>

static int create(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        die("open %s", path);
    return fd;
}

int main(int argc, char **argv)
{
    prog_name = "emfile";
    const char *dir = opt(argc, argv, "--dir", NULL);
    int64_t size = opt_num(argc, argv, "--size", 0);
    if (!dir || size <= 0)
        die("--dir and --size are required");
    struct rlimit lim = {64, 64};
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0)
        die("setrlimit");
    int first = create(dir, "first"), second = create(dir, "second");
    int held[64], n = 0;
    while (n < 64) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            break;
        held[n++] = fd;
    }
    kv("emfile", errno == EMFILE);
    kv("first_ret", pwrite64(first, "", 1, size - 1));
    while (n > 0)
        close(held[--n]);
    kv("second_ret", pwrite64(second, "", 1, size - 1));
    struct stat64 a, b;
    if (fstat64(first, &a) != 0 || fstat64(second, &b) != 0)
        die("fstat");
    kv("first_allocated", (long long)a.st_blocks * 512);
    kv("second_allocated", (long long)b.st_blocks * 512);
    return 0;
}
