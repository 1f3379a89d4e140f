/* The reuseport steering program (see steer.h for the contract and the
 * record formats it reads). */
#include <errno.h>
#include <sys/socket.h>

#include "steer.h"
#include "tether/common.h"

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif

/* Index past any group: the kernel falls back to its 4-tuple hash. */
#define STEER_BY_HASH 0xffffffffu

int tetherd_steer_prog(uint8_t base, unsigned n, struct sock_filter *p)
{
    if (n == 0 || base == 0 || base + n - 1 > 255)
        return TETHER_EINVAL;
    /* Jump offsets count the instructions after the jump. */
    const struct sock_filter prog[] = {
        /* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),
        /* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 15, 0), /* empty: 17 (a load of byte 0
                                                                 would end it with 0) */
        /* 2 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),               /* X = length */
        /* 3 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 0),
        /* 4 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 25, 0, 4), /* not tls12_cid: 9 */
        /* 5 */ BPF_STMT(BPF_MISC | BPF_TXA, 0),
        /* 6 */ BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 13, 0, 10), /* short: 17 */
        /* 7 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 11),
        /* 8 */ BPF_JUMP(BPF_JMP | BPF_JA, 5, 0, 0), /* to 14 */
        /* 9 */ BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xf0),
        /* 10 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x30, 0, 6), /* not 001C with C: 17 */
        /* 11 */ BPF_STMT(BPF_MISC | BPF_TXA, 0),
        /* 12 */ BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 2, 0, 4), /* short: 17 */
        /* 13 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 1),
        /* 14: A is the node byte; below base it wraps past n (unsigned) */
        /* 14 */ BPF_STMT(BPF_ALU | BPF_SUB | BPF_K, base),
        /* 15 */ BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, n, 1, 0), /* not ours: 17 */
        /* 16 */ BPF_STMT(BPF_RET | BPF_A, 0),
        /* 17 */ BPF_STMT(BPF_RET | BPF_K, STEER_BY_HASH),
    };
    _Static_assert(sizeof prog / sizeof prog[0] <= TETHERD_STEER_MAX_INSNS, "program too long");
    for (size_t i = 0; i < sizeof prog / sizeof prog[0]; i++)
        p[i] = prog[i];
    return (int)(sizeof prog / sizeof prog[0]);
}

int tetherd_steer_attach(int fd, uint8_t base, unsigned n)
{
    struct sock_filter prog[TETHERD_STEER_MAX_INSNS];
    int len = tetherd_steer_prog(base, n, prog);
    if (len < 0)
        return len;
    struct sock_fprog fp = {.len = (unsigned short)len, .filter = prog};
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fp, sizeof fp) != 0)
        return errno == EINVAL ? TETHER_EINVAL : TETHER_EIO;
    return 0;
}
