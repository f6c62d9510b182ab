;; Reduce step: the sum of 64-bit little-endian unsigned integers (wrapping at 2^64).
;;
;; Input: the map outputs concatenated, 8 bytes each (a length that is not a multiple of 8
;; traps). Output: the sum, 8 bytes little-endian. Used by wordcount and pi.
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

  (func (export "run") (param $ptr i32) (param $len i32) (result i64)
    (local $end i32) (local $sum i64) (local $out i32)
    (if (i32.and (local.get $len) (i32.const 7)) (then unreachable))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $ptr) (local.get $end)))
        (local.set $sum (i64.add (local.get $sum) (i64.load (local.get $ptr))))
        (local.set $ptr (i32.add (local.get $ptr) (i32.const 8)))
        (br $next)))
    (local.set $out (call $alloc (i32.const 8)))
    (i64.store (local.get $out) (local.get $sum))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32)) (i64.const 8)))
)
