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
   local headers = { ["Authorization"] = "Bearer " .. tokens[index] }
   for k, v in pairs(wrk.headers) do -- and wrk's -H headers (wrk.format drops them)
      headers[k] = headers[k] or v
   end
   return wrk.format("GET", "/v1/session", headers)
end

dofile("bench/summary.lua")

-- PACE_MS: each connection waits this long before each request (a fixed
-- offered rate of connections * 1000 / PACE_MS requests a second).
local pace = tonumber(os.getenv("PACE_MS") or "0")
if pace > 0 then
   function delay()
      return pace
   end
end
