/* One creation call on a file prepared first, through any trigger; or a file growing
 * block by block. Prints key=value lines: what the call(s) returned and what fstat saw.
 *
 * usage: extend --path FILE [--data START:LEN,...] [--call pwrite64|write|ftruncate]
 *               [--offset N] [--open rdwr|direct|append] [--attr a|i] [--unlink]
 *               [--tmpfile] [--seek N] [--growth STEP --end BYTES]
 *
 * --data     write the pattern over these byte ranges first (whole 4 KiB blocks),
 *            leaving holes between them
 * --offset   the byte the creation call writes (ftruncate: the new size is N + 1)
 * --attr     set the append-only (a) or immutable (i) attribute after opening, and
 *            clear it again before exiting (after the measurements)
 * --unlink   unlink FILE after opening it; --tmpfile: FILE is a directory and the file
 *            is made there with O_TMPFILE
 * --growth   instead of one creation call, one call per STEP bytes: the byte at the end
 *            of each new block (ftruncate: the size grows by STEP), up to END */
#include "common.h"
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>

/* Bytes of data blocks mapped (FIEMAP after a sync): unlike st_blocks, it leaves out
 * the filesystem's own metadata (extent tree blocks), whose count depends on where
 * the allocator happened to place the data. */
static long long mapped_bytes(int fd)
{
    static struct {
        struct fiemap map;
        struct fiemap_extent extents[256];
    } m;
    long long total = 0;
    unsigned long long start = 0;
    for (;;) {
        memset(&m, 0, sizeof m);
        m.map.fm_start = start;
        m.map.fm_length = ~0ULL - start;
        m.map.fm_flags = FIEMAP_FLAG_SYNC;
        m.map.fm_extent_count = 256;
        if (ioctl(fd, FS_IOC_FIEMAP, &m.map) != 0)
            die("FIEMAP");
        if (m.map.fm_mapped_extents == 0)
            return total;
        for (unsigned i = 0; i < m.map.fm_mapped_extents; i++) {
            struct fiemap_extent *e = &m.extents[i];
            total += e->fe_length;
            start = e->fe_logical + e->fe_length;
            if (e->fe_flags & FIEMAP_EXTENT_LAST)
                return total;
        }
    }
}

static long long call(int fd, const char *how, int64_t offset)
{
    static const char byte = 0;
    if (strcmp(how, "pwrite64") == 0)
        return pwrite64(fd, &byte, 1, offset);
    if (strcmp(how, "write") == 0) {
        if (lseek64(fd, offset, SEEK_SET) < 0)
            return -1;
        return write(fd, &byte, 1);
    }
    if (strcmp(how, "ftruncate") == 0)
        return ftruncate64(fd, offset + 1);
    die("--call: unknown %s", how);
    return -1;
}

static int set_flags(int fd, int flags)
{
    return ioctl(fd, FS_IOC_SETFLAGS, &flags);
}

int main(int argc, char **argv)
{
    prog_name = "extend";
    const char *path = opt(argc, argv, "--path", NULL);
    const char *how = opt(argc, argv, "--call", "pwrite64");
    const char *mode = opt(argc, argv, "--open", "rdwr");
    const char *attr = opt(argc, argv, "--attr", NULL);
    const char *data = opt(argc, argv, "--data", "");
    int64_t offset = opt_num(argc, argv, "--offset", 0);
    int64_t seek = opt_num(argc, argv, "--seek", -1);
    int64_t step = opt_num(argc, argv, "--growth", 0);
    int64_t end = opt_num(argc, argv, "--end", 0);
    if (!path)
        die("--path is required");

    int flags = O_RDWR | O_CLOEXEC;
    if (strcmp(mode, "direct") == 0)
        flags |= O_DIRECT;
    else if (strcmp(mode, "append") == 0)
        flags |= O_APPEND;
    else if (strcmp(mode, "wronly") == 0)
        flags = (flags & ~O_RDWR) | O_WRONLY;
    else if (strcmp(mode, "rdwr") != 0)
        die("--open: unknown %s", mode);
    int fd = flag(argc, argv, "--tmpfile") ? open(path, flags | O_TMPFILE, 0600) : open(path, flags | O_CREAT, 0600);
    if (fd < 0)
        die("open %s", path);

    /* Data goes in through a second, ordinary fd: O_DIRECT and O_APPEND would change it. */
    int dfd = open(path, O_RDWR | O_CLOEXEC);
    if (flag(argc, argv, "--tmpfile")) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        dfd = open(proc, O_RDWR | O_CLOEXEC);
    }
    for (const char *p = data; *p;) {
        char *colon, *next;
        long long start = strtoll(p, &colon, 10);
        if (*colon != ':')
            die("--data: START:LEN expected in %s", p);
        long long len = strtoll(colon + 1, &next, 10);
        static unsigned char block[BLOCK];
        for (long long at = start; at < start + len; at += BLOCK) {
            pattern(block, BLOCK, at / BLOCK);
            if (pwrite64(dfd, block, BLOCK, at) != BLOCK)
                die("--data: write at %lld", at);
        }
        p = *next == ',' ? next + 1 : next;
    }
    if (dfd >= 0 && fsync(dfd) != 0)
        die("fsync");
    if (dfd >= 0)
        close(dfd);
    if (flag(argc, argv, "--unlink") && unlink(path) != 0)
        die("unlink %s", path);
    int old_flags = 0;
    if (attr) {
        if (ioctl(fd, FS_IOC_GETFLAGS, &old_flags) != 0)
            die("FS_IOC_GETFLAGS");
        int bit = strcmp(attr, "a") == 0 ? FS_APPEND_FL : FS_IMMUTABLE_FL;
        if (set_flags(fd, old_flags | bit) != 0)
            die("FS_IOC_SETFLAGS");
    }
    if (seek >= 0)
        lseek64(fd, seek, SEEK_SET);

    struct stat64 before = fstat_or_die(fd);
    kv("size_before", before.st_size);
    kv("allocated_before", (long long)before.st_blocks * 512);
    kv("offset_before", lseek64(fd, 0, SEEK_CUR));
    if (step > 0) {
        long long calls = 0, failed = 0;
        for (int64_t at = before.st_size + step - 1; at < end; at += step, calls++)
            if (call(fd, how, at) < 0)
                failed++;
        kv("calls", calls);
        kv("failed", failed);
        kv("mapped_after", mapped_bytes(fd));
    } else {
        errno = 0;
        long long ret = call(fd, how, offset);
        kv("ret", ret);
        kv("errno", ret < 0 ? errno : 0);
    }
    kv("offset_after", lseek64(fd, 0, SEEK_CUR));
    struct stat64 after = fstat_or_die(fd);
    kv("size_after", after.st_size);
    kv("allocated_after", (long long)after.st_blocks * 512);
    if (attr && set_flags(fd, old_flags) != 0)
        die("restoring the attributes");
    return 0;
}
