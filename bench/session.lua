-- wrk script: GET /v1/session, each request with the next token of
-- TOKENS_FILE (one token a line), spread over the threads; prints a
-- BENCH line with the rate, latency percentiles and failures.
local tokens = {}
local index = 0
local thread_counter = 0
local threads = {}

function setup(thread)
   thread:set("id", thread_counter)
   thread_counter = thread_counter + 1
   table.insert(threads, thread)
end

function init(args)
   for line in io.lines(os.getenv("TOKENS_FILE")) do
      table.insert(tokens, line)
   end
   index = (id or 0) * 7919 % #tokens
end

function request()
   index = index % #tokens + 1
   return wrk.format("GET", "/v1/session", { ["Authorization"] = "Bearer " .. tokens[index] })
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format("BENCH rate=%.1f p50_ms=%.3f p99_ms=%.3f requests=%d failed=%d\n",
      summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
      latency:percentile(99) / 1000, summary.requests,
      e.connect + e.read + e.write + e.timeout + e.status))
end

-- PACE_MS: each connection waits this long before each request (a fixed
-- offered rate of connections * 1000 / PACE_MS requests a second).
local pace = tonumber(os.getenv("PACE_MS") or "0")
if pace > 0 then
   function delay()
      return pace
   end
end
