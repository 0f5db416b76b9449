-- POST /authorization/code/send: a sign-in code to a new number every request.
-- BENCH_START is the load's first number, so that two loads never ask for one number.

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")

local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

local n = tonumber(os.getenv("BENCH_START") or "0")
local step = tonumber(os.getenv("BENCH_THREADS") or "1")

function init(args)
  n = n + id
end

function request()
  local body = string.format('{"phone_number": "+7 925 %07d"}', n % 10000000)
  n = n + step
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
