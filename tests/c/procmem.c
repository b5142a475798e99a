/* What a debugger does to set a breakpoint: a one-byte pwrite64 into /proc/self/mem at
 * the address of the byte (far above NOSPARSE_MIN_SIZE). procfs is no filesystem the
 * library acts on: the write must succeed, silently, with NOSPARSE_ON_ERROR=fail too.
 * Output: key=value lines. */
#include "common.h"
#include <sys/mman.h>

int main(void)
{
    prog_name = "procmem";
    unsigned char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        die("mmap");
    int fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        die("open /proc/self/mem");
    kv("address_above_64m", (uintptr_t)page >= (64u << 20));
    errno = 0;
    long long ret = pwrite64(fd, "\xcc", 1, (off64_t)(uintptr_t)(page + 100));
    kv("ret", ret);
    kv("errno", ret < 0 ? errno : 0);
    kv("byte", page[100]);
    return 0;
}
