-- Data-sharing reward: a data buyer funds a pool in HPC; device owners submit records
-- (the hash of data they stored off chain); each record the buyer accepts pays a fixed
-- reward to its submitter. The buyer can close the pool and take back what is left.
--
--   smart contract deploy data_reward.lua --from buyer --value 50 --init 100000000

function init(reward)
  if reward <= 0 then error("reward must be positive") end
  storage.set("buyer", ctx.caller)
  storage.set("reward", reward)
  storage.set("accepted", 0)
end

function submit(record_hash)
  if #record_hash ~= 64 then error("record hash must be 64 hex characters") end
  local key = concat("rec:", record_hash)
  if storage.get(key) then error("record already submitted") end
  storage.set(key, ctx.caller)
  emit("submitted", {record = record_hash, by = ctx.caller})
end

function accept(record_hash)
  if ctx.caller ~= storage.get("buyer") then error("only the buyer accepts records") end
  local key = concat("rec:", record_hash)
  local owner = storage.get(key)
  if not owner then error("no such record") end
  if owner == "" then error("record already rewarded") end
  storage.set(key, "")
  local reward = storage.get("reward")
  transfer(owner, reward)  -- fails (and reverts) if the pool is empty
  storage.set("accepted", storage.get("accepted") + 1)
  emit("rewarded", {record = record_hash, to = owner, amount = reward})
end

function close()
  if ctx.caller ~= storage.get("buyer") then error("only the buyer closes the pool") end
  local left = balance(ctx.self)
  if left > 0 then transfer(ctx.caller, left) end
  emit("closed", {returned = left})
end

function accepted() return storage.get("accepted") end
