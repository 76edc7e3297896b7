/*
 * A fault-injection shim for stowage's tests, loaded with LD_PRELOAD into the real binary.
 *
 * It counts the calls of one kind of operation on files below a path prefix and makes the Nth
 * of them fail, so every write, fsync and rename of a command can be made to fail in turn
 * without changing the program. Configured by the environment:
 *
 *   STOWAGE_FAULT_OP      write | fsync | rename
 *   STOWAGE_FAULT_NTH     which matching call fails (1 = the first)
 *   STOWAGE_FAULT_ERROR   EIO | ENOSPC | SHORT (SHORT: the write takes half of its bytes, at
 *                         least one, and reports that; a correct caller writes the rest)
 *   STOWAGE_FAULT_PATH    only files whose path starts with this prefix count
 *   STOWAGE_FAULT_LOG     when the fault fires, a line naming the call and file is appended here;
 *                         when the program ends, a line `count N` with the number of matching
 *                         calls it made (so a test learns how many there are to strike)
 *
 * write counts write, pwrite, pwrite64, writev and pwritev on regular files; fsync counts fsync,
 * fdatasync and syncfs; rename counts rename, renameat and renameat2 (by their target path).
 * The file of a descriptor is found through /proc/self/fd.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum op { OP_NONE, OP_WRITE, OP_FSYNC, OP_RENAME };
enum error { ERR_EIO, ERR_ENOSPC, ERR_SHORT };

static enum op fault_op = OP_NONE;
static long fault_nth = 0;
static enum error fault_error = ERR_EIO;
static const char *fault_prefix = NULL;
static const char *fault_log = NULL;
static atomic_long seen = 0;
static atomic_int fired = 0;

__attribute__((constructor)) static void configure(void) {
    const char *op = getenv("STOWAGE_FAULT_OP");
    const char *nth = getenv("STOWAGE_FAULT_NTH");
    const char *error = getenv("STOWAGE_FAULT_ERROR");
    fault_prefix = getenv("STOWAGE_FAULT_PATH");
    fault_log = getenv("STOWAGE_FAULT_LOG");
    if (!op || !nth || !fault_prefix)
        return;
    if (strcmp(op, "write") == 0)
        fault_op = OP_WRITE;
    else if (strcmp(op, "fsync") == 0)
        fault_op = OP_FSYNC;
    else if (strcmp(op, "rename") == 0)
        fault_op = OP_RENAME;
    fault_nth = strtol(nth, NULL, 10);
    if (error && strcmp(error, "ENOSPC") == 0)
        fault_error = ERR_ENOSPC;
    else if (error && strcmp(error, "SHORT") == 0)
        fault_error = ERR_SHORT;
}

__attribute__((destructor)) static void report_count(void) {
    if (!fault_log || fault_op == OP_NONE)
        return;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, fault_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    char line[64];
    int n = snprintf(line, sizeof line, "count %ld\n", atomic_load(&seen));
    if (n > 0)
        syscall(SYS_write, fd, line, (size_t)n);
    syscall(SYS_close, fd);
}

static int under_prefix(const char *path) {
    size_t n = strlen(fault_prefix);
    return path && strncmp(path, fault_prefix, n) == 0;
}

/* The path of a descriptor, if it is a regular file (or, for fsync, a directory). */
static int fd_path(int fd, char *out, size_t size, int regular_only) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = syscall(SYS_readlinkat, AT_FDCWD, link, out, size - 1);
    if (n <= 0)
        return 0;
    out[n] = 0;
    if (regular_only) {
        struct stat st;
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
            return 0;
    }
    return 1;
}

static void log_fault(const char *call, const char *path) {
    if (!fault_log)
        return;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, fault_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    char line[PATH_MAX + 128];
    int n = snprintf(line, sizeof line, "%s %s %ld %s\n", call,
                     fault_error == ERR_SHORT ? "SHORT" : fault_error == ERR_ENOSPC ? "ENOSPC" : "EIO",
                     fault_nth, path);
    if (n > 0)
        syscall(SYS_write, fd, line, (size_t)n);
    syscall(SYS_close, fd);
}

/* Whether this call of `op` on `path` is the one to fail. */
static int strikes(enum op op, const char *call, const char *path) {
    if (op != fault_op || !under_prefix(path))
        return 0;
    long count = atomic_fetch_add(&seen, 1) + 1;
    if (count != fault_nth)
        return 0;
    atomic_store(&fired, 1);
    log_fault(call, path);
    return 1;
}

static int fail_errno(void) {
    return fault_error == ERR_ENOSPC ? ENOSPC : EIO;
}

/* The C library's own `name`, looked up once. */
#define REAL(name) \
    static __typeof__(&name) real_##name = NULL; \
    if (!real_##name) \
        real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

enum verdict { PASS, FAIL, SHORT };

/* What becomes of a write of `count` bytes to `fd`: it passes, fails (errno set), or takes only
 * `*part` bytes. */
static enum verdict judge_write(const char *call, int fd, size_t count, size_t *part) {
    char path[PATH_MAX];
    *part = count;
    if (fault_op != OP_WRITE || !fd_path(fd, path, sizeof path, 1))
        return PASS;
    if (!strikes(OP_WRITE, call, path))
        return PASS;
    if (fault_error == ERR_SHORT) {
        if (count < 2)
            return PASS;
        *part = count / 2;
        return SHORT;
    }
    errno = fail_errno();
    return FAIL;
}

ssize_t write(int fd, const void *buf, size_t count) {
    REAL(write);
    size_t part;
    if (judge_write("write", fd, count, &part) == FAIL)
        return -1;
    return real_write(fd, buf, part);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    REAL(pwrite);
    size_t part;
    if (judge_write("pwrite", fd, count, &part) == FAIL)
        return -1;
    return real_pwrite(fd, buf, part, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    REAL(pwrite64);
    size_t part;
    if (judge_write("pwrite64", fd, count, &part) == FAIL)
        return -1;
    return real_pwrite64(fd, buf, part, offset);
}

static size_t iov_total(const struct iovec *iov, int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    return total;
}

/* The first `part` bytes of a vector, as one buffer: part of its first non-empty one. */
static struct iovec iov_prefix(const struct iovec *iov, int n, size_t part) {
    struct iovec one = {0};
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len > 0) {
            one = iov[i];
            if (one.iov_len > part)
                one.iov_len = part;
            break;
        }
    }
    return one;
}

ssize_t writev(int fd, const struct iovec *iov, int n) {
    REAL(writev);
    size_t part;
    switch (judge_write("writev", fd, iov_total(iov, n), &part)) {
    case FAIL:
        return -1;
    case SHORT: {
        struct iovec one = iov_prefix(iov, n, part);
        return real_writev(fd, &one, 1);
    }
    default:
        return real_writev(fd, iov, n);
    }
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t offset) {
    REAL(pwritev);
    size_t part;
    switch (judge_write("pwritev", fd, iov_total(iov, n), &part)) {
    case FAIL:
        return -1;
    case SHORT: {
        struct iovec one = iov_prefix(iov, n, part);
        return real_pwritev(fd, &one, 1, offset);
    }
    default:
        return real_pwritev(fd, iov, n, offset);
    }
}

static int struck_sync(const char *call, int fd) {
    char path[PATH_MAX];
    if (fault_op != OP_FSYNC || !fd_path(fd, path, sizeof path, 0))
        return 0;
    if (!strikes(OP_FSYNC, call, path))
        return 0;
    if (fault_error == ERR_SHORT)
        return 0;
    errno = fail_errno();
    return 1;
}

int fsync(int fd) {
    REAL(fsync);
    if (struck_sync("fsync", fd))
        return -1;
    return real_fsync(fd);
}

int fdatasync(int fd) {
    REAL(fdatasync);
    if (struck_sync("fdatasync", fd))
        return -1;
    return real_fdatasync(fd);
}

int syncfs(int fd) {
    REAL(syncfs);
    if (struck_sync("syncfs", fd))
        return -1;
    return real_syncfs(fd);
}

/* The absolute form of `path` relative to directory descriptor `dirfd`. */
static void at_path(int dirfd, const char *path, char *out, size_t size) {
    if (path[0] == '/' || dirfd == AT_FDCWD) {
        if (path[0] == '/') {
            snprintf(out, size, "%s", path);
        } else {
            char cwd[PATH_MAX];
            if (syscall(SYS_getcwd, cwd, sizeof cwd) > 0)
                snprintf(out, size, "%s/%s", cwd, path);
            else
                snprintf(out, size, "%s", path);
        }
        return;
    }
    char dir[PATH_MAX];
    if (fd_path(dirfd, dir, sizeof dir, 0))
        snprintf(out, size, "%s/%s", dir, path);
    else
        snprintf(out, size, "%s", path);
}

static int struck_rename(const char *call, int dirfd, const char *to) {
    if (fault_op != OP_RENAME || fault_error == ERR_SHORT)
        return 0;
    char path[2 * PATH_MAX + 2];
    at_path(dirfd, to, path, sizeof path);
    if (!strikes(OP_RENAME, call, path))
        return 0;
    errno = fail_errno();
    return 1;
}

int rename(const char *from, const char *to) {
    REAL(rename);
    if (struck_rename("rename", AT_FDCWD, to))
        return -1;
    return real_rename(from, to);
}

int renameat(int from_dir, const char *from, int to_dir, const char *to) {
    REAL(renameat);
    if (struck_rename("renameat", to_dir, to))
        return -1;
    return real_renameat(from_dir, from, to_dir, to);
}

int renameat2(int from_dir, const char *from, int to_dir, const char *to, unsigned int flags) {
    REAL(renameat2);
    if (struck_rename("renameat2", to_dir, to))
        return -1;
    return real_renameat2(from_dir, from, to_dir, to, flags);
}
