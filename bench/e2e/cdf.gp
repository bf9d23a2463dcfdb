# SPDX-License-Identifier: Apache-2.0
# Latency CDF per system (one scenario). Called by bench/e2e/report.py:
#   gnuplot -e "dir='DATA'; out='FILE.png'; systems='topohub decoder ...'; ttl='...'" cdf.gp
# DATA/cdf_<system>.dat: latency in microseconds, cumulative fraction.
set terminal pngcairo size 900,560 font "sans,10"
set output out
set title ttl
set logscale x
set xlabel "SQL commit returned -> callback (microseconds, log scale)"
set ylabel "fraction of deliveries"
set yrange [0:1]
set grid
set key bottom right
plot for [s in systems] dir.'/cdf_'.s.'.dat' using 1:2 with linespoints pt 7 ps 0.5 title s
