-- One wrk script for every open-loop scenario of the benchmark.
--
-- Arguments (after `--`): method, path, body template ("-" for none), bearer token ("-" for
-- none), SKU prefix, SKU count, run id, and optionally one more request header ("Name: value"). In the path and body, "{sku}" becomes a SKU code
-- (the prefix alone when the count is 0, else prefix .. random 1..count) and "{n}" a value
-- unique to this request across all threads. Every response status is counted per thread;
-- done() prints one JSON line that the runner parses.

local threads = {}

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  method = args[1]
  path_template = args[2]
  body_template = args[3] ~= "-" and args[3] or nil
  headers = { ["Content-Type"] = "application/json" }
  if args[4] ~= "-" then
    headers["Authorization"] = "Bearer " .. args[4]
  end
  sku_prefix = args[5]
  sku_count = tonumber(args[6])
  run_id = args[7]
  if args[8] and args[8] ~= "-" then
    local name, value = args[8]:match("^([^:]+):%s*(.*)$")
    headers[name] = value
  end
  counter = 0
  statuses = {}
  math.randomseed(os.time() * 1000 + thread_id)
end

local function fill(template, sku, unique)
  return (template:gsub("{sku}", sku):gsub("{n}", unique))
end

function request()
  counter = counter + 1
  local sku = sku_prefix
  if sku_count > 0 then
    sku = sku_prefix .. math.random(1, sku_count)
  end
  local unique = run_id .. "-" .. thread_id .. "-" .. counter
  local body = nil
  if body_template then
    body = fill(body_template, sku, unique)
  end
  return wrk.format(method, fill(path_template, sku, unique), headers, body)
end

function response(status, response_headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      totals[status] = (totals[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(totals) do
    table.insert(parts, string.format('"%s": %d', status, count))
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH-JSON {"requests": %d, "duration_us": %d, "statuses": {%s}, ' ..
    '"socket_errors": %d, "timeouts": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, table.concat(parts, ", "),
    errors.connect + errors.read + errors.write, errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
