# SPDX-License-Identifier: Apache-2.0
# The Vitess-shaped scenario: commit-to-last-watcher p99 and host CPU per
# change against the number of processes, per system.
#   gnuplot -e "dir='DATA'; out='FILE.png'; systems='...'; ttl='...'" vitess.gp
# DATA/vitess_<system>.dat: processes, p99 in microseconds, CPU us per change.
set terminal pngcairo size 1200,520 font "sans,10"
set output out
set multiplot layout 1,2 title ttl
set logscale xy
set xlabel "processes on the host"
set xtics (1, 8, 64)
set grid
set key top left
set title "commit to last watcher, p99"
set ylabel "microseconds (log scale)"
plot for [s in systems] dir.'/vitess_'.s.'.dat' using 1:2 with linespoints pt 7 title s
set title "host CPU per change (hub + server + processes)"
set ylabel "CPU microseconds per change (log scale)"
plot for [s in systems] dir.'/vitess_'.s.'.dat' using 1:3 with linespoints pt 7 title s
unset multiplot
