-- wrk script: replay pre-signed Slack requests and print the result as JSON.
--
-- bench/load.py writes a copy of this file with two globals in front of it:
--   bench_requests  a list of {body, timestamp, signature}, sent in turn
--   bench_quota     responses after which the thread prints BENCH_QUOTA and
--                   stops, so bench/load.py can end wrk early; 0 for no quota
-- wrk's Lua has no HMAC, so bench/load.py signs each body right before the
-- run, well inside the bot's five-minute replay window.

local prepared = {}
local next_index = 0
local responses = 0

function init(args)
  for i, item in ipairs(bench_requests) do
    prepared[i] = wrk.format("POST", nil, {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Slack-Request-Timestamp"] = item.timestamp,
      ["X-Slack-Signature"] = item.signature,
    }, item.body)
  end
end

function request()
  next_index = next_index % #prepared + 1
  return prepared[next_index]
end

-- wrk parses responses only when a response() function exists, so it is
-- defined only when a quota needs counting.
if bench_quota > 0 then
  function response(status, headers, body)
    responses = responses + 1
    if responses == bench_quota then
      io.write("BENCH_QUOTA\n")
      io.flush()
      wrk.thread:stop()
    end
  end
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "connect_errors": %d, '
      .. '"read_errors": %d, "write_errors": %d, "status_errors": %d, '
      .. '"timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
      .. '"max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, errors.connect, errors.read,
    errors.write, errors.status, errors.timeout, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
