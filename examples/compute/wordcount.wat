;; Word count, the map step: how many words are in this task's slice of the text.
;;
;; A word is a maximal run of bytes that are not ASCII whitespace (space, \t, \n, \v, \f, \r:
;; the same set as Python's bytes.split()). Slices must be cut at whitespace so no word is
;; split between two tasks; cutting there is the slicer's job.
;; Input: the slice's bytes. Output: the count, 8 bytes little-endian.
;; Reduce: sum_u64.wasm over the concatenated outputs.
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))

  ;; The task ABI's allocator: a bump pointer, 8-byte aligned, growing memory as needed.
  (func $alloc (export "alloc") (param $len i32) (result i32)
    (local $ptr i32) (local $end i64)
    (local.set $ptr (global.get $heap))
    (local.set $end (i64.and
      (i64.add (i64.add (i64.extend_i32_u (local.get $ptr)) (i64.extend_i32_u (local.get $len)))
               (i64.const 7))
      (i64.const -8)))
    (if (i64.gt_u (local.get $end) (i64.const 0xFFFFFFF8)) (then unreachable))
    (if (i64.gt_u (local.get $end)
                  (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16)))
      (then
        (if (i32.eq (memory.grow (i32.wrap_i64 (i64.sub
                      (i64.shr_u (i64.add (local.get $end) (i64.const 65535)) (i64.const 16))
                      (i64.extend_i32_u (memory.size)))))
                    (i32.const -1))
          (then unreachable))))
    (global.set $heap (i32.wrap_i64 (local.get $end)))
    (local.get $ptr))

  (func $is_space (param $b i32) (result i32)
    (i32.or (i32.eq (local.get $b) (i32.const 32))
            (i32.le_u (i32.sub (local.get $b) (i32.const 9)) (i32.const 4))))

  (func (export "run") (param $ptr i32) (param $len i32) (result i64)
    (local $end i32) (local $count i64) (local $in_word i32) (local $space i32) (local $out i32)
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $ptr) (local.get $end)))
        (local.set $space (call $is_space (i32.load8_u (local.get $ptr))))
        ;; a word starts where a non-space byte follows a space (or the start)
        (if (i32.and (i32.eqz (local.get $space)) (i32.eqz (local.get $in_word)))
          (then (local.set $count (i64.add (local.get $count) (i64.const 1)))))
        (local.set $in_word (i32.eqz (local.get $space)))
        (local.set $ptr (i32.add (local.get $ptr) (i32.const 1)))
        (br $next)))
    (local.set $out (call $alloc (i32.const 8)))
    (i64.store (local.get $out) (local.get $count))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32)) (i64.const 8)))
)
