-- POST /authorization/registration: a new user every request (email and phone carry a number).
-- BENCH_PREFIX makes the emails of this load unique; BENCH_START is its first number.

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")

local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

local prefix = os.getenv("BENCH_PREFIX") or "r"
local n = tonumber(os.getenv("BENCH_START") or "0")
local step = tonumber(os.getenv("BENCH_THREADS") or "1")

function init(args)
  n = n + id
end

function request()
  local body = string.format(
    '{"phone_number": "+7 916 %07d", "email": "%s%d@bench.example", ' ..
    '"hash_password": "bench password"}', n % 10000000, prefix, n)
  n = n + step
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
