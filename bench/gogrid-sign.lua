-- wrk script: signs every request the way GoGrid clients do, sig = md5(api_key + shared_secret +
-- unix seconds), sent with api_key, v=1.8 and format=json after the request's own parameters.
-- The signature depends only on the second, so it is computed once per second.
--
--   wrk ... -s bench/gogrid-sign.lua URL -- API_KEY SHARED_SECRET [QUERY]
-- QUERY ("id=42&x=y", already URL-encoded) is sent with every request.
-- At the end it prints one line "WRK_RESULT {json}" for bench/run.

local bit = require("bit")
local band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
local lshift, rshift, rol, tobit = bit.lshift, bit.rshift, bit.rol, bit.tobit

-- MD5 (RFC 1321) over a Lua string, lower-case hex.
local K, S = {}, {
  7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
  5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
  4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
  6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
}
for i = 0, 63 do
  K[i + 1] = tobit(math.floor(math.abs(math.sin(i + 1)) * 4294967296))
end

local function md5(message)
  local length = #message
  local padded = message .. "\128" .. string.rep("\0", (55 - length) % 64)
  local bits = length * 8
  for i = 0, 7 do
    padded = padded .. string.char(math.floor(bits / 2 ^ (8 * i)) % 256)
  end
  local a0, b0, c0, d0 = tobit(0x67452301), tobit(0xefcdab89), tobit(0x98badcfe), tobit(0x10325476)
  local M = {}
  for chunk = 1, #padded, 64 do
    for j = 0, 15 do
      local p = chunk + j * 4
      local w1, w2, w3, w4 = padded:byte(p, p + 3)
      M[j] = bor(w1, lshift(w2, 8), lshift(w3, 16), lshift(w4, 24))
    end
    local A, B, C, D = a0, b0, c0, d0
    for i = 0, 63 do
      local F, g
      if i < 16 then
        F = bor(band(B, C), band(bnot(B), D)); g = i
      elseif i < 32 then
        F = bor(band(D, B), band(bnot(D), C)); g = (5 * i + 1) % 16
      elseif i < 48 then
        F = bxor(B, C, D); g = (3 * i + 5) % 16
      else
        F = bxor(C, bor(B, bnot(D))); g = (7 * i) % 16
      end
      F = tobit(F + A + K[i + 1] + M[g])
      A = D; D = C; C = B
      B = tobit(B + rol(F, S[i + 1]))
    end
    a0, b0, c0, d0 = tobit(a0 + A), tobit(b0 + B), tobit(c0 + C), tobit(d0 + D)
  end
  local out = {}
  for _, word in ipairs({a0, b0, c0, d0}) do
    for i = 0, 3 do
      out[#out + 1] = string.format("%02x", band(rshift(word, 8 * i), 0xff))
    end
  end
  return table.concat(out)
end

local api_key, shared_secret, query = "", "", ""
local signed_second, signed_path = -1, nil

function init(args)
  api_key = args[1] or ""
  shared_secret = args[2] or ""
  query = args[3] or ""
  if args[4] == "selftest" then
    -- md5("") and md5 of RFC 1321's longer test string.
    assert(md5("") == "d41d8cd98f00b204e9800998ecf8427e")
    assert(md5("12345678901234567890123456789012345678901234567890123456789012345678901234567890")
           == "57edf4a22be3c955ac49da2e2107b67a")
  end
end

function request()
  local now = os.time()
  if now ~= signed_second then
    signed_second = now
    local sig = md5(api_key .. shared_secret .. now)
    local prefix = wrk.path .. "?"
    if query ~= "" then prefix = prefix .. query .. "&" end
    signed_path = prefix .. "api_key=" .. api_key .. "&sig=" .. sig .. "&v=1.8&format=json"
  end
  return wrk.format("GET", signed_path)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"seconds":%.3f,"requests_per_second":%.1f,' ..
    '"p50_ms":%.3f,"p99_ms":%.3f,"mean_ms":%.3f,"errors":%d,"non_2xx":%d,"bytes":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.mean / 1000,
    errors.connect + errors.read + errors.write + errors.timeout, errors.status, summary.bytes))
end
