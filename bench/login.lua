-- wrk script: POST /v1/login for a user picked in turn from USERS
-- (bench0001 .. benchNNNN, password "bench password 1"). Each user logs
-- in from an address of its own (198.18.0.0/15, SPEC 8), as shoppers do
-- behind the nginx of deploy/ (the bench's and the replay's clusters
-- trust 127.0.0.1 as that proxy).
local users = tonumber(os.getenv("USERS") or "1000")
local counter = 0
local thread_counter = 0

function setup(thread)
   thread:set("id", thread_counter)
   thread_counter = thread_counter + 1
end

function init(args)
   counter = (id or 0) * 500
end

function request()
   counter = counter % users + 1
   local headers = { ["Content-Type"] = "application/json",
                     ["X-Forwarded-For"] = string.format("198.18.%d.%d", math.floor(counter / 256) % 256, counter % 256) }
   for k, v in pairs(wrk.headers) do -- and wrk's -H headers (wrk.format drops them)
      headers[k] = headers[k] or v
   end
   return wrk.format("POST", "/v1/login", headers,
      string.format('{"username":"bench%04d","password":"bench password 1"}', counter))
end

-- PACE_MS: each connection waits this long before each request.
local pace = tonumber(os.getenv("PACE_MS") or "0")
if pace > 0 then
   function delay()
      return pace
   end
end

dofile("bench/summary.lua")
