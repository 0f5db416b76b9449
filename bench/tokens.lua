-- GET with the next token of the file BENCH_TOKENS (one a line) in an Authorization header.
-- Each run goes on where the previous one over the same file stopped (BENCH_TOKENS.offset):
-- starting every run at the first token would check, in the runs after the first, tokens
-- the server's verified-token cache still holds, and a cache-miss load would measure hits.

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")

local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do
  if line ~= "" then tokens[#tokens + 1] = line end
end
local offset_file = os.getenv("BENCH_TOKENS") .. ".offset"

local function read_offset()
  local file = io.open(offset_file, "r")
  if not file then return 0 end
  local offset = tonumber(file:read("*l")) or 0
  file:close()
  return offset
end

local i = 0

function init(args)
  i = read_offset() + id * 7919
end

function request()
  i = i + 1
  local headers = {["Authorization"] = "Bearer " .. tokens[i % #tokens + 1]}
  return wrk.format("GET", nil, headers, nil)
end

local report = done
function done(summary, latency, requests)
  local file = io.open(offset_file, "w")
  file:write(tostring((read_offset() + summary.requests) % #tokens))
  file:close()
  report(summary, latency, requests)
end
