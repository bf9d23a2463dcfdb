# SPDX-License-Identifier: Apache-2.0
# p99 latency against the number of subscribers, per system.
#   gnuplot -e "dir='DATA'; out='FILE.png'; systems='...'; ttl='...'" p99_subs.gp
# DATA/p99_<system>.dat: subscribers, p99 in microseconds.
set terminal pngcairo size 900,560 font "sans,10"
set output out
set title ttl
set logscale xy
set xlabel "subscriber processes"
set ylabel "p99 latency (microseconds, log scale)"
set xtics (1, 8, 64, 256)
set grid
set key top left
plot for [s in systems] dir.'/p99_'.s.'.dat' using 1:2 with linespoints pt 7 title s
