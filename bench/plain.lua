-- wrk script: whatever -s/-H/URL say; only adds the BENCH summary line.
dofile("bench/summary.lua")
