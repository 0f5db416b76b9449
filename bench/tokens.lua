-- GET with the next token of the file BENCH_TOKENS (one a line) in an Authorization header.

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
local i = 0

function init(args)
  i = id * 7919
end

function request()
  i = i + 1
  local headers = {["Authorization"] = "Bearer " .. tokens[i % #tokens + 1]}
  return wrk.format("GET", nil, headers, nil)
end
