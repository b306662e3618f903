-- post.lua - the wrk script of bench/run.sh: every request POSTs one ~100-byte
-- job, or with BENCH_BATCH=N a JSON array of N such jobs, and done() prints
-- one machine-readable line that run.sh parses (wrk's own report rounds and
-- changes units).
local job = '{"type":"noop","args":{"user_id":12345,"email":"someone@example.com",' ..
            '"plan":"pro","locale":"en"}}'
local batch = tonumber(os.getenv("BENCH_BATCH") or "0")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if batch > 0 then
  local jobs = {}
  for i = 1, batch do jobs[i] = job end
  wrk.body = "[" .. table.concat(jobs, ",") .. "]"
else
  wrk.body = job
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "wrk requests=%d duration_us=%d status_errors=%d socket_errors=%d " ..
    "p50_us=%d p99_us=%d body_bytes=%d\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), #wrk.body))
end
