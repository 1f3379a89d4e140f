/* Raw loopback UDP of the ceiling commands (relay-ceiling, fanout-ceiling):
 * a reference server is a forked child pinned to the server core, with
 * sockets sized as tetherd sizes its own and batches sent as tetherd sends
 * them (see bench.h). */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

int bench_parse_cpu(const char *cmd, const char *opt, const char *arg, int *out)
{
    uint32_t v;
    if (strcmp(arg, "-1") == 0) {
        *out = -1;
        return 0;
    }
    if (bench_parse_u32(arg, 0, 4095, &v) < 0)
        return bench_usage_error(cmd, "%s wants a CPU number, got '%s'", opt, arg);
    *out = (int)v;
    return 0;
}

void bench_pin_cpu(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

int bench_udp_socket(int bufsize, uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0)
        return -1;
    if (bufsize > 0) {
#ifdef SO_RCVBUFFORCE
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsize, sizeof bufsize) < 0)
#endif
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
#ifdef SO_SNDBUFFORCE
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsize, sizeof bufsize) < 0)
#endif
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize);
    }
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        close(fd);
        return -1;
    }
    if (port)
        *port = ntohs(a.sin_port);
    return fd;
}

uint32_t bench_sendmmsg_all(int fd, struct mmsghdr *msgs, uint32_t n)
{
    uint32_t i = 0;
    while (i < n) {
        int m = sendmmsg(fd, msgs + i, n - i, 0);
        if (m < 0 && errno == EINTR)
            continue;
        if (m <= 0)
            break;
        i += (uint32_t)m;
    }
    return i;
}
