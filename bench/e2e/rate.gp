# SPDX-License-Identifier: Apache-2.0
# Delivered events per second against the update rate, per system.
#   gnuplot -e "dir='DATA'; out='FILE.png'; systems='...'; ttl='...'" rate.gp
# DATA/rate_<system>.dat: updates per second asked, deliveries per second (all subscribers).
set terminal pngcairo size 900,560 font "sans,10"
set output out
set title ttl
set logscale xy
set xlabel "updates per second (writer, asked)"
set ylabel "deliveries per second (all subscribers, log scale)"
set xtics (100, 1000, 10000)
set grid
set key top left
plot for [s in systems] dir.'/rate_'.s.'.dat' using 1:2 with linespoints pt 7 title s
