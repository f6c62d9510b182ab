-- Parking fee between a car and a gate (the Smartshare paper's example), paid in a
-- token such as PARK. The gate operator deploys it; each car approves the contract to
-- spend its tokens once (smart token approve PARK CONTRACT_ADDRESS 500); the gate
-- device reports arrivals and departures, and the fee is pulled from the car.
--
--   smart contract deploy parking.lua --from operator --init PARK 5    (5 units a minute)

function init(symbol, price_per_minute)
  if price_per_minute <= 0 then error("price must be positive") end
  storage.set("operator", ctx.caller)
  storage.set("symbol", symbol)
  storage.set("price", price_per_minute)
end

local function only_gate()
  if ctx.caller ~= storage.get("operator") then error("only the gate operator reports cars") end
end

function enter(car)
  only_gate()
  local key = concat("in:", car)
  if storage.get(key) then error("car is already parked") end
  storage.set(key, ctx.time)
  emit("arrived", {car = car, at = ctx.time})
end

-- The fee for a stay: every started minute counts.
function fee(car)
  local since = storage.get(concat("in:", car))
  if not since then error("car is not parked here") end
  local minutes = (ctx.time - since + 59999) // 60000
  if minutes < 1 then minutes = 1 end
  return minutes * storage.get("price"), minutes
end

function leave(car)
  only_gate()
  local amount, minutes = fee(car)
  token.transfer_from(storage.get("symbol"), car, storage.get("operator"), amount)
  storage.delete(concat("in:", car))
  emit("paid", {car = car, minutes = minutes, amount = amount})
  return amount
end
