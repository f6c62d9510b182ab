-- A fungible token kept in contract storage: balances are keyed by the holder's address
-- (the contract's storage is its own namespace, so no prefix is needed).
--
--   smart contract deploy token.lua --from alice --init 1000000
--   smart contract call ADDRESS transfer @bob 250 --from alice
--   smart contract query ADDRESS balance_of @bob

function init(supply)
  if supply <= 0 then error("supply must be positive") end
  storage.set(ctx.caller, supply)
  storage.set("supply", supply)
  emit("minted", {to = ctx.caller, amount = supply})
end

function transfer(to, amount)
  if amount <= 0 then error("amount must be positive") end
  local from = ctx.caller
  local have = storage.get(from) or 0
  if have < amount then error("insufficient balance") end
  storage.set(from, have - amount)
  storage.set(to, (storage.get(to) or 0) + amount)
  return true
end

function balance_of(who)
  return storage.get(who) or 0
end

function total_supply()
  return storage.get("supply")
end
