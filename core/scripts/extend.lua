-- Reset the TTL of every key in KEYS to ARGV[2] ms if all of them still hold ARGV[1]; never create a key.
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) ~= ARGV[1] then
    return 0
  end
end
for i = 1, #KEYS do
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
return 1
