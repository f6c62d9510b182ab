--!lua word count, the map step (the Lua twin of wordcount.wasm)
-- How many words are in this task's slice of the text. A word is a maximal run of bytes
-- that are not ASCII whitespace (space, \t, \n, \v, \f, \r: the same set as Python's
-- bytes.split()). Slices must be cut at whitespace so no word is split between two tasks;
-- cutting there is the slicer's job.
-- Input: the slice's bytes. Output: the count, 8 bytes little-endian.
-- Reduce: sum_u64.wasm over the concatenated outputs (the same format as wordcount.wasm's).

local SPACE = {[32] = true, [9] = true, [10] = true, [11] = true, [12] = true, [13] = true}

-- The sandbox has no string.pack: 8 bytes little-endian, built with string.char.
local function u64le(n)
  return string.char(n & 255, (n >> 8) & 255, (n >> 16) & 255, (n >> 24) & 255,
                     (n >> 32) & 255, (n >> 40) & 255, (n >> 48) & 255, (n >> 56) & 255)
end

function run(input)
  local count, in_word = 0, false
  for i = 1, #input do
    -- a word starts where a non-space byte follows a space (or the start)
    local space = SPACE[input:byte(i)]
    if not space and not in_word then count = count + 1 end
    in_word = not space
  end
  return u64le(count)
end
