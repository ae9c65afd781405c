# Helpers shared by the bench/run_*.sh scripts (sourced, not run).

# field NAME: the number after "NAME": in a JSON line on stdin.
field() { sed -n "s/.*\"$1\":[[:space:]]*\([0-9.]*\).*/\1/p"; }
# median V...: the median of the numbers given.
median() { echo "$@" | tr ' ' '\n' | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# cpu_name: this machine's CPU model, for report headers.
cpu_name() { grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'; }
