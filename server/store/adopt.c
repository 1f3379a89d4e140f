/* Failover decisions (see adopt.h). */
#include <string.h>

#include "adopt.h"

bool tetherd_adopt_should_claim(uint8_t self, uint8_t id, const tetherd_member_t *m, bool redis_up)
{
    return redis_up && id && id != self && !m->alive && !m->adopted_by && m->generation != 0;
}

bool tetherd_adopt_wait(const tetherd_member_t *m, bool channel_alive)
{
    return !m->handover && channel_alive;
}

uint64_t tetherd_adopt_expect(const tetherd_member_t *m)
{
    return m->handover ? m->version : 0;
}

void tetherd_adopt_claim(uint8_t self, uint8_t id, uint64_t gen, const tether_addr_t *addr,
                         tether_store_rec_t *out)
{
    memset(out, 0, sizeof *out);
    out->kind = TETHER_STORE_NODE;
    out->u.node.node_id = id;
    out->u.node.addr = *addr;
    out->u.node.generation = gen + 1;
    out->u.node.adopted_by = self;
}

bool tetherd_adopt_fenced(uint8_t self, uint64_t ours, uint8_t id, const tetherd_member_t *m)
{
    return id == self && m->adopted_by && m->adopted_by != self && m->generation > ours;
}

uint8_t tetherd_adopt_route(uint8_t self, uint8_t holder, bool holder_alive)
{
    if (!holder)
        return 0;
    return holder == self || holder_alive ? holder : 0;
}
