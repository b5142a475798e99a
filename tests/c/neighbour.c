/* A neighbour writing on a filesystem while another process repeats creation calls
 * that cannot fit there. Without the library the neighbour never runs out of room;
 * it must not with it either.
 *
 * usage: neighbour --dir DIR --size BYTES [--seconds S] [--every-ms MS] [--mine BYTES]
 *
 * The parent creates DIR/big-N (one byte at size - 1) every MS milliseconds, closing
 * and unlinking each; a child writes DIR/neighbour in 1 MiB pieces up to --mine bytes
 * with fdatasync, truncates it, and starts again. Output: creations, creation_failures
 * (calls that did not return 1), neighbour_writes, neighbour_enospc. */
#include "common.h"
#include <sys/mman.h>
#include <sys/wait.h>

#define PIECE (1 << 20)

int main(int argc, char **argv)
{
    prog_name = "neighbour";
    const char *dir = opt(argc, argv, "--dir", NULL);
    int64_t size = opt_num(argc, argv, "--size", 0);
    double seconds = opt_num(argc, argv, "--seconds", 2);
    long every_ms = opt_num(argc, argv, "--every-ms", 20);
    int64_t mine = opt_num(argc, argv, "--mine", 32 << 20);
    if (!dir || size <= 0)
        die("--dir and --size are required");
    volatile long long *counts =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (counts == MAP_FAILED)
        die("mmap");
    volatile int *stop = (volatile int *)&counts[8];

    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        char p[4096];
        snprintf(p, sizeof p, "%s/neighbour", dir);
        int fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
            die("open %s", p);
        static unsigned char buf[PIECE];
        memset(buf, 0x5a, sizeof buf);
        int64_t at = 0;
        while (!*stop) {
            if (pwrite64(fd, buf, PIECE, at) == PIECE && fdatasync(fd) == 0) {
                counts[0]++;
            } else if (errno == ENOSPC) {
                counts[1]++;
            } else {
                die("neighbour write");
            }
            at += PIECE;
            if (at >= mine) {
                at = 0;
                if (ftruncate64(fd, 0) != 0 || fsync(fd) != 0)
                    die("neighbour truncate");
            }
        }
        _exit(0);
    }

    long long creations = 0, failures = 0;
    static const char byte = 0;
    for (double end = now_s() + seconds; now_s() < end; creations++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/big-%lld", dir, creations);
        int fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
            die("open %s", p);
        if (pwrite64(fd, &byte, 1, size - 1) != 1)
            failures++;
        close(fd);
        unlink(p);
        sleep_us(every_ms * 1000);
    }
    *stop = 1;
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("neighbour failed (status %d)", status);
    kv("creations", creations);
    kv("creation_failures", failures);
    kv("neighbour_writes", counts[0]);
    kv("neighbour_enospc", counts[1]);
    return 0;
}
