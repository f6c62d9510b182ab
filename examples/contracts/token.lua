-- A fungible token kept in contract storage.
function init(supply)
  storage.set(concat("bal:", ctx.caller), supply)
  storage.set("supply", supply)
end

function transfer(to, amount)
  if amount <= 0 then error("amount must be positive") end
  local from_key, to_key = concat("bal:", ctx.caller), concat("bal:", to)
  local have = storage.get(from_key) or 0
  if have < amount then error("insufficient balance") end
  storage.set(from_key, have - amount)
  storage.set(to_key, (storage.get(to_key) or 0) + amount)
  return true
end

function balance_of(who)
  return storage.get(concat("bal:", who)) or 0
end
