-- Escrow: the deployer (buyer) locks HPC for a seller; an arbiter settles disputes.
--
--   smart contract deploy escrow.lua --from buyer --value 10 \
--       --init SELLER_ADDRESS ARBITER_ADDRESS 100      (timeout in blocks)
--
-- release(): the buyer or the arbiter pays the seller.
-- refund():  the seller or the arbiter returns the money to the buyer; after the timeout
--            the buyer may take it back alone.

function init(seller, arbiter, timeout_blocks)
  if ctx.value <= 0 then error("send the escrowed HPC with the deploy (--value)") end
  if timeout_blocks <= 0 then error("timeout must be a positive number of blocks") end
  storage.set("buyer", ctx.caller)
  storage.set("seller", seller)
  storage.set("arbiter", arbiter)
  storage.set("amount", ctx.value)
  storage.set("deadline", ctx.height + timeout_blocks)
  storage.set("state", "funded")
  emit("funded", {buyer = ctx.caller, seller = seller, amount = ctx.value})
end

local function settle(to, outcome)
  if storage.get("state") ~= "funded" then error("escrow already settled") end
  storage.set("state", outcome)
  transfer(to, storage.get("amount"))
  emit(outcome, {to = to, amount = storage.get("amount")})
end

function release()
  local who = ctx.caller
  if who ~= storage.get("buyer") and who ~= storage.get("arbiter") then
    error("only the buyer or the arbiter can release the funds")
  end
  settle(storage.get("seller"), "released")
end

function refund()
  local who = ctx.caller
  local late = ctx.height > storage.get("deadline")
  if who ~= storage.get("seller") and who ~= storage.get("arbiter")
      and not (who == storage.get("buyer") and late) then
    error("only the seller or the arbiter can refund (the buyer, after the deadline)")
  end
  settle(storage.get("buyer"), "refunded")
end

function status()
  return storage.get("state"), storage.get("amount"), storage.get("deadline")
end
