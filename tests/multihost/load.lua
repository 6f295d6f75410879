-- tests/multihost/load.lua - the namespace test's load: one wrk process
-- a connection (-t1 -c1, so its answers come back in the order it asked;
-- ID tells them apart: with several threads in one wrk some never got
-- connected here) logs one of USERS users in,
-- checks its session a few times, and now and then logs it out.
--
-- It records what a client was told, so the test can check it after each
-- fault: OUT_DIR/acked-N (tokens of 200 logins), OUT_DIR/revoked-N (tokens
-- whose logout answered 204), OUT_DIR/doubtful-N (tokens whose logout
-- was sent: one that failed, or that was still in flight when wrk
-- stopped, may or may not have revoked it), OUT_DIR/failed-N (one line a failed answer:
-- "status retry-after what") and, at the end, OUT_DIR/summary-N
-- ("requests failures failures_without_retry_after").
local users = tonumber(os.getenv("USERS") or "8")
local out_dir = os.getenv("OUT_DIR") or "."
local password = os.getenv("PASSWORD") or "multihost password 1"
local counter = 0
local threads = {}

function setup(thread)
   thread:set("id", tonumber(os.getenv("ID") or "0") + counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local acked, revoked, doubtful, failed
local token = nil
local step = 0
local asked = nil
requests, failures, bare = 0, 0, 0 -- globals: done() reads them with get()

function init(args)
   acked = io.open(out_dir .. "/acked-" .. id, "a")
   revoked = io.open(out_dir .. "/revoked-" .. id, "a")
   doubtful = io.open(out_dir .. "/doubtful-" .. id, "a")
   failed = io.open(out_dir .. "/failed-" .. id, "a")
   step = id
end

local function user()
   return string.format("mh%02d", step % users + 1)
end

function request()
   step = step + 1
   if token == nil or step % 10 == 0 then
      asked = "login"
      return wrk.format("POST", "/v1/login", { ["Content-Type"] = "application/json" },
                        '{"username":"' .. user() .. '","password":"' .. password .. '"}')
   end
   if step % 20 == 9 then -- every other login ends with a logout; the others stay live
      asked = "logout"
      -- Doubtful from the moment it is sent: wrk stops with a request in
      -- flight and never sees its answer, but the server may well carry a
      -- logout out. Its 204 makes it revoked (checked as such).
      doubtful:write(token, "\n")
      doubtful:flush()
      return wrk.format("POST", "/v1/logout", { ["Authorization"] = "Bearer " .. token })
   end
   asked = "session"
   return wrk.format("GET", "/v1/session", { ["Authorization"] = "Bearer " .. token })
end

function response(status, headers, body)
   requests = requests + 1
   if status >= 200 and status < 300 then
      if asked == "login" then
         token = string.match(body, '"token"%s*:%s*"([%w_-]+)"')
         if token ~= nil then
            acked:write(token, "\n")
            acked:flush()
         end
      elseif asked == "logout" then
         revoked:write(token, "\n")
         revoked:flush()
         token = nil
      end
      return
   end
   failures = failures + 1
   local retry = headers["Retry-After"] or headers["retry-after"] or "-"
   if retry == "-" then
      bare = bare + 1
   end
   failed:write(status, " ", retry, " ", asked, "\n")
   failed:flush()
   if asked ~= "login" then
      token = nil -- a 401 for a session we believed in is a failure; start over
   end
end

function done(summary, latency, reqs)
   for _, t in ipairs(threads) do
      local f = io.open(out_dir .. "/summary-" .. t:get("id"), "w")
      f:write(t:get("requests"), " ", t:get("failures"), " ", t:get("bare"), "\n")
      f:close()
   end
end
