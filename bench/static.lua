-- The same request every time: BENCH_METHOD (default GET) and BENCH_BODY (JSON, optional).

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")

wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
