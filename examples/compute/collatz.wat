;; Parameter sweep: the number of Collatz steps from n down to 1 (n -> n/2 if even, 3n+1 if
;; odd). One task per value of n.
;;
;; Input: n, 8 bytes little-endian, n >= 1 (n = 0, another length, or a 3n+1 that would
;; overflow 64 bits traps). Output: the number of steps, 8 bytes little-endian.
;; No reduce: the outputs are the table of results.
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
    (local $n i64) (local $steps i64) (local $out i32)
    (if (i32.ne (local.get $len) (i32.const 8)) (then unreachable))
    (local.set $n (i64.load (local.get $ptr)))
    (if (i64.eqz (local.get $n)) (then unreachable))
    (block $done
      (loop $step
        (br_if $done (i64.eq (local.get $n) (i64.const 1)))
        (if (i64.eqz (i64.and (local.get $n) (i64.const 1)))
          (then (local.set $n (i64.shr_u (local.get $n) (i64.const 1))))
          (else
            ;; 3n + 1 must fit: n <= (2^64 - 2) / 3
            (if (i64.gt_u (local.get $n) (i64.const 0x5555555555555554)) (then unreachable))
            (local.set $n (i64.add (i64.mul (local.get $n) (i64.const 3)) (i64.const 1)))))
        (local.set $steps (i64.add (local.get $steps) (i64.const 1)))
        (br $step)))
    (local.set $out (call $alloc (i32.const 8)))
    (i64.store (local.get $out) (local.get $steps))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32)) (i64.const 8)))
)
