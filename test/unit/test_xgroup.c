/* Unit tests for group observations whose members' tunnels are on
 * another node (lib/proxy/xobserve.c with group.c;
 * draft-ietf-core-groupcomm-proxy-07 §3.5.2, RFC 7641): the member is
 * observed through node 1's aggregate of its resource at node 2, every
 * notification reaches the group's client with Reply-From, a confirmable
 * one checks the client past T' (acknowledged: it goes on; refused or
 * unacknowledged: the group observation ends at every member, node 2's
 * device-side observation cancelled), and a member silent until T' is
 * dropped there. */
#include "xrelay_fixture.h"

#define MT 2           /* Multicast-Timeout */
#define REPLY_FROM 248 /* the default Reply-From option number */

/* A group observation of grp's /temp (Observe 0, T' = 2 s) from `c`;
 * `up` gets the registration node 2 sends to dev1. */
static void group_observe(const tether_peer_t *c, tether_coap_msg_t *up)
{
    const char *mem[] = {"dev1"};
    assert_int_equal(tether_node_group_set(X.f[1].node, "grp", NULL, mem, 1), 0);
    tether_coap_msg_t m;
    uint8_t t = 2;
    get_msg(&m, TETHER_COAP_NON, 0x4400, "gk", "grp", "temp", 0);
    tether_coap_msg_add_opt(&m, MT, &t, 1);
    clear_cap();
    input(1, c, &m);
    assert_true(cap_find(2, TETHER_LINK_DTLS, 7, 0, up, -1) >= 0);
    assert_int_equal(observe_of(up), 0); /* node 2 observes dev1 */
}

/* The group's client got `payload` from dev1 as a notification. */
static void client_got(const char *payload, tether_coap_msg_t *r)
{
    assert_true(cap_find(1, TETHER_LINK_PLAIN, 0, 50000, r, -1) >= 0);
    assert_int_equal(r->code, TETHER_COAP_CONTENT);
    assert_memory_equal(r->token, "gk", 2);
    assert_memory_equal(r->payload, payload, strlen(payload));
    assert_true(observe_of(r) != 0xffffffff);
    const tether_coap_opt_t *rf = tether_coap_msg_find_opt(r, REPLY_FROM);
    assert_non_null(rf); /* names the member (draft §3.5.2) */
    assert_true(rf->len > 4 && memmem(rf->val, rf->len, "dev1", 4) != NULL);
}

static void test_remote_member_notifies_the_group(void **state)
{
    (void)state;
    register_dev1_on_2();
    const tether_node_stats_t *s1 = tether_node_stats(X.f[1].node);
    const tether_node_stats_t *s2 = tether_node_stats(X.f[2].node);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t up, r, m;
    group_observe(&client, &up);
    assert_int_equal(s1->observe_observers, 1);
    clear_cap();
    dev_answer(&up, "20", 5);
    client_got("20", &r);
    uint32_t seq = observe_of(&r);
    clear_cap();
    dev_notify(2, 7, up.token, up.tkl, 6, "21");
    client_got("21", &r);
    assert_int_equal(r.type, TETHER_COAP_NON);
    assert_int_equal(observe_of(&r), seq + 1);
    /* Past T' the group observation lives while its member notifies; the
     * first notification then checks the client (a CON), acknowledged. */
    advance_all(2100);
    assert_int_equal(s1->observe_observers, 1);
    clear_cap();
    dev_notify(2, 7, up.token, up.tkl, 7, "22");
    client_got("22", &r);
    assert_int_equal(r.type, TETHER_COAP_CON);
    tether_coap_msg_init(&m, TETHER_COAP_ACK, 0, r.mid);
    input(1, &client, &m);
    clear_cap();
    dev_notify(2, 7, up.token, up.tkl, 8, "23");
    client_got("23", &r);
    assert_int_equal(r.type, TETHER_COAP_NON); /* checked: no CON until the next interval */
    /* The client rejects a notification (RST): the group observation ends
     * at every member, node 2 cancels dev1's observation. */
    tether_coap_msg_init(&m, TETHER_COAP_RST, 0, r.mid);
    clear_cap();
    input(1, &client, &m);
    assert_int_equal(s1->observe_observers, 0);
    assert_int_equal(s2->observe_device_observations, 0);
    assert_true(cap_find(2, TETHER_LINK_DTLS, 7, 0, &r, -1) >= 0);
    assert_int_equal(observe_of(&r), 1);       /* the deregistration (RFC 7641 §3.6) */
    assert_int_equal(registry_observers(), 0); /* group members are not published */
}

/* A client that does not acknowledge the check past T' is gone (RFC
 * 7641 §4.5): the whole group observation ends. */
static void test_unacknowledged_check_ends_the_group(void **state)
{
    (void)state;
    register_dev1_on_2();
    const tether_node_stats_t *s1 = tether_node_stats(X.f[1].node);
    const tether_node_stats_t *s2 = tether_node_stats(X.f[2].node);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t up, r;
    group_observe(&client, &up);
    dev_answer(&up, "20", 5);
    advance_all(2100);
    clear_cap();
    dev_notify(2, 7, up.token, up.tkl, 6, "21");
    client_got("21", &r);
    assert_int_equal(r.type, TETHER_COAP_CON);
    advance_all(300000); /* every retransmission unanswered */
    assert_int_equal(s1->observe_observers, 0);
    assert_int_equal(s2->observe_device_observations, 0);
}

/* A remote member that never answered by T' is dropped (draft §3.5.2),
 * its observation ended at node 2; with no member left the group
 * observation ends. */
static void test_silent_remote_member_dropped_at_deadline(void **state)
{
    (void)state;
    register_dev1_on_2();
    const tether_node_stats_t *s1 = tether_node_stats(X.f[1].node);
    const tether_node_stats_t *s2 = tether_node_stats(X.f[2].node);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t up;
    group_observe(&client, &up);
    assert_int_equal(s1->observe_observers, 1);
    advance_all(2100);
    assert_int_equal(s1->observe_observers, 0);
    assert_int_equal(s2->observe_observers, 0);
    assert_int_equal(tether_node_stats(X.f[1].node)->group_requests, 1);
}

/* A direct observer of the same resource through node 1 shares the
 * aggregate with the group's member: one registration at node 2, and the
 * direct one's notifications carry no Reply-From. */
static void test_group_member_shares_the_aggregate(void **state)
{
    (void)state;
    register_dev1_on_2();
    const tether_node_stats_t *s1 = tether_node_stats(X.f[1].node);
    tether_peer_t client = plain_peer(50000), other = plain_peer(50001);
    tether_coap_msg_t up, m, r;
    group_observe(&client, &up);
    size_t sent = s1->xrelay_sent;
    get_msg(&m, TETHER_COAP_NON, 0x301, "bb", "dev1", "temp", 0);
    input(1, &other, &m);
    assert_int_equal(s1->xrelay_sent, sent); /* joined node 1's aggregate */
    clear_cap();
    dev_answer(&up, "20", 5);
    client_got("20", &r);
    assert_true(cap_find(1, TETHER_LINK_PLAIN, 0, 50001, &r, -1) >= 0);
    assert_memory_equal(r.token, "bb", 2);
    assert_null(tether_coap_msg_find_opt(&r, REPLY_FROM));
    assert_int_equal(registry_observers(), 1); /* only the direct one is published */
}

/* The device node's own verdict (5.02: the device was removed there) is
 * not a member's response (group.h): the group's client gets nothing, and
 * the member leaves; a RST for a MID nobody was sent leaves it alone. */
static void test_device_node_verdict_not_forwarded(void **state)
{
    (void)state;
    register_dev1_on_2();
    const tether_node_stats_t *s1 = tether_node_stats(X.f[1].node);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t up, m, r;
    group_observe(&client, &up);
    tether_coap_msg_init(&m, TETHER_COAP_RST, 0, 0); /* MID 0: no notification had it */
    input(1, &client, &m);
    assert_int_equal(s1->observe_observers, 1);
    dev_answer(&up, "20", 5);
    advance_all(2100);
    assert_int_equal(s1->observe_observers, 1);
    clear_cap();
    assert_int_equal(tether_node_device_remove(X.f[2].node, "dev1", X.f[2].now), 0);
    pump();
    assert_int_equal(cap_find(1, TETHER_LINK_PLAIN, 0, 50000, &r, -1), -1);
    assert_int_equal(s1->observe_observers, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_remote_member_notifies_the_group, xsetup, xteardown),
        cmocka_unit_test_setup_teardown(test_unacknowledged_check_ends_the_group, xsetup,
                                        xteardown),
        cmocka_unit_test_setup_teardown(test_silent_remote_member_dropped_at_deadline, xsetup,
                                        xteardown),
        cmocka_unit_test_setup_teardown(test_group_member_shares_the_aggregate, xsetup, xteardown),
        cmocka_unit_test_setup_teardown(test_device_node_verdict_not_forwarded, xsetup, xteardown),
    };
    return cmocka_run_group_tests_name("xgroup", tests, NULL, NULL);
}
