#!/usr/bin/env bash
# Draws a `make bench` result (the suite's --json-out file) as one SVG:
# above, each row's figure as a ratio to its references of the same run
# (raw UDP ceiling, libcoap), the per busy core-second ratios the table
# judges; below, the end-to-end latency distributions of the latency runs
# (tether, the raw relay and libcoap at half their own maxima).
#
#   bench/chart.sh RESULTS.json OUT.svg [TITLE]     (OUT.png works too)
#
# Needs jq and gnuplot (deploy/deps.sh bench installs them).
set -euo pipefail
in=${1:?usage: chart.sh RESULTS.json OUT.svg}
out=${2:?usage: chart.sh RESULTS.json OUT.svg}
command -v jq >/dev/null || { echo "chart.sh: jq is missing" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "chart.sh: gnuplot is missing" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One line per row that has a reference: "label" t/ceil t/peer ("-": none).
# A row whose reference is not the raw ceiling (its target says
# "(ratio: same-node relay)") names it in its label.
jq -r '.rows[] | select(.ratio_ceiling != null or .ratio_peer != null)
    | [("\"" + (.workload | sub("^relayed request, (?=client|2 workers)"; ""))
        + ((.target // "") | if startswith("(ratio: ") then " (vs " + (ltrimstr("(ratio: ") | sub("same-node relay"; "same node")) else "" end)
        + "\""),
       (if .ratio_ceiling == null then "-" else (.ratio_ceiling | tostring) end),
       (if .ratio_peer == null then "-" else (.ratio_peer | tostring) end)] | join(" ")' \
    "$in" >"$tmp/ratios.dat"
# Histograms as distributions: each bucket's upper bound (us) and the share
# of the run's requests at or below it (a CDF reads better than sparse
# log-sized buckets).
hplots=()
i=0
while IFS= read -r name; do
    f="$tmp/hist$i.dat"
    jq -r --arg n "$name" '.latency_hist[$n] as $h | ($h | map(.[2]) | add) as $t
        | reduce $h[] as $b ([]; . + [[$b[1], ((.[-1][1] // 0) + $b[2])]])
        | .[] | "\(.[0]) \(.[1] / $t)"' "$in" >"$f"
    [ -s "$f" ] && hplots+=("'$f' using 1:2 with lines lw 2 title '$name'")
    i=$((i + 1))
done < <(jq -r '.latency_hist // {} | keys_unsorted[]' "$in")

title=${3:-}
{
    case $out in
    *.png) echo "set terminal pngcairo size 1000,1100 font 'sans,10' background '#ffffff'" ;;
    *) echo "set terminal svg size 1000,1100 dynamic font 'sans,11' background '#ffffff'" ;;
    esac
    echo "set output '$out'"
    echo "set datafile missing '-'"
    echo "set multiplot title 'tether make bench ${title}'"
    echo "set size 1,0.64; set origin 0,0.33"
    echo "set title \"each row against the same run's references (log scale; 1 = equal)\""
    echo "set style data histogram; set style histogram clustered gap 1; set style fill solid 0.8"
    echo "set logscale y; set yrange [0.01:100]; set grid ytics; set key inside top left vertical; set rmargin at screen 0.84; set bmargin 11"
    echo "set xtics rotate by -45 noenhanced; set ylabel 'tether / reference'"
    echo "set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb '#444444'"
    if [ -s "$tmp/ratios.dat" ]; then
        echo "plot '$tmp/ratios.dat' using 2:xtic(1) title 'tether / raw UDP ceiling (or the reference labelled)', '' using 3 title 'tether / libcoap'"
    else
        echo "set label 'no row has a reference' at graph 0.4, graph 0.5; plot 2 notitle"
    fi
    echo "unset arrow; unset label; set rmargin -1; set bmargin -1; set xtics norotate; unset logscale; set yrange [*:*]; set style data lines"
    echo "set size 1,0.31; set origin 0,0"
    echo "set title \"end-to-end latency at half of each one's maximum rate\""
    echo "set logscale x; set format x '%.0f'; set xlabel 'latency (us)'; set ylabel 'share of requests at or below'; set yrange [0:1]; set key inside bottom right vertical; set grid"
    if [ ${#hplots[@]} -gt 0 ]; then
        (IFS=,; echo "plot ${hplots[*]}")
    else
        echo "set label 'no latency run' at graph 0.4, graph 0.5; plot [1:10] 2 notitle"
    fi
    echo "unset multiplot"
} >"$tmp/plot.gp"
gnuplot "$tmp/plot.gp"
echo "chart: $out"
