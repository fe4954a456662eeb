-- Delete each key in KEYS that still holds ARGV[1], announce each deletion on the channel
-- 'redlock:released:' .. key so waiters can retry at once, and return how many were deleted.
local deleted = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    deleted = deleted + redis.call('DEL', KEYS[i])
    redis.call('PUBLISH', 'redlock:released:' .. KEYS[i], ARGV[1])
  end
end
return deleted
