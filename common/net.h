/*
 * net.h -- thin socket helpers (Redis's anet in spirit). Every function
 * returns a file descriptor or 0 on success, -1 on failure with errno set;
 * every descriptor is close-on-exec.
 */
#ifndef RAYC_NET_H
#define RAYC_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Listen on ip:port (port 0: any free port, reported in *bound_port). */
int net_tcp_listen(const char *ip, int port, int backlog, int *bound_port);
/* Connect with a timeout; the returned socket is blocking, TCP_NODELAY. */
int net_tcp_connect(const char *host, int port, int timeout_ms);
/* Start a non-blocking connect; the socket is returned at once (the connect
 * completes or fails later: the first read reports the error). */
int net_tcp_connect_nb(const char *host, int port);
/* Listen on a Unix socket at path (an old socket file is replaced) with
 * mode. A path "@name" is in Linux's abstract namespace (no file, no mode:
 * gone with the last descriptor; seen only in the same network namespace);
 * net_unix_connect takes the same. */
int net_unix_listen(const char *path, unsigned mode, int backlog);
int net_unix_connect(const char *path);
int net_set_nonblock(int fd, bool on);
void net_tcp_nodelay(int fd);
/* "tcp 127.0.0.1:5123" / "unix pid 42" for logs. */
void net_peer_name(int fd, char *buf, size_t len);

#define NET_MAX_FDS 4 /* descriptors one net_send_fds may attach */

/* One non-blocking sendmsg of up to len (> 0) bytes of data with nfds
 * descriptors attached to the first byte (SCM_RIGHTS). Returns the bytes
 * sent (at least 1: the descriptors went with them), or -1 with errno
 * (EAGAIN: nothing sent, try again when writable; EINVAL: len 0 or more
 * than NET_MAX_FDS descriptors). */
ssize_t net_send_fds(int sock, const void *data, size_t len, const int *fds, int nfds);
/* Receive up to len bytes; descriptors that arrive are stored in fds (up to
 * maxfds) and counted in *nfds. Returns bytes read, 0 on EOF, -1 on error. */
ssize_t net_recv_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds);

/* Blocking write/read of exactly len bytes; -1 on error or EOF (errno EPIPE). */
int net_write_all(int fd, const void *buf, size_t len);
int net_read_all(int fd, void *buf, size_t len);

/* Adaptive busy-polling before a blocking read (a reply expected within
 * microseconds: on these VMs a sleep and wake-up cost 20-30 us each). The
 * budget starts at the maximum (RAYC_SPIN_US in the environment, default
 * NET_SPIN_DEFAULT_US, 0 turns spinning off), is halved by each spin that
 * finds nothing and restored by one that finds data; at zero, every 64th
 * wait tries the full budget again. Zero-initialise. */
#define NET_SPIN_DEFAULT_US 50
typedef struct {
    unsigned budget_us;
    unsigned idle_waits;
    bool init;
} net_spinner;
/* Poll fd (no sleep) until it is readable or the budget is spent. true:
 * readable now. */
bool net_spin(int fd, net_spinner *s);

#endif
