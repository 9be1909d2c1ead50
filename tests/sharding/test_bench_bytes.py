"""The HLO reader of ``benchmarks.sharding``: collective result bytes, loops apart."""

from __future__ import annotations

from benchmarks.sharding import collective_bytes

HLO = """HloModule jit_f, entry_computation_layout={(f32[4,128]{1,0})->s32[4]{0}}

%add (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  ROOT %s = f32[] add(%a, %b)
}

%body.1 (p: (s32[], f32[4]), /*index=1*/x: f32[4]) -> (s32[], f32[4]) {
  %ar = f32[4]{0} all-reduce(%x), channel_id=1, replica_groups={{0,1}}, to_apply=%add
  %c = (s32[], f32[4]) call(%p), to_apply=%inner
}

%inner (q: (s32[], f32[4])) -> (s32[], f32[4]) {
  %ag = f32[4,16]{1,0} all-gather(%y), channel_id=2, dimensions={1}
}

%cond.1 (p: (s32[], f32[4])) -> pred[] {
  ROOT %lt = pred[] compare(%i, %n), direction=LT
}

ENTRY %main (x: f32[4,128]) -> s32[4] {
  %m = f32[4]{0} all-reduce(%r), channel_id=3, replica_groups={{0,1}}, to_apply=%add
  %pair = (f32[4,128]{1,0}, bf16[2]{0}) all-to-all(%x, %z), channel_id=4
  %cp-start = (f32[4]{0}, f32[4]{0}) collective-permute-start(%m), channel_id=5
  %cp-done = f32[4]{0} collective-permute-done(%cp-start)
  %w = (s32[], f32[4]) while(%t), condition=%cond.1, body=%body.1
  ROOT %ids = s32[4]{0} all-reduce(%k), channel_id=6, to_apply=%add
}
"""


def test_collective_bytes_counts_results_and_loops() -> None:
    got = collective_bytes(HLO)
    loop = 4 * 4 + 4 * 16 * 4  # the all-reduce in the body and the all-gather it calls
    outside = 4 * 4 + (4 * 128 * 4 + 2 * 2) + 4 * 4 + 4 * 4  # the -start is not counted
    assert got["total"] == loop + outside
    assert got["in_loops"] == loop
    assert got["count"] == 6
    assert got["by_op"] == {
        "all-reduce": 3 * 16,
        "all-gather": 256,
        "all-to-all": 2052,
        "collective-permute": 16,
    }
    assert collective_bytes("HloModule empty\n")["total"] == 0
