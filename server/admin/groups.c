/* /groups routes (SPEC S6, S11). */
#include "conn.h"

void admin_h_groups(admin_conn_t *c, const tether_http_request_t *r)
{
    admin_respond_error(c, 501, NULL, "%s /groups is not implemented yet", r->method_name);
}
