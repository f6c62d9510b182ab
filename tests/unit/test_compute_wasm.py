"""The WebAssembly task runner: the examples' answers, determinism, and every per-task error.

Each test runs real modules in the pinned wasmtime under the runner's deterministic
configuration, so a failure here means a worker could get it wrong (or disagree) on chain.
"""

from __future__ import annotations

import itertools
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime

from smartchain.compute import TaskResult, TaskRunner
from smartchain.compute.wasm import MAX_MODULE, MAX_OUTPUT, STACK_BUDGET

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "compute"
FUEL = 10_000_000
TEXT = (b"It was the best of times, it was the worst of times,\n"
        b"it was the age of wisdom,\tit was the age of foolishness,\r\n"
        b"  it was the epoch of belief \x0b it was the epoch of incredulity ...\n") * 40

# The ABI for hand-written test modules: memory, an allocator that hands out 1024.
ABI = """
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
"""


def example(name: str) -> bytes:
    return (EXAMPLES / f"{name}.wasm").read_bytes()


def task(body: str, abi: str = ABI) -> bytes:
    """A module with the test ABI and ``body`` (which defines ``run``)."""
    return bytes(wasmtime.wat2wasm(f"(module {abi} {body})"))


def u64(value: int) -> bytes:
    return struct.pack("<Q", value)


def as_u64(result: TaskResult) -> int:
    assert result.ok, result.error
    return struct.unpack("<Q", result.output)[0]


def whitespace_slices(text: bytes, parts: int) -> list[bytes]:
    """Cut ``text`` into about ``parts`` slices, each cut moved forward to a whitespace byte."""
    cuts, step = [0], max(1, len(text) // parts)
    while cuts[-1] + step < len(text):
        cut = cuts[-1] + step
        while cut < len(text) and not text[cut:cut + 1].isspace():
            cut += 1
        cuts.append(cut)
    cuts.append(len(text))
    return [text[a:b] for a, b in itertools.pairwise(cuts) if b > a]


@pytest.fixture(scope="module")
def runner() -> TaskRunner:
    return TaskRunner()


# --- the examples -------------------------------------------------------------------------


def test_examples_are_built_from_their_sources() -> None:
    for source in sorted(EXAMPLES.glob("*.wat")):
        built = bytes(wasmtime.wat2wasm(source.read_text()))
        assert source.with_suffix(".wasm").read_bytes() == built, f"rebuild {source.name}"


def test_word_count_map_and_reduce(runner: TaskRunner) -> None:
    wordcount, total = example("wordcount"), example("sum_u64")
    assert as_u64(runner.run(wordcount, b"the quick  brown\tfox\njumps\n", fuel=FUEL)) == 5
    assert as_u64(runner.run(wordcount, b"", fuel=FUEL)) == 0
    assert as_u64(runner.run(wordcount, b" \t\r\n\x0b\x0c", fuel=FUEL)) == 0
    assert as_u64(runner.run(wordcount, TEXT, fuel=FUEL)) == len(TEXT.split())

    slices = whitespace_slices(TEXT, 7)
    assert b"".join(slices) == TEXT and len(slices) >= 7
    outputs = [runner.run(wordcount, piece, fuel=FUEL) for piece in slices]
    reduced = runner.run(total, b"".join(o.output for o in outputs), fuel=FUEL)
    assert as_u64(reduced) == len(TEXT.split())


def test_pi_estimate_and_seeds(runner: TaskRunner) -> None:
    pi, total = example("pi"), example("sum_u64")
    samples = 50_000
    outputs = [runner.run(pi, u64(seed) + u64(samples), fuel=FUEL * 10) for seed in range(4)]
    inside = as_u64(runner.run(total, b"".join(o.output for o in outputs), fuel=FUEL))
    assert abs(4 * inside / (4 * samples) - 3.14159265) < 0.02

    again = runner.run(pi, u64(2) + u64(samples), fuel=FUEL * 10)
    assert again == outputs[2]  # same seed: same output and same fuel
    assert len({o.output for o in outputs}) == 4  # different seeds: different draws
    assert not runner.run(pi, u64(1), fuel=FUEL).ok  # the input is seed and count


def collatz_steps(n: int) -> int:
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def test_parameter_sweep(runner: TaskRunner) -> None:
    collatz = example("collatz")
    sweep = {n: as_u64(runner.run(collatz, u64(n), fuel=FUEL)) for n in range(1, 101)}
    assert sweep == {n: collatz_steps(n) for n in range(1, 101)}
    assert as_u64(runner.run(collatz, u64(27), fuel=FUEL)) == 111
    assert as_u64(runner.run(collatz, u64(837_799), fuel=FUEL)) == 524
    assert runner.run(collatz, u64(0), fuel=FUEL).error == "trap: unreachable"
    assert runner.run(collatz, b"\1", fuel=FUEL).error == "trap: unreachable"


def test_fuel_grows_with_input(runner: TaskRunner) -> None:
    wordcount = example("wordcount")
    small = runner.run(wordcount, TEXT[:1000], fuel=FUEL)
    large = runner.run(wordcount, (TEXT * 2)[:10_000], fuel=FUEL)
    assert small.ok and large.ok
    assert large.fuel_used > 5 * small.fuel_used
    # Fuel is part of what workers agree on: pinned here for the pinned wasmtime and ABI.
    assert runner.run(wordcount, b"the quick  brown\tfox\njumps\n", fuel=FUEL).fuel_used == 1412


# --- determinism --------------------------------------------------------------------------

_CHILD = """
import json, struct, sys
from pathlib import Path
from smartchain.compute import TaskRunner
examples = Path(sys.argv[1])
runner = TaskRunner()
jobs = [("wordcount", bytes.fromhex(sys.argv[2])),
        ("pi", struct.pack("<QQ", 7, 20000)),
        ("collatz", struct.pack("<Q", 97))]
out = []
for name, data in jobs:
    r = runner.run((examples / (name + ".wasm")).read_bytes(), data, fuel=10**8)
    out.append([r.ok, r.output.hex(), r.fuel_used, r.error])
print(json.dumps(out))
"""


def test_same_output_and_fuel_in_other_processes(runner: TaskRunner) -> None:
    runs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(EXAMPLES), TEXT.hex()],
                              capture_output=True, text=True, timeout=60, check=True)
        runs.append(json.loads(proc.stdout))
    assert runs[0] == runs[1]
    here = runner.run(example("pi"), struct.pack("<QQ", 7, 20000), fuel=10**8)
    assert runs[0][1] == [True, here.output.hex(), here.fuel_used, ""]


def test_nan_results_are_canonical(runner: TaskRunner) -> None:
    # x86 produces a negative NaN for 0/0; canonicalisation makes it 0x7fc00000 everywhere.
    module = task("""
      (func (export "run") (param i32 i32) (result i64)
        (i32.store (i32.const 0) (i32.reinterpret_f32
          (f32.div (f32.load (i32.const 1024)) (f32.load (i32.const 1024)))))
        (i64.const 4))""")
    result = runner.run(module, bytes(4), fuel=FUEL)
    assert result.output == struct.pack("<I", 0x7FC00000)


# --- the module's shape -------------------------------------------------------------------


def test_invalid_bytes(runner: TaskRunner) -> None:
    assert runner.run(b"not wasm at all", b"", fuel=FUEL) == TaskResult(
        False, b"", 0, "invalid module: not a WebAssembly binary")
    text = b'(module (func (export "run")))'  # WAT is not accepted in place of a binary
    assert runner.run(text, b"", fuel=FUEL).error == "invalid module: not a WebAssembly binary"
    broken = runner.run(b"\0asm\x01\0\0\0\x01\xff", b"", fuel=FUEL)
    assert broken.error.startswith("invalid module: ") and broken.fuel_used == 0


def test_imports_are_refused(runner: TaskRunner) -> None:
    wasi = ('(import "wasi_snapshot_preview1" "fd_write" '
            "(func (param i32 i32 i32 i32) (result i32)))")
    module = task('(func (export "run") (param i32 i32) (result i64) (i64.const 0))', wasi + ABI)
    assert runner.run(module, b"", fuel=FUEL).error == (
        "module imports wasi_snapshot_preview1.fd_write; tasks may import nothing")
    memory = task('(func (export "run") (param i32 i32) (result i64) (i64.const 0))',
                  abi='(import "env" "memory" (memory 1)) (export "memory" (memory 0))'
                      '(func (export "alloc") (param i32) (result i32) (i32.const 0))')
    assert runner.check(memory) == "module imports env.memory; tasks may import nothing"


@pytest.mark.parametrize(("abi", "body", "error"), [
    ('(func (export "alloc") (param i32) (result i32) (i32.const 0))',
     '(func (export "run") (param i32 i32) (result i64) (i64.const 0))',
     "module must export memory (its linear memory)"),
    ('(memory (export "memory") 1)',
     '(func (export "run") (param i32 i32) (result i64) (i64.const 0))',
     "module must export alloc: (i32) -> i32"),
    (ABI, '(func (export "run") (param i32 i32) (result i32) (i32.const 0))',
     "module must export run: (i32, i32) -> i64"),
    (ABI, "", "module must export run: (i32, i32) -> i64"),
    (ABI, '(func (export "run") (param i32 i32) (result i64) (i64.const 0))'
          '(global (export "__smartchain_depth") i32 (i32.const 0))',
     "module exports __smartchain_depth, a name reserved for the runner"),
])
def test_exports_are_checked(runner: TaskRunner, abi: str, body: str, error: str) -> None:
    assert runner.run(task(body, abi), b"", fuel=FUEL) == TaskResult(False, b"", 0, error)


@pytest.mark.parametrize("body", [
    '(func (export "f") (result v128) (v128.const i32x4 0 0 0 0))',  # SIMD
    '(memory 1 1 shared) (func (export "f") (result i32) '
    '(i32.atomic.load (i32.const 0)))',  # threads
    "(memory 1) (memory 1)",  # multi-memory
    '(func (export "f") (return_call 0))',  # tail calls
])
def test_nondeterministic_proposals_are_off(runner: TaskRunner, body: str) -> None:
    error = runner.run(task(body, abi=""), b"", fuel=FUEL).error
    assert error.startswith("invalid module: "), error


# --- running ------------------------------------------------------------------------------


def test_out_of_fuel_uses_all_fuel(runner: TaskRunner) -> None:
    module = task('(func (export "run") (param i32 i32) (result i64) (loop (br 0)) '
                  "(i64.const 0))")
    result = runner.run(module, b"", fuel=100_000)
    assert result == TaskResult(False, b"", 100_000, "out of fuel")


def test_memory_limit(runner: TaskRunner) -> None:
    limit = 1024 * 1024
    # memory.grow past the limit returns -1, as the spec says; the task sees it
    refused = task('(func (export "run") (param i32 i32) (result i64) '
                   "(i32.store (i32.const 0) (memory.grow (i32.const 100))) (i64.const 4))")
    assert runner.run(refused, b"", fuel=FUEL, max_memory_bytes=limit).output == b"\xff" * 4
    assert runner.run(refused, b"", fuel=FUEL, max_memory_bytes=128 * limit).output == u64(1)[:4]
    # a task that grows until refused and then gives up traps with its memory full
    greedy = task("""
      (func (export "run") (param i32 i32) (result i64)
        (loop (br_if 0 (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
        unreachable)""")
    result = runner.run(greedy, b"", fuel=FUEL, max_memory_bytes=limit)
    assert result.error == ("trap: unreachable (memory full: no page left under the limit "
                            f"of {limit} bytes)")
    big = task('(func (export "run") (param i32 i32) (result i64) (i64.const 0))',
               abi='(memory (export "memory") 32)'
                   '(func (export "alloc") (param i32) (result i32) (i32.const 0))')
    assert runner.run(big, b"", fuel=FUEL, max_memory_bytes=limit).error == (
        f"memory limit exceeded: the module starts with {32 * 65536} bytes, the limit is {limit}")


def test_table_limit(runner: TaskRunner) -> None:
    module = task('(table 1000000 funcref) '
                  '(func (export "run") (param i32 i32) (result i64) (i64.const 0))')
    assert runner.run(module, b"", fuel=FUEL).error.startswith("table limit exceeded: ")


def test_deep_recursion_hits_the_depth_limit(runner: TaskRunner) -> None:
    module = task("""
      (func $down (param $n i64) (result i64)
        (if (result i64) (i64.eqz (local.get $n)) (then (i64.const 0))
          (else (i64.add (call $down (i64.sub (local.get $n) (i64.const 1))) (i64.const 1)))))
      (func (export "run") (param i32 i32) (result i64)
        (i64.store (i32.const 0) (call $down (i64.load (i32.const 1024)))) (i64.const 8))""")
    assert as_u64(runner.run(module, u64(1000), fuel=FUEL)) == 1000
    deep = runner.run(module, u64(10**9), fuel=FUEL)
    assert deep.error == "call depth limit exceeded"
    # the limit is the same on every machine: find the deepest call that fits, twice
    depths = [_deepest(runner, module) for _ in range(2)]
    assert depths[0] == depths[1] and 1000 < depths[0] < STACK_BUDGET


def _deepest(runner: TaskRunner, module: bytes) -> int:
    low, high = 1, STACK_BUDGET
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if runner.run(module, u64(mid), fuel=FUEL).ok else (low, mid - 1)
    return low


def test_native_stack_overflow_is_a_trap(runner: TaskRunner) -> None:
    # 300 call results held across the recursive call: frames far bigger than the code
    # suggests, so the native backstop traps first (marked machine-dependent)
    held = " ".join(["(call $one)"] * 300)
    module = task(f"""
      (global $g (mut i64) (i64.const 1))
      (func $one (result i64) (global.get $g))
      (func $down (param $n i64) (result i64)
        (if (result i64) (i64.eqz (local.get $n)) (then (i64.const 0))
          (else {held}
                (call $down (i64.sub (local.get $n) (i64.const 1)))
                {" ".join(["i64.add"] * 300)})))
      (func (export "run") (param i32 i32) (result i64)
        (drop (call $down (i64.const 1000000))) (i64.const 0))""")
    result = runner.run(module, b"", fuel=10**9)
    assert result.error in ("trap: native stack overflow (machine-dependent)",
                            "call depth limit exceeded")


@pytest.mark.parametrize(("code", "error"), [
    ("unreachable", "trap: unreachable"),
    ("(drop (i32.div_u (i32.const 1) (i32.const 0)))", "trap: integer divide by zero"),
    ("(drop (i32.load (i32.const 65535)))", "trap: out-of-bounds memory access"),
    ("(call_indirect (i32.const 5))", "trap: out-of-bounds table access"),
])
def test_traps(runner: TaskRunner, code: str, error: str) -> None:
    module = task(f'(table 1 funcref) (func (export "run") (param i32 i32) (result i64) '
                  f"{code} (i64.const 0))")
    result = runner.run(module, b"", fuel=FUEL)
    assert result.error == error and not result.ok and result.fuel_used > 0


def test_output_and_input_bounds(runner: TaskRunner) -> None:
    def returning(packed: int) -> bytes:
        return task(f'(func (export "run") (param i32 i32) (result i64) (i64.const {packed}))')

    assert runner.run(returning((65530 << 32) | 10), b"", fuel=FUEL).error == (
        "output out of bounds: 10 bytes at 65530, memory is 65536 bytes")
    assert runner.run(returning(-1), b"", fuel=FUEL).error == (
        f"output too large: 4294967295 bytes (limit {MAX_OUTPUT})")
    assert runner.run(returning(MAX_OUTPUT + 1), b"", fuel=FUEL).error == (
        f"output too large: {MAX_OUTPUT + 1} bytes (limit {MAX_OUTPUT})")
    assert runner.run(returning((100 << 32) | 3), b"", fuel=FUEL).output == bytes(3)
    assert runner.run(returning(1024 << 32 | 5), b"hello", fuel=FUEL).output == b"hello"
    assert runner.run(returning(0), b"x" * 70_000, fuel=FUEL).error == (
        "input out of bounds: alloc(70000) returned 1024, memory is 65536 bytes")


# --- what the depth rewrite must keep -----------------------------------------------------


def test_rewritten_modules_keep_their_semantics(runner: TaskRunner) -> None:
    # start function, call_indirect through a table, multi-value, bulk memory with a passive
    # data segment (a data count section), a function called from several places
    module = task("""
      (type $pair (func (param i64) (result i64 i64)))
      (table funcref (elem $split $split))
      (global $base (mut i64) (i64.const 0))
      (func $init (global.set $base (i64.const 40)))
      (start $init)
      (func $split (type $pair) (local.get 0) (i64.add (local.get 0) (global.get $base)))
      (data $seven "\\07\\07\\07\\07")
      (func (export "run") (param $p i32) (param $n i32) (result i64) (local $sum i64)
        (memory.fill (i32.const 8) (i32.const 7) (i32.const 4))
        (memory.init $seven (i32.const 12) (i32.const 0) (i32.const 4))
        (call_indirect (type $pair) (i64.const 2) (i32.const 1))
        (i64.add)
        (call $split (i64.const 0))
        (i64.add)
        (i64.add)
        (local.set $sum)
        (i64.store (i32.const 0) (local.get $sum))
        (i64.const 16))""")
    result = runner.run(module, b"", fuel=FUEL)
    assert result.output == u64(2 + 42 + 0 + 40) + b"\7" * 8, result.error
    trapping_start = task('(func $s unreachable) (start $s) '
                          '(func (export "run") (param i32 i32) (result i64) (i64.const 0))')
    assert runner.run(trapping_start, b"", fuel=FUEL).error == "trap: unreachable"


def test_rewrite_handles_many_functions_locals_and_references(runner: TaskRunner) -> None:
    # 200 functions (indices need two LEB128 bytes), 300 locals in groups of mixed types,
    # globals before the depth global, a declarative segment with ref.func and table.set
    chain = "\n".join(f"(func $f{i} (param i64) (result i64) "
                      f"(call $f{i + 1} (i64.add (local.get 0) (i64.const {i}))))"
                      for i in range(200))
    many = " ".join(f"(local $l{i} {('i32', 'i64', 'f64')[i % 3]})" for i in range(300))
    module = task(f"""
      (global $a (mut i32) (i32.const 5)) (global $b i64 (i64.const 7))
      (table $t 2 funcref)
      (elem declare func $f200)
      {chain}
      (func $f200 (param i64) (result i64) {many}
        (local.set $l298 (i64.const 1)) (i64.add (local.get 0) (local.get $l298)))
      (func (export "run") (param i32 i32) (result i64)
        (table.set $t (i32.const 1) (ref.func $f200))
        (i64.store (i32.const 0) (i64.add (call $f0 (i64.const 0))
          (call_indirect $t (param i64) (result i64) (global.get $b) (i32.const 1))))
        (i64.const 8))""")
    assert as_u64(runner.run(module, b"", fuel=FUEL)) == sum(range(200)) + 1 + 7 + 1


def test_compiled_modules_are_cached(runner: TaskRunner) -> None:
    module = example("collatz")
    assert runner.check(module) == ""
    assert runner._compiled(module) is runner._compiled(bytearray(module))  # keyed by hash
    small = TaskRunner(cache_size=1)
    small.check(module)
    small.check(example("pi"))
    assert len(small._cache) == 1


def test_wrong_arguments_raise(runner: TaskRunner) -> None:
    with pytest.raises(ValueError):
        runner.run(example("collatz"), u64(1), fuel=0)
    with pytest.raises(ValueError):
        runner.run(example("collatz"), u64(1), fuel=FUEL, max_memory_bytes=0)


def test_module_size_is_capped(runner: TaskRunner) -> None:
    huge = b"\0asm" + bytes(MAX_MODULE)
    assert runner.check(huge) == f"module too large: {MAX_MODULE + 4} bytes (limit {MAX_MODULE})"
