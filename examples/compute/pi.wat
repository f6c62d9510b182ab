;; Monte Carlo estimate of pi, one task's share: integer arithmetic only.
;;
;; Input: 16 bytes, the task's seed then its number of samples (u64 little-endian each; any
;; other length traps). Each sample draws two 31-bit coordinates x, y from splitmix64 and
;; counts the point if x^2 + y^2 < 2^62 (inside the quarter circle of radius 2^31).
;; Output: the count inside, 8 bytes little-endian.
;; Reduce: sum_u64.wasm over the outputs; pi ~= 4 * inside / (total samples).
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (global $state (mut i64) (i64.const 0))

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

  ;; splitmix64: any seed, 0 included, gives a full-period, well-mixed sequence.
  (func $next (result i64)
    (local $z i64)
    (global.set $state (i64.add (global.get $state) (i64.const 0x9E3779B97F4A7C15)))
    (local.set $z (global.get $state))
    (local.set $z (i64.mul (i64.xor (local.get $z) (i64.shr_u (local.get $z) (i64.const 30)))
                           (i64.const 0xBF58476D1CE4E5B9)))
    (local.set $z (i64.mul (i64.xor (local.get $z) (i64.shr_u (local.get $z) (i64.const 27)))
                           (i64.const 0x94D049BB133111EB)))
    (i64.xor (local.get $z) (i64.shr_u (local.get $z) (i64.const 31))))

  (func (export "run") (param $ptr i32) (param $len i32) (result i64)
    (local $left i64) (local $inside i64) (local $x i64) (local $y i64) (local $out i32)
    (if (i32.ne (local.get $len) (i32.const 16)) (then unreachable))
    (global.set $state (i64.load (local.get $ptr)))
    (local.set $left (i64.load offset=8 (local.get $ptr)))
    (block $done
      (loop $sample
        (br_if $done (i64.eqz (local.get $left)))
        (local.set $x (i64.shr_u (call $next) (i64.const 33)))
        (local.set $y (i64.shr_u (call $next) (i64.const 33)))
        (if (i64.lt_u (i64.add (i64.mul (local.get $x) (local.get $x))
                               (i64.mul (local.get $y) (local.get $y)))
                      (i64.const 0x4000000000000000))
          (then (local.set $inside (i64.add (local.get $inside) (i64.const 1)))))
        (local.set $left (i64.sub (local.get $left) (i64.const 1)))
        (br $sample)))
    (local.set $out (call $alloc (i32.const 8)))
    (i64.store (local.get $out) (local.get $inside))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32)) (i64.const 8)))
)
