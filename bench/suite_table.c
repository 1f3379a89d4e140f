/* tether-bench suite: the S9 rows, their ratios to the references and
 * verdicts against SPEC S9's targets, the aligned table and its JSON. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "suite_int.h"

/* Keeps the "latency_hist" of a latency run's report. */
void keep_hist(suite_t *S, int which, json_t *report)
{
    json_t *h = report ? json_object_get(report, "latency_hist") : NULL;
    if (h)
        S->lat_hist[which] = json_incref(h);
}

row_t rows[R_N];

bool measured(const row_t *r)
{
    return r->signed_value ? r->tether > SIGNED_NONE : r->tether >= 0;
}

void row_detail(row_t *r, const char *name, double v)
{
    if (r->ndetail < (int)(sizeof r->detail / sizeof r->detail[0])) {
        r->detail_name[r->ndetail] = name;
        r->detail[r->ndetail++] = v;
    }
}

void row_init(int i, const char *id, const char *workload, const char *unit, const char *target,
              bool higher)
{
    row_t *r = &rows[i];
    r->id = id, r->workload = workload, r->unit = unit, r->target = target;
    r->tether = r->ceiling = r->peer = -1;
    r->tether_cpu = r->ceiling_cpu = r->peer_cpu = -1;
    r->higher_better = higher;
    r->r_ceil = r->r_peer = -1;
    r->met = MET_NA;
}

/* ---- the table ---------------------------------------------------------------------- */

/* A throughput per busy server core-second: the figure divided by the
 * server's core share over the measured window. */
static double per_core(double v, double cpu)
{
    return cpu > 0.05 ? v / cpu : v;
}

/* The ratio a row prints and is judged on: of per busy core-second figures
 * when both CPU shares were measured, else of the figures themselves. */
static double ratio(double a, double acpu, double b, double bcpu, bool pc_ok, bool *pc)
{
    *pc = false;
    if (a < 0 || b <= 0)
        return -1;
    if (pc_ok && acpu > 0.05 && bcpu > 0.05) {
        *pc = true;
        return (a / acpu) / (b / bcpu);
    }
    return a / b;
}

/* The S9 targets (SPEC S9), one table: per busy core-second minimum,
 * maximum of the figure, minimum ratio to the ceiling and to the peer
 * (each < 0: not part of the target). A needed reference that is missing
 * makes the row "not measured". */
static const struct {
    int row;
    double min_per_core, max, min_ceil, min_peer;
} targets[] = {
    {R_MISS, -1, -1, 0.8, 5},         {R_HIT, -1, -1, 0.8, -1},
    {R_OBS, 1000000, -1, -1, -1},     {R_PSK, 30000, -1, -1, 3},
    {R_ECDHE, 4000, -1, -1, -1},      {R_RESUMED, 30000, -1, -1, 3},
    {R_IDLE10K_REG, -1, 600, -1, -1}, {R_IDLE100K_REG, -1, 600, -1, -1},
    {R_IDLE1M_REG, -1, 600, -1, -1},  {R_CROSS, -1, 10, -1, -1},
    {R_LAT, -1, 100, -1, -1},
};

void judge(void)
{
    for (int i = 0; i < R_N; i++) {
        row_t *r = &rows[i];
        r->r_ceil = ratio(r->tether, r->tether_cpu, r->ceiling, r->ceiling_cpu, r->higher_better,
                          &r->r_ceil_pc);
        r->r_peer =
            ratio(r->tether, r->tether_cpu, r->peer, r->peer_cpu, r->higher_better, &r->r_peer_pc);
    }
    for (size_t k = 0; k < sizeof targets / sizeof targets[0]; k++) {
        row_t *r = &rows[targets[k].row];
        if (!measured(r) || (targets[k].min_ceil > 0 && r->r_ceil < 0) ||
            (targets[k].min_peer > 0 && r->r_peer < 0)) {
            r->met = MET_NOT_MEASURED;
            continue;
        }
        bool ok = true;
        if (targets[k].min_per_core > 0)
            ok = ok && per_core(r->tether, r->tether_cpu) >= targets[k].min_per_core;
        if (targets[k].max >= 0)
            ok = ok && r->tether <= targets[k].max;
        if (targets[k].min_ceil > 0)
            ok = ok && r->r_ceil >= targets[k].min_ceil;
        if (targets[k].min_peer > 0)
            ok = ok && r->r_peer >= targets[k].min_peer;
        r->met = ok ? MET_YES : MET_NO;
    }
}

static void fmt_val(char *buf, size_t cap, double v, bool signed_value)
{
    if (signed_value ? v <= SIGNED_NONE : v < 0)
        snprintf(buf, cap, "-");
    else if (v >= 100 || v <= -100)
        snprintf(buf, cap, "%.0f", v);
    else
        snprintf(buf, cap, "%.1f", v);
}

static void fmt_ratio(char *buf, size_t cap, double r, bool pc)
{
    if (r < 0)
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%.2fx%s", r, pc ? "*" : "");
}

static const char *met_str(int met)
{
    return met == MET_YES            ? "yes"
           : met == MET_NO           ? "NO"
           : met == MET_NOT_MEASURED ? "not measured"
                                     : "-";
}

void print_table(suite_t *S)
{
    printf("\n%-40s %12s %12s %9s %12s %9s  %-28s %s\n", "workload (unit)", "tether", "ceiling",
           "t/ceil", "libcoap", "t/peer", "S9 target", "met");
    for (int i = 0; i < R_N; i++) {
        row_t *r = &rows[i];
        char name[80], t[24], c[24], p[24], rc[16], rp[16];
        snprintf(name, sizeof name, "%s (%s)", r->workload, r->unit);
        fmt_val(t, sizeof t, r->tether, r->signed_value);
        fmt_val(c, sizeof c, r->ceiling, false);
        fmt_val(p, sizeof p, r->peer, false);
        fmt_ratio(rc, sizeof rc, r->r_ceil, r->r_ceil_pc);
        fmt_ratio(rp, sizeof rp, r->r_peer, r->r_peer_pc);
        printf("%-40s %12s %12s %9s %12s %9s  %-28s %s\n", name, t, c, rc, p, rp, r->target,
               met_str(r->met));
    }
    printf("\nt/ceil, t/peer: tether / the reference; * = of figures per busy server "
           "core-second (each server's CPU\nshare over the command's measured window), the "
           "figures' own ratio otherwise. \"met\" is judged on exactly\nthese ratios, on per "
           "busy core-second figures for per-core targets, and is \"not measured\" when a\n"
           "figure or a reference its target needs is missing.\n");
    printf("\nnotes:\n");
    for (int i = 0; i < R_N; i++) {
        row_t *r = &rows[i];
        char cpu[200] = "";
        if (r->tether_cpu >= 0 || r->ceiling_cpu >= 0 || r->peer_cpu >= 0) {
            int n = snprintf(cpu, sizeof cpu, "server core busy:");
            if (r->tether_cpu >= 0)
                n += snprintf(cpu + n, sizeof cpu - n, " tetherd %.0f%%", r->tether_cpu * 100);
            if (r->ceiling_cpu >= 0)
                n += snprintf(cpu + n, sizeof cpu - n, ", relay %.0f%%", r->ceiling_cpu * 100);
            if (r->peer_cpu >= 0)
                snprintf(cpu + n, sizeof cpu - n, ", libcoap %.0f%%", r->peer_cpu * 100);
        }
        if (r->note[0] || r->peer_note[0] || cpu[0])
            printf("  %-18s %s%s%s%s%s\n", r->id, cpu, cpu[0] && r->note[0] ? "; " : "", r->note,
                   r->peer_note[0] ? "; " : "", r->peer_note);
        if (r->higher_better && r->tether > 0 && r->tether_cpu > 0.05)
            printf("  %-18s per busy core-second: tether %.0f%s%s\n", "", r->tether / r->tether_cpu,
                   r->ceiling > 0 && r->ceiling_cpu > 0.05 ? ", ceiling " : "",
                   r->ceiling > 0 && r->ceiling_cpu > 0.05
                       ? (snprintf(cpu, sizeof cpu, "%.0f", r->ceiling / r->ceiling_cpu), cpu)
                       : "");
        if (r->higher_better && r->peer > 0 && r->peer_cpu > 0.05)
            printf("  %-18s per busy core-second: libcoap %.0f\n", "", r->peer / r->peer_cpu);
    }
    (void)S;
}

static json_t *num_or_null(double v)
{
    return v < 0 ? json_null() : json_real(v);
}

json_t *table_json(suite_t *S)
{
    json_t *arr = json_array();
    for (int i = 0; i < R_N; i++) {
        row_t *r = &rows[i];
        json_t *o = json_pack(
            "{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:b, s:o, s:b, s:{s:o, s:o, s:o}, s:o, s:s, "
            "s:s, s:s}",
            "id", r->id, "workload", r->workload, "unit", r->unit, "target", r->target, "tether",
            measured(r) ? json_real(r->tether) : json_null(), "ceiling", num_or_null(r->ceiling),
            "peer", num_or_null(r->peer), "ratio_ceiling", num_or_null(r->r_ceil),
            "ratio_ceiling_per_core", r->r_ceil_pc, "ratio_peer", num_or_null(r->r_peer),
            "ratio_peer_per_core", r->r_peer_pc, "server_cpu", "tether", num_or_null(r->tether_cpu),
            "ceiling", num_or_null(r->ceiling_cpu), "peer", num_or_null(r->peer_cpu), "met",
            r->met == MET_YES  ? json_true()
            : r->met == MET_NO ? json_false()
                               : json_null(),
            "verdict", met_str(r->met), "note", r->note, "peer_note", r->peer_note);
        json_t *det = json_object();
        for (int k = 0; k < r->ndetail; k++)
            json_object_set_new(det, r->detail_name[k], json_real(r->detail[k]));
        json_object_set_new(o, "detail", det);
        json_array_append_new(arr, o);
    }
    return json_pack("{s:s, s:b, s:f, s:i, s:i, s:o}", "suite", "tether S9", "quick", S->quick,
                     "duration_s", S->dur, "server_cpu", S->server_cpu, "bench_cpu", S->bench_cpu,
                     "rows", arr);
}
