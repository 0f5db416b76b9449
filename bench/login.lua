-- POST /authorization/login/email: cycles through the stored users {BENCH_PREFIX}0..N-1,
-- user number n * BENCH_STRIDE mod N, so that a large table is read all over.

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")

local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

local prefix = os.getenv("BENCH_PREFIX") or "u"
local users = tonumber(os.getenv("BENCH_USERS") or "1000")
local password = os.getenv("BENCH_PASSWORD") or "bench password"
local step = tonumber(os.getenv("BENCH_THREADS") or "1")
local stride = tonumber(os.getenv("BENCH_STRIDE") or "1")
local n = tonumber(os.getenv("BENCH_START") or "0")

function init(args)
  n = n + id
end

function request()
  local body = string.format('{"email": "%s%d@bench.example", "hash_password": "%s"}',
    prefix, n * stride % users, password)
  n = n + step
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
