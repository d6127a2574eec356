#!/usr/bin/env bash
# Session 53's second call (written in session 53, which got no machine: run it next session after
# s53_call1.sh). Trees: M main; T sp-two (the split step's in kernel at batch 1 with a warp's two
# columns held before the wait: norm_gemv2_kernel; MB_SP_TWO=0 runs main's kernel in the same
# binary); K16 its break (the pair's second column written with the first's sum). The suites with
# the pair kernel and without it, the break, then rounds at the 130m shape's one row (fp32, bf16
# copies) of M, T and T with MB_SP_TWO=0; the sp-prof tool's timeline of both in kernels (tree TP:
# sp-two + sp-prof; its .bin files land in $OUT), and of the 2.8b shape's bf16 row; then racecheck
# and memcheck of the small shapes. Steps past S53_END seconds (400) are skipped: S53_END=520 with
# a timeout of 600 runs them all.
#   bash scripts/s53_call2.sh > $OUT/log 2>&1; tail -80 $OUT/log   (timeout 420; carry .deps)
set -uo pipefail
END=${S53_END:-400}
export LEAN_TIMEOUT=150
source scripts/lean.sh
lean_env
M=/tmp/s53/M2 T=/tmp/s53/T K16=/tmp/s53/K16 TP=/tmp/s53/TP
lean_copy "$M"
lean_patched "$T" bench/trials/sp-two.patch
lean_patched "$TP" bench/trials/sp-two.patch && patch -s -d "$TP" -p1 <bench/trials/sp-prof.patch
lean_broken "$K16" libmamba/src/ops/block_step_split.cu \
    's/sp_in_put(p, b, n1, y1 \* rstd, a1, w1)/sp_in_put(p, b, n1, y0 * rstd, a1, w1)/' bench/trials/sp-two.patch
lean_build "$M" bench/bench_generate &
lean_build "$T" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$K16" tests/gpu_test_ops &
lean_build "$TP" bench/bench_generate &
lean_ready
LEAN_TAIL=12 lean_suite "$T" gpu_test_ops test_block_step "B=1 d=(768|40|16) "
LEAN_TAIL=6 lean_suite "$T" gpu_test_ops test_head_sample "B=1 d=768 "
echo "== T with MB_SP_TWO=0 (main's in kernel)"
MB_SP_TWO=0 LEAN_TAIL=4 lean_suite "$T" gpu_test_ops test_block_step
LEAN_TAIL=6 lean_suite "$K16" gpu_test_ops test_block_step "e-0[0-4] \(tol"
rows() { grep -E "^\| 130m" | grep -v prefill | cut -c1-110; }
for r in 1 2; do
    for w in fp32 bf16; do
        for t in M T T0; do
            lean_before $((END - 150)) || break 3
            d=$T v=MB_SP_TWO=1
            [ $t = M ] && d=$M
            [ $t = T0 ] && v=MB_SP_TWO=0
            echo "== round $r, $t: 130m, 1 row, $w ($(el) s)"
            env $v timeout 40 "$d/build-lean/bench/bench_generate" --device cuda --shape 130m --batch 1 --weights $w | rows
        done
    done
done
for w in fp32 bf16; do
    for v in 0 1; do
        lean_before $((END - 120)) || break 2
        echo "== TP (sp-prof), MB_SP_TWO=$v: 130m, 1 row, $w ($(el) s)"
        MB_SP_TWO=$v MB_SP_PROF="${OUT:-/tmp}/sp_prof_${w}_two$v.bin" timeout 40 "$TP/build-lean/bench/bench_generate" \
            --device cuda --shape 130m --batch 1 --weights $w | rows
        python3 scripts/sp_prof.py "${OUT:-/tmp}/sp_prof_${w}_two$v.bin"
    done
done
if lean_before $((END - 150)); then
    echo "== TP (sp-prof): 2.8b, 1 row, bf16 copies (main's in kernel: d 2560) ($(el) s)"
    MB_SP_PROF="${OUT:-/tmp}/sp_prof_28b_bf16.bin" timeout 60 "$TP/build-lean/bench/bench_generate" --device cuda \
        --shape 2.8b --batch 1 --weights bf16 | grep -E "^\| 2.8b" | grep -v prefill | cut -c1-110
    python3 scripts/sp_prof.py "${OUT:-/tmp}/sp_prof_28b_bf16.bin"
fi
lean_before $((END - 110)) && lean_racecheck "$T" gpu_test_ops test_block_step
lean_before $((END - 70)) && lean_memcheck "$T" gpu_test_ops test_head_sample
lean_before $((END - 40)) && lean_suite "$T" gpu_test_model
echo "== done at $(el) s"
