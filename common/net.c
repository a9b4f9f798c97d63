/* net.c -- see net.h. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int net_set_nonblock(int fd, bool on)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
    return fcntl(fd, F_SETFL, fl);
}

void net_tcp_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int net_tcp_listen(const char *ip, int port, int backlog, int *bound_port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, backlog) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (bound_port) {
        socklen_t sl = sizeof(sa);
        getsockname(fd, (struct sockaddr *)&sa, &sl);
        *bound_port = ntohs(sa.sin_port);
    }
    return fd;
}

int net_tcp_connect(const char *host, int port, int timeout_ms)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    if (getaddrinfo(host, portstr, &hints, &res) != 0 || res == NULL) {
        errno = EHOSTUNREACH;
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        return -1;
    }
    int rc = connect(fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc != 0 && errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        rc = poll(&p, 1, timeout_ms);
        if (rc == 0) {
            close(fd);
            errno = ETIMEDOUT;
            return -1;
        }
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr) {
            close(fd);
            errno = soerr;
            return -1;
        }
        rc = 0;
    }
    if (rc != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    net_set_nonblock(fd, false);
    net_tcp_nodelay(fd);
    return fd;
}

int net_tcp_connect_nb(const char *host, int port)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    if (getaddrinfo(host, portstr, &hints, &res) != 0 || res == NULL) {
        errno = EHOSTUNREACH;
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        fd = -1;
        errno = e;
    }
    freeaddrinfo(res);
    if (fd >= 0)
        net_tcp_nodelay(fd);
    return fd;
}

/* sa for path ("@name": Linux's abstract namespace, no file); its length,
 * or 0 (errno set). */
static socklen_t unix_addr(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(sa->sun_path)) {
        errno = ENAMETOOLONG;
        return 0;
    }
    memcpy(sa->sun_path, path, n);
    if (path[0] != '@')
        return sizeof(*sa);
    sa->sun_path[0] = '\0';
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
}

int net_unix_listen(const char *path, unsigned mode, int backlog)
{
    struct sockaddr_un sa;
    socklen_t sl = unix_addr(path, &sa);
    if (sl == 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    bool abstract = path[0] == '@';
    if (!abstract)
        unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sl) != 0 || (!abstract && chmod(path, mode) != 0) ||
        listen(fd, backlog) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int net_unix_connect(const char *path)
{
    struct sockaddr_un sa;
    socklen_t sl = unix_addr(path, &sa);
    if (sl == 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sl) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

void net_peer_name(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(buf, len, "fd %d", fd);
        return;
    }
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(buf, len, "tcp %s:%d", ip, ntohs(in->sin_port));
    } else if (ss.ss_family == AF_UNIX) {
        struct ucred cr;
        socklen_t cl = sizeof(cr);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0)
            snprintf(buf, len, "unix pid %d", (int)cr.pid);
        else
            snprintf(buf, len, "unix fd %d", fd);
    } else {
        snprintf(buf, len, "fd %d", fd);
    }
}

ssize_t net_send_fds(int sock, const void *data, size_t len, const int *fds, int nfds)
{
    if (len == 0 || nfds < 0 || nfds > NET_MAX_FDS) {
        errno = EINVAL;
        return -1;
    }
    char cbuf[CMSG_SPACE(sizeof(int) * NET_MAX_FDS)];
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        memset(cbuf, 0, sizeof(cbuf));
        mh.msg_control = cbuf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t w;
    do
        w = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (w < 0 && errno == EINTR);
    return w;
}

ssize_t net_recv_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds)
{
    char cbuf[CMSG_SPACE(sizeof(int) * 4)];
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    ssize_t r;
    do {
        r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        int n = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *in = (int *)CMSG_DATA(cm);
        for (int i = 0; i < n; i++) {
            if (*nfds < maxfds)
                fds[(*nfds)++] = in[i];
            else
                close(in[i]);
        }
    }
    return r;
}

int net_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int net_read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t r = read(fd, p, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = EPIPE;
            return -1;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

/* ---------------------------------------------------------------- spinning */

static unsigned spin_max_us(void)
{
    static int max = -1;
    int m = __atomic_load_n(&max, __ATOMIC_RELAXED);
    if (m < 0) {
        const char *e = getenv("RAYC_SPIN_US");
        m = e && *e ? atoi(e) : NET_SPIN_DEFAULT_US;
        if (m < 0 || m > 10000)
            m = NET_SPIN_DEFAULT_US;
        __atomic_store_n(&max, m, __ATOMIC_RELAXED);
    }
    return (unsigned)m;
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

bool net_spin(int fd, net_spinner *s)
{
    unsigned max = spin_max_us();
    if (!s->init) {
        s->init = true;
        s->budget_us = max;
    }
    if (s->budget_us == 0) {
        if (max == 0 || ++s->idle_waits < 64)
            return false;
        s->idle_waits = 0;
        s->budget_us = max;
    }
    uint64_t end = mono_us() + s->budget_us;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    do {
        if (poll(&p, 1, 0) > 0) {
            s->budget_us = max;
            return true;
        }
    } while (mono_us() < end);
    s->budget_us /= 2;
    if (s->budget_us < 4)
        s->budget_us = 0;
    return false;
}
