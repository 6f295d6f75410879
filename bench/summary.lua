-- bench/summary.lua: the BENCH line every bench script prints when wrk
-- ends (rate, latency percentiles, failed requests), parsed by bench/run.sh.
-- Loaded with dofile: bench/run.sh runs wrk from the checkout's root.
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format("BENCH rate=%.1f p50_ms=%.3f p99_ms=%.3f requests=%d failed=%d\n",
      summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
      latency:percentile(99) / 1000, summary.requests,
      e.connect + e.read + e.write + e.timeout + e.status))
end
