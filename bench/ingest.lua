-- wrk script for `make bench` (bench/load.py writes the requests file and reads the output).
--
-- Arguments after `--`: <requests file> <seconds> <interval in microseconds, 0 = no pacing>.
-- Each connection sends requests from the pool in turn until the deadline, then goes idle,
-- so every request sent is answered before wrk stops and the 202 count is exact. With an
-- interval, sends follow a fixed schedule (one slot per interval) shared by all connections.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local bodies = dofile(args[1])
  local headers = bodies.headers
  pool = {}
  for i, body in ipairs(bodies) do
    pool[i] = wrk.format("POST", bodies.path, headers, body)
  end
  next_request = 1
  sent = 0
  answered = 0
  accepted = 0
  other_status = 0
  started = now_us()
  deadline = started + tonumber(args[2]) * 1000000
  interval = tonumber(args[3])
  next_slot = started
  last_answer = started
end

function delay()
  local now = now_us()
  if now >= deadline then
    return 3600000 -- idle until wrk stops
  end
  if interval <= 0 then
    return 0
  end
  local slot = next_slot
  next_slot = next_slot + interval
  if slot <= now then
    return 0
  end
  return math.floor((slot - now) / 1000 + 0.5)
end

function request()
  local r = pool[next_request]
  next_request = next_request % #pool + 1
  sent = sent + 1
  return r
end

function response(status, headers, body)
  answered = answered + 1
  last_answer = now_us()
  if status ~= 207 then
    other_status = other_status + 1
    return
  end
  local at = 1
  while true do
    local found = string.find(body, '"status":202', at, true)
    if not found then break end
    accepted = accepted + 1
    at = found + 12
  end
end

function done(summary, latency, requests)
  local totals = { sent = 0, answered = 0, accepted = 0, other_status = 0 }
  local first, last = nil, 0
  for _, t in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + t:get(name)
    end
    local s, l = t:get("started"), t:get("last_answer")
    if first == nil or s < first then first = s end
    if l > last then last = l end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH-WRK {"sent":%d,"answered":%d,"accepted":%d,"other_status":%d,' ..
    '"seconds":%.6f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d}\n',
    totals.sent, totals.answered, totals.accepted, totals.other_status,
    (last - first) / 1000000,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, e.connect, e.read, e.write, e.timeout))
end
